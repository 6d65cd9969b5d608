// devemu-init: the guest's /init. Static, libc only: it mounts the basics, loads the modules the host resolved
// (in order, with finit_module: no fork+exec per module, which costs ~30 ms each under TCG), brings up the
// network and the host-root overlay when asked, runs the command with stdout on ttyS1 and stderr on ttyS2,
// reports "DEVEMU-EXIT <status>" on ttyS3, and powers off. Kernel messages stay on ttyS0. "DEVEMU-INIT" on ttyS3
// says it started (the kernel booted), "DEVEMU-RUN" that the command starts.
//
// /devemu/run.conf, one directive per line:
//   module PATH [OPTS]   finit_module with its parameters, in order; ENODEV/EEXIST are fine (no such hardware,
//                        already loaded)
//   modtree TAG          9p tag mounted read-only at /lib/modules/RELEASE: the kernel's whole module tree
//   net 1                lo up, eth0 10.0.2.15/24 via 10.0.2.2 (qemu user networking)
//   eth1 ADDR/PREFIX     the second NIC (a tap on a private network, e.g. devemu's Ceph cluster), no route
//   hostroot 1           9p tag "host" read-only + tmpfs upper = writable copy of the host's /, chroot into it
//   share TAG DIR        9p tag mounted read-write at DIR
//   cwd DIR              working directory of the command
//   env K=V              added to the command's environment
//   systemd 1            (with hostroot) boot the host's systemd as PID 1 in the overlay root instead of running the
//                        command directly: a target of devemu's own (basic.target + one service) runs the command
//                        through this binary (`/run/devemu-init --command`), which reports its status and powers off
//   execports N          (with stay) serve `exec` on the virtio ports org.devemu.exec.0…N-1, several at once
//                        (exec_port.cpp)
//   stay 1               after reporting the exit status, stay up and serve control lines on ttyS3:
//                        "down" runs /devemu/down-argv, reports "DEVEMU-DOWN <status>" and powers off;
//                        "exec A\x1fB\x1f…" runs A B … (stdout/stderr on ttyS1/ttyS2), reports "DEVEMU-RAN <status>"
// /devemu/argv: the command, NUL-separated.
#include <fcntl.h>
#include <poll.h>
#include <linux/reboot.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vm/init/init.hpp"

using devemu_init::die;
using devemu_init::loopback_up;
using devemu_init::network;
using devemu_init::second_nic;

namespace {

int ctl_fd = -1;

// Writes all of it; false when the fd refuses (the caller decides whether that matters).
bool write_all_fd(int fd, const char* p, size_t n)
{
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w, n -= static_cast<size_t>(w);
    }
    return true;
}

void say(const char* fmt, const char* a = "", const char* b = "")
{
    char buf[512];
    int n = std::snprintf(buf, sizeof buf, fmt, a, b);
    if (n > 0) {
        // The control tty is how the host learns the outcome; the kernel log is a copy for the console.
        if (ctl_fd >= 0 && !write_all_fd(ctl_fd, buf, static_cast<size_t>(n))) std::perror("devemu-init: control tty");
        int k = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
        if (k >= 0) {
            if (!write_all_fd(k, buf, static_cast<size_t>(n))) std::perror("devemu-init: /dev/kmsg");
            ::close(k);
        }
    }
}

[[noreturn]] void power_off()
{
    if (ctl_fd >= 0) ::tcdrain(ctl_fd);
    ::sync();
    ::reboot(LINUX_REBOOT_CMD_POWER_OFF);
    for (;;) ::pause();
}

void must_mount(const char* src, const char* dst, const char* type, unsigned long flags, const char* data)
{
    ::mkdir(dst, 0755);
    if (::mount(src, dst, type, flags, data) != 0) die("mount", dst);
}

