// devemu-init's exec ports (an `up --vm` guest): one server per virtio port org.devemu.exec.K, so that several
// `devemu vm exec` (and the commands that relay into the guest: fault, check, ls) run at once, each with its own
// output. The control tty (ttyS3) runs one command at a time and shares ttyS1/ttyS2 between them: a `devemu fault`
// waited for a user's `vm exec -- fio …` to end and printed fio's output as its own.
//
// A port carries one host connection at a time (the host takes a port with flock on run_dir/execK.lock):
//   host  -> guest   "exec ID A\x1fB\x1f…\n" (stdin /dev/null), or "execi ID …\n" and, once the command started,
//                    its stdin as "i LEN\n" + LEN bytes, ended by "i 0\n"
//   guest -> host    "ID s PID\n" (started), "ID o LEN\n" + LEN bytes of stdout, "ID e LEN\n" + LEN bytes of stderr, …,
//                    "ID x STATUS\n"
// The host closing its end (Ctrl-C, a timeout) ends the command: its process group gets SIGTERM, then SIGKILL.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vm/init/init.hpp"

namespace devemu_init {

namespace {

// The /dev node of the virtio port named `name`, once the driver has made it (ports appear after the module loads).
bool find_port(const char* name, char* dev, size_t dev_len)
{
    DIR* d = ::opendir("/sys/class/virtio-ports");
    if (!d) return false;
    bool found = false;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        char path[300], buf[128] = {};
        std::snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = ::open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == 0)) buf[--n] = 0;
        if (n > 0 && !std::strcmp(buf, name)) {
            std::snprintf(dev, dev_len, "/dev/%s", e->d_name);
            found = ::access(dev, F_OK) == 0;
            break;
        }
    }
    ::closedir(d);
    return found;
}

// Writes all of it to the port (non-blocking: a host that left makes this fail instead of hanging the server).
bool port_write(int fd, const char* p, size_t n)
{
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w > 0) {
            p += w, n -= static_cast<size_t>(w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) return false;
        pollfd pf{fd, POLLOUT, 0};
        if (::poll(&pf, 1, 5000) <= 0 || (pf.revents & POLLHUP)) return false;
    }
    return true;
}

// A frame's header line "ID KIND VALUE" (VALUE: a PID, a length or a status), and for 'o'/'e' its data after it.
bool send_head(int port, const char* id, char kind, long value)
{
    char head[96];
    const int h = std::snprintf(head, sizeof head, "%s %c %ld\n", id, kind, value);
    return port_write(port, head, static_cast<size_t>(h));
}

bool frame(int port, const char* id, char kind, const char* data, size_t n)
{
    return send_head(port, id, kind, static_cast<long>(n)) && port_write(port, data, n);
}

// Ends the command's process group: SIGTERM, then SIGKILL after 2 s.
void end_group(pid_t pid)
{
    ::kill(-pid, SIGTERM);
    for (int i = 0; i < 20; ++i) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
        ::usleep(100000);
    }
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

// The request may arrive before the driver has heard that the host connected (data and control messages are
// separate queues): wait until it has, so that the port's POLLHUP means the host left.
bool host_connected(int port)
{
    for (int i = 0; i < 200; ++i) {
        pollfd pf{port, 0, 0};
        if (::poll(&pf, 1, 0) >= 0 && !(pf.revents & POLLHUP)) return true;
        ::usleep(10000);
    }
    return false;
}

