// USB gadget units in the CLI: `up` of a profile's [[gadget]]s (with --exec for FunctionFS apps), their printout,
// `devemu gadget eject|insert`, and `devemu check GADGET|VID:PID` over libusb.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "cli/cli.hpp"
#include "cli/gadget.hpp"
#include "backing/blockdev.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "core/statedir.hpp"
#include "usb/checker.hpp"
#include "usb/gadget.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

void print_gadget(const json& rec, std::ostream& out)
{
    out << "gadget " << rec.value("name", "?") << ": " << rec.value("state", "?");
    if (rec.contains("changes")) out << " (" << rec["changes"].get<int>() << " changes)";
    out << "\n  udc        " << rec.value("udc", "?") << "\n  id         " << rec.value("vid_pid", "?") << " serial " << rec.value("serial", "")
        << "\n";
    const json host = rec.value("host", json::object());
    if (host.contains("bus"))
        out << "  usb        bus " << host["bus"].get<int>() << " device " << host["device"].get<int>() << ", " << host.value("speed_mbps", "?")
            << " Mbit/s (" << host.value("sysfs", "") << ")\n";
    for (auto& l : rec.value("luns", json::array())) {
        const std::string file = l.value("file", "");
        out << "  LUN " << l["lun"].get<int>() << "      " << l.value("disk", std::string("(no disk)")) << "  "
            << (file.empty() ? "(no medium)" : file) << (l.value("readonly", false) ? " ro" : "") << (l.value("removable", false) ? " removable" : "")
            << "\n";
    }
    const json ttys = host.value("ttys", json::object());
    for (auto it = ttys.begin(); it != ttys.end(); ++it) out << "  acm " << it.key() << "    " << it.value().get<std::string>() << "\n";
    const json ffs = rec.value("ffs", json::object());
    for (auto it = ffs.begin(); it != ffs.end(); ++it) out << "  ffs " << it.key() << "    " << it.value().get<std::string>() << "\n";
    out << "  stop it:   devemu down " << rec.value("name", "?") << "\n";
}

