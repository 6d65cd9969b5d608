// The "ceph" unit kind: devemu's local Ceph cluster. Removed after every other unit (their rbd mappings need it
// to unmap cleanly).
#include "ceph/kind.hpp"

#include "ceph/cluster.hpp"
#include "core/unit_kind.hpp"

namespace devemu::ceph {

void register_ceph_kind()
{
    core::register_kind({kUnit, [](const core::StateDir& sd, const std::string&, const nlohmann::json&) { return down(sd); },
                         [](const nlohmann::json& rec) {
                             core::Health h;
                             for (auto& name : stopped_daemons(rec)) h.detail.push_back(name + " is not running (devemu ceph up restarts it)");
                             if (!h.detail.empty()) h.status = "drift";
                             return h;
                         },
                         1});
}

}  // namespace devemu::ceph
