#include "vm/record.hpp"

#include "core/record.hpp"

namespace devemu::vm {

using nlohmann::json;

core::Result<VmRecord> vm_record(const json& j) { return core::typed_record<VmRecord>(j, "vm"); }

core::Result<VmRecord> load_vm_record(const core::StateDir& sd, const std::string& unit)
{
    DEVEMU_TRY(j, sd.load(unit));
    return vm_record(j);
}

std::vector<VmRecord> vm_records(const core::StateDir& sd)
{
    std::vector<VmRecord> out;
    for (auto& unit : sd.units())
        if (auto r = load_vm_record(sd, unit); r && r->kind == "vm") out.push_back(std::move(*r));
    return out;
}

}  // namespace devemu::vm
