#include "lio/record.hpp"

#include "core/record.hpp"

namespace devemu::lio {

using nlohmann::json;

core::Result<TargetRecord> target_record(const json& j) { return core::typed_record<TargetRecord>(j, "target"); }

}  // namespace devemu::lio
