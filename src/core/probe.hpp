#pragma once
// Read-only probes of the running system, for `doctor` and for clear errors before a kernel path is tried.
#include <string>

namespace devemu::core {

[[nodiscard]] bool filesystem_known(const std::string& fstype);   // listed in /proc/filesystems
[[nodiscard]] bool mounted_at(const std::string& path, const std::string& fstype);
// io_uring_setup(2) succeeds (not disabled by sysctl or seccomp). `why` says what failed.
[[nodiscard]] bool io_uring_works(std::string& why);

}  // namespace devemu::core
