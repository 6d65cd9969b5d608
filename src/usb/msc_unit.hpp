#pragma once
// The gadget unit's side of devemu's own mass-storage function: the FunctionFS instance of each function served
// by devemu (engine = "user"), its server's configuration, and the supervised server, all journaled.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::usb {

// The FunctionFS instance name of a devemu-served function (instance names are global: the gadget's name is in it).
[[nodiscard]] std::string msc_instance(const profile::Gadget& g, const profile::Function& f);

// Mounts the instance, writes the server's configuration and starts it (or keeps the one running from `had`), and
// waits until it has written its descriptors. `backstores`: name -> {"path", "size"} as resolved for the unit.
// Returns {"FUNCTION": {"supervisor", "start", "stats", "log", "config", "mount"}}.
[[nodiscard]] core::Result<nlohmann::json> start_msc_servers(core::Transaction& tx, const profile::Profile& p, const profile::Gadget& g,
                                                             const core::StateDir& sd, const nlohmann::json& backstores, const nlohmann::json& had,
                                                             std::chrono::seconds timeout);

// What `ls` shows of each server: its stats (commands served, bytes, errors, resets) and the supervisor's restarts.
[[nodiscard]] nlohmann::json msc_server_status(const nlohmann::json& servers);

}  // namespace devemu::usb
