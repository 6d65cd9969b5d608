#pragma once
// The CLI layer: parsing and printing only. Each command gets the global context and its own arguments.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"

namespace devemu::vm {
struct UpVmRequest;
}

namespace devemu::cli {

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
int cmd_usb_serve(Context& ctx, const Args& args);
int cmd_capture(Context& ctx, const Args& args);
int cmd_ceph(Context& ctx, const Args& args);
int cmd_gadget(Context& ctx, const Args& args);
int cmd_fault(Context& ctx, const Args& args);
int cmd_failover(Context& ctx, const Args& args);
// Every unit kind, registered once at start: the libraries' (target, gadget, ceph, vm).
void register_kinds();

// Parses a command's options: adds --help, --json, -v, -q, and collects positional words. Returns an exit code
// when the command should stop here (help asked: 0; fewer than `min_positional` words: the help and 2).
struct Parsed {
    boost::program_options::variables_map vm;
    std::vector<std::string> positional;
    [[nodiscard]] bool has(const char* name) const { return vm.count(name) > 0; }
};
std::optional<int> parse_command(const Args& args, boost::program_options::options_description& opts, Parsed& out,
                                 std::size_t min_positional);

// The internal options of a command `up --vm` runs in its guest (up, import): --advertise TARGET[/PATH]=PORT, the
// host's forward of a portal; --host-disk BACKSTORE=SERIAL, the virtio disk a host file became.
void add_guest_options(boost::program_options::options_description& opts);
[[nodiscard]] core::Result<std::map<std::string, std::uint16_t>> advertised_ports(const Parsed& p);
[[nodiscard]] core::Result<std::map<std::string, std::string>> host_disk_serials(const Parsed& p);
// `up --vm` and `import --vm`: `r` (its file and what is particular to the command) completed with the options both
// take (--secrets, --force, --insecure) and the context, run; prints the notes, then the lines or with --json the
// units and how to reach them. Returns the exit code.
int run_up_vm(Context& ctx, const Parsed& p, vm::UpVmRequest r);

// Prints one error line (red on a TTY) and returns its exit code.
int report(const core::Error& e);
// What a command run elsewhere (an `up --vm` guest) printed, as it printed it; its exit code (or the error's).
int relayed(const core::Result<core::Relayed>& r);
// A relayed command's output as it comes (core::OutputSink), for relayed() to end with its status.
void print_relayed(bool to_stderr, std::string_view data);

}  // namespace devemu::cli
