// devemu vm run [options] -- CMD ARGS: run CMD in a throw-away VM of the distribution kernel.
#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "vm/unit.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "vm/image.hpp"
#include "vm/runner.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace devemu::cli {

namespace {

const char* kHelp = R"(devemu vm run [options] -- CMD [ARGS…]
devemu vm exec NAME -- CMD [ARGS…]

Boots the distribution kernel (see `devemu doctor`) with an initramfs devemu builds and caches, runs CMD as
root in it, streams its stdout and stderr, and exits with CMD's exit status (124 on --timeout). Kernel
messages go to a console log; --console shows them live. No qemu outlives devemu.

Without --host-root the guest has busybox; a host binary named as CMD (or with --bin) is copied in with its
shared libraries. With --host-root the host's / is the guest's / (read-only 9p with a tmpfs overlay: writes stay
in the guest), so any installed tool runs. Either way /lib/modules/VERSION is the kernel's whole module tree
(read-only over 9p): --modules loads any of its modules with their dependencies, and modprobe (and the kernel's
own module requests) find the rest.

`vm exec` runs CMD in the running VM of an `up --vm` unit (its tools: busybox, or the host's with --exec/FunctionFS
profiles), relays its output and exits with its status.

Examples:
  devemu vm run -- sh -c 'uname -r; exit 3'
  devemu vm run --host-root -- fio --version
  devemu vm run --modules target_core_mod,tcm_loop -- ls /sys/kernel/config/target
  devemu vm run --host-root --modules iscsi_tcp,dm_multipath -- iscsiadm --version
  devemu vm run --fwd 3260:3260 --timeout 60 -- sleep 30
  devemu vm exec rbd0 -- cat /sys/bus/rbd/devices/0/name

Options)";

std::vector<std::string> busybox_applets()
{
    auto r = core::run({"/bin/busybox", "--list"}, std::chrono::seconds(5));
    return r && r->exit_code == 0 ? core::split(r->out, '\n') : std::vector<std::string>{};
}

core::Result<vm::PortForward> parse_fwd(const std::string& s)
{
    auto parts = core::split(s, ':');
    auto port = [](const std::string& p) -> long {
        char* end = nullptr;
        long n = std::strtol(p.c_str(), &end, 10);
        return p.empty() || *end || n < 1 || n > 65535 ? -1 : n;
    };
    if (parts.size() != 2 || port(parts[0]) < 0 || port(parts[1]) < 0)
        return core::fail(core::Errc::invalid_input, "--fwd " + s + " is not HOSTPORT:GUESTPORT", "", "e.g. --fwd 3260:3260");
    return vm::PortForward{static_cast<std::uint16_t>(port(parts[0])), static_cast<std::uint16_t>(port(parts[1]))};
}

// devemu vm image [--rebuild] [--json]: build (or find) the cached base image and say what it holds.
int vm_image(const Context& ctx, bool rebuild, bool json)
{
    auto kernel = vm::find_kernel(ctx.kernel, ctx.cache_dir);
    if (!kernel) return report(kernel.error());
    auto base = vm::build_base({*kernel}, ctx.cache_dir, rebuild);
    if (!base) return report(base.error());
    if (json) {
        std::cout << nlohmann::json{{"path", base->path.string()}, {"cached", base->cached}, {"bytes", base->bytes},
                                    {"build_ms", base->build_time.count()}, {"kernel", kernel->version},
                                    {"modules", base->modules}}.dump(2) << "\n";
    } else {
        std::cout << base->path.string() << ": " << (base->cached ? "cached" : "built") << ", " << base->bytes << " bytes, "
                  << base->build_time.count() << " ms, kernel " << kernel->version << "\n";
    }
    return 0;
}

}  // namespace