long now_ms()
{
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

// The host's stdin for the command ("execi"): frames "i LEN\n" + LEN bytes, "i 0\n" at its end, written into the
// command's stdin pipe as it takes them (the port is not read while a frame's bytes wait for the pipe).
struct StdinPump {
    int pipe = -1;                 // the command's stdin, non-blocking; -1 once closed
    bool done = true;              // the host sent its end (or sends no stdin at all)
    size_t left = 0;               // bytes of the current frame still to come
    char head[32] = {};
    size_t head_len = 0;
    char buf[65536];
    size_t pos = 0, len = 0;       // buf[pos, len): read from the port, not yet handled

    bool wants_port() const { return !done && pos == len; }
    bool wants_pipe() const { return pos < len && left > 0 && pipe >= 0; }
    void close_pipe()
    {
        if (pipe >= 0) ::close(pipe);
        pipe = -1;
    }
    // Handles what is in buf; false on a malformed frame.
    bool pump()
    {
        while (pos < len) {
            if (left == 0) {   // a header
                const char c = buf[pos++];
                if (c != '\n') {
                    if (head_len < sizeof head - 1) head[head_len++] = c;
                    continue;
                }
                head[head_len] = 0;
                head_len = 0;
                if (head[0] != 'i' || head[1] != ' ') return false;
                left = std::strtoul(head + 2, nullptr, 10);
                if (left == 0) {
                    done = true;
                    close_pipe();
                    pos = len;   // nothing may follow the end
                }
                continue;
            }
            const size_t n = len - pos < left ? len - pos : left;
            if (pipe < 0) {   // the command closed its stdin (or ended): the rest is dropped
                pos += n, left -= n;
                continue;
            }
            const ssize_t w = ::write(pipe, buf + pos, n);
            if (w > 0) {
                pos += static_cast<size_t>(w), left -= static_cast<size_t>(w);
                continue;
            }
            if (w < 0 && errno == EAGAIN) return true;   // wait for POLLOUT
            if (w < 0 && errno == EINTR) continue;
            close_pipe();   // EPIPE: nobody reads it any more
        }
        return true;
    }
};

// One request "exec ID ARGS" (stdin /dev/null) or "execi ID ARGS" (stdin from the host): runs it and streams its
// output as frames, then its status.
void serve_one(int port, char* line, const ExecEnv& env)
{
    const bool with_stdin = !std::strncmp(line, "execi ", 6);
    char* id = line + (with_stdin ? 6 : 5);
    char* args = std::strchr(id, ' ');
    if (!args || !host_connected(port)) return;
    *args++ = 0;
    char* argv[256];
    int argc = 0;
    for (char* a = args; a && argc < 255;) {
        argv[argc++] = a;
        char* sep = std::strchr(a, 0x1f);
        if (sep) *sep++ = 0;
        a = sep;
    }
    argv[argc] = nullptr;
    int out[2], err[2] = {-1, -1}, in[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0) {
        send_head(port, id, 'x', 127);
        return;
    }
    if (::pipe2(err, O_CLOEXEC) != 0 || (with_stdin && ::pipe2(in, O_CLOEXEC) != 0)) {
        ::close(out[0]);
        ::close(out[1]);
        if (err[0] >= 0) ::close(err[0]), ::close(err[1]);
        send_head(port, id, 'x', 127);
        return;
    }
    static StdinPump sp;
    sp = StdinPump{};
    if (with_stdin) {
        sp.pipe = in[1];
        sp.done = false;
        ::fcntl(in[1], F_SETFL, O_NONBLOCK);
    }
    const pid_t pid = spawn_command(argv, env, in[0], out[1], err[1]);
    ::close(out[1]);
    ::close(err[1]);
    if (in[0] >= 0) ::close(in[0]);
    // "ID s PID": the host knows its command runs (and that this port is served at all).
    if (pid > 0 && !send_head(port, id, 's', pid)) {
        end_group(pid);
        ::close(out[0]);
        ::close(err[0]);
        sp.close_pipe();
        return;
    }
    bool host_here = true, exited = pid <= 0;
    int status = pid <= 0 ? 127 << 8 : 0;
    long exited_at = exited ? now_ms() : 0;
    int open_fds = 2;
    // The port: POLLHUP (the host left), POLLIN for stdin frames. The pidfd: readable when the command exits.
    // The stdin pipe: POLLOUT while a frame's bytes wait for it.
    const int pidfd = pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1;
    pollfd pf[5] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {port, 0, 0}, {sp.pipe, POLLOUT, 0}, {pidfd, POLLIN, 0}};
    while (host_here && open_fds > 0) {
        // A command that exited may leave a background child holding the pipes: what is already there is sent,
        // then (within a second) the status; what that child writes later goes nowhere.
        pf[2].events = sp.wants_port() ? POLLIN : 0;
        pf[3].fd = sp.wants_pipe() ? sp.pipe : -1;
        pf[4].fd = exited ? -1 : pidfd;
        const int r = ::poll(pf, 5, exited ? 100 : 500);
        if (r < 0 && errno != EINTR) break;
        if (r > 0 && (pf[2].revents & POLLIN) && sp.wants_port()) {
            const ssize_t n = ::read(port, sp.buf, sizeof sp.buf);
            if (n > 0) sp.pos = 0, sp.len = static_cast<size_t>(n);
        }
        if (r > 0 && (pf[2].revents & POLLHUP)) host_here = false;
        if (!sp.pump()) host_here = false;   // a malformed frame: the channel is out of step
        for (int k = 0; k < 2 && host_here && r > 0; ++k) {
            if (pf[k].fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP))) continue;
            char buf[16384];
            const ssize_t n = ::read(pf[k].fd, buf, sizeof buf);
            if (n > 0) host_here = frame(port, id, k ? 'e' : 'o', buf, static_cast<size_t>(n));
            else if (n == 0 || errno != EINTR) {
                ::close(pf[k].fd);
                pf[k].fd = -1;
                --open_fds;
            }
        }
        if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true, exited_at = now_ms();
        if (exited && (r == 0 || now_ms() - exited_at > 1000)) break;
    }
    for (int k = 0; k < 2; ++k)
        if (pf[k].fd >= 0) ::close(pf[k].fd);
    if (pidfd >= 0) ::close(pidfd);
    sp.close_pipe();
    if (!exited) {
        if (!host_here) {
            end_group(pid);   // the host left (Ctrl-C, its timeout): nobody waits for this command any more
            return;
        }
        ::waitpid(pid, &status, 0);
    }
    if (host_here) send_head(port, id, 'x', WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

[[noreturn]] void serve_port(const char* name, const ExecEnv& env)
{
    ::signal(SIGPIPE, SIG_IGN);   // a command that closed its stdin: EPIPE, not death (commands get SIG_DFL back)
    char dev[300];
    for (int i = 0; !find_port(name, dev, sizeof dev); ++i) {
        if (i == 300) ::_exit(0);   // no such port within 30 s: a VM without exec ports
        ::usleep(100000);
    }
    // With no host connected the port reads 0 at once: wait for SIGIO (a host connecting, data) instead of spinning.
    sigset_t io;
    sigemptyset(&io);
    sigaddset(&io, SIGIO);
    ::sigprocmask(SIG_BLOCK, &io, nullptr);
    const int port = ::open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (port < 0 || ::fcntl(port, F_SETOWN, ::getpid()) != 0 || ::fcntl(port, F_SETFL, O_NONBLOCK | O_ASYNC) != 0) {
        std::perror("devemu-init: exec port");
        ::_exit(1);
    }
    static char line[16384];
    size_t n = 0;
    for (;;) {
        pollfd pf{port, POLLIN, 0};
        ::poll(&pf, 1, -1);   // returns at once while no host is connected
        char c[4096];
        const ssize_t r = ::read(port, c, sizeof c);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            n = 0;   // no host (or a half-sent request of one that left)
            const timespec wait{1, 0};
            ::sigtimedwait(&io, nullptr, &wait);
            continue;
        }
        for (ssize_t i = 0; i < r; ++i) {
            if (c[i] != '\n') {
                if (n < sizeof line - 1) line[n++] = c[i];
                continue;
            }
            line[n] = 0;
            n = 0;
            // One request per connection; with "execi" its stdin frames follow, and the first of them may be in this
            // read already: hand them back to the port's reader is not possible, so the host waits for "ID s"
            // before it sends any (vm/unit.cpp).
            if (!std::strncmp(line, "exec ", 5) || !std::strncmp(line, "execi ", 6)) serve_one(port, line, env);
            break;
        }
    }
}

}  // namespace

void start_exec_ports(int count, const ExecEnv& env)
{
    for (int k = 0; k < count; ++k) {
        const pid_t pid = ::fork();
        if (pid != 0) continue;   // the parent goes on (a failed fork leaves that port unserved)
        char name[64];
        std::snprintf(name, sizeof name, "org.devemu.exec.%d", k);
        serve_port(name, env);
    }
}

}  // namespace devemu_init
