#pragma once
// The CLI layer: parsing and printing only. Each command gets the global context and its own arguments.
#include <filesystem>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

#include "lio/access.hpp"
#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::cli {

using lio::access_info;
using lio::with_portal;

struct Context {
    std::filesystem::path state_dir;
    std::filesystem::path cache_dir;
    std::string kernel;    // --kernel / DEVEMU_KERNEL / devemu.conf
    int verbosity = 0;
};

using Args = std::vector<std::string>;

int cmd_doctor(Context& ctx, const Args& args);
int cmd_profile(Context& ctx, const Args& args);
int cmd_vm(Context& ctx, const Args& args);
int cmd_ls(Context& ctx, const Args& args);
int cmd_up(Context& ctx, const Args& args, bool apply);
int cmd_down(Context& ctx, const Args& args);
int cmd_check(Context& ctx, const Args& args);
int cmd_import(Context& ctx, const Args& args);
int cmd_bench(Context& ctx, const Args& args);
int cmd_export(Context& ctx, const Args& args);
int cmd_tcmu_serve(Context& ctx, const Args& args);
int cmd_ceph(Context& ctx, const Args& args);
struct VmUpOptions {
    bool json = false, secrets = false;
    std::string exec;       // started in the VM (with the host's / as its root); `down` stops it
    unsigned timeout = 30;
    bool force = false;
    bool insecure = false;  // as for up: a non-loopback portal without CHAP and ACLs
};
int cmd_up_vm(Context& ctx, const std::vector<std::string>& profiles, const VmUpOptions& opt);
// devemu inside an `up --vm` guest: this binary (the same path in the guest) with the guest's state dir, then `args`.
std::vector<std::string> guest_devemu(const std::vector<std::string>& args);
// Runs ARGS in the running VM of an `up --vm` unit record (its devemu, its tools); relays their output.
core::Result<int> vm_exec(const nlohmann::json& rec, const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// Every unit kind, registered once at start: the libraries' (target, gadget, ceph) and the VM layer's.
void register_kinds();
void register_vm_kind();
core::Status stop_vm_unit(const core::StateDir& sd, const std::string& name, const nlohmann::json& rec);
void print_unit(const nlohmann::json& rec, const nlohmann::json& info, std::ostream& out);

// Parses a command's options: adds --help, --json, -v, -q, and collects positional words. Returns an exit code
// when the command should stop here (help asked: 0; fewer than `min_positional` words: the help and 2).
struct Parsed {
    boost::program_options::variables_map vm;
    std::vector<std::string> positional;
    [[nodiscard]] bool has(const char* name) const { return vm.count(name) > 0; }
};
std::optional<int> parse_command(const Args& args, boost::program_options::options_description& opts, Parsed& out,
                                 std::size_t min_positional);

// Prints one error line (red on a TTY) and returns its exit code.
int report(const core::Error& e);

}  // namespace devemu::cli
