#include "core/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/journal.hpp"
#include "core/netns.hpp"

namespace devemu::core {

namespace {
// In the child after fork: tell the parent why it did not get to exec. If even that fails, the parent sees exit 127.
void tell_parent(int fd, int e)
{
    while (::write(fd, &e, sizeof e) < 0 && errno == EINTR) {
    }
}
}  // namespace

int decode_wait_status(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), group_(o.group_), pidfd_(std::move(o.pidfd_)), status_(std::exchange(o.status_, std::nullopt))
{
}

Child& Child::operator=(Child&& o) noexcept
{
    if (this != &o) {
        if (running()) terminate();
        pid_ = std::exchange(o.pid_, -1);
        group_ = o.group_;
        pidfd_ = std::move(o.pidfd_);
        status_ = std::exchange(o.status_, std::nullopt);
    }
    return *this;
}

Child::~Child()
{
    if (running()) terminate(std::chrono::milliseconds(500));
}

SpawnOptions SpawnOptions::daemon(const std::filesystem::path& log)
{
    SpawnOptions so;
    so.new_session = true;
    so.die_with_parent = false;
    so.log_file = log;
    return so;
}

Result<Child> Child::spawn(const std::vector<std::string>& argv, const SpawnOptions& opt_in)
{
    if (argv.empty()) return fail(Errc::invalid_input, "empty command");
    SpawnOptions opt = opt_in;
    UniqueFd log;
    if (!opt.log_file.empty()) {
        log.reset(::open(opt.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
        if (!log) return fail_errno("cannot open the log", opt.log_file.string());
        opt.stdout_fd = opt.stderr_fd = log.get();
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    const pid_t parent = ::getpid();
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail_errno("pipe", argv[0]);
    pid_t pid = ::fork();
    if (pid < 0) return fail_errno("fork", argv[0]);
    if (pid == 0) {
        ::close(err_pipe[0]);
        if (opt.die_with_parent) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
        }
        if (opt.new_session) ::setsid();
        else if (opt.own_group) ::setpgid(0, 0);
        if (!opt.netns.empty()) {
            int ns = ::open(netns_file(opt.netns).c_str(), O_RDONLY | O_CLOEXEC);
            if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
                tell_parent(err_pipe[1], -errno);   // negative: the namespace, not the program, is what failed
                ::_exit(127);
            }
        }
        if (opt.stdin_fd >= 0) ::dup2(opt.stdin_fd, 0);
        else if (opt.stdin_null) {
            int n = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (n >= 0) ::dup2(n, 0);
        }
        if (opt.stdout_fd >= 0) ::dup2(opt.stdout_fd, 1);
        if (opt.stderr_fd >= 0) ::dup2(opt.stderr_fd, 2);
        // Nothing of devemu's (or of devemu's caller's) beyond 0-2 reaches the program but what it is given.
        ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        for (int fd : opt.keep_fds) ::fcntl(fd, F_SETFD, 0);
        for (auto& e : opt.extra_env) ::putenv(const_cast<char*>(e.c_str()));
        ::signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execvp(args[0], args.data());
        tell_parent(err_pipe[1], errno);
        ::_exit(127);
    }
    ::close(err_pipe[1]);
    if (opt.own_group && !opt.new_session) ::setpgid(pid, pid);   // also here: no race with a signal to the group
    int child_errno = 0;
    ssize_t n;
    do n = ::read(err_pipe[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    ::close(err_pipe[0]);
    Child c;
    c.pid_ = pid;
    c.group_ = opt.own_group;
    c.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (n == sizeof child_errno) {
        c.wait();
        if (child_errno < 0) {
            errno = -child_errno;
            return fail_errno("cannot enter network namespace", netns_file(opt.netns).string(), "check that it exists (ip netns list)");
        }
        errno = child_errno;
        return fail_errno("cannot run", argv[0], "install it, or check PATH");
    }
    return c;
}

std::optional<int> Child::try_wait()
{
    if (status_) return status_;
    if (pid_ <= 0) return std::nullopt;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) status_ = decode_wait_status(st);
    return status_;
}

int Child::wait()
{
    if (status_) return *status_;
    int st = 0;
    pid_t r;
    do r = ::waitpid(pid_, &st, 0);
    while (r < 0 && errno == EINTR);
    status_ = r == pid_ ? decode_wait_status(st) : -1;
    return *status_;
}

int Child::terminate(std::chrono::milliseconds grace)
{
    if (group_ && pid_ > 0) {
        // The whole group: the leader may be a shell whose children would outlive it. The leader is reaped as the
        // group goes (a zombie is not a member).
        stop_group(pid_, 0, grace, [this] { try_wait(); });
        return wait();
    }
    if (!running()) return status_.value_or(-1);
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
        if (try_wait()) return *status_;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    return wait();
}

Result<RunResult> run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, std::string_view input,
                      const std::string& netns)
{
    UniqueFd in_r, in_w;
    if (!input.empty()) {
        int in_pipe[2];
        if (::pipe2(in_pipe, O_CLOEXEC) != 0) return fail_errno("pipe", argv.empty() ? "" : argv[0]);
        in_r.reset(in_pipe[0]);
        in_w.reset(in_pipe[1]);
        ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
    }
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_errno("pipe", argv.empty() ? "" : argv[0]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return fail_errno("pipe", argv.empty() ? "" : argv[0]);
    }
    UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]), err_r(err_pipe[0]), err_w(err_pipe[1]);
    SpawnOptions opt;
    opt.stdout_fd = out_w.get();
    opt.stderr_fd = err_w.get();
    opt.stdin_fd = in_r.valid() ? in_r.get() : -1;
    opt.netns = netns;
    auto child = Child::spawn(argv, opt);
    if (!child) return std::unexpected(child.error());
    out_w.reset();
    err_w.reset();
    in_r.reset();
    size_t fed = 0;

