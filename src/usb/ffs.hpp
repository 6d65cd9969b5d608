#pragma once
// FunctionFS: the mounts of a gadget's ffs functions and the wait for their apps (see ffs.cpp).
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"
#include "usb/gadget.hpp"

namespace devemu::usb {

// Creates the mount point (journaling each directory it makes) and mounts FunctionFS instance `name` there.
[[nodiscard]] core::Status mount_ffs(core::Transaction& tx, const std::string& name, const fs::path& where);
// Has the function's app written its descriptors (its endpoint files are there)?
[[nodiscard]] bool ffs_ready(const fs::path& mount);

// Mounts every ffs function of `g` (recording "NAME": mount in `mounts`), lets opt.on_ffs_mounted start an app,
// and waits (progress, opt.timeout) until every app has written its descriptors.
[[nodiscard]] core::Status wait_for_apps(core::Transaction& tx, const profile::Gadget& g, const UpOptions& opt, nlohmann::json& mounts);

// Processes with a file open under `dir` ("NAME[PID]"), except members of the process groups in `ours`.
[[nodiscard]] std::vector<std::string> holders(const std::string& dir, const std::set<pid_t>& ours);

}  // namespace devemu::usb
