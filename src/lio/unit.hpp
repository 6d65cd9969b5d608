#pragma once
// A LIO unit: one profile target with its backstores. `plan` shows the difference between the profile and what
// the unit holds in configfs; `up` applies exactly that, reads everything back and records it; `down` replays
// the unit's undo journal. Objects devemu did not create are never touched.
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/nodes.hpp"
#include "core/statedir.hpp"
#include "lio/model.hpp"
#include "profile/profile.hpp"

namespace devemu::lio {

struct UpOptions {
    bool force = false;      // resize files, export devices that hold data
    bool insecure = false;   // allow a non-loopback portal without CHAP + ACL
    bool in_vm = false;      // inside `up --vm`: portals listen on 0.0.0.0, reached only through a 127.0.0.1 forward
    // inside `up --vm`: target name -> the host's forwarded port. The TPG gets a second portal 127.0.0.1:PORT in the
    // guest, so SendTargets through the forward lists an address the host can reach.
    std::map<std::string, std::uint16_t> advertise;
    Roots roots;
    bool load_modules = true;
    std::chrono::seconds address_wait{0};   // a portal's address not on this machine yet: how long to wait for it
    std::map<std::string, backing::RbdClient> rbd;   // rbd backstore name -> its cluster, as reached from here
};

struct UnitPlan {
    std::string unit;
    std::vector<core::Step> steps;
};

// Checks the kernel can do it (configfs, modules) and loads what is missing.
[[nodiscard]] core::Status prepare_kernel(const profile::Profile& p, const UpOptions& opt);

[[nodiscard]] core::Result<UnitPlan> plan(const profile::Profile& p, const profile::Target& t, const core::StateDir& sd,
                                          const UpOptions& opt);
// Applies the plan; returns the unit record (what `ls` shows and what a user needs to log in).
[[nodiscard]] core::Result<nlohmann::json> up(const profile::Profile& p, const profile::Target& t, const core::StateDir& sd,
                                              const UpOptions& opt);
[[nodiscard]] core::Status down(const core::StateDir& sd, const std::string& unit);

}  // namespace devemu::lio
