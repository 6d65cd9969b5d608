#include "cli/rbd.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

#include "ceph/image.hpp"
#include "core/fs.hpp"

namespace devemu::cli {

using nlohmann::json;

core::Result<ceph::Prepared> prepare_rbd(const profile::Profile& p, const std::set<std::string>& only, const core::StateDir& sd,
                                         core::Transaction* tx, const json& unit_record, const RbdUp& o)
{
    ceph::PrepareOptions po;
    po.force = o.force;
    po.images = !o.in_vm;
    if (!o.local_file.empty()) {
        DEVEMU_TRY(text, core::read_file(o.local_file));
        auto j = json::parse(text, nullptr, false);
        if (j.is_discarded()) return core::fail(core::Errc::invalid_input, "not a connection file (JSON)", o.local_file, "");
        po.local = ceph::conn_from_json(j);
    }
    const json backstores = unit_record.value("backstores", json::object());   // named: items() of a temporary dangles
    for (auto& [name, b] : backstores.items())
        if (b.contains("rbd")) po.mapped_by_us.insert(name);
    const int verbosity = o.verbosity;
    po.progress = [verbosity](const std::string& step) {
        if (verbosity >= 0) std::cerr << "devemu: ceph: " << step << "\n";
    };
    return ceph::prepare(p, only, sd, tx, po);
}

core::Result<std::map<std::string, backing::RbdClient>> rbd_clients(const ceph::Prepared& prep)
{
    std::map<std::string, backing::RbdClient> out;
    for (auto& [name, c] : prep.conns) {
        DEVEMU_TRY(secret, c.secret());
        out[name] = backing::RbdClient{c.mon_host, c.user, secret, c.netns};
    }
    return out;
}

void stop_local_cluster_if_ours(const core::StateDir& sd, bool started_by_unit, const std::string& unit)
{
    if (!started_by_unit) return;
    if (ceph::local_in_use(sd, unit)) {
        spdlog::info("the local Ceph cluster stays up: another unit uses it (devemu ceph down stops it)");
        return;
    }
    if (auto s = ceph::down(sd); !s) spdlog::error("{}", s.error().message());
}

}  // namespace devemu::cli
