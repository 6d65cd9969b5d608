#include "vm/record.hpp"

#include "core/record.hpp"

namespace devemu::vm {

using nlohmann::json;

core::Result<VmRecord> vm_record(const json& j) { return core::typed_record<VmRecord>(j, "vm"); }

std::vector<VmRecord> vm_records(const core::StateDir& sd)
{
    std::vector<VmRecord> out;
    for (auto& unit : sd.units()) {
        auto j = sd.load(unit);
        auto r = j ? vm_record(*j) : core::Result<VmRecord>(std::unexpected(core::Error{}));
        if (r && r->kind == "vm") out.push_back(std::move(*r));
    }
    return out;
}

}  // namespace devemu::vm