int open_raw_tty(const char* path)
{
    int fd = ::open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return -1;
    termios t{};
    if (::tcgetattr(fd, &t) == 0) {
        ::cfmakeraw(&t);
        ::cfsetospeed(&t, B115200);
        ::tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

bool filesystem_known(const char* type)
{
    char buf[4096];
    int fd = ::open("/proc/filesystems", O_RDONLY);
    if (fd < 0) return false;
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    char needle[64];
    std::snprintf(needle, sizeof needle, "\t%s\n", type);
    return std::strstr(buf, needle) != nullptr;
}

void load_module(char* path)
{
    const char* options = "";
    if (char* sp = std::strchr(path, ' ')) {   // module paths have no spaces: the rest are its parameters
        *sp = 0;
        options = sp + 1;
    }
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("module", path);
    long r = ::syscall(SYS_finit_module, fd, options, 0);
    int e = errno;
    ::close(fd);
    if (r != 0 && e != EEXIST && e != ENODEV) {
        errno = e;
        die("module", path);
    }
}

void mkdirs(const char* path)
{
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s", path);
    for (char* p = buf + 1; *p; ++p)
        if (*p == '/') {
            *p = 0;
            ::mkdir(buf, 0755);
            *p = '/';
        }
    ::mkdir(buf, 0755);
}

// The kernel's whole module tree (9p tag `tag`, read-only) over the base archive's subset at /lib/modules/RELEASE:
// modprobe and the kernel's request_module then find any module. Same paths, so later "module" lines load from it.
void module_tree(const char* tag)
{
    struct utsname u {};
    ::uname(&u);
    char dir[300];
    std::snprintf(dir, sizeof dir, "/lib/modules/%s", u.release);
    mkdirs(dir);
    must_mount(tag, dir, "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144");
}

// A writable view of the host's / (9p, read-only) with the guest's own /proc, /sys, /dev, /tmp and modules.
void host_root()
{
    must_mount("host", "/mnt/host", "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144");
    must_mount("tmpfs", "/mnt/rw", "tmpfs", 0, "mode=0755");
    ::mkdir("/mnt/rw/upper", 0755);
    ::mkdir("/mnt/rw/work", 0755);
    must_mount("overlay", "/newroot", "overlay", 0, "lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work");
    must_mount("proc", "/newroot/proc", "proc", 0, nullptr);
    must_mount("sysfs", "/newroot/sys", "sysfs", 0, nullptr);
    must_mount("/dev", "/newroot/dev", nullptr, MS_BIND | MS_REC, nullptr);
    // No tmpfs over /tmp: the overlay's upper layer is already guest RAM, and a checkout under the host's /tmp
    // (a CI clone, say) must stay visible.
    must_mount("tmpfs", "/newroot/run", "tmpfs", 0, "mode=0755");
    if (filesystem_known("configfs")) must_mount("configfs", "/newroot/sys/kernel/config", "configfs", 0, nullptr);
    mkdirs("/newroot/lib/modules");
    must_mount("/lib/modules", "/newroot/lib/modules", nullptr, MS_BIND | MS_REC, nullptr);   // with the module tree on it
    // The run's own files (a connection file and its secret, say) stay at /devemu for the command.
    mkdirs("/newroot/devemu");
    must_mount("/devemu", "/newroot/devemu", nullptr, MS_BIND, nullptr);
}

char* slurp(const char* path, size_t* len)
{
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    struct stat st {};
    ::fstat(fd, &st);
    char* buf = static_cast<char*>(std::malloc(static_cast<size_t>(st.st_size) + 1));
    ssize_t n = ::read(fd, buf, static_cast<size_t>(st.st_size));
    ::close(fd);
    if (n < 0) n = 0;
    buf[n] = 0;
    *len = static_cast<size_t>(n);
    return buf;
}

// Runs the NUL-separated command in `argv_file` with stdout/stderr on the given ttys; returns its exit status.
int run_command(const char* argv_file, bool host, const char* cwd, char** envp, int out_fd, int err_fd)
{
    size_t len = 0;
    char* args = slurp(argv_file, &len);
    if (!args || len == 0) return 127;
    char* argv[256];
    int argc = 0;
    for (size_t off = 0; off < len && argc < 255; off += std::strlen(args + off) + 1) argv[argc++] = args + off;
    argv[argc] = nullptr;
    const pid_t pid = devemu_init::spawn_command(argv, {host, cwd, envp}, -1, out_fd, err_fd);
    if (pid < 0) return 127;
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(-1, &status, 0);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) break;
    }
    ::tcdrain(out_fd);
    ::tcdrain(err_fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Long-lived mode (devemu up --vm): wait for "down" on the control tty, run the down command, power off.
[[noreturn]] void serve(bool host, const char* cwd, char** envp, int out_fd, int err_fd)
{
    static char line[8192];
    size_t n = 0;
    for (;;) {
        // PID 1 reaps every orphan: a command's background child outlives it (the exec ports' commands too, which
        // never come through here), and a zombie still answers `kill -0`.
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {}
        pollfd pf{ctl_fd, POLLIN, 0};
        if (::poll(&pf, 1, 250) <= 0) continue;
        char c;
        ssize_t r = ::read(ctl_fd, &c, 1);
        if (r <= 0) {
            ::usleep(100000);
            continue;
        }
        if (c != '\n' && c != '\r') {
            if (n < sizeof line - 1) line[n++] = c;
            continue;
        }
        line[n] = 0;
        n = 0;
        if (!std::strcmp(line, "down")) {
            char num[16];
            std::snprintf(num, sizeof num, "%d", run_command("/devemu/down-argv", host, cwd, envp, out_fd, err_fd));
            say("DEVEMU-DOWN %s\n", num);
            power_off();
        }
        if (!std::strcmp(line, "ping")) say("DEVEMU-PONG%s%s\n");
        if (!std::strncmp(line, "exec ", 5)) {
            // Arguments separated by 0x1f (they may hold spaces); written NUL-separated for run_command.
            int fd = ::open("/devemu/exec-argv", O_WRONLY | O_CREAT | O_TRUNC, 0600);
            size_t len = std::strlen(line + 5);
            for (size_t i = 5; i < 5 + len; ++i)
                if (line[i] == 0x1f) line[i] = 0;
            if (fd < 0 || !write_all_fd(fd, line + 5, len + 1)) std::perror("devemu-init: /devemu/exec-argv");
            if (fd >= 0) ::close(fd);
            char num[16];
            std::snprintf(num, sizeof num, "%d", run_command("/devemu/exec-argv", host, cwd, envp, out_fd, err_fd));
            say("DEVEMU-RAN %s\n", num);
        }
    }
}


// The command's environment before the run's own `env` lines; returns how many entries it wrote.
int base_env(char** envp)
{
    int n = 0;
    envp[n++] = const_cast<char*>("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    envp[n++] = const_cast<char*>("HOME=/root");
    envp[n++] = const_cast<char*>("TERM=dumb");
    envp[n++] = const_cast<char*>("DEVEMU_GUEST=1");
    return n;
}

bool write_text(const char* path, const char* text)
{
    int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool ok = write_all_fd(fd, text, std::strlen(text));
    ::close(fd);
    return ok;
}

bool copy_file(const char* from, const char* to, mode_t mode)
{
    size_t len = 0;
    char* data = slurp(from, &len);
    if (!data) return false;
    int fd = ::open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    const bool ok = fd >= 0 && write_all_fd(fd, data, len);
    if (fd >= 0) ::close(fd);
    std::free(data);
    return ok;
}

// systemd as PID 1 in the host-root overlay: units of devemu's own in /run/systemd/system (the overlay's /etc and
// the host are left alone), the command run by a copy of this binary, then PID 1 becomes systemd. Only what
// devemu-vm.target pulls in starts (basic.target: udev, journald, the sysinit units), not the host's multi-user
// services; the command starts more with systemctl as it likes.
[[noreturn]] void boot_systemd()
{
    mkdirs("/newroot/run/systemd/system");
    mkdirs("/newroot/run/tmpfiles.d");
    if (!copy_file("/init", "/newroot/run/devemu-init", 0755)) die("systemd", "/newroot/run/devemu-init");
    // Debian's tmpfiles.d/tmp.conf ("D /tmp") empties /tmp at boot: here that would hide the host's /tmp (a CI
    // clone, the command itself) behind whiteouts. /run/tmpfiles.d wins over /usr/lib/tmpfiles.d.
    if (!write_text("/newroot/run/tmpfiles.d/tmp.conf", "d /tmp 1777 root root -\n")) die("systemd", "/newroot/run/tmpfiles.d/tmp.conf");
    if (!write_text("/newroot/run/systemd/system/devemu-vm.target",
                    "[Unit]\nDescription=devemu vm run\nRequires=basic.target\nAfter=basic.target\n"
                    "Wants=devemu-command.service\nAllowIsolate=yes\n") ||
        !write_text("/newroot/run/systemd/system/devemu-command.service",
                    "[Unit]\nDescription=devemu vm run: the command\nAfter=basic.target\n\n"
                    "[Service]\nType=simple\nExecStart=/run/devemu-init --command\nStandardInput=null\n"
                    "StandardOutput=journal\nStandardError=journal\n"))
        die("systemd", "/newroot/run/systemd/system");
    if (::chdir("/newroot") != 0) die("systemd", "/newroot");
    if (::mount("/newroot", "/", nullptr, MS_MOVE, nullptr) != 0) die("systemd: move root", "/newroot");
    if (::chroot(".") != 0 || ::chdir("/") != 0) die("systemd: chroot", "/newroot");
    for (int fd = 3; fd < 64; ++fd) ::close(fd);
    const char* argv[] = {"/lib/systemd/systemd", "--unit=devemu-vm.target", "--show-status=false", nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    die("systemd: exec", argv[0]);
}

// `/run/devemu-init --command`, as devemu-command.service: the command of /devemu/argv with the run's environment and
// working directory, its output on ttyS1/ttyS2 as in the plain mode, its status on ttyS3; then power off.
[[noreturn]] void systemd_command()
{
    ctl_fd = open_raw_tty("/dev/ttyS3");
    int out_fd = open_raw_tty("/dev/ttyS1");
    int err_fd = open_raw_tty("/dev/ttyS2");
    if (ctl_fd < 0 || out_fd < 0 || err_fd < 0) die("serial", "ttyS1..3");
    size_t len = 0;
    char* conf = slurp("/devemu/run.conf", &len);
    if (!conf) die("config", "/devemu/run.conf");
    const char* cwd = "/";
    char* envp[64];
    int envc = base_env(envp);
    envp[envc++] = const_cast<char*>("DEVEMU_SYSTEMD=1");
    for (char* line = std::strtok(conf, "\n"); line; line = std::strtok(nullptr, "\n")) {
        if (!std::strncmp(line, "cwd ", 4)) cwd = line + 4;
        else if (!std::strncmp(line, "env ", 4) && envc < 62) envp[envc++] = line + 4;
    }
    envp[envc] = nullptr;
    say("DEVEMU-RUN\n");
    char num[16];
    std::snprintf(num, sizeof num, "%d", run_command("/devemu/argv", false, cwd, envp, out_fd, err_fd));
    say("DEVEMU-EXIT %s\n", num);
    power_off();
}

}  // namespace

namespace devemu_init {

[[noreturn]] void die(const char* what, const char* arg)
{
    char msg[300];
    std::snprintf(msg, sizeof msg, "%s: %s", arg, std::strerror(errno));
    say("DEVEMU-ERROR %s %s\n", what, msg);
    power_off();
}

int spawn_command(char** argv, const ExecEnv& env, int in_fd, int out_fd, int err_fd)
{
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    ::setsid();
    sigset_t none;   // a blocked signal stays blocked across exec, an ignored one ignored (the exec ports: SIGIO, SIGPIPE)
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(in_fd >= 0 ? in_fd : ::open("/dev/null", O_RDONLY), 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (env.host && (::chroot("/newroot") != 0 || ::chdir("/") != 0)) {
        std::perror("devemu-init: chroot");
        ::_exit(127);
    }
    if (::chdir(env.cwd) != 0 && ::chdir("/") != 0) std::perror("devemu-init: chdir");
    for (char** e = env.envp; *e; ++e) ::putenv(*e);
    ::execvp(argv[0], argv);
    std::fprintf(stderr, "devemu-init: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
}

}  // namespace devemu_init

int main(int argc, char** argv)
{
    if (argc > 1 && !std::strcmp(argv[1], "--command")) systemd_command();
    must_mount("proc", "/proc", "proc", 0, nullptr);
    must_mount("sysfs", "/sys", "sysfs", 0, nullptr);
    must_mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);
    // /tmp stays on the rootfs (already RAM): a tmpfs over it would hide files the run archive put there.
    ::chmod("/tmp", 01777);
    must_mount("tmpfs", "/run", "tmpfs", 0, "mode=0755");
    ctl_fd = open_raw_tty("/dev/ttyS3");
    int out_fd = open_raw_tty("/dev/ttyS1");
    int err_fd = open_raw_tty("/dev/ttyS2");
    if (ctl_fd < 0 || out_fd < 0 || err_fd < 0) die("serial", "ttyS1..3");
    say("DEVEMU-INIT\n");   // the kernel booted: the host stops its boot watchdog

    size_t conf_len = 0, argv_len = 0;
    char* conf = slurp("/devemu/run.conf", &conf_len);
    char* args = slurp("/devemu/argv", &argv_len);
    if (!conf || !args || argv_len == 0) die("config", "/devemu");

    bool host = false, stay = false, systemd = false;
    int exec_ports = 0;
    const char* cwd = "/";
    char* envp[64];
    int envc = base_env(envp);

    for (char* line = std::strtok(conf, "\n"); line; line = std::strtok(nullptr, "\n")) {
        char* sp = std::strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        char* val = sp + 1;
        if (!std::strcmp(line, "module")) load_module(val);
        else if (!std::strcmp(line, "modtree")) module_tree(val);
        else if (!std::strcmp(line, "net")) network();
        else if (!std::strcmp(line, "eth1")) second_nic(val);
        else if (!std::strcmp(line, "hostroot")) host = true;
        else if (!std::strcmp(line, "cwd")) cwd = val;
        else if (!std::strcmp(line, "env") && envc < 62) envp[envc++] = val;
        else if (!std::strcmp(line, "stay")) stay = true;
        else if (!std::strcmp(line, "systemd")) systemd = true;
        else if (!std::strcmp(line, "execports")) exec_ports = std::atoi(val);
        // "share" lines are handled below, once the root is final.
    }
    envp[envc] = nullptr;
    loopback_up();   // services on 127.0.0.1 in the guest (an iSCSI portal) need it, network or not
    if (filesystem_known("configfs")) must_mount("configfs", "/sys/kernel/config", "configfs", 0, nullptr);
    if (host) host_root();

    // Shares: a second pass, so that with the host root they land inside it.
    {
        size_t l = 0;
        char* c2 = slurp("/devemu/run.conf", &l);
        for (char* line = std::strtok(c2, "\n"); line; line = std::strtok(nullptr, "\n")) {
            if (std::strncmp(line, "share ", 6)) continue;
            char* tag = line + 6;
            char* dir = std::strchr(tag, ' ');
            if (!dir) continue;
            *dir++ = 0;
            char target[512];
            std::snprintf(target, sizeof target, "%s%s", host ? "/newroot" : "", dir);
            mkdirs(target);
            if (::mount(tag, target, "9p", 0, "trans=virtio,version=9p2000.L,msize=262144") != 0) die("share", target);
        }
    }

    // From now on /sbin/modprobe may mount the whole module tree (the kernel's own requests during boot are served
    // from the base archive, as before: they would otherwise load crypto modules no one asked for).
    if (int m = ::open("/devemu/command-started", O_WRONLY | O_CREAT | O_CLOEXEC, 0600); m >= 0) ::close(m);
    else std::perror("devemu-init: /devemu/command-started");
    if (systemd && host) boot_systemd();
    if (stay && exec_ports > 0) devemu_init::start_exec_ports(exec_ports, {host, cwd, envp});
    say("DEVEMU-RUN\n");   // the command starts (the host's timeout message says how long it ran)
    char num[16];
    std::snprintf(num, sizeof num, "%d", run_command("/devemu/argv", host, cwd, envp, out_fd, err_fd));
    say("DEVEMU-EXIT %s\n", num);
    if (stay) serve(host, cwd, envp, out_fd, err_fd);
    power_off();
}
