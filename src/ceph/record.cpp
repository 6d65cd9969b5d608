#include "ceph/record.hpp"

#include "core/journal.hpp"
#include "core/record.hpp"

namespace devemu::ceph {

using nlohmann::json;

bool DaemonRecord::alive() const { return start != 0 && core::process_start_time(pid) == start; }

bool CephRecord::alive(const std::string& daemon) const
{
    auto it = daemons.find(daemon);
    return it != daemons.end() && it->second.alive();
}

core::Result<CephRecord> ceph_record(const json& j) { return core::typed_record<CephRecord>(j, "ceph"); }

}  // namespace devemu::ceph
