#include "usb/record.hpp"

namespace devemu::usb {

using nlohmann::json;

void to_json(json& j, const LunRecord& r)
{
    j = {{"function", r.function}, {"lun", r.lun}, {"backstore", r.backstore}, {"file", r.file}, {"removable", r.removable}, {"readonly", r.readonly}};
    if (r.disk) j["disk"] = *r.disk;
}

void from_json(const json& j, LunRecord& r)
{
    r.function = j.value("function", "");
    r.lun = j.value("lun", 0u);
    r.backstore = j.value("backstore", "");
    r.file = j.value("file", "");
    r.removable = j.value("removable", false);
    r.readonly = j.value("readonly", false);
    r.disk = j.contains("disk") ? std::optional<std::string>(j["disk"].get<std::string>()) : std::nullopt;
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FunctionRecord, type, name)

void to_json(json& j, const GadgetRecord& r)
{
    j = {{"version", r.version}, {"name", r.name}, {"kind", r.kind}, {"profile", r.profile}, {"state", r.state}, {"changes", r.changes},
         {"nodes", r.nodes}, {"udc", r.udc}, {"vid_pid", r.vid_pid}, {"serial", r.serial}, {"backstores", r.backstores}, {"host", r.host},
         {"luns", r.luns}, {"ffs", r.ffs}, {"spec_functions", r.spec_functions}};
}

void from_json(const json& j, GadgetRecord& r)
{
    const GadgetRecord d;
    r.version = j.value("version", 0);   // 0: written before records carried one
    r.name = j.value("name", d.name);
    r.kind = j.value("kind", d.kind);
    r.profile = j.value("profile", d.profile);
    r.state = j.value("state", d.state);
    r.changes = j.value("changes", d.changes);
    r.nodes = j.value("nodes", d.nodes);
    r.udc = j.value("udc", d.udc);
    r.vid_pid = j.value("vid_pid", d.vid_pid);
    r.serial = j.value("serial", d.serial);
    r.backstores = j.value("backstores", d.backstores);
    r.host = j.value("host", d.host);
    r.luns = j.value("luns", d.luns);
    r.ffs = j.value("ffs", d.ffs);
    r.spec_functions = j.value("spec_functions", d.spec_functions);
}

core::Result<GadgetRecord> gadget_record(const json& j)
{
    try {
        return j.get<GadgetRecord>();
    } catch (const json::exception& e) {
        return core::fail(core::Errc::invalid_input, std::string("unreadable gadget record: ") + e.what(), j.value("name", std::string("?")),
                          "devemu down it with the devemu that brought it up");
    }
}

}  // namespace devemu::usb
