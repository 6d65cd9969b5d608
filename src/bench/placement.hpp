#pragma once
// devemu bench --paths --split-cpus: the initiator's side and the device's side on CPUs of their own, as two machines
// would have them. The engine (the thread that measures, and every thread it starts) runs on CPU 0; the device's
// side runs on the others: the processes the run's units started (devemu's TCMU handlers and USB servers with their
// supervisors, tgtd: every process group or command line their journals name) and the kernel's threads that serve a
// path (f_mass_storage's "file-storage", LIO iSCSI's "iscsi_trx"/"iscsi_ttx"). Softirqs, kworkers and io_uring's
// workers stay where the kernel puts them. Each task's mask is put back when the placement ends (tasks that are gone
// are skipped), so nothing of it outlives the run.
#include <sched.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::bench {

struct PinnedTask {
    pid_t tid = 0;
    std::string comm;
    cpu_set_t before{};
};

class SplitCpus {
public:
    // Whether this process may use two CPUs (refused before anything is made: the fix is in the message).
    [[nodiscard]] static core::Status possible();
    // Needs at least two CPUs. `kernel_threads`: the names of kernel threads that belong to the device's side.
    [[nodiscard]] static core::Result<SplitCpus> place(const core::StateDir& sd, const std::vector<std::string>& kernel_threads);
    SplitCpus(SplitCpus&& o) noexcept : tasks_(std::move(o.tasks_)), host_(o.host_), device_(o.device_), engine_pinned_(o.engine_pinned_), engine_before_(o.engine_before_)
    {
        o.tasks_.clear();
        o.engine_pinned_ = false;
    }
    SplitCpus(const SplitCpus&) = delete;
    SplitCpus& operator=(const SplitCpus&) = delete;
    ~SplitCpus();

    // The calling thread (and the threads it starts from now on) on the initiator's CPU; engine_free() puts it back.
    [[nodiscard]] core::Status engine_pinned();
    void engine_free();

    // {"host_cpus": "0", "device_cpus": "1", "device_tasks": [{"tid", "comm"}, ...]}
    [[nodiscard]] nlohmann::json to_json() const;

private:
    SplitCpus() = default;
    std::vector<PinnedTask> tasks_;
    cpu_set_t host_{}, device_{};
    bool engine_pinned_ = false;
    cpu_set_t engine_before_{};
};

// "0-1,4" for a CPU set (what `taskset -c` takes).
[[nodiscard]] std::string cpu_list(const cpu_set_t& set);

}  // namespace devemu::bench
