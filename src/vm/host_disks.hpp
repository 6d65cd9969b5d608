#pragma once
// up --vm: a backstore on a host file or block device (fileio, block, a `user` backstore on a path) reaches the VM
// as a virtio disk, so that its data is the host's — written through to the file, there after `down` — and not a
// new file in the guest's RAM. The host makes and checks the file or device (the never-clobber rules apply there);
// the guest's devemu finds each disk by its serial and serves it in place of the path.
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::vm {

struct HostDisk {
    std::vector<std::string> backstores;   // the backstores on it (two may name the same file)
    std::filesystem::path path;            // the host's file or device
    std::string serial;                    // the virtio disk's serial in the guest ("devemu-N", at most 20 bytes)
    bool readonly = false;
};

// The host files and devices `prof`'s backstores use, each resolved on the host as a plain `up` would: a file is
// created sparse when absent and never resized (unless `force`), a device holding a filesystem or partition table
// is refused (unless `force`). rbd, zram and "zram:SIZE" backings stay in the VM.
[[nodiscard]] core::Result<std::vector<HostDisk>> plan_host_disks(const profile::Profile& prof, core::Transaction& tx, bool force);

// qemu's -drive and -device arguments for the disks.
[[nodiscard]] std::vector<std::string> host_disk_args(const std::vector<HostDisk>& disks);

// The guest's `up --host-disk BACKSTORE=SERIAL`: each named backstore's path becomes the virtio disk with that serial
// (looked for in `sys_block` for up to `wait`), marked host_disk.
[[nodiscard]] core::Status use_host_disks(profile::Profile& prof, const std::map<std::string, std::string>& serials,
                                          const std::filesystem::path& sys_block = "/sys/block", const std::filesystem::path& dev = "/dev",
                                          std::chrono::milliseconds wait = std::chrono::seconds(10));

// The virtio disk with `serial` in `sys_block` (its node in `dev`), once it is there (up to `wait`).
[[nodiscard]] core::Result<std::filesystem::path> find_virtio_disk(const std::string& serial, const std::filesystem::path& sys_block = "/sys/block",
                                                                   const std::filesystem::path& dev = "/dev",
                                                                   std::chrono::milliseconds wait = std::chrono::seconds(10));

// The `up --vm` unit other than `except` whose VM has the host's `path` as a disk (a backstore's or a plugged-in
// medium), and what it is there; nullopt: none. Two VMs writing one file would corrupt it.
struct ServedBy {
    std::string unit, what;
};
[[nodiscard]] std::optional<ServedBy> vm_serving(const core::StateDir& sd, const std::string& path, const std::string& except = "");

// qemu's own complaint (its log at start, an HMP answer) as one line: busy when it could not lock an image,
// else `code`.
[[nodiscard]] core::Error qemu_error(std::string said, std::string where, core::Errc code);

// `devemu gadget insert NAME FILE` on an `up --vm` gadget, FILE being the host's: plugs FILE into the running VM as
// a virtio disk (QMP drive_add + device_add) and records it in the unit's `media`; returns the disk's serial, for
// the guest's `gadget insert --host-disk SERIAL`. A file already plugged into this VM is the same disk again; a file
// another unit serves is refused; a device holding data is refused unless `force`. The disk stays until no LUN holds
// it (media_changed) or until `down`.
[[nodiscard]] core::Result<std::string> plug_host_medium(const core::StateDir& sd, const std::string& unit, const std::filesystem::path& file, bool force);

// A media change on an `up --vm` gadget's LUN (`key`: GADGET/LUN) went through in the guest: `serial` is the host
// medium now in it (plug_host_medium's), empty after an eject. A medium `gadget insert` plugged in (devemu-mN) that no
// LUN holds any longer is unplugged (device_del, qemu's DEVICE_DELETED awaited: the guest has written it back, qemu
// has let go of the file and its lock) and leaves `media`. The profile's own disks stay.
[[nodiscard]] core::Status media_changed(const core::StateDir& sd, const std::string& unit, const std::string& key, const std::string& serial);

// One HMP command (hostfwd_add, …) on the monitor of unit's running VM, under the lock `gadget insert` takes; its answer.
[[nodiscard]] core::Result<std::string> monitor_command(const std::filesystem::path& run_dir, const std::string& unit, const std::string& command);

}  // namespace devemu::vm
