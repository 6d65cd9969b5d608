#include "vm/runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <optional>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/interrupt.hpp"
#include "core/progress.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/unix_socket.hpp"
#include "vm/qemu_paths.hpp"
#include "core/text.hpp"

namespace devemu::vm {

using core::Errc;
using core::UniqueFd;

std::vector<std::string> qemu_argv(const VmConfig& c, bool kvm, bool detached)
{
    std::vector<std::string> a = {"qemu-system-x86_64", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                                  "-machine", "pc", "-m", std::to_string(c.memory_mb), "-smp", std::to_string(c.cpus)};
    if (kvm) a.insert(a.end(), {"-accel", "kvm", "-cpu", "host"});
    // Without ERMS/FSRM the guest kernel (and glibc) copy with rep movsq or unrolled moves instead of rep movsb,
    // which TCG emulates one byte per loop iteration: page-cache reads in the guest went from ~200 to ~800 MB/s.
    else a.insert(a.end(), {"-accel", "tcg", "-cpu", "max,erms=off,fsrm=off"});
    a.insert(a.end(), {"-kernel", (c.boot_image.empty() ? c.kernel.vmlinuz : c.boot_image).string(), "-initrd", c.initrd.string()});
    // A throw-away test VM: skip the crypto self-tests (~0.5 s under TCG), trust qemu's TSC, no mitigations.
    // Expedited RCU: LIO waits for a grace period per LUN removed, under configfs's global symlink mutex; normal
    // grace periods under TCG made `down` of 256 LUNs take 5 s, expedited ones 0.7 s.
    std::string append = "console=ttyS0 quiet panic=-1 rdinit=/init cryptomgr.notests tsc=reliable no_timer_check "
                         "mitigations=off rcupdate.rcu_expedited=1";
    if (!c.extra_append.empty()) append += " " + c.extra_append;
    a.insert(a.end(), {"-append", append});
    static const char* logs[] = {"console.log", "stdout.log", "stderr.log"};
    for (int i = 0; i < 4; ++i) {
        a.push_back("-chardev");
        if (detached && i < 3) a.push_back(fmt::format("file,id=s{},path={}", i, (c.run_dir / logs[i]).string()));
        else if (detached) a.push_back(fmt::format("socket,id=s{},path={},server=on,wait=off", i, (c.run_dir / "ctl.sock").string()));
        else a.push_back(fmt::format("socket,id=s{},path={}", i, (c.run_dir / fmt::format("s{}.sock", i)).string()));
        a.push_back("-serial");
        a.push_back(fmt::format("chardev:s{}", i));
    }
    if (c.net || !c.forwards.empty()) {
        std::string netdev = "user,id=n0,ipv6=off";
        for (auto& f : c.forwards) netdev += fmt::format(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest);
        a.insert(a.end(), {"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile="});
    } else {
        a.insert(a.end(), {"-nic", "none"});
    }
    if (c.tap_fd >= 0)
        a.insert(a.end(), {"-netdev", fmt::format("tap,id=n1,fd={}", c.tap_fd), "-device",
                           fmt::format("virtio-net-pci,netdev=n1,romfile={}", c.tap_mac.empty() ? "" : ",mac=" + c.tap_mac)});
    if (c.host_root)
        a.insert(a.end(), {"-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"});
    if (detached && c.exec_ports > 0) {   // `devemu vm exec` and the commands relayed into the guest, several at once
        a.insert(a.end(), {"-device", "virtio-serial-pci,id=vexec"});
        for (int k = 0; k < c.exec_ports; ++k)
            a.insert(a.end(), {"-chardev", fmt::format("socket,id=x{},path={},server=on,wait=off", k, (c.run_dir / fmt::format("exec{}.sock", k)).string()),
                               "-device", fmt::format("virtserialport,bus=vexec.0,chardev=x{},name=org.devemu.exec.{}", k, k)});
        // The monitor, for what changes the VM's hardware while it runs (a host file inserted as a gadget's medium).
        a.insert(a.end(), {"-chardev", fmt::format("socket,id=qmp,path={},server=on,wait=off", (c.run_dir / "qmp.sock").string()), "-mon", "chardev=qmp,mode=control"});
    }
    const auto disks = host_disk_args(c.disks);
    a.insert(a.end(), disks.begin(), disks.end());
    if (!c.mpath_disk.empty() && !detached) {
        auto m = mpath_disk_args(c.mpath_disk, c.run_dir);
        a.insert(a.end(), m.begin(), m.end());
    }
    // The kernel's whole module tree, read-only: the guest's /lib/modules/VERSION (see build_initrd), so that
    // --modules, modprobe and the kernel's own request_module find any module of the distribution kernel.
    a.insert(a.end(), {"-virtfs", fmt::format("local,path={},mount_tag={},security_model=none,readonly=on,multidevs=remap",
                                              c.kernel.modules_dir().string(), kModuleTreeTag)});
    for (size_t i = 0; i < c.shares.size(); ++i)
        a.insert(a.end(), {"-virtfs", fmt::format("local,path={},mount_tag=share{},security_model=none,multidevs=remap",
                                                  c.shares[i].host.string(), i)});
    return a;
}

namespace {


void write_all(int fd, const char* p, size_t n)
{
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
}

// The last console lines, one "  | " line each, for an error or a warning.
std::string tail_text(const VmResult& r)
{
    std::string tail;
    for (auto& l : r.console_tail) tail += "\n  | " + l;
    return tail;
}

// Line splitter for the console tail and the control channel.
struct Lines {
    std::string partial;
    template <class F>
    void feed(const char* p, size_t n, F&& on_line)
    {
        partial.append(p, n);
        size_t nl;
        while ((nl = partial.find('\n')) != std::string::npos) {
            std::string line = partial.substr(0, nl);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            on_line(line);
            partial.erase(0, nl + 1);
        }
    }
};

}  // namespace

namespace {
// What every boot decides first: qemu present, the accelerator (said aloud, with why), the image -kernel gets.
core::Result<std::pair<VmConfig, Accel>> prepare_boot(const VmConfig& c)
{
    if (core::which("qemu-system-x86_64").empty())
        return core::fail(Errc::missing, "qemu-system-x86_64 not found", "PATH", "apt-get install qemu-system-x86");
    DEVEMU_TRY(accel, choose_accel(c.accel, c.kernel, c.cache_dir));
    // Say which accelerator and why, every time: a silent TCG fallback is what makes VMs "mysteriously slow".
    spdlog::info("vm: {} ({}), kernel {} from {}", accel.kvm ? "kvm" : "tcg, no KVM", accel.why, c.kernel.version, c.kernel.source);
    VmConfig cfg = c;
    if (cfg.boot_image.empty())
        if (auto elf = uncompressed_kernel(c.kernel, c.cache_dir)) cfg.boot_image = *elf;
    return std::pair{cfg, accel};
}
}  // namespace

core::Result<DetachedVm> start_detached(const VmConfig& c)
{
    DEVEMU_TRY(boot, prepare_boot(c));
    auto& [cfg, accel] = boot;
    auto argv = qemu_argv(cfg, accel.kvm, true);
    spdlog::debug("vm: {}", fmt::join(argv, " "));
    UniqueFd qlog(::open((c.run_dir / "qemu.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    core::SpawnOptions so;
    so.new_session = true;
    so.die_with_parent = false;
    so.stdout_fd = so.stderr_fd = qlog.get();
    if (c.tap_fd >= 0) so.keep_fds.push_back(c.tap_fd);
    DEVEMU_TRY(child, core::Child::spawn(argv, so));
    DetachedVm vm{child.pid(), core::process_start_time(child.pid()), c.run_dir / "ctl.sock", accel.kvm};
    child.detach();   // reaped by init once this devemu exits; `devemu down` stops it through the journal
    for (int i = 0; i < 200 && ::access(vm.ctl_socket.c_str(), F_OK) != 0; ++i) ::usleep(10000);
    if (::access(vm.ctl_socket.c_str(), F_OK) != 0) {
        auto log = core::read_file(c.run_dir / "qemu.log").value_or("");
        ::kill(vm.pid, SIGKILL);
        return core::fail(Errc::kernel, "qemu did not start: " + std::string(core::trim(log)), c.run_dir.string());
    }
    return vm;
}

core::Result<std::string> control(const fs::path& ctl_socket, const std::string& send, const std::string& prefix,
                                  std::chrono::seconds timeout, pid_t qemu_pid)
{
    auto conn = core::connect_unix(ctl_socket, "is the VM still running? see devemu ls");
    if (!conn) return core::fail(conn.error().code, "cannot reach the VM's control socket: " + conn.error().what, ctl_socket.string(), conn.error().fix);
    UniqueFd s = std::move(*conn);
    if (!send.empty()) write_all(s.get(), send.data(), send.size());
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Lines lines;
    std::optional<std::string> found;
    const auto start = std::chrono::steady_clock::now();
    while (!found) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) return core::fail(Errc::timeout, "the VM did not answer in time", ctl_socket.string(), "see console.log beside it");
        pollfd p{s.get(), POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 1000)));
        if (core::interrupted()) return core::fail(Errc::interrupted, "interrupted", ctl_socket.string(), "");
        if (auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count(); secs >= 2)
            core::progress(fmt::format("waiting for the VM… {}s", secs));
        if (qemu_pid > 0 && ::kill(qemu_pid, 0) != 0 && errno == ESRCH)
            return core::fail(Errc::kernel, "the VM stopped", ctl_socket.string(), "see console.log beside it");
        if (r <= 0) continue;
        char buf[4096];
        ssize_t n = ::read(s.get(), buf, sizeof buf);
        if (n <= 0) return core::fail(Errc::kernel, "the VM closed its control channel", ctl_socket.string(), "see console.log beside it");
        lines.feed(buf, static_cast<size_t>(n), [&](const std::string& l) {
            if (!found && l.starts_with(prefix)) found = l;
        });
    }
    core::progress_clear();
    return *found;
}

