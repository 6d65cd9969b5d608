#pragma once
// The initramfs, in two parts the kernel concatenates: a base archive (devemu-init, busybox with its applets, the
// module set and its indexes) cached under a key of everything that goes into it, and a small per-run archive
// (the command, its directives, any host binaries with their libraries).
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "vm/kernel.hpp"

namespace devemu::vm {

// Every module any devemu feature may need in a guest; a run loads only what it asks for.
[[nodiscard]] const std::vector<std::string>& module_set();
// The parameters a module gets when the guest's init loads it at boot ("" for none).
[[nodiscard]] std::string boot_module_options(const std::string& name);

struct BaseImage {
    fs::path path;
    bool cached = false;
    std::chrono::milliseconds build_time{0};
    std::uintmax_t bytes = 0;
    std::size_t modules = 0;
};

struct BaseSpec {
    Kernel kernel;
    fs::path busybox = "/bin/busybox";
    fs::path init;                          // devemu-init; default: next to the devemu binary
    std::vector<std::string> modules = module_set();
};

[[nodiscard]] core::Result<BaseImage> build_base(const BaseSpec& spec, const fs::path& cache_dir, bool force = false);

struct RunSpec {
    std::vector<std::string> argv;
    std::vector<std::string> load;          // module names to load, resolved with their dependencies (the ones net,
                                            // host_root and shares need are added by build_initrd)
    bool net = false;
    std::string eth1_addr;                  // "ADDR/PREFIX" for the second NIC (VmConfig::tap_fd), else none
    bool host_root = false;
    bool systemd = false;                   // with host_root: the host's systemd as PID 1 runs the command
    std::vector<std::pair<std::string, std::string>> shares;   // 9p tag, guest dir
    std::string cwd;
    std::vector<std::string> env;
    std::vector<fs::path> binaries;         // host binaries to add, with their ELF closure (not with host_root)
    bool runtime_images = false;            // the binaries as they run (elf_runtime_image), for devemu's own: its
                                            // debug info is most of it; a user's (vm run --bin) keeps its symbols
    std::vector<fs::path> files;            // host files to add at the same path (profiles)
    std::vector<std::pair<std::string, std::string>> secret_files;   // guest path (under /devemu) -> content, mode 0600
    bool stay = false;                      // long-lived: init waits for "down" on the control tty
    int exec_ports = 0;                     // with stay: virtio ports org.devemu.exec.K it serves `exec` on
    std::vector<std::string> down_argv;     // what "down" runs before power-off
};

// Writes base + run archive into `out` (one file: qemu's -initrd takes one).
[[nodiscard]] core::Status build_initrd(const BaseImage& base, const Kernel& kernel, const RunSpec& run, const fs::path& out);

// The devemu-init binary that belongs to this devemu.
[[nodiscard]] fs::path default_init();

}  // namespace devemu::vm
