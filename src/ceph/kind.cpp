// The "ceph" unit kind: devemu's local Ceph cluster. Removed after every other unit (their rbd mappings need it
// to unmap cleanly).
#include "ceph/kind.hpp"

#include "ceph/cluster.hpp"
#include "core/unit_kind.hpp"

namespace devemu::ceph {

void register_ceph_kind()
{
    core::UnitKind k;
    k.name = kUnit;
    k.down = [](const core::StateDir& sd, const std::string&, const nlohmann::json&) { return down(sd); };
    k.health = [](const nlohmann::json& j) {
        auto rec = ceph_record(j);
        if (!rec) return core::Health{"unreadable", {rec.error().message()}};
        core::Health h;
        for (auto& name : stopped_daemons(*rec)) h.detail.push_back(name + " is not running (devemu ceph up restarts it)");
        if (!h.detail.empty()) h.status = "drift";
        return h;
    };
    k.down_order = 1;   // after every unit whose rbd mappings need it
    core::register_kind(std::move(k));
}

}  // namespace devemu::ceph
