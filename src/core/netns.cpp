#include "core/netns.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

Status in_netns(const std::string& name, const std::function<Status()>& fn)
{
    if (name.empty()) return fn();
    Status out;
    std::thread([&] {
        UniqueFd ns(::open(netns_file(name).c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0) {
            out = fail_errno("cannot enter network namespace", netns_file(name).string(), "check that it exists (ip netns list)");
            return;
        }
        out = fn();
    }).join();
    return out;
}

Result<Tap> open_tap(const std::string& netns, const std::string& bridge)
{
    // The tap belongs to the namespace it was created in, whoever holds the fd later.
    Tap tap;
    DEVEMU_CHECK(in_netns(netns, [&]() -> Status {
        UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
        if (!fd) return fail_errno("cannot open /dev/net/tun", netns_file(netns).string(), "run as root; modprobe tun");
        ifreq ifr{};
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        std::strncpy(ifr.ifr_name, "devemu%d", IFNAMSIZ - 1);
        if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return fail_errno("cannot create a tap device", netns_file(netns).string(), "run as root; modprobe tun");
        tap.ifname = ifr.ifr_name;
        tap.fd = std::move(fd);
        return {};
    }));
    DEVEMU_CHECK(ip(netns, {"link", "set", tap.ifname, "master", bridge, "up"}));
    return tap;
}

Result<std::uint16_t> free_loopback_port()
{
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return fail_errno("socket", "127.0.0.1");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        return fail_errno("cannot find a free port", "127.0.0.1");
    return ntohs(a.sin_port);
}

bool loopback_port_answers(std::uint16_t port)
{
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

int tcp_bind_errno(const std::string& address, std::uint16_t port)
{
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    std::string addr = address;
    if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
    if (::inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET, v4->sin_port = htons(port), len = sizeof *v4;
    } else if (::inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6, v6->sin6_port = htons(port), len = sizeof *v6;
    } else {
        return -1;
    }
    UniqueFd s(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return -1;
    const int one = 1;
    if (::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return -1;
    return ::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
}

bool tcp_port_taken(const std::string& addr, std::uint16_t port) { return tcp_bind_errno(addr, port) == EADDRINUSE; }

}  // namespace devemu::core
