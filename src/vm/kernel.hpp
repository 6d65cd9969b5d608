#pragma once
// Which kernel a VM boots, and whether qemu can use KVM here.
#include <filesystem>
#include <optional>
#include <string>

#include "core/error.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;

struct Kernel {
    fs::path vmlinuz;
    fs::path root;          // the directory holding lib/modules/VERSION ("/" for the host's own)
    std::string version;
    std::string source;     // "--kernel", "DEVEMU_KERNEL", "cache", "host"
    [[nodiscard]] fs::path modules_dir() const { return root / "lib/modules" / version; }
};

// --kernel (DIR or VMLINUZ), else $DEVEMU_KERNEL, else the newest kernel in CACHE/kernel/, else the host's
// /boot/vmlinuz-$(uname -r) when its modules are installed.
[[nodiscard]] core::Result<Kernel> find_kernel(const std::string& explicit_kernel, const fs::path& cache_dir);

struct Accel {
    bool kvm = false;
    std::string why;   // why KVM is (not) used, for the one loud line
};
// Opens /dev/kvm and creates a VM: a device node alone does not mean KVM works (nested, no vmx/svm).
[[nodiscard]] Accel probe_kvm();

}  // namespace devemu::vm
