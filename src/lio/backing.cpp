#include "lio/backing.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <set>

#include "core/blockdev.hpp"
#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/probe.hpp"
#include "core/text.hpp"

namespace devemu::lio {

using core::Errc;

namespace {

core::Result<Backing> file_backing(const profile::Backstore& b, core::Transaction* tx, bool force)
{
    Backing out{"fileio", b.path, 0, -1};
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
    Backing out{"iblock", "", *b.size, -1};
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
    auto n = core::read_attr(control / "hot_add");
    if (!n) return core::fail(Errc::missing, "cannot add a zram device", (control / "hot_add").string(), "modprobe zram, or use --vm");
    out.zram = std::stoi(*n);
    DEVEMU_CHECK(tx->record({core::UndoOp::zram_remove, (control / "hot_remove").string(), *n}));
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

// The cephx secret of client.USER from a keyring file ("[client.admin]" then "key = ...").
core::Result<std::string> keyring_secret(const std::string& keyring, const std::string& user)
{
    DEVEMU_TRY(text, core::read_file(keyring));
    bool in_section = false;
    for (auto& raw : core::split(text, '\n')) {
        auto line = std::string(core::trim(raw));
        if (line.starts_with("[")) in_section = line == "[client." + user + "]";
        else if (in_section && line.starts_with("key")) {
            auto eq = line.find('=');
            if (eq != std::string::npos) return std::string(core::trim(line.substr(eq + 1)));
        }
    }
    return core::fail(Errc::invalid_input, "no key for client." + user, keyring, "check the keyring's [client." + user + "] section");
}

// krbd: map POOL/IMAGE through /sys/bus/rbd/add_single_major with a bounded mount_timeout (an unreachable
// monitor must not hang `up` for minutes), journal the unmap, and back an iblock backstore with /dev/rbdN.
core::Result<Backing> rbd_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx, bool)
{
    if (b.cluster == "local")
        return core::fail(Errc::not_implemented, "cluster = \"local\" (devemu's own mini-cluster) arrives with issue 9", b.loc.str(),
                          "give mon_host and keyring of a running cluster");
    Backing out{"iblock", "/dev/rbd(new)", b.size.value_or(0), -1};
    if (!tx) return out;
    const std::string user = b.user.empty() ? "admin" : b.user;
    std::string secret;
    if (!b.keyring.empty()) {
        DEVEMU_TRY(key, keyring_secret(b.keyring, user));
        secret = key;
    }
    const auto bus = roots.sys / "bus/rbd";
    if (::access((bus / "add_single_major").c_str(), F_OK) != 0)
        return core::fail(Errc::missing, "the kernel has no rbd (krbd)", (bus / "add_single_major").string(), "modprobe rbd, or use --vm");
    std::set<std::string> before;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(bus / "devices", ec)) before.insert(e.path().filename().string());
    const std::string opts = fmt::format("name={}{},mount_timeout=15,osd_request_timeout=30", user, secret.empty() ? "" : ",secret=" + secret);
    if (auto s = core::write_attr(bus / "add_single_major", fmt::format("{} {} {} {}", b.mon_host, opts, b.pool, b.image)); !s) {
        // The kernel's reason is an errno; say which cluster and what to check, never the secret.
        return core::fail(Errc::missing,
                          fmt::format("cannot map rbd image {}/{} from {}: {}", b.pool, b.image, b.mon_host, std::strerror(s.error().sys_errno)),
                          b.loc.str(), "check that the monitors answer, the key is right, and the pool and image exist (rbd ls -p POOL)");
    }
    std::string id;
    for (auto& e : fs::directory_iterator(bus / "devices", ec))
        if (!before.count(e.path().filename().string())) id = e.path().filename().string();
    if (id.empty()) return core::fail(Errc::kernel, "rbd mapped but no new device appeared", (bus / "devices").string());
    DEVEMU_CHECK(tx->record({core::UndoOp::write, (bus / "remove_single_major").string(), id}));
    out.path = (roots.dev / ("rbd" + id)).string();
    if (auto size = core::read_attr(bus / "devices" / id / "size")) out.size = std::stoull(*size);
    for (int i = 0; i < 200 && ::access(out.path.c_str(), F_OK) != 0; ++i) ::usleep(5000);
    return out;
}

}  // namespace

std::optional<int> recorded_zram(const nlohmann::json& record, const std::string& name)
{
    if (record.contains("backstores") && record["backstores"].contains(name) && record["backstores"][name].contains("zram"))
        return record["backstores"][name]["zram"].get<int>();
    return std::nullopt;
}

core::Result<Backing> resolve_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx,
                                      std::optional<int> reuse_zram, bool force)
{
    switch (b.type) {
    case profile::BackstoreType::fileio:
        return file_backing(b, tx, force);
    case profile::BackstoreType::block: {
        DEVEMU_CHECK(core::check_block_device_free(b.path, force));
        DEVEMU_TRY(size, core::block_device_size(b.path));
        return Backing{"iblock", b.path, size, -1};
    }
    case profile::BackstoreType::zram:
        return zram_backing(b, roots, tx, reuse_zram);
    case profile::BackstoreType::user: {
        // The handler's backing follows the same rules as fileio (a sparse file, never resized without --force)
        // and block (never a device holding data without --force).
        if (b.path.starts_with("zram:")) {   // a zram device devemu makes (and removes), served by the handler
            profile::Backstore z = b;
            z.type = profile::BackstoreType::zram;
            DEVEMU_TRY(zb, zram_backing(z, roots, tx, reuse_zram));
            zb.plugin = "user";
            return zb;
        }
        struct stat st {};
        if (::stat(b.path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
            DEVEMU_CHECK(core::check_block_device_free(b.path, force));
            DEVEMU_TRY(size, core::block_device_size(b.path));
            return Backing{"user", b.path, size, -1};
        }
        DEVEMU_TRY(f, file_backing(b, tx, force));
        f.plugin = "user";
        return f;
    }
    case profile::BackstoreType::rbd:
        return rbd_backing(b, roots, tx, force);
    }
    return core::fail(Errc::invalid_input, "unknown backstore type", b.loc.str());
}

}  // namespace devemu::lio
