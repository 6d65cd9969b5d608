#pragma once
// The state dir (default /run/devemu): one record (JSON) and one undo journal per named unit, and an flock
// so concurrent devemu calls serialise instead of corrupting each other.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace devemu::core {

namespace fs = std::filesystem;

[[nodiscard]] fs::path default_state_dir();   // $DEVEMU_STATE_DIR, else /run/devemu (root) or $XDG_RUNTIME_DIR/devemu
[[nodiscard]] fs::path default_cache_dir();
// This boot's id (/proc/sys/kernel/random/boot_id), stamped into every record: a record from another boot is stale.
[[nodiscard]] std::string boot_id();   // /var/cache/devemu (root) or $XDG_CACHE_HOME/devemu

// The unit record format's version, written into every record. Records without one were written before versions
// existed and have the same layout (version 0); a record from a newer devemu is refused with a clear line instead
// of being misread.
inline constexpr int kRecordVersion = 1;

class StateDir {
public:
    // Creates the directory if needed and takes the lock (waits for another devemu holding it).
    [[nodiscard]] static Result<StateDir> open(const fs::path& root, bool lock = true);

    [[nodiscard]] const fs::path& root() const { return root_; }
    [[nodiscard]] fs::path journal(const std::string& unit) const { return root_ / "units" / (unit + ".journal"); }
    [[nodiscard]] fs::path record_path(const std::string& unit) const { return root_ / "units" / (unit + ".json"); }
    [[nodiscard]] fs::path unit_dir(const std::string& unit) const { return root_ / "units" / unit; }

    [[nodiscard]] Status save(const std::string& unit, const nlohmann::json& record) const;
    [[nodiscard]] Result<nlohmann::json> load(const std::string& unit) const;
    // The record's top-level strings, numbers and flags only (kind, pid, …): what `down` needs, cheaply.
    [[nodiscard]] Result<nlohmann::json> load_scalars(const std::string& unit) const;
    [[nodiscard]] std::vector<std::string> units() const;
    [[nodiscard]] Status forget(const std::string& unit) const;   // record + journal + unit dir

private:
    fs::path root_;
    UniqueFd lock_;
};

}  // namespace devemu::core
