#pragma once
// The initiator side of a target with `multipath = true`, on the same kernel: dm-multipath over the target's paths
// (tcm_loop nexuses), with a multipath.conf snippet devemu writes for LIO (/etc/multipath/conf.d/devemu-UNIT.conf:
// vendor LIO-ORG with the directio checker — Debian 12's multipath-tools 0.9.4 still uses `tur`, which LIO answers
// GOOD on a dead path — and one `multipaths` entry per LUN: its WWID, the alias devemu-UNIT-LUN, the profile's
// no_path_retry). multipathd and udevd are started when they are not running (a VM); every unit shares the ones
// devemu started, and the last unit's `down` (no multipath map left) stops them.
// Every step is journaled before it acts, so `down` (also after a crash) flushes the maps first, then forgets the
// WWIDs, removes the snippet and stops what it started — before LIO removes the paths.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/transaction.hpp"

namespace devemu::lio::mpath {

struct Lun {
    std::uint32_t id = 0;
    std::vector<std::string> devices;   // /dev/sdX of each path, in path order
};

struct Want {
    std::string unit;
    std::string no_path_retry = "10";   // "queue", "fail" or checker intervals
    std::vector<Lun> luns;
    unsigned polling_interval = 0;      // seconds between path checks (0: multipathd's default)
    unsigned fast_io_fail = 0;          // fast_io_fail_tmo for the LIO device (iSCSI: the session's recovery_tmo); 0: the default
    bool qemu = false;                  // the disks are QEMU's scsi-hd (vm run --mpath-disk), not LIO's: no ALUA
};

// Brings the maps up (or finds them up) and reads their state back. Returns
// {"conf": FILE, "started": {"multipathd": bool, "udevd": bool}, "maps": {LUN: {"alias", "wwid", "device"}}}.
[[nodiscard]] core::Result<nlohmann::json> up(const Want& w, core::Transaction& tx);

// The kernel's view of one map (dmsetup status): each path's device (MAJ:MIN → sdX) and whether it is active.
struct PathState {
    std::string device;
    bool active = false;
};
[[nodiscard]] core::Result<std::vector<PathState>> paths_of(const std::string& alias);
// The parser of `dmsetup status` for a multipath map (devices as MAJ:MIN); nothing when it is not one.
[[nodiscard]] std::optional<std::vector<PathState>> parse_status(const std::string& status);

// The multipath.conf snippet for a unit (pure: unit tests read it).
[[nodiscard]] std::string conf_text(const Want& w, const std::vector<std::string>& wwids);

// Journal steps: "mpath_flush" (value: alias), "mpath_forget" (value: WWID), "multipathd_stop", "udevd_stop".
void register_undo_ops();

}  // namespace devemu::lio::mpath
