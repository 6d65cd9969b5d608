#pragma once
// The record of a "gadget" unit, as `up` writes it beside its journal: what it applied (nodes), the UDC it is bound
// to, where the host side found it, its LUNs (and their disks there) and FunctionFS mounts. Read with defaults for
// every field, so records written before a field existed (tests/data/records) still read.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/nodes.hpp"
#include "core/statedir.hpp"

namespace devemu::usb {

struct LunRecord {
    std::string function;      // the mass_storage function's name
    unsigned lun = 0;
    std::string backstore, file;
    bool removable = false, readonly = false;
    std::optional<std::string> disk;   // the host side's /dev/sdX, once enumerated
};

struct FunctionRecord {
    std::string type, name;
};

struct GadgetRecord {
    int version = core::kRecordVersion;
    std::string name, kind = "gadget", profile, state = "up";
    std::size_t changes = 0;
    std::vector<core::Node> nodes;                          // what the unit holds in configfs
    std::string udc, vid_pid, serial;
    nlohmann::json backstores = nlohmann::json::object();   // name -> its backing (file, zram)
    nlohmann::json host = nlohmann::json::object();         // bus, device, speed_mbps, sysfs, disks, ttys (usb/host.hpp)
    std::vector<LunRecord> luns;
    std::map<std::string, std::string> ffs;                 // FunctionFS function -> its mount point
    std::vector<FunctionRecord> spec_functions;
    nlohmann::json servers = nlohmann::json::object();      // devemu-served function -> its server (usb/msc_unit.hpp)
    bool uses_ceph_local = false;                           // an rbd backstore on devemu's local Ceph cluster
    bool ceph_local_started = false;                        // this unit's `up` started that cluster: its `down` stops it
};

void to_json(nlohmann::json& j, const LunRecord& r);
void from_json(const nlohmann::json& j, LunRecord& r);

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FunctionRecord, type, name)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(GadgetRecord, version, name, kind, profile, state, changes, nodes, udc, vid_pid, serial,
                                                backstores, host, luns, ffs, spec_functions, servers,
                                                uses_ceph_local, ceph_local_started)

// A record as a GadgetRecord; a field of the wrong type is an error naming the unit, not an exception.
[[nodiscard]] core::Result<GadgetRecord> gadget_record(const nlohmann::json& j);

}  // namespace devemu::usb
