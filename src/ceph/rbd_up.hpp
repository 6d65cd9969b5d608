#pragma once
// The glue between a profile's rbd backstores, the Ceph side (ceph::prepare) and the kernel side
// (backing::RbdClient) that `up` of a target (lio) and `up --vm` (vm) share: options in, clients out.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>
#include <string>

#include "ceph/prepare.hpp"
#include "backing/backing.hpp"
#include "core/transaction.hpp"

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
// The rbd side of one `up` of several units (targets or gadgets, in the order given): per unit, its clusters,
// pools and images, journaled in the unit's own journal and committed or rolled back with it, and the kernel
// clients the unit maps with.
struct UnitsRbd {
    std::vector<std::optional<core::Transaction>> tx;
    std::vector<std::optional<core::Error>> err;   // the unit cannot come up: this is why
    std::vector<Prepared> prep;
    bool started_local = false;                    // still set after finish(): no unit took the cluster over
    std::map<std::string, backing::RbdClient> clients;
};
[[nodiscard]] UnitsRbd prepare_units_rbd(const profile::Profile& p, const std::vector<std::string>& units, const core::StateDir& sd, const RbdUp& o);
// After unit i's `up` (ok or not): commits or rolls back its part. Returns whether the unit uses the local cluster
// and whether it is the one that owns it (the first unit that came up after this `up` started it).
struct LocalUse {
    bool uses = false, owns = false;
};
[[nodiscard]] LocalUse finish_unit_rbd(UnitsRbd& r, std::size_t i, bool ok);
// After every unit: a cluster this `up` started that no unit took over is stopped.
void finish_units_rbd(UnitsRbd& r, const core::StateDir& sd);

// When `unit` started the local cluster (its record's ceph_local_started, or an `up` that failed after starting
// it): stop the cluster unless another unit uses it.
void stop_local_cluster_if_ours(const core::StateDir& sd, bool started_by_unit, const std::string& unit);

}  // namespace devemu::ceph
