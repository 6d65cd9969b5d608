#include "ceph/record.hpp"

#include "core/journal.hpp"

namespace devemu::ceph {

using nlohmann::json;

bool DaemonRecord::alive() const { return start != 0 && core::process_start_time(pid) == start; }

bool CephRecord::alive(const std::string& daemon) const
{
    auto it = daemons.find(daemon);
    return it != daemons.end() && it->second.alive();
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DaemonRecord, pid, start, log)

void to_json(json& j, const CephRecord& r)
{
    j = {{"version", r.version}, {"name", r.name}, {"kind", r.kind}, {"state", r.state}, {"netns", r.netns}, {"dir", r.dir}, {"fsid", r.fsid},
         {"mon_host", r.mon_host}, {"store", r.store}, {"osd_bytes", r.osd_bytes}, {"conf", r.conf}, {"keyring", r.keyring},
         {"bridge", r.bridge}, {"daemons", r.daemons}};
    if (!r.health.empty()) j["health"] = r.health, j["up_seconds"] = r.up_seconds;
}

void from_json(const json& j, CephRecord& r)
{
    const CephRecord d;
    r.version = j.value("version", 0);   // 0: written before records carried one
    r.name = j.value("name", d.name);
    r.kind = j.value("kind", d.kind);
    r.state = j.value("state", d.state);
    r.netns = j.value("netns", d.netns);
    r.dir = j.value("dir", d.dir);
    r.fsid = j.value("fsid", d.fsid);
    r.mon_host = j.value("mon_host", d.mon_host);
    r.store = j.value("store", d.store);
    r.osd_bytes = j.value("osd_bytes", d.osd_bytes);
    r.conf = j.value("conf", d.conf);
    r.keyring = j.value("keyring", d.keyring);
    r.bridge = j.value("bridge", d.bridge);
    r.daemons = j.value("daemons", d.daemons);
    r.health = j.value("health", d.health);
    r.up_seconds = j.value("up_seconds", d.up_seconds);
}

core::Result<CephRecord> ceph_record(const json& j)
{
    try {
        return j.get<CephRecord>();
    } catch (const json::exception& e) {
        return core::fail(core::Errc::invalid_input, std::string("unreadable ceph record: ") + e.what(), j.value("name", std::string("ceph")),
                          "devemu ceph down with the devemu that started it");
    }
}

}  // namespace devemu::ceph
