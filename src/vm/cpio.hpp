#pragma once
// A cpio "newc" writer, as the kernel's initramfs unpacker reads it (Documentation/driver-api/early-userspace/
// buffer-format.rst). Parent directories are added on demand; timestamps are 0 so equal input gives equal bytes.
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace devemu::vm {

class CpioWriter {
public:
    void add_dir(std::string_view path, unsigned mode = 0755);
    void add_file(std::string_view path, std::string_view data, unsigned mode = 0644);
    [[nodiscard]] core::Status add_host_file(std::string_view path, const std::filesystem::path& host, unsigned mode = 0);
    void add_symlink(std::string_view path, std::string_view target);
    void add_char_device(std::string_view path, unsigned major, unsigned minor, unsigned mode = 0600);
    // Writes the trailer; the archive is complete afterwards.
    [[nodiscard]] const std::string& finish();
    [[nodiscard]] bool contains(std::string_view path) const { return names_.count(std::string(path)) != 0; }

private:
    void header(std::string_view name, unsigned mode, std::size_t size, unsigned rmaj = 0, unsigned rmin = 0);
    void parents(std::string_view path);
    void pad();

    std::string out_;
    std::set<std::string> names_;
    std::uint32_t ino_ = 1;
    bool finished_ = false;
};

}  // namespace devemu::vm
