#pragma once
// Registers the "target" unit kind (core/unit_kind.hpp).
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "lio/model.hpp"

namespace devemu::lio {

// Called after a target's `down` succeeded, with its record's top-level fields: what the caller glued on at `up`
// (a local Ceph cluster that `up` started for its rbd backstores) goes with it.
using AfterDown = std::function<void(const core::StateDir& sd, const std::string& unit, const nlohmann::json& record)>;
void register_target_kind(AfterDown after_down);

// The target's health: configfs against its record, and its TCMU handlers alive.
[[nodiscard]] core::Health target_health(const nlohmann::json& record, const Roots& roots);

}  // namespace devemu::lio
