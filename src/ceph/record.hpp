#pragma once
// The record of the "ceph" unit (devemu's local cluster): where it lives (namespace, dir, conf, keyring), what it
// is (fsid, store, OSD size), and its daemons (pid and start time, so a reused pid is never taken for one). Read
// with defaults for every field, so records written before a field existed still read.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::ceph {

struct DaemonRecord {
    std::int64_t pid = 0;
    std::uint64_t start = 0;
    std::string log;
    [[nodiscard]] bool alive() const;
};

struct CephRecord {
    int version = core::kRecordVersion;
    std::string name = "ceph", kind = "ceph", state = "starting";
    std::string netns, dir, fsid, mon_host, store = "memstore", conf, keyring, bridge;
    std::uint64_t osd_bytes = 0;
    std::map<std::string, DaemonRecord> daemons;   // "mon.a", "osd.0"
    std::string health;                            // HEALTH_OK once up
    double up_seconds = 0;

    [[nodiscard]] bool alive(const std::string& daemon) const;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DaemonRecord, pid, start, log)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CephRecord, version, name, kind, state, netns, dir, fsid, mon_host, store, osd_bytes, conf, keyring,
                                                bridge, daemons, health, up_seconds)

// A record as a CephRecord; a field of the wrong type is an error naming the unit, not an exception.
[[nodiscard]] core::Result<CephRecord> ceph_record(const nlohmann::json& j);

}  // namespace devemu::ceph
