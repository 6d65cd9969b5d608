#include "vm/record.hpp"

#include "core/record.hpp"

namespace devemu::vm {

using nlohmann::json;

core::Result<VmRecord> vm_record(const json& j) { return core::typed_record<VmRecord>(j, "vm"); }

}  // namespace devemu::vm
