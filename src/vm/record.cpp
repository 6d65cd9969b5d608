#include "vm/record.hpp"

namespace devemu::vm {

using nlohmann::json;

void to_json(json& j, const GuestUnit& u)
{
    j = {{"unit", u.unit}, {"kind", u.kind}};
    if (u.kind == "gadget") j["gadget"] = u.gadget;
    else j["access"] = u.access, j["portal"] = u.portal;
}

void from_json(const json& j, GuestUnit& u)
{
    u.unit = j.value("unit", "");
    u.kind = j.value("kind", "target");   // records before "kind" was written for targets
    u.access = j.value("access", json::object());
    u.portal = j.value("portal", "");
    u.gadget = j.value("gadget", json::object());
}

void to_json(json& j, const VmRecord& r)
{
    j = {{"version", r.version}, {"name", r.name}, {"kind", r.kind}, {"state", r.state}, {"profile", r.profile}, {"pid", r.pid},
         {"start_time", r.start_time}, {"ctl", r.ctl}, {"run_dir", r.run_dir}, {"devemu", r.devemu}, {"forwards", r.forwards}, {"kvm", r.kvm}};
    if (r.uses_ceph_local) j["uses_ceph_local"] = true, j["ceph_eth1"] = r.ceph_eth1;
    if (r.ceph_local_started) j["ceph_local_started"] = true;
    if (!r.rbd_images.empty()) j["rbd_images"] = r.rbd_images;
    if (!r.units.empty()) j["units"] = r.units;
}

void from_json(const json& j, VmRecord& r)
{
    const VmRecord d;
    r.version = j.value("version", 0);   // 0: written before records carried one
    r.name = j.value("name", d.name);
    r.kind = j.value("kind", d.kind);
    r.profile = j.value("profile", d.profile);
    r.state = j.value("state", d.state);
    r.pid = j.value("pid", d.pid);
    r.start_time = j.value("start_time", d.start_time);
    r.ctl = j.value("ctl", d.ctl);
    r.run_dir = j.value("run_dir", d.run_dir);
    r.devemu = j.value("devemu", d.devemu);
    r.forwards = j.value("forwards", d.forwards);
    r.kvm = j.value("kvm", d.kvm);
    r.uses_ceph_local = j.value("uses_ceph_local", false);
    r.ceph_local_started = j.value("ceph_local_started", false);
    r.ceph_eth1 = j.value("ceph_eth1", "");
    r.rbd_images = j.value("rbd_images", d.rbd_images);
    r.units = j.value("units", d.units);
}

core::Result<VmRecord> vm_record(const json& j)
{
    try {
        return j.get<VmRecord>();
    } catch (const json::exception& e) {
        return core::fail(core::Errc::invalid_input, std::string("unreadable vm record: ") + e.what(), j.value("name", std::string("?")),
                          "devemu down it with the devemu that brought it up");
    }
}

}  // namespace devemu::vm
