#include "core/supervise.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"

namespace devemu::core {

int supervise(const std::function<int()>& serve, const std::filesystem::path& state, const std::string& child_key, const std::string& what)
{
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGCHLD}) sigaddset(&set, s);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
    int restarts = 0;
    for (;;) {
        const pid_t child = ::fork();
        if (child < 0) return 2;
        if (child == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            sigprocmask(SIG_UNBLOCK, &set, nullptr);
            ::_exit(serve());
        }
        if (!state.empty())   // a failed write costs only what `ls` shows
            if (auto s = write_file_atomic(state, nlohmann::json{{"supervisor", ::getpid()}, {child_key, child}, {"restarts", restarts}}.dump() + "\n"); !s)
                spdlog::warn("{}", s.error().message());
        for (;;) {
            signalfd_siginfo si{};
            if (::read(sfd.get(), &si, sizeof si) != sizeof si) continue;
            if (si.ssi_signo == SIGCHLD) {
                int status = 0;
                if (::waitpid(child, &status, WNOHANG) != child) continue;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;                     // asked to stop
                if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && restarts == 0) return 2;   // never started
                ++restarts;
                spdlog::warn("{}: {} died ({}); restarting it", what, child,
                             WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status)) : fmt::format("exit {}", WEXITSTATUS(status)));
                std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1000, 50 * restarts)));
                break;   // a new one carries on where the dead one stopped
            }
            // SIGTERM/SIGINT: stop the child, bounded (it may be inside a transfer that never finishes), then go.
            ::kill(child, SIGTERM);
            for (int i = 0; i < 100 && ::waitpid(child, nullptr, WNOHANG) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
            return 0;
        }
    }
}

}  // namespace devemu::core
