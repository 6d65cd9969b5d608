#pragma once
// `devemu vm run`: one command in a throw-away VM of the distribution kernel (busybox, or the host's / with
// host_root), its stdout and stderr streamed, its exit status returned (124 on the timeout). No qemu outlives it.
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "vm/runner.hpp"

namespace devemu::vm {

struct OneShot {
    std::vector<std::string> command;   // CMD ARGS: a busybox applet, a host binary (copied in), or anything with host_root
    bool host_root = false;
    bool systemd = false;               // with host_root: boot the host's systemd as PID 1; it runs the command
    std::vector<std::string> shares;    // HOSTDIR[:GUESTDIR], read-write over 9p
    std::vector<std::string> forwards;  // HOSTPORT:GUESTPORT (host side on 127.0.0.1)
    bool net = false;
    std::string modules;                // comma-separated, or "all" (module_set())
    std::vector<std::string> binaries;  // host binaries copied in with their libraries
    std::vector<std::string> env;       // K=V
    unsigned timeout_s = 0, memory_mb = 1024, cpus = 2;
    unsigned boot_timeout_s = 90;       // VmConfig::boot_timeout
    bool console = false;
    std::string append, accel = "auto";
    std::filesystem::path emit;         // not empty: write initrd.cpio and qemu.args there instead of booting
    std::string kernel;                 // --kernel
    std::filesystem::path cache_dir, state_dir;
    bool keep_console_log = false;      // keep run_dir/console.log even when the command succeeded (-v)
    std::filesystem::path mpath_disk;   // two virtio-scsi paths to this file, cut on request (vm/qemu_paths)
};

[[nodiscard]] core::Result<PortForward> parse_forward(const std::string& s);

// The command's exit status (124: the timeout), or why the VM could not run it.
[[nodiscard]] core::Result<int> run_oneshot(const OneShot& o);

}  // namespace devemu::vm
