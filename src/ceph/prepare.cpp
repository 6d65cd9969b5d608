#include "ceph/prepare.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ceph/image.hpp"
#include "core/process.hpp"

namespace devemu::ceph {

using core::Errc;
using nlohmann::json;

std::vector<const profile::Backstore*> unit_rbds(const profile::Profile& p, const std::string& unit)
{
    std::vector<const profile::Backstore*> out;
    auto add = [&](const std::string& name) {
        if (auto* b = p.backstore(name); b && b->type == profile::BackstoreType::rbd && std::find(out.begin(), out.end(), b) == out.end()) out.push_back(b);
    };
    for (auto& t : p.targets)
        if (unit.empty() || t.name == unit)
            for (auto& l : t.luns) add(l.backstore);
    for (auto& g : p.gadgets)
        if (unit.empty() || g.name == unit)
            for (auto& f : g.functions)
                for (auto& l : f.luns) add(l.backstore);
    return out;
}

bool has_rbd(const profile::Profile& p, const std::string& unit) { return !unit_rbds(p, unit).empty(); }

namespace {
bool has_backstore(const profile::Profile& p, const std::string& unit, const profile::Backstore* b)
{
    const auto mine = unit_rbds(p, unit);
    return std::find(mine.begin(), mine.end(), b) != mine.end();
}
}  // namespace

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
    for (auto* b : unit_rbds(p, "")) {
        if (!only.empty() && std::none_of(only.begin(), only.end(), [&](const std::string& u) { return has_backstore(p, u, b); })) continue;
        rbds.push_back(b);
        out.conns[b->name] = {};
        if (b->cluster == "local") out.uses_local = true, local_bytes += b->size.value_or(0);
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