namespace {

// One `vm run`: qemu's four serial sockets (console, the command's stdout and stderr, devemu-init's control lines),
// qemu's own stderr, SIGINT/SIGTERM, and qemu's exit, polled until the guest reports and qemu is gone.
class Session {
public:
    Session(const VmConfig& c, VmResult& res) : c_(c), res_(res) {}

    core::Status open()
    {
        for (int i = 0; i < 4; ++i) {
            DEVEMU_TRY(l, core::listen_unix(c_.run_dir / fmt::format("s{}.sock", i)));
            listeners_[i] = std::move(l);
        }
        const auto log = c_.run_dir / "console.log";
        console_log_.reset(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!console_log_) return core::fail_errno("cannot create", log.string());
        // SIGINT/SIGTERM end the VM cleanly instead of killing devemu around it.
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (::sigprocmask(SIG_BLOCK, &mask, &old_mask_) != 0) return core::fail_errno("sigprocmask", "vm");
        restore_ = true;
        sigfd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
        if (!sigfd_) return core::fail_errno("signalfd", "vm");
        return {};
    }
    ~Session()
    {
        if (restore_) ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    core::Status spawn(const VmConfig& cfg, bool kvm)
    {
        int err_pipe[2];
        if (::pipe2(err_pipe, O_CLOEXEC) != 0) return core::fail_errno("pipe", "qemu");
        qerr_r_.reset(err_pipe[0]);
        UniqueFd qerr_w(err_pipe[1]);
        auto argv = qemu_argv(cfg, kvm);
        spdlog::debug("vm: {}", fmt::join(argv, " "));
        core::SpawnOptions so;
        so.stderr_fd = qerr_w.get();
        so.stdout_fd = qerr_w.get();
        if (c_.tap_fd >= 0) so.keep_fds.push_back(c_.tap_fd);
        DEVEMU_TRY(q, core::Child::spawn(argv, so));
        qemu_ = std::move(q);
        start_ = std::chrono::steady_clock::now();
        return {};
    }

    // Until the guest's command has ended and qemu with it, or the deadline, or a signal.
    void pump()
    {
        using clock = std::chrono::steady_clock;
        const auto deadline = c_.timeout.count() ? start_ + c_.timeout : clock::time_point::max();
        const auto boot_deadline = c_.boot_timeout.count() ? start_ + c_.boot_timeout : clock::time_point::max();
        for (;;) {
            build_poll_set();
            if (qemu_gone_ && !qerr_r_ && std::none_of(chan_.begin(), chan_.end(), [](auto& f) { return f.valid(); })) break;
            if (qemu_gone_ && fds_.empty()) break;
            const auto until = init_at_ ? deadline : std::min(deadline, boot_deadline);
            int wait_ms = -1;
            if (until != clock::time_point::max()) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()).count();
                wait_ms = static_cast<int>(std::max<long>(0, left));
            }
            if (qemu_gone_) wait_ms = wait_ms < 0 ? 500 : std::min(wait_ms, 500);   // drain, but do not hang on a stuck socket
            int r = ::poll(fds_.data(), fds_.size(), wait_ms);
            if (r < 0 && errno == EINTR) continue;
            if (r == 0 && !qemu_gone_ && !init_at_ && clock::now() >= boot_deadline && clock::now() < deadline) {
                res_.boot_hung = true;
                break;
            }
            if (r == 0) {
                timed_out_ = !qemu_gone_;
                break;
            }
            for (size_t k = 0; k < fds_.size(); ++k)
                if (fds_[k].revents) on_ready(who_[k].first, who_[k].second);
            if (interrupted_) break;
        }
        if (!console_lines_.partial.empty()) on_console(console_lines_.partial);
    }

