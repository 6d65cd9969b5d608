#pragma once
// The "target" unit kind (core/unit_kind.hpp): a profile's [[target]]s as LIO units. Its `up` prepares the kernel,
// the rbd backstores' clusters and images (one target at a time), then brings the targets up side by side; the
// first that came up owns a local Ceph cluster this `up` started, and its `down` stops it unless another unit
// uses it.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/unit_kind.hpp"
#include "lio/model.hpp"

namespace devemu::lio {

void register_target_kind();

// The target's health: configfs against its record, and its TCMU handlers alive.
[[nodiscard]] core::Health target_health(const nlohmann::json& record, const Roots& roots);

// What `up` prints of a target: its record's name, state, changes, and how to reach it (`info`: access_info).
[[nodiscard]] std::vector<std::string> target_lines(const nlohmann::json& record, const nlohmann::json& info);

}  // namespace devemu::lio
