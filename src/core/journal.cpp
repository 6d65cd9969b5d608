#include "core/journal.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <map>
#include <optional>
#include <chrono>
#include <fstream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace fs = std::filesystem;

namespace devemu::core {

namespace {
// In UndoOp's order, up to `named` (whose lines carry their registered name).
constexpr const char* op_names[] = {"rmdir", "unlink", "write", "umount", "kill", "kill_group", "exec"};

std::map<std::string, std::function<Status(const UndoRecord&)>, std::less<>>& undo_registry()
{
    static std::map<std::string, std::function<Status(const UndoRecord&)>, std::less<>> steps;
    return steps;
}

bool gone(int e) { return e == ENOENT || e == ENOTDIR || e == ESRCH || e == ENODEV || e == EINVAL; }
}  // namespace

std::string UndoRecord::to_line() const
{
    nlohmann::json j;
    j["op"] = op == UndoOp::named ? name : op_names[static_cast<int>(op)];
    j["path"] = path;
    if (!value.empty()) j["value"] = value;
    if (pid) j["pid"] = pid;
    if (start_time) j["start"] = start_time;
    return j.dump();
}

Result<UndoRecord> UndoRecord::from_line(const std::string& line)
{
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("op") || !j["op"].is_string())
        return fail(Errc::io, "unreadable journal line");
    UndoRecord r;
    const std::string op = j["op"];
    bool found = false;
    for (int i = 0; i < static_cast<int>(std::size(op_names)); ++i)
        if (op == op_names[i]) {
            r.op = static_cast<UndoOp>(i);
            found = true;
        }
    if (!found) {   // a library's step: known or not, the line is kept; replay says which step no library registered
        if (op.empty()) return fail(Errc::io, "journal line without an op");
        r.op = UndoOp::named;
        r.name = op;
    }
    r.path = j.value("path", "");
    r.value = j.value("value", "");
    r.pid = j.value("pid", std::int64_t{0});
    r.start_time = j.value("start", std::uint64_t{0});
    return r;
}

Result<std::vector<UndoRecord>> load_journal(const fs::path& file)
{
    std::vector<UndoRecord> out;
    std::ifstream in(file);
    if (!in) return out;
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::istringstream lines(text);
    std::string line;
    size_t lineno = 0;
    while (std::getline(lines, line)) {
        ++lineno;
        if (line.empty()) continue;
        auto r = UndoRecord::from_line(line);
        if (!r) {
            const bool last = lines.peek() == EOF && text.back() != '\n';
            if (last) break;   // torn append: the step it describes never acted
            return fail(Errc::io, r.error().what, file.string() + ":" + std::to_string(lineno),
                        "inspect the journal; remove the line if the object is known gone");
        }
        out.push_back(*r);
    }
    return out;
}

std::uint64_t process_start_time(std::int64_t pid)
{
    auto s = read_file("/proc/" + std::to_string(pid) + "/stat");
    if (!s) return 0;
    auto rp = s->rfind(')');
    if (rp == std::string::npos) return 0;
    if (rp + 2 < s->size() && (*s)[rp + 2] == 'Z') return 0;   // a zombie has stopped running: gone
    std::istringstream in(s->substr(rp + 2));
    std::string field;
    for (int i = 3; i <= 22 && in >> field; ++i)
        if (i == 22) return parse_number(field).value_or(0);
    return 0;
}

std::vector<std::pair<std::int64_t, std::uint64_t>> processes_with(const std::string& marker)
{
    std::vector<std::pair<std::int64_t, std::uint64_t>> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator("/proc", ec)) {
        const auto name = e.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        const auto pid = static_cast<std::int64_t>(parse_number(name).value_or(0));
        if (pid == ::getpid()) continue;
        auto cmd = read_file(e.path() / "cmdline");
        if (cmd && cmd->find(marker) != std::string::npos) out.push_back({pid, process_start_time(pid)});
    }
    return out;
}

static Status stop_process(const UndoRecord& r)
{
    if (r.pid == 0 && !r.value.empty()) {
        for (auto [pid, start] : processes_with(r.value))
            if (auto s = stop_process({UndoOp::kill, r.path, "", pid, start}); !s) return s;
        return {};
    }
    if (r.pid <= 0 || process_start_time(r.pid) != r.start_time) return {};
    ::kill(static_cast<pid_t>(r.pid), SIGTERM);
    for (int i = 0; i < 100; ++i) {
        if (process_start_time(r.pid) != r.start_time) return {};
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(static_cast<pid_t>(r.pid), SIGKILL);
    return {};
}

Status undo(const UndoRecord& r)
{
    switch (r.op) {
    case UndoOp::rmdir:
        if (::rmdir(r.path.c_str()) != 0 && !gone(errno)) return fail_errno("cannot remove directory", r.path);
        return {};
    case UndoOp::unlink:
        if (::unlink(r.path.c_str()) != 0 && !gone(errno)) return fail_errno("cannot remove", r.path);
        return {};
    case UndoOp::write: {
        if (::access(r.path.c_str(), F_OK) != 0) return {};
        auto s = write_attr(r.path, r.value);
        if (!s && !gone(s.error().sys_errno)) return s;
        return {};
    }
    case UndoOp::umount:
        if (::umount2(r.path.c_str(), MNT_DETACH) != 0 && !gone(errno)) return fail_errno("cannot unmount", r.path);
        return {};
    case UndoOp::kill:
        return stop_process(r);
    case UndoOp::kill_group:
        stop_group(static_cast<pid_t>(r.pid), r.start_time, std::chrono::seconds(5));
        return {};
    case UndoOp::exec: {
        auto argv = split(r.value, '\x1f');
        auto res = run(argv, std::chrono::seconds(120), {}, r.path);
        if (!res) return std::unexpected(res.error());
        if (res->exit_code != 0) {
            const auto why = last_line(res->err.empty() ? res->out : res->err);
            return fail(Errc::kernel, fmt::format("`{}` failed ({}): {}", join(argv, " "), res->exit_code, why), r.path,
                        "fix the cause and run devemu down again");
        }
        return {};
    }
    case UndoOp::named: {
        const auto& steps = undo_registry();
        auto it = steps.find(r.name);
        if (it == steps.end())
            return fail(Errc::invalid_input, fmt::format("the journal has a step '{}' that this devemu does not know", r.name), r.path,
                        "run down with the devemu that brought the unit up");
        return it->second(r);
    }
    }
    return {};
}

void register_undo(std::string name, std::function<Status(const UndoRecord&)> step)
{
    undo_registry()[std::move(name)] = std::move(step);
}

bool undo_registered(std::string_view name) { return undo_registry().contains(name); }

Status replay_journal(const fs::path& file)
{
    auto recs = load_journal(file);
    if (!recs) return std::unexpected(recs.error());
    std::optional<Error> first;
    for (auto it = recs->rbegin(); it != recs->rend(); ++it) {
        auto s = undo(*it);
        if (!s && !first) first = s.error();
    }
    if (first) return std::unexpected(*first);
    std::error_code ec;
    fs::remove(file, ec);
    return {};
}

}  // namespace devemu::core