int cmd_vm(Context& ctx, const Args& all)
{
    Args args, command;
    bool after = false;
    for (auto& a : all) {
        if (!after && a == "--") after = true;
        else (after ? command : args).push_back(a);
    }
    po::options_description opts(kHelp);
    opts.add_options()
        ("help,h", "this help")
        ("host-root", "the host's / as the guest's root (read-only, with a writable tmpfs overlay)")
        ("share", po::value<std::vector<std::string>>()->composing(), "HOSTDIR[:GUESTDIR] shared read-write over 9p")
        ("fwd", po::value<std::vector<std::string>>()->composing(), "HOSTPORT:GUESTPORT, TCP, host side on 127.0.0.1 only")
        ("net", "guest networking (eth0 10.0.2.15) even without --fwd")
        ("modules", po::value<std::string>()->default_value(""), "modules to load first, with their dependencies, comma-separated (any module of the kernel), or 'all' (every module devemu's own features use)")
        ("bin", po::value<std::vector<std::string>>()->composing(), "host binary to copy in with its libraries")
        ("env", po::value<std::vector<std::string>>()->composing(), "K=V for the command")
        ("timeout", po::value<unsigned>()->default_value(0), "seconds; then qemu is killed and the exit is 124")
        ("memory", po::value<unsigned>()->default_value(1024), "guest memory, MiB")
        ("cpus", po::value<unsigned>()->default_value(2), "guest CPUs")
        ("console", "stream the kernel console to stderr")
        ("emit", po::value<std::string>(), "write initrd.cpio and qemu.args (one argument a line) into DIR instead of booting")
        ("rebuild", "vm image: rebuild the cached base image")
        ("json", "vm image: machine-readable output")
        ("append", po::value<std::string>()->default_value(""), "extra kernel command line")
        ("accel", po::value<std::string>()->default_value("auto"), "auto (KVM when it really boots, else TCG), kvm or tcg")
        ("verbose,v", "")("quiet,q", "")
        ("args", po::value<std::vector<std::string>>()->default_value({}, ""), "");
    po::positional_options_description pos;
    pos.add("args", -1);
    po::variables_map vmap;
    po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vmap);
    auto rest = vmap["args"].as<std::vector<std::string>>();
    if (vmap.count("help")) {
        std::cout << opts;
        return 0;
    }
    if (!rest.empty() && rest[0] == "image") return vm_image(ctx, vmap.count("rebuild") > 0, vmap.count("json") > 0);
    if (!rest.empty() && rest[0] == "exec") {
        if (rest.size() != 2 || command.empty()) {
            std::cerr << "devemu vm exec: expected `vm exec NAME -- CMD` (fix: devemu vm --help)\n";
            return 2;
        }
        // No lock held while the command runs: it may take long, and other devemu calls (down aside) go on.
        auto sd = core::StateDir::open(ctx.state_dir, false);
        if (!sd) return report(sd.error());
        auto rec = sd->load(rest[1]);
        if (!rec || rec->value("kind", "") != "vm")
            return report({core::Errc::missing, "no `up --vm` unit named " + rest[1], ctx.state_dir.string(), "devemu ls"});
        auto r = vm::vm_exec(*rec, command);
        if (!r) return report(r.error());
        std::cout << r->out << std::flush;
        std::cerr << r->err << std::flush;
        return r->rc;
    }
    if (rest.empty() || rest[0] != "run") {
        std::cerr << "devemu vm: expected `vm run [options] -- CMD`, `vm exec NAME -- CMD` or `vm image` (fix: devemu vm --help)\n";
        return 2;
    }
    command.insert(command.begin(), rest.begin() + 1, rest.end());
    if (command.empty()) {
        std::cerr << "devemu vm run: no command given (fix: devemu vm run -- sh -c 'uname -r')\n";
        return 2;
    }

    auto kernel = vm::find_kernel(ctx.kernel, ctx.cache_dir);
    if (!kernel) return report(kernel.error());

    vm::RunSpec run;
    run.argv = command;
    run.host_root = vmap.count("host-root") > 0;
    vm::VmConfig cfg;
    cfg.kernel = *kernel;
    cfg.host_root = run.host_root;
    cfg.memory_mb = vmap["memory"].as<unsigned>();
    cfg.cpus = vmap["cpus"].as<unsigned>();
    cfg.timeout = std::chrono::seconds(vmap["timeout"].as<unsigned>());
    cfg.console = vmap.count("console") > 0;
    cfg.accel = vmap["accel"].as<std::string>();
    cfg.extra_append = vmap["append"].as<std::string>();
    cfg.cache_dir = ctx.cache_dir;

    if (vmap.count("fwd")) {
        for (auto& f : vmap["fwd"].as<std::vector<std::string>>()) {
            auto pf = parse_fwd(f);
            if (!pf) return report(pf.error());
            cfg.forwards.push_back(*pf);
        }
    }
    run.net = cfg.net = vmap.count("net") || !cfg.forwards.empty();
    // Modules: the transports' are added by build_initrd; then configfs and what the user asked for.
    run.load.push_back("configfs");
    const auto mods = vmap["modules"].as<std::string>();
    if (mods == "all") run.load.insert(run.load.end(), vm::module_set().begin(), vm::module_set().end());
    else if (!mods.empty())
        for (auto& m : core::split(mods, ',')) run.load.push_back(m);

    if (vmap.count("share")) {
        int i = 0;
        for (auto& s : vmap["share"].as<std::vector<std::string>>()) {
            auto colon = s.find(':');
            vm::Share sh{fs::absolute(s.substr(0, colon)), colon == std::string::npos ? fs::absolute(s).string() : s.substr(colon + 1)};
            if (!fs::is_directory(sh.host)) return report({core::Errc::invalid_input, "not a directory", sh.host.string(), "--share HOSTDIR[:GUESTDIR]"});
            run.shares.push_back({"share" + std::to_string(i++), sh.guest});
            cfg.shares.push_back(sh);
        }
    }
    if (vmap.count("env")) run.env = vmap["env"].as<std::vector<std::string>>();
    if (run.host_root) {
        std::error_code ec;
        run.cwd = fs::current_path(ec).string();
    }
    if (vmap.count("bin"))
        for (auto& b : vmap["bin"].as<std::vector<std::string>>()) {
            auto p = core::which(b);
            if (p.empty()) return report({core::Errc::missing, "no such binary", b, "give a path or a name on PATH"});
            run.binaries.push_back(p);
        }
    if (!run.host_root) {
        auto applets = busybox_applets();
        if (std::find(applets.begin(), applets.end(), command[0]) == applets.end()) {
            auto p = core::which(command[0]);
            if (p.empty())
                return report({core::Errc::missing, "not a busybox applet and not found on the host's PATH", command[0],
                               "use --host-root, or --bin PATH"});
            run.binaries.push_back(p);
            run.argv[0] = p;
        }
    }

    auto base = vm::build_base({*kernel}, ctx.cache_dir);
    if (!base) return report(base.error());
    spdlog::debug("vm: base image {} ({}, {} bytes, {} ms)", base->path.string(), base->cached ? "cached" : "built",
                  base->bytes, base->build_time.count());

    cfg.run_dir = ctx.state_dir / "vm" / ("run-" + std::to_string(::getpid()));
    if (auto s = core::make_dirs(cfg.run_dir, 0700); !s) return report(s.error());
    struct Cleanup {
        fs::path dir;
        bool keep = false;
        ~Cleanup()
        {
            std::error_code ec;
            if (keep) {
                for (auto& e : fs::directory_iterator(dir, ec))
                    if (e.path().filename() != "console.log") fs::remove(e.path(), ec);
            } else {
                fs::remove_all(dir, ec);
            }
        }
    } cleanup{cfg.run_dir};
    cfg.initrd = cfg.run_dir / "initrd.cpio";
    if (auto s = vm::build_initrd(*base, *kernel, run, cfg.initrd); !s) return report(s.error());

    if (vmap.count("emit")) {
        const fs::path dir = vmap["emit"].as<std::string>();
        if (auto s = core::make_dirs(dir); !s) return report(s.error());
        std::error_code ec;
        fs::copy_file(cfg.initrd, dir / "initrd.cpio", fs::copy_options::overwrite_existing, ec);
        cfg.initrd = dir / "initrd.cpio";
        if (auto elf = vm::uncompressed_kernel(cfg.kernel, ctx.cache_dir)) cfg.boot_image = *elf;
        std::string lines;
        for (auto& a : vm::qemu_argv(cfg, false)) lines += a + "\n";
        if (auto s = core::write_file_atomic(dir / "qemu.args", lines); !s) return report(s.error());
        return 0;
    }
    auto res = vm::run_vm(cfg);
    if (!res) {
        cleanup.keep = true;
        return report(res.error());
    }
    cleanup.keep = res->exit_code == 124 || ctx.verbosity > 0;
    return res->exit_code;
}

}  // namespace devemu::cli