namespace {

// Waits for the --exec command to end, or for SIGINT/SIGTERM/SIGHUP (then stops it). Returns its exit status.
int wait_app(core::Child& app)
{
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    core::UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
    pollfd fds[2] = {{app.pidfd(), POLLIN, 0}, {sfd.get(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
        if (fds[0].revents) break;
        if (fds[1].revents) {
            signalfd_siginfo si{};
            if (::read(sfd.get(), &si, sizeof si) != sizeof si) continue;
            spdlog::info("signal {}: stopping the app and tearing down", si.ssi_signo);
            int rc = app.terminate();
            sigprocmask(SIG_UNBLOCK, &set, nullptr);
            return rc;
        }
    }
    int rc = app.wait();
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    return rc;
}

// The --exec command, in a process group of its own so that `down` (journaled as kill_group) and a signal to
// `up --exec` stop everything it started: a shell's children, a pipeline. In the VM it outlives this devemu (the
// VM's end, or `down`, ends it); on a host it dies with us.
core::Result<core::Child> spawn_app(const GadgetRun& run, std::vector<std::string> env)
{
    core::SpawnOptions so;
    so.extra_env = std::move(env);
    so.die_with_parent = !run.in_vm;
    so.new_session = run.in_vm;
    so.own_group = true;
    return core::Child::spawn({"/bin/sh", "-c", run.exec}, so);
}

core::UndoRecord app_undo(const core::Child& app)
{
    return {core::UndoOp::kill_group, "app", "", app.pid(), core::process_start_time(app.pid())};
}

}  // namespace

int up_gadgets(const profile::Profile& prof, const core::StateDir& sd, const GadgetRun& run, json& out, std::vector<std::string>& made)
{
    usb::UpOptions opt;
    opt.force = run.force;
    opt.timeout = run.timeout;
    if (auto s = usb::prepare_kernel(prof, opt); !s) return report(s.error());
    int rc = 0;
    for (auto& g : prof.gadgets) {
        // --exec with FunctionFS: start the app once its instances are mounted (it writes the descriptors).
        opt.on_ffs_mounted = [&](core::Transaction& tx, const std::vector<std::string>& mounts) -> core::Status {
            if (run.exec.empty() || run.app->running()) return {};
            DEVEMU_TRY(child, spawn_app(run, {"DEVEMU_UNIT=" + g.name, "DEVEMU_FFS=" + core::join(mounts, ":")}));
            DEVEMU_CHECK(tx.record(app_undo(child)));
            spdlog::info("started the app (pid {}): {}", child.pid(), run.exec);
            *run.app = std::move(child);   // in the VM, run_exec detaches it once everything is up
            return {};
        };
        auto rec = usb::up(prof, g, sd, opt);
        if (!rec) {
            rc = report(rec.error());
            continue;
        }
        made.push_back(g.name);
        out.push_back({{"unit", g.name}, {"kind", "gadget"}, {"changes", (*rec)["changes"]}, {"udc", (*rec)["udc"]}, {"vid_pid", (*rec)["vid_pid"]}, {"serial", (*rec)["serial"]},
                       {"host", (*rec)["host"]}, {"luns", (*rec)["luns"]}, {"ffs", (*rec)["ffs"]}});
        if (!run.json) print_gadget(*rec, std::cout);
    }
    return rc;
}

int run_exec(Context& ctx, const GadgetRun& run, const std::vector<std::string>& units, const json& out)
{
    if (!run.app->running()) {   // not started by a FunctionFS wait: start it now
        std::vector<std::string> disks;
        for (auto& u : out)
            for (auto& l : u.value("luns", json::array()))
                if (l.contains("disk")) disks.push_back(l["disk"]);
        auto child = spawn_app(run, {"DEVEMU_UNITS=" + core::join(units, " "), "DEVEMU_DISKS=" + core::join(disks, " ")});
        if (!child) return report(child.error());
        *run.app = std::move(*child);
        // Journaled in every unit it was started for, so that `down` of any of them stops it first. (No lock: the
        // caller holds it in the VM, and released it on a host so that the app may call devemu.)
        auto sd = core::StateDir::open(ctx.state_dir, false);
        if (!sd) return report(sd.error());
        for (auto& u : units) {
            core::Transaction tx(sd->journal(u));
            if (auto s = tx.record(app_undo(*run.app)); !s) return report(s.error());
            tx.commit();
        }
    }
    if (run.in_vm) {   // in the VM the command outlives this devemu
        run.app->detach();
        return 0;
    }
    std::cout << std::flush;
    const int app_rc = wait_app(*run.app);
    spdlog::info("the app exited ({}); tearing down {}", app_rc, core::join(units, " "));
    std::vector<std::string> args(units.begin(), units.end());
    int rc = cmd_down(ctx, args);
    return rc != 0 ? rc : app_rc;
}

int cmd_gadget(Context& ctx, const Args& args)
{
    po::options_description opts("devemu gadget eject NAME [--lun N] [--force]\n       devemu gadget insert NAME FILE [--lun N] [--force]\n\n"
                                  "Media change on a removable mass-storage LUN of a gadget that is up (the host sees the medium go or come).\n"
                                  "Example: devemu gadget eject msc0; devemu gadget insert msc0 /tmp/other.img");
    opts.add_options()("lun", po::value<unsigned>()->default_value(0), "LUN number")(
        "force", "eject even when the host has locked the medium; insert a device that holds data");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 2)) return *rc;
    const auto& verb = p.positional[0];
    if (verb != "eject" && verb != "insert") return report({core::Errc::invalid_input, "unknown gadget command '" + verb + "'", "", "eject or insert"});
    if (verb == "insert" && p.positional.size() != 3)
        return report({core::Errc::invalid_input, "insert needs NAME and FILE", "", "devemu gadget insert msc0 /path/to/image"});
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    const auto lun = p.vm["lun"].as<unsigned>();
    if (auto rec = sd->load(p.positional[1]); rec && rec->value("kind", "") == "vm") {
        // A gadget of `up --vm`: the media change happens in the VM (FILE is a path there).
        std::vector<std::string> a = guest_devemu({"gadget", verb, p.positional[1], "--lun", std::to_string(lun)});
        if (verb == "insert") a.push_back(p.positional[2]);
        if (p.has("force")) a.push_back("--force");
        if (p.has("json")) a.push_back("--json");
        auto r = vm_exec(*rec, a, std::cout, std::cerr);
        return r ? *r : report(r.error());
    }
    auto s = usb::change_media(*sd, p.positional[1], lun, verb == "insert" ? p.positional[2] : "", p.has("force"), usb::Roots{});
    if (!s) return report(s.error());
    if (p.has("json")) std::cout << json{{"unit", p.positional[1]}, {"lun", lun}, {"medium", verb == "insert" ? p.positional[2] : ""}}.dump() << "\n";
    else std::cout << p.positional[1] << " LUN " << lun << ": " << (verb == "insert" ? "medium " + p.positional[2] : std::string("ejected")) << "\n";
    return 0;
}