    core::Result<VmResult> finish()
    {
        const int qemu_status = qemu_.terminate(std::chrono::milliseconds(1000));
        spdlog::debug("vm: finished in {} ms, qemu status {}",
                      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count(), qemu_status);
        const std::string tail = tail_text(res_);
        if (res_.boot_hung) {
            res_.exit_code = 124;
            return res_;
        }
        if (timed_out_) {
            spdlog::error("vm: timed out after {} s ({}); qemu killed. Last console lines:{}", c_.timeout.count(), phase(), tail);
            res_.exit_code = 124;
            return res_;
        }
        if (interrupted_) {
            spdlog::error("vm: interrupted; qemu stopped");
            res_.exit_code = 130;
            return res_;
        }
        if (!guest_error_.empty())
            return core::fail(Errc::missing, "the guest's init failed: " + guest_error_, "vm", "see " + (c_.run_dir / "console.log").string() + " (keep it with -v)");
        if (!guest_exit_) {
            std::string why = qemu_stderr_.empty() ? "" : " qemu said: " + std::string(core::trim(qemu_stderr_));
            return core::fail(Errc::kernel,
                              fmt::format("the guest stopped without reporting an exit status (kernel panic or qemu failure, "
                                          "qemu exit {}).{} Last console lines:{}", qemu_status, why, tail),
                              "vm", "run with --console to watch the boot");
        }
        res_.exit_code = *guest_exit_;
        return res_;
    }

private:
    enum Kind { listener, channel, qerr, sig, pidfd };

