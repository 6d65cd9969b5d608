#pragma once
// `devemu capture` of a gadget inside an `up --vm` VM: the guest's own `devemu capture` (usbmon is the guest
// kernel's) writes the pcapng into a directory the VM shares read-write with the host (the unit's run dir, see
// plan_launch), and the host moves it into place. Stopped by the duration or by SIGINT/SIGTERM on the host, which
// interrupts the guest's capture so that it completes its file.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "core/error.hpp"
#include "vm/record.hpp"

namespace devemu::vm {

inline constexpr const char* kGuestCaptureDir = "/devemu/capture";
inline constexpr const char* kCaptureTag = "share0";   // the VM's first (and only) share: VmConfig::shares[0]
[[nodiscard]] inline std::filesystem::path capture_dir(const std::filesystem::path& run_dir) { return run_dir / "capture"; }

struct VmCaptureOptions {
    std::string gadget;                       // the guest's gadget unit; empty: the VM's only one
    std::string file;                         // on the host; complete or absent
    std::chrono::seconds duration{0};         // 0: until SIGINT/SIGTERM
    std::function<void(const std::string&)> progress;
};
struct VmCaptureResult {
    std::string gadget;
    std::uint64_t packets = 0, bytes = 0;
};
[[nodiscard]] core::Result<VmCaptureResult> capture_in_vm(const VmRecord& rec, const VmCaptureOptions& opt);

}  // namespace devemu::vm
