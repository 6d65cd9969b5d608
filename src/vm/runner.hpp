#pragma once
// Runs qemu on a kernel + initrd built by image.hpp and relays the guest's channels: ttyS0 kernel console (to a
// log, and live with `console`), ttyS1 the command's stdout, ttyS2 its stderr, ttyS3 devemu-init's control
// lines ("DEVEMU-INIT", "DEVEMU-RUN", "DEVEMU-EXIT n", "DEVEMU-ERROR ..."). qemu dies with devemu (PR_SET_PDEATHSIG) and at the deadline.
#include <chrono>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "vm/host_disks.hpp"
#include "vm/kernel.hpp"

namespace devemu::vm {

// The 9p tag under which every VM gets the kernel's module tree (mounted at /lib/modules/VERSION by devemu-init).
inline constexpr const char* kModuleTreeTag = "modules";

struct PortForward {
    std::uint16_t host = 0;    // on 127.0.0.1 only
    std::uint16_t guest = 0;
};

struct Share {
    fs::path host;
    std::string guest;
};

struct VmConfig {
    Kernel kernel;
    fs::path initrd;
    fs::path boot_image;                   // what -kernel gets; default: the cached uncompressed ELF, else vmlinuz
    fs::path run_dir;                      // sockets and console.log live here
    unsigned memory_mb = 1024;
    unsigned cpus = 2;
    bool host_root = false;
    std::vector<Share> shares;
    std::vector<PortForward> forwards;
    bool net = false;
    // A second NIC (the guest's eth1) on a tap made elsewhere (a private network in a namespace): qemu inherits
    // the fd. -1: none.
    int tap_fd = -1;
    std::string tap_mac;
    std::chrono::seconds timeout{0};       // 0: none
    // The boot watchdog: a guest whose devemu-init has not said "DEVEMU-INIT" by then hung while booting (seen
    // once under TCG, before any console line); qemu is killed and the guest booted once more. 0: none.
    std::chrono::seconds boot_timeout{90};
    bool console = false;                  // stream the kernel console to stderr_fd
    int stdout_fd = 1, stderr_fd = 2;      // where the command's output (and the console) is streamed
    std::string extra_append;
    std::string accel = "auto";          // auto | kvm | tcg
    fs::path cache_dir;                    // where the KVM verdict is cached
    fs::path mpath_disk;                   // vm run --mpath-disk: two virtio-scsi paths to this file (vm/qemu_paths)
    int exec_ports = 0;                    // detached: virtio ports org.devemu.exec.K on run_dir/execK.sock (vm_exec)
    std::vector<HostDisk> disks;           // up --vm: the host's backing files and devices, as virtio disks
};

struct VmResult {
    int exit_code = 0;                     // the command's, 124 on timeout
    std::deque<std::string> console_tail;  // last 20 console lines
    bool boot_hung = false;                // the last boot never reached devemu-init (the first one is retried)
    bool accel_kvm = false;
};

// A VM that outlives this devemu (up --vm): console, stdout and stderr go to files in run_dir, the control
// tty is a socket qemu listens on (run_dir/ctl.sock) that later devemu calls connect to.
struct DetachedVm {
    pid_t pid = -1;
    std::uint64_t start_time = 0;
    fs::path ctl_socket;
    bool accel_kvm = false;
};
[[nodiscard]] core::Result<DetachedVm> start_detached(const VmConfig& c);

// Connects to a detached VM's control socket; reads lines until one starts with `prefix` (returns it) or the
// deadline passes. Sends `send` first when not empty.
[[nodiscard]] core::Result<std::string> control(const fs::path& ctl_socket, const std::string& send, const std::string& prefix,
                                                std::chrono::seconds timeout, pid_t qemu_pid);

// The qemu command line (exposed for tests and for `-v`).
[[nodiscard]] std::vector<std::string> qemu_argv(const VmConfig& c, bool kvm, bool detached = false);

// Boots, relays, and returns the command's exit status. A guest that powers off without reporting one (panic,
// missing module, bad image) is an error carrying the last console lines.
[[nodiscard]] core::Result<VmResult> run_vm(const VmConfig& c);

}  // namespace devemu::vm