    RunResult res;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            res.timed_out = true;
            break;
        }
        pollfd fds[3] = {{out_open ? out_r.get() : -1, POLLIN, 0}, {err_open ? err_r.get() : -1, POLLIN, 0},
                         {in_w.valid() ? in_w.get() : -1, POLLOUT, 0}};
        int r = ::poll(fds, 3, static_cast<int>(left.count()));
        if (r < 0 && errno != EINTR) break;
        if (fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t n = ::write(in_w.get(), input.data() + fed, input.size() - fed);
            if (n > 0) fed += static_cast<size_t>(n);
            if (n < 0 && errno != EAGAIN) in_w.reset();
            if (fed == input.size()) in_w.reset();
        }
        char buf[8192];
        for (int i = 0; i < 2; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) (i == 0 ? out_open : err_open) = false;
            else (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
        }
    }
    if (res.timed_out) res.exit_code = child->terminate(std::chrono::milliseconds(500));
    else res.exit_code = child->wait();
    return res;
}

std::vector<pid_t> group_members(pid_t pgid)
{
    std::vector<pid_t> out;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/proc", ec)) {
        const auto name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        UniqueFd fd(::open((e.path() / "stat").c_str(), O_RDONLY | O_CLOEXEC));
        char buf[512];
        const ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf - 1) : -1;
        if (n <= 0) continue;
        buf[n] = 0;
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so parse from the last ')'.
        const char* rp = std::strrchr(buf, ')');
        char state = 0;
        long ppid = 0, pgrp = 0;
        if (!rp || std::sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) continue;
        if (pgrp == pgid && state != 'Z' && state != 'X') out.push_back(static_cast<pid_t>(std::atol(name.c_str())));
    }
    return out;
}

int stop_group(pid_t pgid, std::uint64_t leader_start, std::chrono::milliseconds grace, const std::function<void()>& tick)
{
    if (pgid <= 1) return 0;
    if (leader_start != 0) {
        const auto now = process_start_time(pgid);
        if (now != 0 && now != leader_start) return 0;   // the pid was reused: not our group
    }
    if (group_members(pgid).empty()) return 0;
    ::kill(-pgid, SIGTERM);
    ::kill(-pgid, SIGCONT);   // a stopped member could not act on SIGTERM
    const auto until = [&](std::chrono::milliseconds d) {
        const auto deadline = std::chrono::steady_clock::now() + d;
        for (;;) {
            if (tick) tick();
            if (group_members(pgid).empty() || std::chrono::steady_clock::now() >= deadline) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    };
    until(grace);
    const int left = static_cast<int>(group_members(pgid).size());
    if (left) {
        ::kill(-pgid, SIGKILL);
        until(std::chrono::milliseconds(2000));
    }
    return left;
}

std::string which(const std::string& name)
{
    if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t start = 0;
    while (start <= p.size()) {
        size_t end = p.find(':', start);
        if (end == std::string::npos) end = p.size();
        std::string cand = p.substr(start, end - start) + "/" + name;
        if (end > start && ::access(cand.c_str(), X_OK) == 0 && !std::filesystem::is_directory(cand)) return cand;
        start = end + 1;
    }
    return {};
}

int wait_or_stop_on_signal(Child& child)
{
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
    sigset_t old;
    sigprocmask(SIG_BLOCK, &set, &old);
    UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
    pollfd fds[2] = {{child.pidfd(), POLLIN, 0}, {sfd.get(), POLLIN, 0}};
    int rc = -1;
    for (;;) {
        if (::poll(fds, sfd ? 2 : 1, -1) < 0 && errno != EINTR) break;
        if (fds[0].revents) break;
        if (fds[1].revents) {
            signalfd_siginfo si{};
            if (::read(sfd.get(), &si, sizeof si) != sizeof si) continue;
            spdlog::info("signal {}: stopping pid {} (and its group)", si.ssi_signo, child.pid());
            rc = child.terminate();
            break;
        }
    }
    if (rc < 0) rc = child.wait();
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return rc;
}

}  // namespace devemu::core
