#include "bench/placement.hpp"

#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::bench {

namespace fs = std::filesystem;
using core::Errc;

namespace {

std::vector<pid_t> numbered(const fs::path& dir)
{
    std::vector<pid_t> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

std::string comm_of(pid_t pid, pid_t tid)
{
    return std::string(core::trim(core::read_file(fmt::format("/proc/{}/task/{}/comm", pid, tid)).value_or("")));
}

// A kernel thread has no command line (and no address space).
bool kernel_thread(pid_t pid) { return core::read_file(fmt::format("/proc/{}/cmdline", pid)).value_or("x").empty(); }

}  // namespace

std::string cpu_list(const cpu_set_t& set)
{
    std::string out;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (!CPU_ISSET(c, &set)) continue;
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
        if (!out.empty()) out += ',';
        out += last == c ? std::to_string(c) : fmt::format("{}-{}", c, last);
        c = last;
    }
    return out;
}

namespace {

core::Result<std::vector<int>> usable_cpus()
{
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (::sched_getaffinity(0, sizeof mine, &mine) != 0) return core::fail_errno("cannot read this process's CPUs", "sched_getaffinity");
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &mine)) cpus.push_back(c);
    if (cpus.size() < 2)
        return core::fail(Errc::invalid_input, fmt::format("needs two CPUs; this process may use only CPU {}", cpu_list(mine)), "--split-cpus",
                          "drop --split-cpus, or run it where two CPUs are free");
    return cpus;
}

}  // namespace

core::Status SplitCpus::possible()
{
    DEVEMU_TRY(cpus, usable_cpus());
    (void)cpus;
    return {};
}

core::Result<SplitCpus> SplitCpus::place(const core::StateDir& sd, const std::vector<std::string>& kernel_threads)
{
    DEVEMU_TRY(cpus, usable_cpus());
    SplitCpus s;
    CPU_ZERO(&s.host_);
    CPU_ZERO(&s.device_);
    CPU_SET(cpus[0], &s.host_);
    for (std::size_t i = 1; i < cpus.size(); ++i) CPU_SET(cpus[i], &s.device_);

    // The device's side: what the run's units started (their journals name each process group, process, or
    // command line), and the kernel's threads named.
    std::set<pid_t> processes;
    for (auto& unit : sd.units()) {
        auto records = core::load_journal(sd.journal(unit));
        if (!records) continue;
        for (auto& r : *records) {
            if (r.op == core::UndoOp::kill_group && r.pid > 0)
                for (pid_t p : core::group_members(static_cast<pid_t>(r.pid))) processes.insert(p);
            if (r.op == core::UndoOp::kill && r.pid > 0 && core::process_start_time(r.pid) != 0) processes.insert(static_cast<pid_t>(r.pid));
            if (r.op == core::UndoOp::kill && r.pid == 0 && !r.value.empty())
                for (auto [pid, start] : core::processes_with(r.value)) processes.insert(static_cast<pid_t>(pid));
        }
    }
    for (pid_t pid : numbered("/proc")) {
        if (!kernel_thread(pid)) continue;
        const auto comm = comm_of(pid, pid);
        if (std::find(kernel_threads.begin(), kernel_threads.end(), comm) != kernel_threads.end()) processes.insert(pid);
    }
    processes.erase(::getpid());
    for (pid_t pid : processes)
        for (pid_t tid : numbered(fmt::format("/proc/{}/task", pid))) {
            PinnedTask t{tid, comm_of(pid, tid), {}};
            if (::sched_getaffinity(tid, sizeof t.before, &t.before) != 0) continue;   // gone since
            if (::sched_setaffinity(tid, sizeof s.device_, &s.device_) != 0) {
                if (errno == ESRCH) continue;
                // A per-CPU kernel thread refuses (EINVAL): it is left where it is, and the JSON does not list it.
                spdlog::debug("--split-cpus: {} ({}) stays: {}", tid, t.comm, std::strerror(errno));
                continue;
            }
            s.tasks_.push_back(std::move(t));
        }
    return s;
}

SplitCpus::~SplitCpus()
{
    engine_free();
    for (auto& t : tasks_) (void)::sched_setaffinity(t.tid, sizeof t.before, &t.before);   // gone: nothing to put back
}

core::Status SplitCpus::engine_pinned()
{
    if (engine_pinned_) return {};
    if (::sched_getaffinity(0, sizeof engine_before_, &engine_before_) != 0) return core::fail_errno("cannot read the engine's CPUs", "sched_getaffinity");
    if (::sched_setaffinity(0, sizeof host_, &host_) != 0) return core::fail_errno("cannot put the engine on CPU " + cpu_list(host_), "sched_setaffinity");
    engine_pinned_ = true;
    return {};
}

void SplitCpus::engine_free()
{
    if (!engine_pinned_) return;
    (void)::sched_setaffinity(0, sizeof engine_before_, &engine_before_);
    engine_pinned_ = false;
}

nlohmann::json SplitCpus::to_json() const
{
    nlohmann::json tasks = nlohmann::json::array();
    for (auto& t : tasks_) tasks.push_back({{"tid", t.tid}, {"comm", t.comm}});
    return {{"host_cpus", cpu_list(host_)}, {"device_cpus", cpu_list(device_)}, {"device_tasks", tasks}};
}

}  // namespace devemu::bench
