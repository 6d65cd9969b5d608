#pragma once
// The CLI's USB gadget pieces, shared by up/down/ls/check.
#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "core/process.hpp"
#include "core/statedir.hpp"
#include "profile/profile.hpp"

namespace devemu::cli {

struct GadgetRun {
    bool force = false;
    bool json = false;
    std::chrono::seconds timeout{30};
    std::string exec;             // --exec: the app devemu starts, then tears everything down when it exits
    core::Child* app = nullptr;   // where the started app lives
    bool in_vm = false;           // inside `up --vm`: the app is left running (journaled), devemu returns after up
};

// Brings up a profile's gadgets; appends their summaries to `out` and their names to `made`. Returns an exit code.
int up_gadgets(const profile::Profile& prof, const core::StateDir& sd, const GadgetRun& run, nlohmann::json& out,
               std::vector<std::string>& made);
// Starts --exec (unless a FunctionFS wait already did), waits for it (or a signal), downs `units`.
int run_exec(Context& ctx, const GadgetRun& run, const std::vector<std::string>& units, const nlohmann::json& out);
void print_gadget(const nlohmann::json& rec, std::ostream& out);
// devemu check on a gadget unit record, or on VID:PID when `rec` is null.
// bench_bytes 0: no throughput run.
int check_usb(Context& ctx, const nlohmann::json* rec, const std::string& what, bool as_json, std::uint64_t bench_bytes, bool write);
int cmd_gadget(Context& ctx, const Args& args);

}  // namespace devemu::cli
