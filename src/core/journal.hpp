#pragma once
// The undo journal: one JSON line per step, appended and fsync'd *before* the step acts, so that a crash at
// any point leaves a journal whose reverse replay removes exactly what was made. Replay is idempotent.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace devemu::core {

namespace fs = std::filesystem;

enum class UndoOp {
    rmdir,        // remove a directory we created (configfs objects, mount points)
    unlink,       // remove a symlink or file we created
    write,        // write `value` back into an attribute
    umount,       // lazy unmount of `path`
    kill,         // stop process `pid` if its start time is still `start_time` (so a reused pid is safe); with pid 0,
                  // stop every process whose command line contains `value` (journaled before the pid is known)
    kill_group,   // stop the process group `pid` (its leader started at `start_time`): SIGTERM, 5 s, then SIGKILL;
                  // an app and every process it started (a shell's children, a pipeline)
    exec,         // run the command `value` (arguments separated by \x1f), in the network namespace named `path` when not
                  // empty; it must exit 0 within two minutes (removing what a tool made: `rbd rm`)
    named,        // a subsystem's own step, journaled under `name` by the library that registered it (register_undo):
                  // usb's "unbind" (a gadget's UDC), backing's "zram_remove"
};

struct UndoRecord {
    UndoOp op = UndoOp::rmdir;
    std::string path;
    std::string value;
    std::int64_t pid = 0;
    std::uint64_t start_time = 0;
    std::string name;   // UndoOp::named: the registered step's name

    [[nodiscard]] static UndoRecord named_op(std::string name, std::string path, std::string value = {})
    {
        return {UndoOp::named, std::move(path), std::move(value), 0, 0, std::move(name)};
    }
    [[nodiscard]] std::string to_line() const;
    [[nodiscard]] static Result<UndoRecord> from_line(const std::string& line);
    bool operator==(const UndoRecord&) const = default;
};

// Loads a journal; a torn last line (crash during append) is dropped, any other bad line is an error.
[[nodiscard]] Result<std::vector<UndoRecord>> load_journal(const fs::path& file);

// A library's own undo step, under the name its journal lines carry; registered once at start (before any replay),
// read from any thread after. Registering a name twice replaces the first. A journal line naming a step no library
// registered is refused at replay with the name (the journal stays, for a devemu that knows it).
void register_undo(std::string name, std::function<Status(const UndoRecord&)> step);
[[nodiscard]] bool undo_registered(std::string_view name);

// Applies one undo record; an object that is already gone is not an error.
[[nodiscard]] Status undo(const UndoRecord& r);

// Replays a journal in reverse and deletes it when every step succeeded. Missing journal: nothing to do.
[[nodiscard]] Status replay_journal(const fs::path& file);

// Start time of a process from /proc/PID/stat (field 22), 0 when it is gone (or a zombie).
[[nodiscard]] std::uint64_t process_start_time(std::int64_t pid);

// Processes whose command line contains `marker` (not this one): pid and start time.
[[nodiscard]] std::vector<std::pair<std::int64_t, std::uint64_t>> processes_with(const std::string& marker);

namespace testing {
// Called after a step's undo record is durable and before the step acts. Tests use it to simulate a crash.
inline std::function<void(std::size_t step)> after_journal_hook;
}  // namespace testing

}  // namespace devemu::core
