#pragma once
// Typed, located access to one TOML table: every getter checks the type and every error carries file:line.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <toml.hpp>

#include "core/error.hpp"
#include "profile/profile.hpp"

namespace devemu::profile {

// The line of a value in its file. toml11 3.7 counts the newlines from the start of the file each time a value's
// location is asked for, which made a profile with hundreds of tables take quadratic time; this looks the offset up
// in an index of the file's newlines, built once per source and thread.
[[nodiscard]] unsigned line_of(const toml::value& v);

class Table {
public:
    Table(const toml::value& v, std::string file, std::string what) : v_(v), file_(std::move(file)), what_(std::move(what)) {}

    [[nodiscard]] Loc loc() const;
    [[nodiscard]] Loc loc(const std::string& key) const;
    [[nodiscard]] bool has(const std::string& key) const;
    [[nodiscard]] const std::string& what() const { return what_; }

    [[nodiscard]] core::Status only_keys(std::initializer_list<std::string_view> allowed) const;
    [[nodiscard]] core::Result<std::optional<std::string>> str(const std::string& key) const;
    [[nodiscard]] core::Result<std::string> required_str(const std::string& key) const;
    [[nodiscard]] core::Result<std::optional<std::int64_t>> integer(const std::string& key, std::int64_t min,
                                                                    std::int64_t max) const;
    [[nodiscard]] core::Result<std::optional<bool>> boolean(const std::string& key) const;
    // "1G", "512M" or a whole number of bytes.
    [[nodiscard]] core::Result<std::optional<std::uint64_t>> size(const std::string& key) const;
    // An array of tables (or absent: empty).
    [[nodiscard]] core::Result<std::vector<Table>> tables(const std::string& key, const std::string& what) const;
    [[nodiscard]] const toml::value* get(const std::string& key) const;
    [[nodiscard]] const toml::table& get_table() const { return v_.as_table(); }

    [[nodiscard]] std::unexpected<core::Error> error(const std::string& key, std::string msg, std::string fix = {}) const;
    [[nodiscard]] std::unexpected<core::Error> error_at(const toml::value& v, std::string msg, std::string fix = {}) const;

private:
    const toml::value& v_;
    std::string file_;
    std::string what_;
};

}  // namespace devemu::profile
