#include "vm/kernel.hpp"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <vector>

#include "core/fd.hpp"

namespace devemu::vm {

using core::Errc;

namespace {

bool has_modules(const fs::path& root, const std::string& ver)
{
    std::error_code ec;
    return fs::exists(root / "lib/modules" / ver / "modules.dep", ec);
}

// A kernel tree as dpkg-deb -x leaves it: boot/vmlinuz-VER and lib/modules/VER.
std::optional<Kernel> from_tree(const fs::path& dir, const std::string& source)
{
    std::error_code ec;
    std::vector<std::string> versions;
    for (auto& e : fs::directory_iterator(dir / "boot", ec)) {
        auto n = e.path().filename().string();
        if (n.starts_with("vmlinuz-")) versions.push_back(n.substr(8));
    }
    std::sort(versions.begin(), versions.end());
    for (auto it = versions.rbegin(); it != versions.rend(); ++it)
        if (has_modules(dir, *it)) return Kernel{dir / "boot" / ("vmlinuz-" + *it), dir, *it, source};
    return std::nullopt;
}

core::Result<Kernel> from_user(const std::string& arg, const std::string& source)
{
    fs::path p(arg);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        if (auto k = from_tree(p, source)) return *k;
        return core::fail(Errc::missing, "no boot/vmlinuz-VERSION with lib/modules/VERSION/modules.dep here", p.string(),
                          "point at a tree unpacked with dpkg-deb -x and run depmod -b DIR VERSION, or run tools/setup");
    }
    if (!fs::is_regular_file(p, ec)) return core::fail(Errc::missing, "kernel not found", p.string(), "check " + source);
    auto name = p.filename().string();
    if (!name.starts_with("vmlinuz-"))
        return core::fail(Errc::invalid_input, "cannot tell the kernel version from the file name", p.string(),
                          "name it vmlinuz-VERSION, or pass the unpacked tree");
    auto ver = name.substr(8);
    for (auto root : {p.parent_path().parent_path(), fs::path("/")})
        if (has_modules(root, ver)) return Kernel{p, root, ver, source};
    return core::fail(Errc::missing, "no modules for kernel " + ver + " (lib/modules/" + ver + "/modules.dep)", p.string(),
                      "install its modules or pass the unpacked package tree");
}

}  // namespace

core::Result<Kernel> find_kernel(const std::string& explicit_kernel, const fs::path& cache_dir)
{
    if (!explicit_kernel.empty()) return from_user(explicit_kernel, "--kernel");
    if (const char* env = std::getenv("DEVEMU_KERNEL"); env && *env) return from_user(env, "DEVEMU_KERNEL");
    std::error_code ec;
    std::vector<fs::path> trees;
    for (auto& e : fs::directory_iterator(cache_dir / "kernel", ec))
        if (e.is_directory()) trees.push_back(e.path());
    std::sort(trees.begin(), trees.end());
    for (auto it = trees.rbegin(); it != trees.rend(); ++it)
        if (auto k = from_tree(*it, "cache")) return *k;
    utsname u{};
    ::uname(&u);
    const std::string ver = u.release;
    const fs::path host = fs::path("/boot") / ("vmlinuz-" + ver);
    if (fs::exists(host, ec) && ::access(host.c_str(), R_OK) == 0 && has_modules("/", ver)) return Kernel{host, "/", ver, "host"};
    return core::fail(Errc::missing, "no kernel for the VM",
                      (cache_dir / "kernel").string(),
                      "run tools/setup (it unpacks Debian's linux-image into the cache), or pass --kernel DIR|VMLINUZ");
}

Accel probe_kvm()
{
    core::UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (!kvm) return {false, fmt::format("/dev/kvm: {}", std::strerror(errno))};
    int api = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) return {false, fmt::format("/dev/kvm answers API {}, not {}", api, KVM_API_VERSION)};
    core::UniqueFd vmfd(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (!vmfd) return {false, fmt::format("/dev/kvm exists but KVM_CREATE_VM failed: {}", std::strerror(errno))};
    return {true, "/dev/kvm works"};
}

}  // namespace devemu::vm
