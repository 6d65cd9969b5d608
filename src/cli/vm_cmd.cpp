// devemu vm run [options] -- CMD ARGS: run CMD in a throw-away VM of the distribution kernel.
#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "core/unit_kind.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "vm/image.hpp"
#include "vm/oneshot.hpp"
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
profiles), streams its output and exits with its status. Up to four run at once (`devemu fault`, `check` and `ls`
of the unit use the same channels), so faults can be changed while a `vm exec` does I/O; Ctrl-C ends CMD in the
VM too. Its stdin is this one's unless that is a terminal (`… vm exec NAME -- sh -s < test.sh`).

Examples:
  devemu vm run -- sh -c 'uname -r; exit 3'
  devemu vm run --host-root -- fio --version
  devemu vm run --modules target_core_mod,tcm_loop -- ls /sys/kernel/config/target
  devemu vm run --host-root --modules iscsi_tcp,dm_multipath -- iscsiadm --version
  devemu vm run --fwd 3260:3260 --timeout 60 -- sleep 30
  devemu vm run --host-root --mpath-disk disk.img -- devemu failover --qemu-paths --flaps 4
  devemu vm exec rbd0 -- cat /sys/bus/rbd/devices/0/name
  devemu vm exec t0 -- dd if=/dev/sda of=/dev/null bs=4k iflag=direct &   # a loopback LUN in the VM
  devemu fault t0 add type=error op=read lba=2048..4095

Options)";

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

void add_vm_options(po::options_description& opts)
{
    opts.add_options()
        ("help,h", "this help")
        ("host-root", "the host's / as the guest's root (read-only, with a writable tmpfs overlay)")
        ("systemd", "with --host-root: boot the host's systemd as PID 1 (basic.target and nothing of multi-user);\n"
                    "it runs CMD, whose status is the run's (to test units: systemctl start …)")
        ("share", po::value<std::vector<std::string>>()->composing(), "HOSTDIR[:GUESTDIR] shared read-write over 9p")
        ("fwd", po::value<std::vector<std::string>>()->composing(), "HOSTPORT:GUESTPORT, TCP, host side on 127.0.0.1 only")
        ("net", "guest networking (eth0 10.0.2.15) even without --fwd")
        ("mpath-disk", po::value<std::string>(), "FILE: two virtio-scsi paths to it (one LU), cut and restored on request: devemu failover --qemu-paths in the guest")
        ("modules", po::value<std::string>()->default_value(""), "modules to load first, with their dependencies, comma-separated (any module of the kernel), or 'all' (every module devemu's own features use)")
        ("bin", po::value<std::vector<std::string>>()->composing(), "host binary to copy in with its libraries")
        ("env", po::value<std::vector<std::string>>()->composing(), "K=V for the command")
        ("timeout", po::value<unsigned>()->default_value(0), "seconds; then qemu is killed and the exit is 124")
        ("boot-timeout", po::value<unsigned>()->default_value(90), "seconds for the guest to reach devemu-init; a boot that hangs is killed and booted once more (0: no watchdog)")
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
}

// devemu vm exec NAME -- CMD: in the running VM of an `up --vm` unit.
int vm_exec_cmd(const Context& ctx, const std::string& name, const std::vector<std::string>& command)
{
    // No lock held while the command runs: it may take long, and other devemu calls (down aside) go on. Our stdin
    // is its stdin unless it is a terminal (or closed).
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    auto u = core::address_unit(*sd, name);   // the VM's unit, or a unit in it
    const auto* kind = u ? u->kind : nullptr;
    if (!kind || !kind->relay) return report({core::Errc::missing, "no `up --vm` unit named " + name, ctx.state_dir.string(), "devemu ls"});
    return relayed(kind->relay(u->record, command, print_relayed, ::isatty(0) || ::fcntl(0, F_GETFD) < 0 ? -1 : 0));
}

vm::OneShot oneshot_of(const Context& ctx, const po::variables_map& vmap, const std::vector<std::string>& command)
{
    vm::OneShot o;
    o.command = command;
    o.host_root = vmap.count("host-root") > 0;
    o.systemd = vmap.count("systemd") > 0;
    auto list = [&](const char* name) { return vmap.count(name) ? vmap[name].as<std::vector<std::string>>() : std::vector<std::string>{}; };
    o.shares = list("share");
    o.forwards = list("fwd");
    o.binaries = list("bin");
    o.env = list("env");
    o.net = vmap.count("net") > 0;
    o.modules = vmap["modules"].as<std::string>();
    o.timeout_s = vmap["timeout"].as<unsigned>();
    o.boot_timeout_s = vmap["boot-timeout"].as<unsigned>();
    o.memory_mb = vmap["memory"].as<unsigned>();
    o.cpus = vmap["cpus"].as<unsigned>();
    o.console = vmap.count("console") > 0;
    o.accel = vmap["accel"].as<std::string>();
    o.append = vmap["append"].as<std::string>();
    if (vmap.count("emit")) o.emit = vmap["emit"].as<std::string>();
    if (vmap.count("mpath-disk")) o.mpath_disk = vmap["mpath-disk"].as<std::string>();
    o.kernel = ctx.kernel;
    o.cache_dir = ctx.cache_dir;
    o.state_dir = ctx.state_dir;
    o.keep_console_log = ctx.verbosity > 0;
    return o;
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
    add_vm_options(opts);
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
        return vm_exec_cmd(ctx, rest[1], command);
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

    auto rc = vm::run_oneshot(oneshot_of(ctx, vmap, command));
    return rc ? *rc : report(rc.error());
}

}  // namespace devemu::cli
