// The supervisor of devemu's mass-storage function: it owns ep0 (so the function stays on the bus while a server
// is restarted: the host sees at most a reset) and restarts the server whenever it dies, until SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "usb/bot_device.hpp"
#include "usb/msc_serve.hpp"

namespace devemu::usb {

namespace {

bool write_all(int fd, const std::vector<std::uint8_t>& b, const char* what, const std::string& mount)
{
    if (::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size())) return true;
    spdlog::error("{}/ep0: writing the {} failed: {} (is usb_f_fs loaded and {} a fresh FunctionFS mount?)", mount, what, std::strerror(errno), mount);
    return false;
}

}  // namespace

int msc_supervise(const MscConfig& cfg)
{
    core::UniqueFd ep0(::open((cfg.mount + "/ep0").c_str(), O_RDWR));   // inherited by every server
    if (!ep0) {
        spdlog::error("{}/ep0: {} (is FunctionFS mounted there?)", cfg.mount, std::strerror(errno));
        return 2;
    }
    if (!write_all(ep0.get(), bot::ffs_descriptors(), "descriptors", cfg.mount) ||
        !write_all(ep0.get(), bot::ffs_strings(cfg.interface_name), "strings", cfg.mount))
        return 2;
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGCHLD}) sigaddset(&set, s);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    core::UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
    int restarts = 0;
    for (;;) {
        const pid_t child = ::fork();
        if (child < 0) return 2;
        if (child == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            sigprocmask(SIG_UNBLOCK, &set, nullptr);
            ::_exit(msc_serve(cfg, ep0.get()));
        }
        if (!cfg.stats.empty())   // what `ls` shows; a failed write costs only that
            if (auto s = core::write_file_atomic(std::filesystem::path(cfg.stats).replace_extension(".supervisor"),
                                                 nlohmann::json{{"supervisor", ::getpid()}, {"server", child}, {"restarts", restarts}}.dump() + "\n");
                !s)
                spdlog::warn("{}", s.error().message());
        for (;;) {
            signalfd_siginfo si{};
            if (::read(sfd.get(), &si, sizeof si) != sizeof si) continue;
            if (si.ssi_signo == SIGCHLD) {
                int status = 0;
                if (::waitpid(child, &status, WNOHANG) != child) continue;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;   // asked to stop (SIGTERM to the group)
                if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && restarts == 0) return 2;   // never started
                ++restarts;
                spdlog::warn("usb: server {} died ({}); restarting it", child,
                             WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status)) : fmt::format("exit {}", WEXITSTATUS(status)));
                std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1000, 50 * restarts)));
                break;
            }
            // SIGTERM/SIGINT: stop the server (bounded: it may be inside a transfer the host never finishes), then
            // close ep0, which takes the function off the bus.
            ::kill(child, SIGTERM);
            for (int i = 0; i < 100 && ::waitpid(child, nullptr, WNOHANG) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
            return 0;
        }
    }
}

}  // namespace devemu::usb
