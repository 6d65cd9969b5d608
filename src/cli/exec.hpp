#pragma once
// `up --exec CMD`: the app devemu starts once everything is up (a FunctionFS app: once its functionfs is mounted),
// in a process group of its own; devemu tears everything down when it exits (in an `up --vm` guest, it is left
// running, journaled, and `down` stops it).
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "core/process.hpp"
#include "core/unit_kind.hpp"

namespace devemu::cli {

struct ExecRun {
    std::string exec;   // empty: no app
    bool in_vm = false;
    core::Child app;
};

// The hook `up` gives the kinds (UpRequest::on_ffs_mounted): starts the app once a gadget's FunctionFS instances
// are mounted (it writes the descriptors), journaled in that unit.
[[nodiscard]] std::function<core::Status(core::Transaction&, const std::string&, const std::vector<std::string>&)> start_on_ffs(ExecRun& run);
// Starts the app (unless a FunctionFS wait already did), waits for it (or a signal), downs `units`. `out`: what
// `up --json` printed (the LUNs' disks go into DEVEMU_DISKS).
int run_exec(Context& ctx, ExecRun& run, const std::vector<std::string>& units, const nlohmann::json& out);

}  // namespace devemu::cli
