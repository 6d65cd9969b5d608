#pragma once
// What `up` does for a profile's rbd backstores before the kernel maps anything: resolve each one's cluster
// (cluster = "local": devemu's own, started here when it is not running), make the local cluster's pools, and
// check or make the images. Every change is journaled in the caller's transaction.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ceph/cluster.hpp"
#include "ceph/conn.hpp"
#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::ceph {

struct PrepareOptions {
    bool force = false;
    bool images = true;                     // false inside `up --vm`: the host made them (no rbd tool in the guest)
    std::optional<Conn> local;              // how "local" is reached from here (a VM's eth1); else the state dir's
    std::set<std::string> mapped_by_us;     // backstores this unit already maps (their watch is ours)
    Progress progress;
};

struct Prepared {
    std::map<std::string, Conn> conns;      // rbd backstore name -> its cluster
    bool started_local = false;             // this call started the local cluster
    bool uses_local = false;
    nlohmann::json images = nlohmann::json::object();   // name -> {image, size, created}
};

// The rbd backstores behind the LUNs of `unit` (a target or a gadget; empty: every unit), in profile order.
[[nodiscard]] std::vector<const profile::Backstore*> unit_rbds(const profile::Profile& p, const std::string& unit);
// Does the profile (or, when `unit` is given, that target's or gadget's LUNs) use an rbd backstore?
[[nodiscard]] bool has_rbd(const profile::Profile& p, const std::string& unit = {});

// The backstores of `only` (unit names: targets and gadgets; empty: all) that are rbd. With tx == nullptr nothing is changed (plan).
[[nodiscard]] core::Result<Prepared> prepare(const profile::Profile& p, const std::set<std::string>& only, const core::StateDir& sd,
                                             core::Transaction* tx, const PrepareOptions& opt);

// Is any unit other than `except` recorded as using the local cluster? (`down` of the unit that started it
// stops it only when none is.)
[[nodiscard]] bool local_in_use(const core::StateDir& sd, const std::string& except);

}  // namespace devemu::ceph
