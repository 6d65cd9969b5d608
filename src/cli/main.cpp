// devemu [global options] COMMAND [command options]
#include <unistd.h>

#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>
#include <iostream>

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
  ls                   units devemu has brought up (--json)
  up PROFILE [--vm]    bring up the targets and gadgets a profile declares
  down NAME|--all      remove what `up` made
  plan PROFILE         show what `up` would change
  check NAME|VID:PID   exercise a target or gadget as an initiator/host would
  gadget eject|insert  media change on a removable USB mass-storage LUN
  bench TARGET         io_uring backstore benchmark beside fio
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

int main(int argc, char** argv)
{
    std::vector<std::string> global_args, cmd_args;
    std::string command;
    bool trace = false;   // -vv: trace output (timings of each step)
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (command.empty() && a == "-vv") {
            trace = true;
        } else if (command.empty() && a.starts_with('-')) {
            global_args.push_back(a);
            if (takes_value(a) && i + 1 < argc) global_args.push_back(argv[++i]);
        } else if (command.empty()) {
            command = a;
        } else {
            cmd_args.push_back(a);
        }
    }

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

    cli::Context ctx;
    try {
        po::variables_map vm;
        po::store(po::command_line_parser(global_args).options(global).run(), vm);
        // Layering: command line, then DEVEMU_* variables, then the config file (first value stored wins).
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
        if (vm.count("help") || command.empty()) {
            std::cout << kUsage << "\n" << global;
            return command.empty() && !vm.count("help") ? 2 : 0;
        }
        ctx.verbosity = vm.count("quiet") ? -1 : vm.count("verbose") ? 1 : 0;
        ctx.state_dir = vm.count("state-dir") ? vm["state-dir"].as<std::string>() : core::default_state_dir().string();
        ctx.cache_dir = vm.count("cache-dir") ? vm["cache-dir"].as<std::string>() : core::default_cache_dir().string();
        if (vm.count("kernel")) ctx.kernel = vm["kernel"].as<std::string>();
    } catch (const po::error& e) {
        std::cerr << "devemu: " << e.what() << " (fix: see devemu --help)\n";
        return 2;
    }
    // Command-local -v/-q too, so `devemu vm run -v -- …` reads naturally.
    for (auto& a : cmd_args) {
        if (a == "--") break;
        if (a == "-v" || a == "--verbose") ctx.verbosity = std::max(ctx.verbosity, 1);
        if (a == "-vv") trace = true;
        if (a == "-q" || a == "--quiet") ctx.verbosity = -1;
    }
    if (trace) ctx.verbosity = 2;
    core::setup_logging(ctx.verbosity);
    // Libraries report progress and notes through core/progress.hpp; here is how a person sees them: progress as one
    // line rewritten on a terminal (not under -q), notes always, on stderr (stdout is for results and --json).
    const bool live = ::isatty(2) && ctx.verbosity >= 0;
    core::set_progress_renderer({
        [live](std::string_view line) { if (live) std::cerr << "\rdevemu: " << line << "\033[K" << std::flush; },
        [live] { if (live) std::cerr << "\r\033[K" << std::flush; },
        [](std::string_view line) { std::cerr << "devemu: " << line << "\n"; },
    });

    cli::register_kinds();
    try {
        if (command == "doctor") return cli::cmd_doctor(ctx, cmd_args);
        if (command == "profile") return cli::cmd_profile(ctx, cmd_args);
        if (command == "vm") return cli::cmd_vm(ctx, cmd_args);
        if (command == "ls") return cli::cmd_ls(ctx, cmd_args);
        if (command == "up") return cli::cmd_up(ctx, cmd_args, true);
        if (command == "plan") return cli::cmd_up(ctx, cmd_args, false);
        if (command == "down") return cli::cmd_down(ctx, cmd_args);
        if (command == "check") return cli::cmd_check(ctx, cmd_args);
        if (command == "gadget") return cli::cmd_gadget(ctx, cmd_args);
        if (command == "tcmu-serve") return cli::cmd_tcmu_serve(ctx, cmd_args);
        if (command == "ceph") return cli::cmd_ceph(ctx, cmd_args);
        if (command == "bench") return cli::cmd_bench(ctx, cmd_args);
        if (command == "import") return cli::cmd_import(ctx, cmd_args);
        if (command == "export") return cli::cmd_export(ctx, cmd_args);
        std::cerr << "devemu: unknown command '" << command << "' (fix: see devemu --help)\n";
        return 2;
    } catch (const po::error& e) {
        std::cerr << "devemu " << command << ": " << e.what() << " (fix: see devemu " << command << " --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "devemu " << command << ": internal error: " << e.what() << "\n";
        return 70;
    }
}
