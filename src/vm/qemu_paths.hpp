#pragma once
// Rapido's `mpath_local`, measured: `devemu vm run --mpath-disk FILE` gives the guest two virtio-scsi paths to one
// host file (scsi-hd on targets 1 and 2 of one virtio-scsi HBA, the same serial and NAA WWN, so dm-multipath
// groups them), and a virtio-serial port (org.devemu.paths) over which the guest asks the host to cut a path
// (QMP `drive_del`: the backend vanishes under the guest, as Rapido does it by hand) or to restore it
// (`device_del` of the orphaned disk, then a fresh drive and `device_add`: the guest sees a new disk appear).
// The host side is a thread of `vm run` that speaks QMP to qemu (its monitor is a socket devemu listens on).
// In the guest, `devemu failover --qemu-paths` makes the multipath map over the two disks, runs the same
// measured cuts as for a target, and removes the map at the end.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace devemu::lio {
struct FailoverOptions;
struct FailoverReport;
}  // namespace devemu::lio

namespace devemu::vm {

inline constexpr const char* kPathsPort = "org.devemu.paths";
inline constexpr const char* kPathsSerial = "devemu-mpath";
inline constexpr const char* kPathsWwn = "0x5001405d0e0e0001";   // both paths: one LU (naa.5001405d0e0e0001)

// qemu's arguments for the two paths, the relay port and the monitor (sockets devemu listens on in run_dir).
[[nodiscard]] std::vector<std::string> mpath_disk_args(const std::filesystem::path& file, const std::filesystem::path& run_dir);

// QMP over a connected socket: the greeting and capabilities, then HMP commands (human-monitor-command) and
// events. Every wait is bounded.
class Qmp {
public:
    [[nodiscard]] static core::Result<Qmp> start(core::UniqueFd fd);
    // An HMP command; its text output (HMP reports errors as text: the caller judges it).
    [[nodiscard]] core::Result<std::string> hmp(const std::string& command);
    // Until an event named `name` whose data.device is `device` (events before it are dropped).
    [[nodiscard]] core::Status wait_event(const std::string& name, const std::string& device, std::chrono::milliseconds timeout);

private:
    [[nodiscard]] core::Result<std::string> line(std::chrono::milliseconds timeout);
    core::UniqueFd fd_;
    std::string buf_;
    std::vector<std::string> events_;
};

// The host side: answers the guest's lines ("cut K", "restore K") with "ok" or "error WHY", until either socket
// closes. Runs in its own thread for the life of the VM.
void serve_paths(core::UniqueFd relay, core::UniqueFd qmp, const std::filesystem::path& file);

// The guest side: `devemu failover --qemu-paths`.
[[nodiscard]] core::Result<lio::FailoverReport> qemu_failover(const std::filesystem::path& state_dir, const lio::FailoverOptions& o);

}  // namespace devemu::vm
