#include "lio/record.hpp"

namespace devemu::lio {

using nlohmann::json;

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HandlerRecord, supervisor, start, stats, log, uio_prefix, backing, faults, control)

void to_json(json& j, const TargetRecord& r)
{
    j = {{"version", r.version}, {"name", r.name}, {"kind", r.kind}, {"profile", r.profile}, {"state", r.state},
         {"changes", r.changes}, {"nodes", r.nodes}, {"generated", r.generated}, {"backstores", r.backstores},
         {"info", r.info}, {"spec", r.spec}, {"chap", r.chap}, {"handlers", r.handlers}};
    if (r.uses_ceph_local) j["uses_ceph_local"] = true;
    if (r.ceph_local_started) j["ceph_local_started"] = true;
}

void from_json(const json& j, TargetRecord& r)
{
    const TargetRecord d;
    r.version = j.value("version", 0);   // 0: written before records carried one
    r.name = j.value("name", d.name);
    r.kind = j.value("kind", d.kind);
    r.profile = j.value("profile", d.profile);
    r.state = j.value("state", d.state);
    r.changes = j.value("changes", d.changes);
    r.nodes = j.value("nodes", d.nodes);
    r.generated = j.value("generated", d.generated);
    r.backstores = j.value("backstores", d.backstores);
    r.info = j.value("info", d.info);
    r.spec = j.value("spec", d.spec);
    r.chap = j.value("chap", d.chap);
    r.handlers = j.value("handlers", d.handlers);
    r.uses_ceph_local = j.value("uses_ceph_local", false);
    r.ceph_local_started = j.value("ceph_local_started", false);
}

core::Result<TargetRecord> target_record(const json& j)
{
    try {
        return j.get<TargetRecord>();
    } catch (const json::exception& e) {
        return core::fail(core::Errc::invalid_input, std::string("unreadable target record: ") + e.what(), j.value("name", std::string("?")),
                          "devemu down it with the devemu that brought it up");
    }
}

}  // namespace devemu::lio
