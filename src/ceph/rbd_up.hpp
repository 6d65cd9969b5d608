#pragma once
// The glue between a profile's rbd backstores, the Ceph side (ceph::prepare) and the kernel side
// (backing::RbdClient) that `up` of a target (lio) and `up --vm` (vm) share: options in, clients out.
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "ceph/prepare.hpp"
#include "backing/backing.hpp"

namespace devemu::ceph {

struct RbdUp {
    bool force = false;
    bool in_vm = false;              // the host made the images
    std::string local_file;          // --ceph-local: how cluster = "local" is reached from here (a conn JSON file)
};

// Resolves the clusters of the rbd backstores of `only` (target names; empty: all) and makes pools and images.
[[nodiscard]] core::Result<Prepared> prepare_rbd(const profile::Profile& p, const std::set<std::string>& only, const core::StateDir& sd,
                                                       core::Transaction* tx, const nlohmann::json& unit_record, const RbdUp& o);
// The kernel clients (with their secrets read from the keyring or secret files).
[[nodiscard]] core::Result<std::map<std::string, backing::RbdClient>> rbd_clients(const Prepared& prep);
// When `unit` started the local cluster (its record's ceph_local_started, or an `up` that failed after starting
// it): stop the cluster unless another unit uses it.
void stop_local_cluster_if_ours(const core::StateDir& sd, bool started_by_unit, const std::string& unit);

}  // namespace devemu::ceph
