#include "ceph/rbd_up.hpp"

#include <spdlog/spdlog.h>

#include <utility>

#include "ceph/image.hpp"
#include "core/fs.hpp"

namespace devemu::ceph {

using nlohmann::json;

core::Result<Prepared> prepare_rbd(const profile::Profile& p, const std::set<std::string>& only, const core::StateDir& sd,
                                         core::Transaction* tx, const json& unit_record, const RbdUp& o)
{
    PrepareOptions po;
    po.force = o.force;
    po.images = !o.in_vm;
    if (!o.local_file.empty()) {
        DEVEMU_TRY(text, core::read_file(o.local_file));
        auto j = json::parse(text, nullptr, false);
        if (j.is_discarded()) return core::fail(core::Errc::invalid_input, "not a connection file (JSON)", o.local_file, "");
        po.local = conn_from_json(j);
    }
    const json backstores = unit_record.value("backstores", json::object());   // named: items() of a temporary dangles
    for (auto& [name, b] : backstores.items())
        if (b.contains("rbd")) po.mapped_by_us.insert(name);
    po.progress = [](const std::string& step) { spdlog::info("ceph: {}", step); };
    return prepare(p, only, sd, tx, po);
}

core::Result<std::map<std::string, backing::RbdClient>> rbd_clients(const Prepared& prep)
{
    std::map<std::string, backing::RbdClient> out;
    for (auto& [name, c] : prep.conns) {
        DEVEMU_TRY(secret, c.secret());
        out[name] = backing::RbdClient{c.mon_host, c.user, secret, c.netns};
    }
    return out;
}

UnitsRbd prepare_units_rbd(const profile::Profile& p, const std::vector<std::string>& units, const core::StateDir& sd, const RbdUp& o)
{
    UnitsRbd r;
    r.tx.resize(units.size());
    r.err.resize(units.size());
    r.prep.resize(units.size());
    for (std::size_t i = 0; i < units.size(); ++i) {
        if (!has_rbd(p, units[i])) continue;   // no journal touched, no record read for the others
        r.tx[i].emplace(sd.journal(units[i]));
        auto prep = prepare_rbd(p, {units[i]}, sd, &*r.tx[i], sd.load(units[i]).value_or(json::object()), o);
        auto clients = prep ? rbd_clients(*prep) : std::unexpected(prep.error());
        if (!clients) {
            r.err[i] = clients.error();
            continue;
        }
        r.prep[i] = *prep;
        r.started_local = r.started_local || prep->started_local;
        r.clients.insert(clients->begin(), clients->end());
    }
    return r;
}

LocalUse finish_unit_rbd(UnitsRbd& r, std::size_t i, bool ok)
{
    if (r.tx[i]) {
        if (ok) r.tx[i]->commit();
        else if (auto s = r.tx[i]->rollback(); !s) spdlog::error("rollback incomplete: {}", s.error().message());
    }
    if (!ok || !r.prep[i].uses_local) return {};
    return {true, std::exchange(r.started_local, false)};
}

void finish_units_rbd(UnitsRbd& r, const core::StateDir& sd) { stop_local_cluster_if_ours(sd, std::exchange(r.started_local, false), ""); }

void stop_local_cluster_if_ours(const core::StateDir& sd, bool started_by_unit, const std::string& unit)
{
    if (!started_by_unit) return;
    if (local_in_use(sd, unit)) {
        spdlog::info("the local Ceph cluster stays up: another unit uses it (devemu ceph down stops it)");
        return;
    }
    if (auto s = down(sd); !s) spdlog::error("{}", s.error().message());
}

}  // namespace devemu::ceph
