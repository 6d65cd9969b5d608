#pragma once
// Unix stream sockets for local control channels: the VM's control tty (vm/runner), a TCMU handler's fault control
// (uring/tcmu_serve). Paths are checked against sun_path's size; every call's result is checked.
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace devemu::core {

// Listens on `path` (a stale socket file there is replaced), close-on-exec; mode 0600.
[[nodiscard]] Result<UniqueFd> listen_unix(const std::filesystem::path& path, int backlog = 1);
[[nodiscard]] Result<UniqueFd> connect_unix(const std::filesystem::path& path, const std::string& fix);
// Sends one line (a '\n' is added) and returns the first line of the answer (without its '\n').
[[nodiscard]] Result<std::string> request_line(const std::filesystem::path& path, const std::string& line, std::chrono::milliseconds timeout,
                                               const std::string& fix);

}  // namespace devemu::core

namespace devemu::core {

// One client of a control socket: accepts it, reads one request line (a client that sends nothing within a second
// is dropped, so the server is not held up longer) and sends handle(line) back as one line. False when accept
// failed (the listener is gone).
bool serve_one_request(int listener, const std::function<std::string(const std::string&)>& handle);

}  // namespace devemu::core
