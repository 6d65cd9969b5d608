#pragma once
// Faults under a kernel backstore (fileio, block, zram): each [[backstore.fault]] becomes one device-mapper device
// stacked on the backing — dm-delay or dm-flakey over the fault's LBA range, dm-linear around it — and LIO (or the
// USB function) is given the top one. A file is reached through a loop device (autoclear: it goes with the dm device
// that holds it). The dm devices are named devemu-ID-N, ID from the backing (the device's name, or a hash of the
// file's path), so that `up` again finds its own stack and keeps it when the faults are the same.
// Devices are made and removed with dmsetup (libdevmapper's own tool), without udev (the VM has none).
#include <optional>
#include <string>
#include <vector>

#include "backing/backing.hpp"
#include "core/error.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::backing {

// One layer's dm table for `sectors` 512-byte sectors over `dev` (MAJ:MIN): linear outside the fault's range.
[[nodiscard]] std::string dm_table(const fault::Spec& s, const std::string& dev, std::uint64_t sectors, std::uint32_t block_size);

// The backing with the backstore's faults stacked on it (unchanged when it has none, or is a `user` backstore,
// whose faults are its handler's). Without `tx` nothing is touched (`plan`). A stack an earlier `up` made with other
// faults is refused with the fix (down first), never changed under a live LUN.
[[nodiscard]] core::Result<Backing> stack_faults(const profile::Backstore& b, Backing base, core::Transaction* tx);

// A dm device by name, from sysfs (no udev needed): its MAJ:MIN and /dev/dm-N node.
struct DmDev {
    std::string majmin;
    std::string node;
};
[[nodiscard]] std::optional<DmDev> find_dm(const std::string& name);

// The journal step "dm_remove" (value: the dm device's name).
void register_dm_undo();

}  // namespace devemu::backing
