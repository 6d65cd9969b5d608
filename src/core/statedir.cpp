#include "core/statedir.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <spdlog/spdlog.h>

#include "core/fs.hpp"

namespace devemu::core {

static fs::path env_or(const char* var, const fs::path& fallback)
{
    const char* v = std::getenv(var);
    return v && *v ? fs::path(v) : fallback;
}

fs::path default_state_dir()
{
    if (const char* v = std::getenv("DEVEMU_STATE_DIR"); v && *v) return v;
    if (::geteuid() == 0) return "/run/devemu";
    return env_or("XDG_RUNTIME_DIR", "/tmp") / "devemu";
}

fs::path default_cache_dir()
{
    if (const char* v = std::getenv("DEVEMU_CACHE_DIR"); v && *v) return v;
    if (::geteuid() == 0) return "/var/cache/devemu";
    const char* home = std::getenv("HOME");
    return env_or("XDG_CACHE_HOME", fs::path(home ? home : "/tmp") / ".cache") / "devemu";
}

std::string boot_id()
{
    static const std::string id = [] {
        auto t = read_file("/proc/sys/kernel/random/boot_id");
        std::string v = t ? *t : "";
        while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
        return v;
    }();
    return id;
}

Result<StateDir> StateDir::open(const fs::path& root, bool lock)
{
    StateDir sd;
    sd.root_ = root;
    if (auto s = make_dirs(root / "units", 0700); !s) return std::unexpected(s.error());
    if (lock) {
        const auto lock_path = root / "lock";
        sd.lock_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!sd.lock_) return fail_errno("cannot open lock", lock_path.string());
        if (::flock(sd.lock_.get(), LOCK_EX | LOCK_NB) != 0) {
            spdlog::info("waiting for another devemu that holds {}", lock_path.string());
            if (::flock(sd.lock_.get(), LOCK_EX) != 0) return fail_errno("cannot lock", lock_path.string());
        }
        // A state dir that outlived a reboot (not the default tmpfs): what its records describe went with the old
        // kernel, so they are forgotten (not replayed: a zram or loop number, a pid now belong to someone else),
        // and `up` starts fresh.
        const auto now = boot_id();
        for (auto& u : sd.units()) {
            auto rec = sd.load_scalars(u);
            if (!rec || now.empty()) continue;
            const auto was = rec->value("boot_id", std::string());
            if (was.empty() || was == now) continue;
            spdlog::warn("unit {} was brought up before this boot (boot id {}); forgetting it: what it made went with that kernel", u, was);
            if (auto s = sd.forget(u); !s) return std::unexpected(s.error());
        }
    }
    return sd;
}

Status StateDir::save(const std::string& unit, const nlohmann::json& record) const
{
    if (record.is_object() && (!record.contains("version") || !record.contains("boot_id"))) {
        auto stamped = record;
        if (!stamped.contains("version")) stamped["version"] = kRecordVersion;
        if (const auto id = boot_id(); !id.empty()) stamped["boot_id"] = id;   // which kernel holds what it describes
        return write_file_atomic(record_path(unit), stamped.dump(2) + "\n", 0600);
    }
    return write_file_atomic(record_path(unit), record.dump(2) + "\n", 0600);
}

namespace {
Status check_version(const nlohmann::json& j, const fs::path& file)
{
    const int v = j.is_object() && j.contains("version") && j["version"].is_number_integer() ? j["version"].get<int>() : 0;
    if (v > kRecordVersion)
        return fail(Errc::invalid_input, fmt::format("written by a newer devemu (record version {}; this one reads up to {})", v, kRecordVersion),
                    file.string(), "use that devemu to down the unit, or upgrade this one");
    return {};
}
}  // namespace

Result<nlohmann::json> StateDir::load(const std::string& unit) const
{
    auto text = read_file(record_path(unit));
    if (!text) return fail(Errc::missing, "no such unit '" + unit + "'", root_.string(), "see `devemu ls`");
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded()) return fail(Errc::io, "unreadable unit record", record_path(unit).string());
    DEVEMU_CHECK(check_version(j, record_path(unit)));
    return j;
}

namespace {
// The end of the JSON string that opens at s[i] (one past its closing quote), or npos.
std::size_t string_end(std::string_view s, std::size_t i)
{
    for (++i; i < s.size(); ++i) {
        if (s[i] == '\\') ++i;
        else if (s[i] == '"') return i + 1;
    }
    return std::string_view::npos;
}

// The end of the value that starts at s[i]: a nested object or array is skipped by counting brackets outside
// strings, a scalar runs to the next ',' or '}' outside strings. npos when the text ends first.
std::size_t value_end(std::string_view s, std::size_t i)
{
    int depth = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '"') {
            i = string_end(s, i);
            if (i == std::string_view::npos) return i;
            if (depth == 0) return i;
            --i;
        } else if (c == '{' || c == '[') ++depth;
        else if (c == '}' || c == ']' || c == ',') {
            if (depth == 0) return i;
            if (c != ',' && --depth == 0) return i + 1;
        }
    }
    return std::string_view::npos;
}

// The top-level members of a JSON object whose values are not objects or arrays, as a JSON object text. Nested
// values are stepped over without being lexed: a target's record is mostly its nodes, and `down --all` of many
// units reads every record for its kind and flags. Malformed text gives text nlohmann then refuses.
std::string top_level_scalars(std::string_view s)
{
    auto ws = [&](std::size_t i) { return s.find_first_not_of(" \t\r\n", i); };
    std::string out = "{";
    std::size_t i = ws(0);
    if (i == std::string_view::npos || s[i] != '{') return "";
    for (i = ws(i + 1); i != std::string_view::npos && s[i] == '"';) {
        const std::size_t key = i, key_end = string_end(s, i);
        const std::size_t colon = key_end == std::string_view::npos ? key_end : ws(key_end);
        if (colon == std::string_view::npos || s[colon] != ':') return "";
        const std::size_t v = ws(colon + 1);
        const std::size_t v_end = v == std::string_view::npos ? v : value_end(s, v);
        if (v_end == std::string_view::npos) return "";
        if (s[v] != '{' && s[v] != '[') {
            if (out.size() > 1) out += ',';
            out.append(s.substr(key, key_end - key)).append(":").append(s.substr(v, v_end - v));
        }
        i = ws(v_end);
        if (i == std::string_view::npos) return "";
        if (s[i] == '}') return out + "}";
        if (s[i] != ',') return "";
        i = ws(i + 1);
    }
    return i != std::string_view::npos && s[i] == '}' && out.size() == 1 ? "{}" : "";
}
}  // namespace

Result<nlohmann::json> StateDir::load_scalars(const std::string& unit) const
{
    auto text = read_file(record_path(unit));
    if (!text) return fail(Errc::missing, "no such unit '" + unit + "'", root_.string(), "see `devemu ls`");
    auto j = nlohmann::json::parse(top_level_scalars(*text), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(Errc::io, "unreadable unit record", record_path(unit).string());
    DEVEMU_CHECK(check_version(j, record_path(unit)));
    return j;
}

std::vector<std::string> StateDir::units() const
{
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(root_ / "units", ec)) {
        const auto p = e.path();
        if (p.extension() == ".json" || p.extension() == ".journal") out.push_back(p.stem().string());
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

Status StateDir::forget(const std::string& unit) const
{
    std::error_code ec;
    fs::remove(record_path(unit), ec);
    fs::remove(journal(unit), ec);
    fs::remove_all(unit_dir(unit), ec);
    return {};
}

}  // namespace devemu::core
