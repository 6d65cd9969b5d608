// devemu [global options] COMMAND [command options]
#include <unistd.h>

#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/cli.hpp"
#include "ceph/kind.hpp"
#include "lio/kind.hpp"
#include "usb/kind.hpp"
#include "vm/unit.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/statedir.hpp"

namespace po = boost::program_options;
using namespace devemu;

namespace {

const char* kUsage = R"(usage: devemu [global options] COMMAND [options]

Commands:
  doctor               what this kernel can emulate, and what is missing (--json)
  profile check FILE…  validate profiles without touching anything
  vm run [opts] -- CMD run CMD in a throw-away VM of the distribution kernel, exit with its status
  vm exec NAME -- CMD  run CMD in the VM of an `up --vm` unit
  ls                   units devemu has brought up (--json)
  up PROFILE [--vm]    bring up the targets and gadgets a profile declares
  down NAME|--all|--profile F  remove what `up` made
  plan PROFILE         show what `up` would change
  check NAME|VID:PID   exercise a target or gadget as an initiator/host would
  gadget eject|insert  media change on a removable USB mass-storage LUN
  capture NAME -o F    a gadget's USB traffic (usbmon) as pcapng for Wireshark/tshark
  fault NAME add|clear|ls|path|alua|usb  faults at run time: block (delay, error, flakey, stall,
                       rate), lost paths, ALUA states, USB (disconnect, halts, stalls, bad or no CSW)
  failover NAME        cut and restore a multipath unit's paths under verified I/O, timed
  bench TARGET         io_uring backstore benchmark beside fio
  bench --paths LIST BACKING  one backing behind every path (LIO, iSCSI, tgtd, USB), measured side by side
  ceph up|down|status  a local Ceph cluster for rbd backstores (cluster = "local")
  import FILE / export targetcli saveconfig.json interop

Run `devemu COMMAND --help` for a command's options and an example.
)";

// Global options that take a value, so the command word can be found before Boost sees the rest.
bool takes_value(const std::string& a)
{
    for (auto o : {"--state-dir", "--cache-dir", "--config", "--kernel"})
        if (a == o) return true;
    return false;
}

}  // namespace

namespace devemu::cli {

void register_kinds()
{
    lio::register_target_kind();
    usb::register_gadget_kind();
    ceph::register_ceph_kind();
    vm::register_vm_kind();
}

}  // namespace devemu::cli

namespace {

struct Argv {
    std::vector<std::string> global_args, cmd_args;
    std::string command;
    bool trace = false;   // -vv: trace output (timings of each step)
};

Argv split_argv(int argc, char** argv)
{
    Argv out;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (out.command.empty() && a == "-vv") {
            out.trace = true;
        } else if (out.command.empty() && a.starts_with('-')) {
            out.global_args.push_back(a);
            if (takes_value(a) && i + 1 < argc) out.global_args.push_back(argv[++i]);
        } else if (out.command.empty()) {
            out.command = a;
        } else {
            out.cmd_args.push_back(a);
        }
    }
    return out;
}

// The global options, layered: command line, then DEVEMU_* variables, then the config file (first value stored
// wins). Returns an exit code when devemu should stop here (--version, --help, a bad option).
std::optional<int> global_context(const Argv& a, cli::Context& ctx)
{
    po::options_description global("Global options");
    global.add_options()
        ("help,h", "show this help")
        ("version", "print the version")
        ("verbose,v", po::value<int>()->implicit_value(1)->zero_tokens(), "debug output")
        ("quiet,q", "errors only")
        ("state-dir", po::value<std::string>(), "unit records and undo journals (default /run/devemu)")
        ("cache-dir", po::value<std::string>(), "kernel and image cache (default /var/cache/devemu)")
        ("kernel", po::value<std::string>(), "kernel for --vm: an unpacked tree or a vmlinuz-VERSION file")
        ("config", po::value<std::string>()->default_value("/etc/devemu.conf"), "defaults for these options");
    try {
        po::variables_map vm;
        po::store(po::command_line_parser(a.global_args).options(global).run(), vm);
        po::store(po::parse_environment(global, [](const std::string& var) -> std::string {
                      for (auto [env, opt] : {std::pair{"DEVEMU_STATE_DIR", "state-dir"}, {"DEVEMU_CACHE_DIR", "cache-dir"},
                                              {"DEVEMU_KERNEL", "kernel"}})
                          if (var == env) return opt;
                      return "";
                  }),
                  vm);
        const auto conf = vm["config"].as<std::string>();
        if (std::ifstream in(conf); in) po::store(po::parse_config_file(in, global, true), vm);
        po::notify(vm);
        if (vm.count("version")) {
            std::cout << "devemu " << DEVEMU_VERSION << "\n";
            return 0;
        }
        if (vm.count("help") || a.command.empty()) {
            std::cout << kUsage << "\n" << global;
            return a.command.empty() && !vm.count("help") ? 2 : 0;
        }
        ctx.verbosity = vm.count("quiet") ? -1 : vm.count("verbose") ? 1 : 0;
        ctx.state_dir = vm.count("state-dir") ? vm["state-dir"].as<std::string>() : core::default_state_dir().string();
        ctx.cache_dir = vm.count("cache-dir") ? vm["cache-dir"].as<std::string>() : core::default_cache_dir().string();
        if (vm.count("kernel")) ctx.kernel = vm["kernel"].as<std::string>();
    } catch (const po::error& e) {
        std::cerr << "devemu: " << e.what() << " (fix: see devemu --help)\n";
        return 2;
    }
    return std::nullopt;
}

