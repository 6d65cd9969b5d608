#pragma once
// The record of a "target" unit, as `up` writes it beside its journal: what it applied (nodes), what it generated
// (WWNs, CHAP secrets), what made its backstores (backing devices, TCMU handlers), and how to reach it. Read with
// defaults for every field, so records written before a field existed (tests/data/records) still read.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/nodes.hpp"
#include "core/statedir.hpp"

namespace devemu::lio {

// A `user` backstore's TCMU handler: its supervisor (pid and start time), stats file and log.
struct HandlerRecord {
    std::int64_t supervisor = 0;
    std::uint64_t start = 0;
    std::string stats, log, uio_prefix, backing;
    std::string faults, control;   // its fault chain's file and control socket (`devemu fault`); empty before faults existed
};

struct TargetRecord {
    int version = core::kRecordVersion;
    std::string name, kind = "target", profile, state = "up";
    std::size_t changes = 0;
    std::vector<core::Node> nodes;                    // what the unit holds in configfs
    std::map<std::string, std::string> generated;     // WWNs and secrets generated once and kept across `up`s
    nlohmann::json backstores = nlohmann::json::object();   // name -> its backing (file, zram, rbd, hba)
    nlohmann::json info = nlohmann::json::object();   // how to reach it (lio/access.hpp turns it into URLs and lines)
    nlohmann::json spec = nlohmann::json::object();   // the profile's target, for `export` (saveconfig.json)
    nlohmann::json chap = nlohmann::json::object();   // initiator -> {user, secret, mutual_user, mutual_secret}
    std::map<std::string, HandlerRecord> handlers;    // user backstore -> its handler
    bool uses_ceph_local = false;                     // an rbd backstore on devemu's local Ceph cluster
    bool ceph_local_started = false;                  // this unit's `up` started that cluster: its `down` stops it
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HandlerRecord, supervisor, start, stats, log, uio_prefix, backing, faults, control)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TargetRecord, version, name, kind, profile, state, changes, nodes, generated, backstores, info,
                                                spec, chap, handlers, uses_ceph_local, ceph_local_started)

// A record as a TargetRecord; a field of the wrong type is an error naming the unit, not an exception.
[[nodiscard]] core::Result<TargetRecord> target_record(const nlohmann::json& j);

}  // namespace devemu::lio
