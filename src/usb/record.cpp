#include "usb/record.hpp"

#include "core/record.hpp"

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

core::Result<GadgetRecord> gadget_record(const json& j) { return core::typed_record<GadgetRecord>(j, "gadget"); }

}  // namespace devemu::usb
