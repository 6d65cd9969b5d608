// devemu-init's pieces shared between its files (see init.cpp for what the binary does).
#pragma once

namespace devemu_init {

// Reports "DEVEMU-ERROR WHAT ARG: strerror(errno)" on the control tty and powers the guest off.
[[noreturn]] void die(const char* what, const char* arg);

// The guest's network (net.cpp): lo up; eth0 on qemu's user network with its route; eth1 as "ADDR/PREFIX".
void loopback_up();
void network();
void second_nic(char* spec);

// How a command runs: in the host-root overlay (chroot /newroot) or not, its working directory and environment.
struct ExecEnv {
    bool host = false;
    const char* cwd = "/";
    char** envp = nullptr;
};

// Forks the command (its own session, stdin from in_fd or /dev/null when -1, stdout/stderr on the fds given); -1
// when fork fails.
int spawn_command(char** argv, const ExecEnv& env, int in_fd, int out_fd, int err_fd);

// An `up --vm` guest: `count` servers of the exec ports org.devemu.exec.0…count-1 (exec_port.cpp), forked.
void start_exec_ports(int count, const ExecEnv& env);

}  // namespace devemu_init
