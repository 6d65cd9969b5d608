#include "profile/table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/text.hpp"

namespace devemu::profile {

using core::Errc;

unsigned line_of(const toml::value& v)
{
    const auto* reg = dynamic_cast<const toml::detail::region*>(toml::detail::get_region(v));
    if (!reg || !reg->source()) return static_cast<unsigned>(v.location().line());
    thread_local std::shared_ptr<const std::vector<char>> indexed;   // held, so its address is not reused
    thread_local std::vector<std::size_t> newlines;
    if (reg->source() != indexed) {
        indexed = reg->source();
        newlines.clear();
        for (std::size_t i = 0; i < indexed->size(); ++i)
            if ((*indexed)[i] == '\n') newlines.push_back(i);
    }
    const auto offset = static_cast<std::size_t>(reg->first() - indexed->cbegin());
    return 1 + static_cast<unsigned>(std::lower_bound(newlines.begin(), newlines.end(), offset) - newlines.begin());
}

Loc Table::loc() const { return {file_, line_of(v_)}; }

Loc Table::loc(const std::string& key) const
{
    if (auto* v = get(key)) return {file_, line_of(*v)};
    return loc();
}

bool Table::has(const std::string& key) const { return get(key) != nullptr; }

const toml::value* Table::get(const std::string& key) const
{
    const auto& t = v_.as_table();
    auto it = t.find(key);
    return it == t.end() ? nullptr : &it->second;
}

std::unexpected<core::Error> Table::error(const std::string& key, std::string msg, std::string fix) const
{
    return core::fail(Errc::invalid_input, std::move(msg), loc(key).str(), std::move(fix));
}

std::unexpected<core::Error> Table::error_at(const toml::value& v, std::string msg, std::string fix) const
{
    return core::fail(Errc::invalid_input, std::move(msg), Loc{file_, line_of(v)}.str(),
                      std::move(fix));
}

core::Status Table::only_keys(std::initializer_list<std::string_view> allowed) const
{
    for (const auto& [k, v] : v_.as_table()) {
        bool ok = false;
        for (auto a : allowed) ok = ok || a == k;
        if (ok) continue;
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        return error_at(v, fmt::format("unknown key '{}' in {}", k, what_), "allowed keys: " + list);
    }
    return {};
}

core::Result<std::optional<std::string>> Table::str(const std::string& key) const
{
    auto* v = get(key);
    if (!v) return std::optional<std::string>{};
    if (!v->is_string()) return error(key, fmt::format("'{}' in {} must be a string", key, what_), "quote the value");
    return std::optional<std::string>(v->as_string().str);
}

core::Result<std::string> Table::required_str(const std::string& key) const
{
    DEVEMU_TRY(s, str(key));
    if (!s || s->empty()) return error(key, fmt::format("{} needs '{}'", what_, key), fmt::format("add {} = \"...\"", key));
    return *s;
}

core::Result<std::optional<std::int64_t>> Table::integer(const std::string& key, std::int64_t min, std::int64_t max) const
{
    auto* v = get(key);
    if (!v) return std::optional<std::int64_t>{};
    if (!v->is_integer()) return error(key, fmt::format("'{}' in {} must be an integer", key, what_));
    auto n = v->as_integer();
    if (n < min || n > max) return error(key, fmt::format("'{}' = {} is out of range {}..{}", key, n, min, max));
    return std::optional<std::int64_t>(n);
}

core::Result<std::optional<bool>> Table::boolean(const std::string& key) const
{
    auto* v = get(key);
    if (!v) return std::optional<bool>{};
    if (!v->is_boolean()) return error(key, fmt::format("'{}' in {} must be true or false", key, what_));
    return std::optional<bool>(v->as_boolean());
}

core::Result<std::optional<std::uint64_t>> Table::size(const std::string& key) const
{
    auto* v = get(key);
    if (!v) return std::optional<std::uint64_t>{};
    if (v->is_integer()) {
        if (v->as_integer() <= 0) return error(key, fmt::format("'{}' must be positive", key));
        return std::optional<std::uint64_t>(static_cast<std::uint64_t>(v->as_integer()));
    }
    if (!v->is_string()) return error(key, fmt::format("'{}' must be a size such as \"1G\" or \"512M\"", key));
    auto n = core::parse_size(v->as_string().str);
    if (!n || *n == 0)
        return error(key, fmt::format("'{}' = \"{}\" is not a size", key, v->as_string().str),
                     "use a whole number with K, M, G or T, e.g. \"512M\"");
    return std::optional<std::uint64_t>(*n);
}

core::Result<std::vector<Table>> Table::tables(const std::string& key, const std::string& what) const
{
    std::vector<Table> out;
    auto* v = get(key);
    if (!v) return out;
    if (!v->is_array()) return error(key, fmt::format("'{}' must be an array of tables: write [[{}]]", key, key));
    for (const auto& e : v->as_array()) {
        if (!e.is_table()) return error_at(e, fmt::format("each '{}' entry must be a table", key));
        out.emplace_back(e, file_, what);
    }
    return out;
}

}  // namespace devemu::profile