int check_usb(Context& ctx, const json* rec, const std::string& what, bool as_json, std::uint64_t bench_bytes, bool write)
{
    usb::DeviceMatch m;
    usb::CheckOptions opt;
    opt.bench = bench_bytes > 0;
    if (bench_bytes) opt.bench_bytes = bench_bytes;
    opt.write = write;
    if (rec) {
        auto vp = usb::parse_vid_pid(rec->value("vid_pid", ""));
        if (!vp) return report({core::Errc::invalid_input, "the unit record has no VID:PID", what, "devemu down and up again"});
        m = *vp;
        m.serial = rec->value("serial", "");
        const json host = rec->value("host", json::object());
        m.bus = host.value("bus", 0);
        m.device = host.value("device", 0);
        const json luns = rec->value("luns", json::array());
        if (!luns.empty()) {
            opt.expect_luns = static_cast<int>(luns.size());
            for (auto& l : luns) {
                opt.expect_readonly.push_back(l.value("readonly", false));
                std::uint64_t size = 0;
                if (const std::string f = l.value("file", ""); !f.empty()) {
                    std::error_code ec;
                    if (std::filesystem::is_regular_file(f, ec)) size = std::filesystem::file_size(f, ec);
                    else if (std::filesystem::is_block_file(f, ec)) size = backing::block_device_size(f).value_or(0);
                }
                opt.expect_sizes.push_back(size);
            }
        }
    } else {
        auto vp = usb::parse_vid_pid(what);
        if (!vp) return report({core::Errc::invalid_input, "'" + what + "' is neither a unit nor VID:PID", what, "devemu ls; or e.g. devemu check 1d6b:0104"});
        m = *vp;
    }
    auto r = usb::check_device(m, opt);
    if (rec && rec->value("host", json::object()).contains("sysfs")) {
        // The checker detached usb-storage; it is back now, but the disks take a moment (and may get new names).
        json updated = *rec;
        bool all = false;
        for (int i = 0; i < 200 && !(all = usb::refresh_disks(updated, usb::Roots{})); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!all) spdlog::warn("{}: not every LUN has a disk again after the check (see dmesg)", what);
        if (auto sd = core::StateDir::open(ctx.state_dir)) (void)sd->save(what, updated);
    }
    if (!r) return report(r.error());
    if (as_json) std::cout << r->to_json().dump(2) << "\n";
    else {
        std::cout << what << ": " << r->kind << " device " << r->device.value("vid_pid", "") << " on bus " << r->device.value("bus", 0) << " device "
                  << r->device.value("device", 0) << "\n";
        for (auto& i : r->items)
            std::cout << "[" << (i.result == "pass" ? " ok " : i.result == "fail" ? "FAIL" : "info") << "] " << (i.lun.empty() ? "" : "LUN " + i.lun + ": ")
                      << i.name << (i.detail.empty() ? "" : " — " + i.detail) << "\n";
    }
    return r->ok() ? 0 : 1;
}

}  // namespace devemu::cli
