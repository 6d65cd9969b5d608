#include "core/unix_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace devemu::core {

namespace {

Result<sockaddr_un> address(const std::filesystem::path& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.string().size() >= sizeof addr.sun_path)
        return fail(Errc::invalid_input, "socket path too long", path.string(), "use a shorter --state-dir");
    std::memcpy(addr.sun_path, path.c_str(), path.string().size() + 1);
    return addr;
}

}  // namespace

Result<UniqueFd> listen_unix(const std::filesystem::path& path, int backlog)
{
    DEVEMU_TRY(addr, address(path));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail_errno("cannot replace", path.string());
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return fail_errno("socket", path.string());
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail_errno("cannot listen", path.string());
    if (::chmod(path.c_str(), 0600) != 0 || ::listen(s.get(), backlog) != 0) return fail_errno("cannot listen", path.string());
    return s;
}

Result<UniqueFd> connect_unix(const std::filesystem::path& path, const std::string& fix)
{
    DEVEMU_TRY(addr, address(path));
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return fail_errno("socket", path.string());
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail_errno("cannot connect", path.string(), fix);
    return s;
}

Result<std::string> request_line(const std::filesystem::path& path, const std::string& line, std::chrono::milliseconds timeout, const std::string& fix)
{
    DEVEMU_TRY(s, connect_unix(path, fix));
    const std::string out = line + "\n";
    for (std::size_t done = 0; done < out.size();) {
        const auto n = ::send(s.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("cannot send", path.string(), fix);
        done += static_cast<std::size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string in;
    while (in.find('\n') == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) return fail(Errc::timeout, "no answer in time", path.string(), fix);
        pollfd p{s.get(), POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail_errno("poll", path.string());
        if (r == 0) continue;
        char buf[4096];
        const auto n = ::read(s.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail(Errc::io, "the other side closed the connection without an answer", path.string(), fix);
        in.append(buf, static_cast<std::size_t>(n));
    }
    return in.substr(0, in.find('\n'));
}

}  // namespace devemu::core

namespace devemu::core {

bool serve_one_request(int listener, const std::function<std::string(const std::string&)>& handle)
{
    UniqueFd c(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) return errno == EINTR || errno == ECONNABORTED || errno == EAGAIN;
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        pollfd p{c.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        char buf[4096];
        const auto n = ::read(c.get(), buf, sizeof buf);
        if (n <= 0) return true;
        line.append(buf, static_cast<std::size_t>(n));
    }
    if (line.find('\n') == std::string::npos) return true;
    const auto answer = handle(line.substr(0, line.find('\n'))) + "\n";
    (void)::send(c.get(), answer.data(), answer.size(), MSG_NOSIGNAL);   // a client that left misses only its answer
    return true;
}

}  // namespace devemu::core
