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

// The kernel as an uncompressed ELF (vmlinux), which qemu boots through its PVH entry point: this skips the
// in-guest decompression that costs ~3 s under TCG. Extracted once from the bzImage (xz, zstd or gzip payload)
// into the cache; nullopt when the kernel has no PVH support or the payload cannot be found (boot vmlinuz then).
[[nodiscard]] std::optional<fs::path> uncompressed_kernel(const Kernel& k, const fs::path& cache_dir);

struct Accel {
    bool kvm = false;
    std::string why;   // why KVM is (not) used, for the one loud line
};
// Opens /dev/kvm and creates a VM: a device node alone does not mean KVM works (nested, no vmx/svm).
[[nodiscard]] Accel probe_kvm();

// What `--accel auto` uses: KVM only when /dev/kvm works *and* this kernel has once booted under it. Some nested
// hosts accept KVM_CREATE_VM and then hang or abort every real guest, so the first use boots the kernel with KVM
// (no initrd; it must reach its "no root" panic within a few seconds) and caches the verdict per host kernel,
// qemu and guest kernel. `mode` is "auto", "kvm" or "tcg".
[[nodiscard]] core::Result<Accel> choose_accel(const std::string& mode, const Kernel& k, const fs::path& cache_dir);

}  // namespace devemu::vm
