#include "core/text.hpp"

#include <cctype>
#include <charconv>
#include <fmt/format.h>

namespace devemu::core {

std::optional<std::uint64_t> parse_number(std::string_view s, int base)
{
    s = trim(s);
    if (base == 0) {
        base = s.starts_with("0x") || s.starts_with("0X") ? 16 : 10;
        if (base == 16) s.remove_prefix(2);
    }
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<std::uint64_t> parse_size(std::string_view s)
{
    s = trim(s);
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    size_t i = 0;
    for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
        if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
        v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    if (i == 0) return std::nullopt;
    std::string_view unit = s.substr(i);
    if (unit.size() == 2 && (unit[1] == 'i' || unit[1] == 'B' || unit[1] == 'b')) unit = unit.substr(0, 1);
    if (unit.size() == 3 && unit.substr(1) == "iB") unit = unit.substr(0, 1);
    unsigned shift = 0;
    if (unit.empty()) shift = 0;
    else if (unit.size() == 1) {
        switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        case 'B': shift = 0; break;
        default: return std::nullopt;
        }
    } else return std::nullopt;
    if (shift && v > (UINT64_MAX >> shift)) return std::nullopt;
    return v << shift;
}

std::string format_size(std::uint64_t b)
{
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && b >= 1024 && b % 1024 == 0) {
        b /= 1024;
        ++u;
    }
    return fmt::format("{} {}", b, units[u]);
}

std::vector<std::string> split(std::string_view s, char sep)
{
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t e = s.find(sep, start);
        out.emplace_back(s.substr(start, e == std::string_view::npos ? std::string_view::npos : e - start));
        if (e == std::string_view::npos) break;
        start = e + 1;
    }
    return out;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

static bool all_hex(std::string_view s)
{
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return !s.empty();
}

std::optional<std::string> check_iscsi_name(std::string_view n)
{
    if (n.size() > 223) return "longer than 223 bytes";
    for (char c : n)
        if (std::isupper(static_cast<unsigned char>(c))) return "iSCSI names are lower case";
    if (n.starts_with("eui.")) {
        if (n.size() != 20 || !all_hex(n.substr(4))) return "eui. must be followed by 16 hex digits";
        return std::nullopt;
    }
    if (n.starts_with("naa.")) {
        auto h = n.substr(4);
        if ((h.size() != 16 && h.size() != 32) || !all_hex(h)) return "naa. must be followed by 16 or 32 hex digits";
        return std::nullopt;
    }
    if (!n.starts_with("iqn.")) return "must start with iqn., eui. or naa.";
    // iqn.YYYY-MM.reversed.domain[:anything]
    if (n.size() < 12 || !std::isdigit(static_cast<unsigned char>(n[4])) || n[8] != '-' || n[11] != '.')
        return "expected iqn.YYYY-MM.reversed-domain[:name], e.g. iqn.2026-11.org.example:disk0";
    for (size_t i : {4u, 5u, 6u, 7u, 9u, 10u})
        if (!std::isdigit(static_cast<unsigned char>(n[i]))) return "the date must be YYYY-MM";
    int month = (n[9] - '0') * 10 + (n[10] - '0');
    if (month < 1 || month > 12) return "the month must be 01..12";
    auto rest = n.substr(12);
    auto colon = rest.find(':');
    auto domain = rest.substr(0, colon);
    if (domain.empty() || domain.front() == '.' || domain.back() == '.') return "the naming authority (reversed domain) is empty or malformed";
    for (char c : n.substr(4))
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':'))
            return fmt::format("character '{}' is not allowed (use a-z 0-9 . - :)", c);
    return std::nullopt;
}

std::optional<std::string> check_naa_wwn(std::string_view w)
{
    if (!w.starts_with("naa.") || w.size() != 20 || !all_hex(w.substr(4)))
        return "expected naa. followed by 16 hex digits, e.g. naa.5001405000000001";
    for (char c : w)
        if (std::isupper(static_cast<unsigned char>(c))) return "use lower-case hex";
    return std::nullopt;
}

std::optional<std::string> check_unit_name(std::string_view n)
{
    if (n.empty() || n.size() > 32) return "must be 1 to 32 characters";
    if (!(std::islower(static_cast<unsigned char>(n[0])) || std::isdigit(static_cast<unsigned char>(n[0]))))
        return "must start with a lower-case letter or digit";
    for (char c : n)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
            return fmt::format("character '{}' is not allowed (use a-z 0-9 - _)", c);
    return std::nullopt;
}

std::string last_line(std::string_view s)
{
    const auto t = trim(s);
    const auto nl = t.rfind('\n');
    return std::string(nl == std::string_view::npos ? t : t.substr(nl + 1));
}

std::string join(const std::vector<std::string>& v, std::string_view sep)
{
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += sep;
        out += v[i];
    }
    return out;
}

std::string changes_in_words(long long n)
{
    return n == 0 ? "up to date" : count_of(n, "change");
}

std::string count_of(long long n, std::string_view noun)
{
    return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

}  // namespace devemu::core