    void build_poll_set()
    {
        fds_.clear();
        who_.clear();
        for (int i = 0; i < 4; ++i) {
            if (chan_[i]) fds_.push_back({chan_[i].get(), POLLIN, 0}), who_.push_back({channel, i});
            else if (listeners_[i]) fds_.push_back({listeners_[i].get(), POLLIN, 0}), who_.push_back({listener, i});
        }
        if (qerr_r_) fds_.push_back({qerr_r_.get(), POLLIN, 0}), who_.push_back({qerr, 0});
        if (sigfd_) fds_.push_back({sigfd_.get(), POLLIN, 0}), who_.push_back({sig, 0});
        if (!qemu_gone_) fds_.push_back({qemu_.pidfd(), POLLIN, 0}), who_.push_back({pidfd, 0});
    }

    void on_console(const std::string& l)
    {
        res_.console_tail.push_back(l);
        if (res_.console_tail.size() > 20) res_.console_tail.pop_front();
    }

    // Where the guest was when time ran out: booting, in devemu-init, or running the command (for how long).
    std::string phase() const
    {
        auto secs = [](auto d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); };
        if (!init_at_) return "the guest's kernel never started devemu-init: it hung while booting";
        if (!run_at_) return fmt::format("devemu-init started after {} s but not the command (modules, mounts)", secs(*init_at_ - start_));
        return fmt::format("the command had run for {} s", secs(std::chrono::steady_clock::now() - *run_at_));
    }

    void on_ctl(const std::string& l)
    {
        if (l == "DEVEMU-INIT") init_at_ = std::chrono::steady_clock::now();
        else if (l == "DEVEMU-RUN") run_at_ = std::chrono::steady_clock::now();
        else if (l.starts_with("DEVEMU-EXIT ")) guest_exit_ = static_cast<int>(core::parse_number(l.substr(12)).value_or(1));
        else if (l.starts_with("DEVEMU-ERROR ")) guest_error_ = l.substr(13);
    }

    // Serial line i: 0 the console (to console.log, and the terminal with `console`), 1 and 2 the command's output,
    // 3 devemu-init's control lines.
    void on_channel(int i, const char* buf, size_t n)
    {
        if (i == 0) {
            write_all(console_log_.get(), buf, n);
            if (c_.console) write_all(c_.stderr_fd, buf, n);
            console_lines_.feed(buf, n, [this](const std::string& l) { on_console(l); });
        } else if (i == 1) write_all(c_.stdout_fd, buf, n);
        else if (i == 2) write_all(c_.stderr_fd, buf, n);
        else ctl_lines_.feed(buf, n, [this](const std::string& l) { on_ctl(l); });
    }

    void on_ready(Kind kind, int i)
    {
        char buf[16384];
        if (kind == listener) {
            chan_[i].reset(::accept4(listeners_[i].get(), nullptr, nullptr, SOCK_CLOEXEC));
            listeners_[i].reset();
        } else if (kind == channel) {
            const ssize_t n = ::read(chan_[i].get(), buf, sizeof buf);
            if (n <= 0) chan_[i].reset();
            else on_channel(i, buf, static_cast<size_t>(n));
        } else if (kind == qerr) {
            const ssize_t n = ::read(qerr_r_.get(), buf, sizeof buf);
            if (n <= 0) qerr_r_.reset();
            else qemu_stderr_.append(buf, static_cast<size_t>(n));
        } else if (kind == sig) {
            signalfd_siginfo si{};
            if (::read(sigfd_.get(), &si, sizeof si) == sizeof si) interrupted_ = true;
        } else {
            qemu_gone_ = true;
        }
    }

    const VmConfig& c_;
    VmResult& res_;
    std::array<UniqueFd, 4> listeners_, chan_;
    UniqueFd console_log_, sigfd_, qerr_r_;
    sigset_t old_mask_{};
    bool restore_ = false;
    core::Child qemu_;
    std::chrono::steady_clock::time_point start_;
    std::vector<pollfd> fds_;
    std::vector<std::pair<Kind, int>> who_;
    std::string qemu_stderr_, guest_error_;
    std::optional<int> guest_exit_;
    std::optional<std::chrono::steady_clock::time_point> init_at_, run_at_;
    Lines console_lines_, ctl_lines_;
    bool timed_out_ = false, interrupted_ = false, qemu_gone_ = false;
};

