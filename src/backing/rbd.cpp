#include "backing/rbd.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <set>

#include "core/fs.hpp"
#include "core/netns.hpp"
#include "core/text.hpp"

namespace devemu::backing {

using core::Errc;

namespace {

bool shows(const fs::path& dev, const profile::Backstore& b)
{
    auto pool = core::read_attr(dev / "pool"), name = core::read_attr(dev / "name");
    return pool && name && core::trim(*pool) == b.pool && core::trim(*name) == b.image;
}

// Maps the image through krbd, journals the unmap, and returns the new device's id. libceph connects from the
// writer's network namespace: a cluster in a namespace is mapped from a thread that has entered it.
core::Result<std::string> map_image(const profile::Backstore& b, const fs::path& bus, core::Transaction& tx, const RbdClient* client)
{
    if (!client) return core::fail(Errc::invalid_input, "no cluster resolved for rbd backstore '" + b.name + "'", b.loc.str());
    if (::access((bus / "add_single_major").c_str(), F_OK) != 0)
        return core::fail(Errc::missing, "the kernel has no rbd (krbd)", (bus / "add_single_major").string(), "modprobe rbd, or use --vm");
    std::set<std::string> before;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(bus / "devices", ec)) before.insert(e.path().filename().string());
    // Bounded waits: an unreachable monitor fails the map in 15 s; an OSD gone for 30 s fails I/O instead of
    // hanging it forever.
    const std::string opts = fmt::format("name={}{},mount_timeout=15,osd_request_timeout=30", client->user,
                                         client->secret.empty() ? "" : ",secret=" + client->secret);
    const std::string request = fmt::format("{} {} {} {}", client->mon_host, opts, b.pool, b.image);
    if (auto s = core::in_netns(client->netns, [&] { return core::write_attr(bus / "add_single_major", request); }); !s) {
        // The kernel's reason is an errno; say which cluster and what to check, never the secret.
        const int e = s.error().sys_errno;
        const char* hint = e == ETIMEDOUT ? "the monitors did not answer in 15 s: check mon_host and the network"
                         : e == EACCES || e == EPERM ? "the cluster refused the key: check keyring and user"
                         : e == ENOENT ? "the pool or image does not exist (rbd ls -p POOL)"
                         : e == EBUSY ? "the image is in use (locked) elsewhere"
                                      : "see dmesg (libceph/rbd lines)";
        return core::fail(Errc::missing, fmt::format("cannot map rbd image {}/{} from {}: {}", b.pool, b.image, client->mon_host, std::strerror(e)),
                          b.loc.str(), hint);
    }
    std::string id;
    for (auto& e : fs::directory_iterator(bus / "devices", ec))
        if (!before.count(e.path().filename().string()) && shows(e.path(), b)) id = e.path().filename().string();
    if (id.empty()) return core::fail(Errc::kernel, "rbd mapped but no new device appeared", (bus / "devices").string());
    DEVEMU_CHECK(tx.record({core::UndoOp::write, (bus / "remove_single_major").string(), id}));
    return id;
}

}  // namespace

core::Result<Backing> rbd_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx, const RbdClient* client,
                                  std::optional<int> reuse)
{
    Backing out{Kind::block, "/dev/rbd(new)", b.size.value_or(0), -1};
    const auto bus = roots.sys / "bus/rbd";
    std::string id;
    if (reuse && shows(bus / "devices" / std::to_string(*reuse), b)) id = std::to_string(*reuse);
    else if (!tx) return out;
    else {
        DEVEMU_TRY(mapped, map_image(b, bus, *tx, client));
        id = mapped;
    }
    const auto num = core::parse_number(id);
    if (!num) return core::fail(Errc::kernel, "krbd device id \"" + id + "\" is not a number", (bus / "devices").string());
    out.rbd = static_cast<int>(*num);
    out.path = (roots.dev / ("rbd" + id)).string();
    if (auto size = core::read_number(bus / "devices" / id / "size")) out.size = *size;
    for (int i = 0; i < 200 && ::access(out.path.c_str(), F_OK) != 0; ++i) ::usleep(5000);
    return out;
}

}  // namespace devemu::backing
