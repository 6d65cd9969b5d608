#pragma once
// Small filesystem helpers that report errors as values and never leave a half-written file.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace devemu::core {

namespace fs = std::filesystem;

[[nodiscard]] Result<std::string> read_file(const fs::path& p);
// Reads a sysfs/configfs attribute and strips the trailing newline the kernel adds.
[[nodiscard]] Result<std::string> read_attr(const fs::path& p);
// read_attr + parse_number: an error names the path when the kernel's text is not a number.
[[nodiscard]] Result<std::uint64_t> read_number(const fs::path& p, int base = 10);
// One write(2) of the whole value, as configfs and sysfs need; a short write or a failed close is an error.
[[nodiscard]] Status write_attr(const fs::path& p, std::string_view value);
// temp file in the same directory, fsync, rename, fsync the directory.
[[nodiscard]] Status write_file_atomic(const fs::path& p, std::string_view data, unsigned mode = 0644);
[[nodiscard]] Status make_dirs(const fs::path& p, unsigned mode = 0755);

// A regular file's or a block device's share of pages in the page cache (mincore over a read-only mapping), 0..1;
// nothing for anything else (a directory, a path that is gone), or when it cannot be mapped. Empty counts as all there.
[[nodiscard]] std::optional<double> page_cache_resident(const fs::path& p);

// FNV-1a 64: a cache key, not a security hash.
struct Hasher {
    std::uint64_t h = 1469598103934665603ULL;
    void add(std::string_view s);
    void add_u64(std::uint64_t v);
    [[nodiscard]] Status add_file(const fs::path& p);   // contents
    [[nodiscard]] std::string hex() const;
};

// Fills `out` from the kernel's CSPRNG (getrandom; waits for it to be seeded, retries interrupted calls).
[[nodiscard]] Status random_bytes(void* out, std::size_t n);

// Where the program itself lives (for devemu-init next to it, and for putting devemu into a guest).
[[nodiscard]] fs::path self_exe();
// A program devemu ships beside itself (devemu-init, ffs-loopback): next to the binary in a build tree, or under
// ../lib/devemu/ where the package installs it (/usr/bin/devemu -> /usr/lib/devemu/NAME).
[[nodiscard]] fs::path companion(const std::string& name);

}  // namespace devemu::core
