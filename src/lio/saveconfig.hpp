#pragma once
// targetcli-fb's saveconfig.json (rtslib-fb's RTSRoot.dump()): what users already have.
// Import turns it into profile objects, so it goes through the same validation and `up` as a TOML profile;
// every key devemu does not understand is reported, never dropped silently. Export writes the same format from
// devemu's units, with the storage objects' attributes read live from configfs.
#include <map>
#include <nlohmann/json.hpp>
#include <set>
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

// `host_disks`: in an `up --vm` guest (import --vm), the storage objects whose files or devices are the host's
// (marked host_disk, as profile::load does).
[[nodiscard]] core::Result<Imported> from_saveconfig(const nlohmann::json& doc, const std::string& file, const std::set<std::string>& host_disks = {});
[[nodiscard]] nlohmann::json to_saveconfig(const std::vector<nlohmann::json>& unit_records, const Roots& roots);

// Adds `part` (a saveconfig.json another kernel wrote: an `up --vm` guest's export) to `into`. `host_paths` maps a
// storage object's name to the host's file or device the guest served as a virtio disk: its `dev` (or a `user`
// object's config path) becomes that path. Two storage objects or targets of the same name are an error naming `from`.
[[nodiscard]] core::Status merge_saveconfig(nlohmann::json& into, const nlohmann::json& part, const std::map<std::string, std::string>& host_paths,
                                            const std::string& from);

// What `up` records so export can rebuild the format without parsing configfs paths.
[[nodiscard]] nlohmann::json spec_of(const profile::Target& t, const profile::Profile& p);

}  // namespace devemu::lio
