#include "uring/tcmu.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "uring/discard.hpp"
#include "uring/tcmu_handler.hpp"
#include "uring/tcmu_ring.hpp"

namespace devemu::uring {

namespace fs = std::filesystem;

int tcmu_serve(const TcmuConfig& cfg)
{
    auto uio = find_uio(cfg.uio_prefix, cfg.wait_for_device);
    Device dev;
    if (auto s = uio ? map_device(uio->first, uio->second, dev) : core::Status(std::unexpected(uio.error())); !s) {
        spdlog::error("{}", s.error().message());
        return 2;
    }
    struct stat st {};
    const int flags = O_RDWR | O_CLOEXEC | (cfg.write_cache ? 0 : O_DSYNC);   // no volatile cache: writes are durable at GOOD
    core::UniqueFd backing(::open(cfg.backing.c_str(), cfg.readonly ? (O_RDONLY | O_CLOEXEC) : flags));
    if (!backing || ::fstat(backing.get(), &st) != 0) {
        spdlog::error("cannot open the backing {}: {}", cfg.backing, std::strerror(errno));
        return 2;
    }
    return serve_ring(cfg, dev, uio->first, backing.get(), probe_geometry(backing.get(), st));
}

int tcmu_supervise(const TcmuConfig& cfg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    core::UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
    int restarts = 0;
    for (;;) {
        pid_t child = ::fork();
        if (child < 0) return 2;
        if (child == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            sigprocmask(SIG_UNBLOCK, &set, nullptr);
            ::_exit(tcmu_serve(cfg));
        }
        if (!cfg.stats.empty())   // what `ls` shows; a failed write costs only that
            if (auto s = core::write_file_atomic(fs::path(cfg.stats).replace_extension(".supervisor"),
                                                 nlohmann::json{{"supervisor", ::getpid()}, {"handler", child}, {"restarts", restarts}}.dump() + "\n");
                !s)
                spdlog::warn("{}", s.error().message());
        for (;;) {
            signalfd_siginfo si{};
            if (::read(sfd.get(), &si, sizeof si) != sizeof si) continue;
            if (si.ssi_signo == SIGCHLD) {
                int status = 0;
                if (::waitpid(child, &status, WNOHANG) != child) continue;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;          // asked to stop
                if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && restarts == 0) return 2;   // never started
                ++restarts;
                spdlog::warn("tcmu: handler {} died ({}); restarting it", child,
                             WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status)) : fmt::format("exit {}", WEXITSTATUS(status)));
                std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1000, 50 * restarts)));
                break;   // start a new one: it serves what the dead one left in the ring
            }
            ::kill(child, SIGTERM);   // SIGTERM/SIGINT: stop the handler cleanly, then ourselves
            int status = 0;
            ::waitpid(child, &status, 0);
            return 0;
        }
    }
}

}  // namespace devemu::uring