// Logging and how library progress is shown: progress as one line rewritten on a terminal (not under -q), notes
// always, on stderr (stdout is for results and --json).
void setup_output(const Argv& a, cli::Context& ctx)
{
    bool trace = a.trace;
    // Command-local -v/-q too, so `devemu vm run -v -- …` reads naturally.
    for (auto& arg : a.cmd_args) {
        if (arg == "--") break;
        if (arg == "-v" || arg == "--verbose") ctx.verbosity = std::max(ctx.verbosity, 1);
        if (arg == "-vv") trace = true;
        if (arg == "-q" || arg == "--quiet") ctx.verbosity = -1;
    }
    if (trace) ctx.verbosity = 2;
    core::setup_logging(ctx.verbosity);
    // DEVEMU_NO_PROGRESS: set by a devemu that relays this one's stderr to somewhere that is not a terminal (a VM's guest).
    const bool live = ::isatty(2) && ctx.verbosity >= 0 && !std::getenv("DEVEMU_NO_PROGRESS");
    core::set_progress_renderer({
        [live](std::string_view line) { if (live) std::cerr << "\rdevemu: " << line << "\033[K" << std::flush; },
        [live] { if (live) std::cerr << "\r\033[K" << std::flush; },
        [](std::string_view line) { std::cerr << "devemu: " << line << "\n"; },
    });
}

int dispatch(const std::string& command, cli::Context& ctx, const cli::Args& cmd_args)
{
    using Cmd = int (*)(cli::Context&, const cli::Args&);
    static const std::pair<const char*, Cmd> commands[] = {
        {"doctor", cli::cmd_doctor}, {"profile", cli::cmd_profile}, {"vm", cli::cmd_vm}, {"ls", cli::cmd_ls},
        {"up", [](cli::Context& c, const cli::Args& a) { return cli::cmd_up(c, a, true); }},
        {"plan", [](cli::Context& c, const cli::Args& a) { return cli::cmd_up(c, a, false); }},
        {"down", cli::cmd_down}, {"check", cli::cmd_check}, {"gadget", cli::cmd_gadget}, {"fault", cli::cmd_fault}, {"failover", cli::cmd_failover}, {"tcmu-serve", cli::cmd_tcmu_serve}, {"usb-serve", cli::cmd_usb_serve}, {"capture", cli::cmd_capture},
        {"ceph", cli::cmd_ceph}, {"bench", cli::cmd_bench}, {"import", cli::cmd_import}, {"export", cli::cmd_export},
    };
    for (auto& [name, fn] : commands)
        if (command == name) return fn(ctx, cmd_args);
    std::cerr << "devemu: unknown command '" << command << "' (fix: see devemu --help)\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv)
{
    const auto a = split_argv(argc, argv);
    cli::Context ctx;
    if (auto rc = global_context(a, ctx)) return *rc;
    setup_output(a, ctx);
    cli::register_kinds();
    try {
        return dispatch(a.command, ctx, a.cmd_args);
    } catch (const po::error& e) {
        std::cerr << "devemu " << a.command << ": " << e.what() << " (fix: see devemu " << a.command << " --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "devemu " << a.command << ": internal error: " << e.what() << "\n";
        return 70;
    }
}