// One boot: the session above, and the --mpath-disk relay when asked.
core::Result<VmResult> boot_once(const VmConfig& c, const VmConfig& cfg, bool kvm)
{
    VmResult res;
    res.accel_kvm = kvm;
    Session session(c, res);
    DEVEMU_CHECK(session.open());
    // --mpath-disk: qemu connects its path relay and its monitor to these at start; a thread serves them
    core::UniqueFd relay_l, qmp_l;
    if (!c.mpath_disk.empty()) {
        DEVEMU_TRY(r, core::listen_unix(c.run_dir / "paths.sock"));
        DEVEMU_TRY(q, core::listen_unix(c.run_dir / "qmp.sock"));
        relay_l = std::move(r), qmp_l = std::move(q);
    }
    DEVEMU_CHECK(session.spawn(cfg, kvm));
    std::thread paths;
    if (relay_l) {
        auto accept_one = [](int l) {
            pollfd p{l, POLLIN, 0};
            return ::poll(&p, 1, 30000) == 1 ? core::UniqueFd(::accept4(l, nullptr, nullptr, SOCK_CLOEXEC)) : core::UniqueFd();
        };
        core::UniqueFd relay = accept_one(relay_l.get()), qmp = accept_one(qmp_l.get());
        if (!relay || !qmp) spdlog::error("vm: qemu did not connect its --mpath-disk channels");
        else paths = std::thread(serve_paths, std::move(relay), std::move(qmp), c.mpath_disk);
    }
    session.pump();
    auto out = session.finish();   // qemu is gone: the relay's sockets are closed and its thread returns
    if (paths.joinable()) paths.join();
    return out;
}

}  // namespace

core::Result<VmResult> run_vm(const VmConfig& c)
{
    DEVEMU_TRY(boot, prepare_boot(c));
    auto& [cfg, accel] = boot;
    auto out = boot_once(c, cfg, accel.kvm);
    if (out && out->boot_hung) {   // nothing of the command ran: booting again is safe
        spdlog::warn("vm: the guest did not start devemu-init within {} s (a hang while booting); qemu killed, booting it again. "
                     "Last console lines:{}", c.boot_timeout.count(), tail_text(*out));
        out = boot_once(c, cfg, accel.kvm);
        if (out && out->boot_hung)
            return core::fail(Errc::kernel, fmt::format("the guest hung while booting, twice (no devemu-init within {} s)", c.boot_timeout.count()),
                              (c.run_dir / "console.log").string(), "run with --console to watch the boot");
    }
    return out;
}

}  // namespace devemu::vm
