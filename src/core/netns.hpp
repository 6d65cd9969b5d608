#pragma once
// Network namespaces devemu makes for private networks (made with `ip netns add`, so `ip netns exec NAME` and a
// user's own tools can enter them), and tap devices opened inside one and handed to a process outside it (qemu
// in the host namespace, with a NIC on the private network: `-netdev tap,fd=N`).
#include <filesystem>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/transaction.hpp"

namespace devemu::core {

[[nodiscard]] std::filesystem::path netns_file(const std::string& name);   // /run/netns/NAME
[[nodiscard]] bool netns_exists(const std::string& name);

// Creates the namespace with loopback up, journaling its removal first (unmount and unlink of its file: every
// device in it, bridges and taps, goes with it once no process holds it).
[[nodiscard]] Status netns_create(const std::string& name, Transaction& tx);

// Runs `fn` on a thread that has entered namespace `name` (setns changes only the calling thread), and returns
// its result: what a socket, a tap or a kernel client made there belongs to that namespace. An empty name: `fn`
// runs here, in this thread's namespace.
[[nodiscard]] Status in_netns(const std::string& name, const std::function<Status()>& fn);

// `ip -n NAME ARGS…` (empty name: the host namespace); a failure names the command and ip's own reason.
[[nodiscard]] Status ip(const std::string& netns, const std::vector<std::string>& args);

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it), for a forward to a guest.
[[nodiscard]] Result<std::uint16_t> free_loopback_port();
// What bind() of a TCP socket (SO_REUSEADDR) to ADDR:PORT says: 0, the errno (EADDRINUSE: a listener has it;
// EADDRNOTAVAIL: the address is not this machine's), or -1 when ADDR is no IPv4/IPv6 literal ("[v6]" allowed).
[[nodiscard]] int tcp_bind_errno(const std::string& addr, std::uint16_t port);
// Is ADDR:PORT (IPv4 or IPv6) taken by a listener, so that a bind there fails with EADDRINUSE?
[[nodiscard]] bool tcp_port_taken(const std::string& addr, std::uint16_t port);
// Does something accept a TCP connection on 127.0.0.1:port?
[[nodiscard]] bool loopback_port_answers(std::uint16_t port);

struct Tap {
    UniqueFd fd;
    std::string ifname;
};
// A tap device made inside `netns`, enslaved to `bridge` there and up. It lives as long as `fd` (and its
// inheritors) keep it open. Opened with IFF_VNET_HDR, which qemu detects and uses.
[[nodiscard]] Result<Tap> open_tap(const std::string& netns, const std::string& bridge);

}  // namespace devemu::core
