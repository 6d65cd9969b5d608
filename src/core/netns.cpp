#include "core/netns.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <thread>

#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::core {

std::filesystem::path netns_file(const std::string& name) { return std::filesystem::path("/run/netns") / name; }

bool netns_exists(const std::string& name)
{
    std::error_code ec;
    return std::filesystem::exists(netns_file(name), ec);
}

Status ip(const std::string& netns, const std::vector<std::string>& args)
{
    std::vector<std::string> argv = {"ip"};
    if (!netns.empty()) argv.insert(argv.end(), {"-n", netns});
    argv.insert(argv.end(), args.begin(), args.end());
    DEVEMU_TRY(r, run(argv, std::chrono::seconds(20)));
    if (r.exit_code != 0)
        return fail(Errc::kernel, fmt::format("`{}` failed: {}", join(argv, " "), trim(r.err)), netns.empty() ? "ip" : netns_file(netns).string(),
                    "install iproute2; check `ip netns list`");
    return {};
}

Status netns_create(const std::string& name, Transaction& tx)
{
    const auto file = netns_file(name).string();
    DEVEMU_CHECK(tx.record({UndoOp::unlink, file}));
    DEVEMU_CHECK(tx.record({UndoOp::umount, file}));
    DEVEMU_CHECK(ip("", {"netns", "add", name}));
    return ip(name, {"link", "set", "lo", "up"});
}

Result<Tap> open_tap(const std::string& netns, const std::string& bridge)
{
    // setns() changes only the calling thread's namespace: do it on a thread of its own. The tap belongs to the
    // namespace it was created in, whoever holds the fd later.
    Tap tap;
    int err = 0;
    std::string what;
    std::thread([&] {
        UniqueFd ns(::open(netns_file(netns).c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0) {
            err = errno, what = "cannot enter network namespace";
            return;
        }
        UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
        if (!fd) {
            err = errno, what = "cannot open /dev/net/tun";
            return;
        }
        ifreq ifr{};
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        std::strncpy(ifr.ifr_name, "devemu%d", IFNAMSIZ - 1);
        if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
            err = errno, what = "cannot create a tap device";
            return;
        }
        tap.ifname = ifr.ifr_name;
        tap.fd = std::move(fd);
    }).join();
    if (err) {
        errno = err;
        return fail_errno(what, netns_file(netns).string(), "run as root; modprobe tun");
    }
    DEVEMU_CHECK(ip(netns, {"link", "set", tap.ifname, "master", bridge, "up"}));
    return tap;
}

}  // namespace devemu::core
