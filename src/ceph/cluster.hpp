#pragma once
// devemu's local mini-cluster, like Ceph's vstart but without a source tree: one monitor and one OSD (memstore
// by default, or bluestore on a sparse file when the data must survive an OSD crash), cephx on, in a network
// namespace devemu makes (a bridge with 10.99.0.1/24 on which the daemons listen, and where VMs plug in a tap).
// Everything lives under the state dir's unit "ceph" and is journaled: `down` (or a crash, then `down`) leaves
// no daemon, namespace or file. No mgr: rbd does not need one (and so there are no pg stats in `status`).
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ceph/conn.hpp"
#include "ceph/record.hpp"
#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::ceph {

inline constexpr const char* kUnit = "ceph";
inline constexpr const char* kBridge = "devemu-br0";
inline constexpr const char* kHostAddr = "10.99.0.1";   // the daemons' address on the namespace's bridge
inline constexpr int kPrefix = 24;

struct LocalSpec {
    std::uint64_t osd_bytes = std::uint64_t{1} << 30;
    std::string store = "memstore";          // memstore | bluestore
    std::vector<std::string> pools = {"rbd"};
};

using Progress = std::function<void(const std::string& step)>;

// Starts the cluster, or, when it is up, makes it whole again: a daemon that died is restarted and missing pools
// are created. Returns the record (what `status` shows). Waits for HEALTH_OK (`timeout_s`).
[[nodiscard]] core::Result<nlohmann::json> up(const core::StateDir& sd, const LocalSpec& spec, const Progress& progress, int timeout_s = 90);
// Stops the daemons, deletes the namespace and every file. Not up: nothing to do.
[[nodiscard]] core::Status down(const core::StateDir& sd);
// The record with live facts (health, daemons, pools, images); `up` false when there is no cluster.
[[nodiscard]] nlohmann::json status(const core::StateDir& sd);
// What `devemu ceph status` prints of it.
[[nodiscard]] std::vector<std::string> status_lines(const nlohmann::json& st);
// The daemons of a cluster record that are not running (a pid and start time that no longer match).
[[nodiscard]] std::vector<std::string> stopped_daemons(const CephRecord& rec);
// How to reach the running local cluster as client.admin (from the host, inside its namespace).
[[nodiscard]] core::Result<Conn> local_conn(const core::StateDir& sd);
// The namespace devemu uses for this state dir (two state dirs never share a cluster).
[[nodiscard]] std::string netns_name(const core::StateDir& sd);

// Creates `pool` (size 1, rbd-initialised) when the local cluster lacks it.
[[nodiscard]] core::Status ensure_pool(const Conn& c, const std::string& pool);

}  // namespace devemu::ceph
