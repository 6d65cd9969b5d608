#pragma once
// targetcli-fb's saveconfig.json (rtslib-fb's RTSRoot.dump()): what users already have.
// Import turns it into profile objects, so it goes through the same validation and `up` as a TOML profile;
// every key devemu does not understand is reported, never dropped silently. Export writes the same format from
// devemu's units, with the storage objects' attributes read live from configfs.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "lio/model.hpp"
#include "profile/profile.hpp"

namespace devemu::lio {

struct Imported {
    profile::Profile profile;
    std::vector<std::string> notes;   // what was not understood or not applied, one line each
};

[[nodiscard]] core::Result<Imported> from_saveconfig(const nlohmann::json& doc, const std::string& file);
[[nodiscard]] nlohmann::json to_saveconfig(const std::vector<nlohmann::json>& unit_records, const Roots& roots);

// What `up` records so export can rebuild the format without parsing configfs paths.
[[nodiscard]] nlohmann::json spec_of(const profile::Target& t, const profile::Profile& p);

}  // namespace devemu::lio
