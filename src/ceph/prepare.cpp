#include "ceph/prepare.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ceph/image.hpp"
#include "core/process.hpp"

namespace devemu::ceph {

using core::Errc;
using nlohmann::json;

bool has_rbd(const profile::Profile& p, const std::string& target)
{
    for (auto& t : p.targets)
        if (target.empty() || t.name == target)
            for (auto& l : t.luns)
                if (auto* b = p.backstore(l.backstore); b && b->type == profile::BackstoreType::rbd) return true;
    return false;
}

bool local_in_use(const core::StateDir& sd, const std::string& except)
{
    for (auto& u : sd.units()) {
        if (u == except || u == kUnit) continue;
        auto rec = sd.load_scalars(u);   // a flag at the top: the units' node lists need not be parsed
        if (rec && rec->value("uses_ceph_local", false)) return true;
    }
    return false;
}

core::Result<Prepared> prepare(const profile::Profile& p, const std::set<std::string>& only, const core::StateDir& sd, core::Transaction* tx,
                               const PrepareOptions& opt)
{
    Prepared out;
    std::vector<const profile::Backstore*> rbds;
    std::uint64_t local_bytes = 0;
    for (auto& t : p.targets) {
        if (!only.empty() && !only.count(t.name)) continue;
        for (auto& l : t.luns) {
            auto* b = p.backstore(l.backstore);
            if (!b || b->type != profile::BackstoreType::rbd || out.conns.count(b->name)) continue;
            rbds.push_back(b);
            out.conns[b->name] = {};
            if (b->cluster == "local") out.uses_local = true, local_bytes += b->size.value_or(0);
        }
    }
    std::optional<Conn> local = opt.local;
    if (out.uses_local && !local) {
        if (auto c = local_conn(sd)) local = *c;
        else if (!tx)
            return std::unexpected(c.error());
        else {
            LocalSpec spec;
            spec.osd_bytes = std::max<std::uint64_t>(spec.osd_bytes, local_bytes + (std::uint64_t{256} << 20));
            if (opt.progress) opt.progress("starting the local Ceph cluster (cluster = \"local\")");
            DEVEMU_CHECK(up(sd, spec, opt.progress));
            out.started_local = true;
            DEVEMU_TRY(c2, local_conn(sd));
            local = c2;
        }
    }
    // krbd needs no userland: without the rbd tool (ceph-common), images are mapped as they are, unchecked.
    bool images = opt.images;
    if (images && !rbds.empty() && core::which("rbd").empty()) {
        spdlog::debug("the rbd tool is not installed: images are neither checked nor made (apt-get install ceph-common)");
        images = false;
    }
    // A cluster this call started goes again when what follows fails: nobody else owns it yet.
    struct StopIfFailed {
        const core::StateDir& sd;
        bool armed;
        ~StopIfFailed()
        {
            if (armed)
                if (auto s = down(sd); !s) spdlog::error("{}", s.error().message());
        }
    } guard{sd, out.started_local};
    for (auto* b : rbds) {
        Conn c = b->cluster == "local" ? *local : conn_of(*b);
        if (c.where.empty() || b->cluster == "local") c.where = b->loc.str();
        out.conns[b->name] = c;
        if (!images) continue;
        if (b->cluster == "local" && tx) DEVEMU_CHECK(ensure_pool(c, b->pool));
        DEVEMU_TRY(st, ensure_image(c, *b, opt.force, tx, !opt.mapped_by_us.count(b->name)));
        out.images[b->name] = {{"image", b->pool + "/" + b->image}, {"size", st.size}, {"created", st.created}};
    }
    guard.armed = false;
    return out;
}

}  // namespace devemu::ceph
