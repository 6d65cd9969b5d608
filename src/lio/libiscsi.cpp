#include "lio/libiscsi.hpp"

#include <dlfcn.h>

namespace devemu::lio {

namespace {
constexpr const char* kSoname = "libiscsi.so.7";

core::Result<LibIscsi> load()
{
    void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);   // kept for the life of the process
    if (!h) return core::fail(core::Errc::missing, std::string("cannot load libiscsi: ") + ::dlerror(), kSoname,
                              "install libiscsi7 (tools/setup does)");
    LibIscsi l;
#define DEVEMU_LIBISCSI_LOAD(f)                                                                                  \
    if (!(l.f = reinterpret_cast<decltype(l.f)>(::dlsym(h, #f))))                                                \
        return core::fail(core::Errc::missing, "libiscsi has no " #f, kSoname, "install libiscsi7 1.19 or newer");
    DEVEMU_LIBISCSI_FUNCTIONS(DEVEMU_LIBISCSI_LOAD)
#undef DEVEMU_LIBISCSI_LOAD
    return l;
}
}  // namespace

core::Result<const LibIscsi*> libiscsi()
{
    static const core::Result<LibIscsi> lib = load();
    if (!lib) return std::unexpected(lib.error());
    return &*lib;
}

}  // namespace devemu::lio
