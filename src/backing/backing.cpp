#include "backing/backing.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "backing/blockdev.hpp"
#include "backing/dm.hpp"
#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/probe.hpp"
#include "core/text.hpp"
#include "backing/rbd.hpp"

namespace devemu::backing {

using core::Errc;

namespace {

core::Result<Backing> file_backing(const profile::Backstore& b, core::Transaction* tx, bool force)
{
    Backing out{Kind::file, b.path, 0, -1};
    struct stat st {};
    const bool exists = ::stat(b.path.c_str(), &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) return core::fail(Errc::invalid_input, "not a regular file", b.path, "use a block backstore for devices");
    const std::uint64_t have = exists ? static_cast<std::uint64_t>(st.st_size) : 0;
    if (!b.size) {
        if (!exists || have == 0) return core::fail(Errc::invalid_input, "no size given and the file is empty or absent", b.path, "add size = \"1G\"");
        out.size = have;
        return out;
    }
    out.size = *b.size;
    if (exists && have != 0 && have != *b.size && !force)
        return core::fail(Errc::invalid_input,
                          fmt::format("file holds {} but the profile asks for {}; devemu does not resize data", core::format_size(have),
                                      core::format_size(*b.size)),
                          b.path, "fix the size, or pass --force to resize it");
    if (tx && (!exists || have != *b.size)) {
        core::UniqueFd fd(::open(b.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        if (!fd) return core::fail_errno("cannot create", b.path);
        if (::ftruncate(fd.get(), static_cast<off_t>(*b.size)) != 0) return core::fail_errno("cannot size", b.path);
    }
    return out;
}

core::Result<Backing> zram_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx, std::optional<int> reuse)
{
    Backing out{Kind::block, "", *b.size, -1};
    if (reuse) {
        const auto dir = roots.sys / "block" / fmt::format("zram{}", *reuse);
        auto size = core::read_attr(dir / "disksize");
        auto algo = core::read_attr(dir / "comp_algorithm");
        if (size && std::to_string(*b.size) == *size && algo && algo->find("[" + b.comp_algorithm + "]") != std::string::npos) {
            out.zram = *reuse;
            out.path = (roots.dev / fmt::format("zram{}", *reuse)).string();
            return out;
        }
    }
    if (!tx) {
        out.path = (roots.dev / "zram(new)").string();
        return out;
    }
    const auto control = roots.sys / "class/zram-control";
    auto n = core::read_number(control / "hot_add");
    if (!n && n.error().code == Errc::kernel) return std::unexpected(n.error());
    if (!n) return core::fail(Errc::missing, "cannot add a zram device", (control / "hot_add").string(), "modprobe zram, or use --vm");
    out.zram = static_cast<int>(*n);
    DEVEMU_CHECK(tx->record(core::UndoRecord::named_op("zram_remove", (control / "hot_remove").string(), std::to_string(*n))));
    const auto dir = roots.sys / "block" / fmt::format("zram{}", out.zram);
    if (auto s = core::write_attr(dir / "comp_algorithm", b.comp_algorithm); !s)
        return core::fail(Errc::invalid_input, "the kernel's zram does not offer comp_algorithm \"" + b.comp_algorithm + "\"", b.loc.str(),
                          "pick one of: " + std::string(core::trim(core::read_attr(dir / "comp_algorithm").value_or("?"))));
    DEVEMU_CHECK(core::write_attr(dir / "disksize", std::to_string(*b.size)));
    out.path = (roots.dev / fmt::format("zram{}", out.zram)).string();
    // devtmpfs makes the node asynchronously; wait briefly so LIO's open of udev_path finds it.
    for (int i = 0; i < 200 && ::access(out.path.c_str(), F_OK) != 0; ++i) ::usleep(5000);
    return out;
}

}  // namespace

namespace {
std::optional<int> recorded(const nlohmann::json& record, const std::string& name, const char* key)
{
    if (record.contains("backstores") && record["backstores"].contains(name) && record["backstores"][name].contains(key))
        return record["backstores"][name][key].get<int>();
    return std::nullopt;
}
}  // namespace

std::optional<int> recorded_zram(const nlohmann::json& record, const std::string& name) { return recorded(record, name, "zram"); }
std::optional<int> recorded_rbd(const nlohmann::json& record, const std::string& name) { return recorded(record, name, "rbd"); }

namespace {
core::Result<Backing> resolve_base(const profile::Backstore& b, const Roots& roots, core::Transaction* tx, std::optional<int> reuse_zram,
                                   bool force, const RbdClient* rbd, std::optional<int> reuse_rbd)
{
    switch (b.type) {
    case profile::BackstoreType::fileio: {
        struct stat st {};
        if (::stat(b.path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {   // LIO fileio on a device: its page cache
            DEVEMU_CHECK(check_block_device_free(b.path, force || b.host_disk));
            DEVEMU_TRY(size, block_device_size(b.path));
            return Backing{Kind::block, b.path, size, -1};
        }
        return file_backing(b, tx, force);
    }
    case profile::BackstoreType::block: {
        // Faults from an earlier `up` hold the device with devemu's own dm devices; those do not make it busy.
        DEVEMU_CHECK(check_block_device_free(b.path, force || b.host_disk, b.faults.empty() ? "" : "devemu-"));
        DEVEMU_TRY(size, block_device_size(b.path));
        return Backing{Kind::block, b.path, size, -1};
    }
    case profile::BackstoreType::zram:
        return zram_backing(b, roots, tx, reuse_zram);
    case profile::BackstoreType::user: {
        // The handler's backing follows the same rules as fileio (a sparse file, never resized without --force)
        // and block (never a device holding data without --force).
        if (b.path.starts_with("zram:")) {   // a zram device devemu makes (and removes), served by the handler
            profile::Backstore z = b;
            z.type = profile::BackstoreType::zram;
            return zram_backing(z, roots, tx, reuse_zram);
        }
        struct stat st {};
        if (::stat(b.path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
            DEVEMU_CHECK(check_block_device_free(b.path, force || b.host_disk));
            DEVEMU_TRY(size, block_device_size(b.path));
            return Backing{Kind::block, b.path, size, -1};
        }
        return file_backing(b, tx, force);
    }
    case profile::BackstoreType::rbd:
        return rbd_backing(b, roots, tx, rbd, reuse_rbd);
    }
    return core::fail(Errc::invalid_input, "unknown backstore type", b.loc.str());
}
}  // namespace

core::Result<Backing> resolve_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx,
                                      std::optional<int> reuse_zram, bool force, const RbdClient* rbd, std::optional<int> reuse_rbd)
{
    DEVEMU_TRY(base, resolve_base(b, roots, tx, reuse_zram, force, rbd, reuse_rbd));
    return stack_faults(b, base, tx);
}

void register_undo_ops()
{
    register_dm_undo();
    core::register_undo("zram_remove", [](const core::UndoRecord& r) -> core::Status {
        if (::access(r.path.c_str(), F_OK) != 0) return {};
        auto s = core::write_attr(r.path, r.value);
        // A zram device's last user may close it asynchronously (a kernel thread's fput is deferred to a workqueue:
        // f_mass_storage's LUN after unbind, LIO's iblock after rmdir): give it two seconds.
        for (int i = 0; i < 100 && !s && s.error().sys_errno == EBUSY; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            s = core::write_attr(r.path, r.value);
        }
        if (const int e = s ? 0 : s.error().sys_errno; e != 0 && e != ENOENT && e != ENODEV && e != EINVAL) return s;
        return {};
    });
}

}  // namespace devemu::backing
