#pragma once
// The record of a "vm" unit (`up --vm`): the qemu it started (pid and start time, so a reused pid is never taken
// for it), its control socket and run dir, the portals forwarded to 127.0.0.1, and the guest's units as the guest
// reported them. Read with defaults for every field, so records written before a field existed still read.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::vm {

// One unit in the guest: a target (how to reach it: `access`, through `portal` when forwarded) or a gadget.
struct GuestUnit {
    std::string unit, kind = "target";
    nlohmann::json access = nlohmann::json::object();   // a target's access_info, as the guest printed it (with secrets)
    std::string portal;                       // 127.0.0.1:PORT, the host's forward of its portal; empty: none
    nlohmann::json gadget = nlohmann::json::object();   // a gadget's record as the guest printed it
};

struct VmRecord {
    int version = core::kRecordVersion;
    std::string name, kind = "vm", profile, state = "booting";
    std::int64_t pid = 0;
    std::uint64_t start_time = 0;
    std::string ctl, run_dir;
    std::string devemu;                              // the binary the guest runs (at the same path there)
    std::map<std::string, std::uint16_t> forwards;   // target -> host port on 127.0.0.1
    std::map<std::string, std::uint16_t> guest_ports;   // target -> the guest's portal port that forward reaches
    bool host_root = false;                          // the guest's / is the host's (it reads the profile there)
    bool kvm = false;
    bool uses_ceph_local = false, ceph_local_started = false;
    std::string ceph_eth1;                           // the guest's address on the local Ceph cluster's network
    nlohmann::json rbd_images = nlohmann::json::object();
    std::map<std::string, std::string> host_disks;   // backstore -> the host file or device the VM has as a virtio disk
    std::map<std::string, std::string> media;        // virtio serial -> host file or device: the disks above, and the
                                                     // ones `gadget insert` plugged in while it ran
    std::map<std::string, std::string> inserted;     // GADGET/LUN -> the serial of the host medium `gadget insert` put in it
    std::vector<GuestUnit> units;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GuestUnit, unit, kind, access, portal, gadget)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VmRecord, version, name, kind, profile, state, pid, start_time, ctl, run_dir, devemu, forwards, guest_ports, host_root, kvm,
                                                uses_ceph_local, ceph_local_started, ceph_eth1, rbd_images, host_disks, media, inserted, units)

// A record as a VmRecord; a field of the wrong type is an error naming the unit, not an exception.
[[nodiscard]] core::Result<VmRecord> vm_record(const nlohmann::json& j);

// The record of `unit` in the state dir, as a VmRecord.
[[nodiscard]] core::Result<VmRecord> load_vm_record(const core::StateDir& sd, const std::string& unit);

// The records of every `up --vm` unit in the state dir (kind "vm"; unreadable ones left out).
[[nodiscard]] std::vector<VmRecord> vm_records(const core::StateDir& sd);

}  // namespace devemu::vm
