#pragma once
// Parsing of the small value syntaxes users type: sizes, names, identifiers.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace devemu::core {

// "1G", "512M", "4k", "4096", "1.5G"? (no: whole numbers only), binary units (K=1024). nullopt when malformed.
[[nodiscard]] std::optional<std::uint64_t> parse_size(std::string_view s);
[[nodiscard]] std::string format_size(std::uint64_t bytes);
[[nodiscard]] std::vector<std::string> split(std::string_view s, char sep);
[[nodiscard]] std::string_view trim(std::string_view s);
[[nodiscard]] std::string join(const std::vector<std::string>& v, std::string_view sep);
// The last line of a tool's trimmed output: where a failing program says why.
[[nodiscard]] std::string last_line(std::string_view s);
// What `up` made of a unit, in words: "up to date", "1 change", "N changes".
[[nodiscard]] std::string changes_in_words(long long n);
// A count and its noun: "1 gadget", "0 gadgets", "3 gadgets" (English plural by an added "s").
[[nodiscard]] std::string count_of(long long n, std::string_view noun);

// A whole number as the kernel writes one (sysfs, configfs, /proc, directory names): `base` 10, 16, or 0 (a 0x
// prefix means hex). Surrounding white space is allowed, nothing else; nullopt when malformed or out of range.
[[nodiscard]] std::optional<std::uint64_t> parse_number(std::string_view s, int base = 10);

// iSCSI names (RFC 3720 §3.2.6): iqn.YYYY-MM.reverse.domain[:rest], eui.16HEX, naa.16HEX|32HEX.
// Returns an explanation of what is wrong, or nullopt when valid.
[[nodiscard]] std::optional<std::string> check_iscsi_name(std::string_view name);
// SAS/loopback WWN as tcm_loop takes it: naa.16HEX. nullopt when valid.
[[nodiscard]] std::optional<std::string> check_naa_wwn(std::string_view wwn);
// Unit names: [a-z0-9][a-z0-9_-]{0,31}; they become file and configfs names.
[[nodiscard]] std::optional<std::string> check_unit_name(std::string_view name);

}  // namespace devemu::core
