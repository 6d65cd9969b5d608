#include "core/statedir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
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
    }
    return sd;
}

Status StateDir::save(const std::string& unit, const nlohmann::json& record) const
{
    return write_file_atomic(record_path(unit), record.dump(2) + "\n", 0600);
}

Result<nlohmann::json> StateDir::load(const std::string& unit) const
{
    auto text = read_file(record_path(unit));
    if (!text) return fail(Errc::missing, "no such unit '" + unit + "'", root_.string(), "see `devemu ls`");
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded()) return fail(Errc::io, "unreadable unit record", record_path(unit).string());
    return j;
}

Result<nlohmann::json> StateDir::load_scalars(const std::string& unit) const
{
    auto text = read_file(record_path(unit));
    if (!text) return fail(Errc::missing, "no such unit '" + unit + "'", root_.string(), "see `devemu ls`");
    using J = nlohmann::json;
    // Nested values are skipped while parsing, not built and thrown away: a target's record is mostly its nodes.
    J::parser_callback_t top_level_only = [](int depth, J::parse_event_t event, J&) {
        return depth == 0 || (event != J::parse_event_t::object_start && event != J::parse_event_t::array_start);
    };
    auto j = J::parse(*text, top_level_only, false);
    if (j.is_discarded() || !j.is_object()) return fail(Errc::io, "unreadable unit record", record_path(unit).string());
    for (auto it = j.begin(); it != j.end();)   // a skipped value leaves its key behind
        it = it->is_discarded() || it->is_null() ? j.erase(it) : std::next(it);
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
