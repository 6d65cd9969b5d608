#pragma once
// Child processes: a runner that captures output under a deadline, and an RAII Child that is killed
// (and reaped) when its owner goes away, and also when devemu itself dies (PR_SET_PDEATHSIG).
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace devemu::core {

struct SpawnOptions {
    // -1 leaves the stream as devemu's own; otherwise the fd is dup2'd onto 0/1/2.
    int stdin_fd = -1;
    int stdout_fd = -1;
    int stderr_fd = -1;
    bool stdin_null = true;
    bool new_session = false;
    bool die_with_parent = true;          // PR_SET_PDEATHSIG: off only for what must outlive devemu (up --vm)
    std::vector<std::string> extra_env;   // "K=V", added to the inherited environment
    std::string netns;                    // a network namespace (its name, as `ip netns` has it) the child enters first
    std::vector<int> keep_fds;            // the only fds above 2 the child inherits (a tap for qemu's -netdev fd=N)
    std::filesystem::path log_file;       // when set: stdout and stderr are appended to it (created 0600)
    bool own_group = false;               // its own process group: terminate() and the journal stop the whole group

    // A process devemu leaves running after it returns (a handler, a daemon): its own session and process group,
    // stdin on /dev/null, stdout and stderr appended to `log`, none of the caller's descriptors (so that
    // `$(devemu up ...)` returns), and it does not die with devemu.
    [[nodiscard]] static SpawnOptions daemon(const std::filesystem::path& log);
};

class Child {
public:
    Child() = default;
    Child(Child&& o) noexcept;
    Child& operator=(Child&& o) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();

    [[nodiscard]] static Result<Child> spawn(const std::vector<std::string>& argv, const SpawnOptions& opt = {});

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] int pidfd() const { return pidfd_.get(); }   // readable once the child has exited
    [[nodiscard]] bool running() const { return pid_ > 0 && !status_; }
    // Non-blocking when it has not exited yet; returns the exit status (128+signal for a signal).
    std::optional<int> try_wait();
    int wait();
    // Lets the process run on unowned (it must outlive devemu: up --vm); it is journaled by its pid and start time.
    void detach() { pid_ = -1; pidfd_.reset(); }
    // SIGTERM, then SIGKILL after grace; always reaps. A child spawned with own_group: its whole process group.
    int terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

private:
    pid_t pid_ = -1;
    bool group_ = false;
    UniqueFd pidfd_;
    std::optional<int> status_;
};

// Stops process group `pgid`: SIGTERM to the group, up to `grace` for every member to go, then SIGKILL to what is
// left and up to two seconds more. A group whose leader is alive but started at another time than `leader_start`
// (0: do not check) is someone else's and is left alone. Returns how many members were still there for SIGKILL.
// `tick` runs at every poll (the owner of the leader reaps it there).
int stop_group(pid_t pgid, std::uint64_t leader_start, std::chrono::milliseconds grace, const std::function<void()>& tick = {});

// Live (non-zombie) members of a process group, from /proc.
[[nodiscard]] std::vector<pid_t> group_members(pid_t pgid);

struct RunResult {
    int exit_code = -1;
    bool timed_out = false;
    std::string out;
    std::string err;
};

// Runs argv to completion, capturing stdout and stderr, killing it at the deadline. `input` is fed to its stdin
// (else stdin is /dev/null). `netns`: run it inside that network namespace (a name; empty: this one).
[[nodiscard]] Result<RunResult> run(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                    std::string_view input = {}, const std::string& netns = {});

// Finds an executable on PATH; empty when absent.
[[nodiscard]] std::string which(const std::string& name);

int decode_wait_status(int status);

// Waits for `child` to end, or for SIGINT/SIGTERM/SIGHUP to this process (then stops the child: Child::terminate).
// Returns its exit status. The signals are blocked meanwhile and unblocked after.
[[nodiscard]] int wait_or_stop_on_signal(Child& child);

}  // namespace devemu::core
