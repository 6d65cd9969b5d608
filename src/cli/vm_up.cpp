// devemu up --vm PROFILE: a long-lived VM of the distribution kernel runs `devemu up` on the profile (the same
// code path as on a host with LIO), its iSCSI portals forwarded to 127.0.0.1 on free ports.
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "cli/cli.hpp"
#include "cli/gadget.hpp"
#include "ceph/image.hpp"
#include "cli/rbd.hpp"
#include "core/unit_kind.hpp"
#include "core/netns.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"
#include "vm/image.hpp"
#include "vm/runner.hpp"

using nlohmann::json;
namespace fs = std::filesystem;

namespace devemu::cli {

namespace {

// The VM's second NIC on the local Ceph cluster's bridge, and how devemu in the guest reaches the cluster from
// there: the same monitor address, the admin key in a 0600 file of the initramfs (itself 0600 in the run dir).
struct CephAttach {
    core::Tap tap;
    std::string addr, mac;
    std::string secret, conn;   // for the guest's /devemu/ceph.secret and /devemu/ceph-local.json
};
constexpr const char* kGuestCephConn = "/devemu/ceph-local.json";
constexpr const char* kGuestCephSecret = "/devemu/ceph.secret";
core::Result<CephAttach> attach_local_cluster(const core::StateDir& sd)
{
    DEVEMU_TRY(conn, ceph::local_conn(sd));
    DEVEMU_TRY(tap, core::open_tap(conn.netns, ceph::kBridge));
    // devemuN: N is the lowest number free in the namespace, so live VMs never share an address.
    const int n = 10 + std::atoi(tap.ifname.c_str() + 6) % 240;
    CephAttach a{std::move(tap), fmt::format("10.99.0.{}/{}", n, ceph::kPrefix), fmt::format("52:54:00:63:00:{:02x}", n), "", ""};
    DEVEMU_TRY(secret, conn.secret());
    a.secret = secret + "\n";
    a.conn = ceph::to_json(ceph::Conn{conn.mon_host, conn.user, "", kGuestCephSecret, "", "", ""}).dump();
    return a;
}

}  // namespace

core::Status stop_vm_unit(const core::StateDir& sd, const std::string& name, const json& rec)
{
    const pid_t pid = rec.value("pid", 0);
    const std::uint64_t start = rec.value("start_time", std::uint64_t{0});
    const bool alive = pid > 0 && core::process_start_time(pid) == start;
    if (alive) {
        // Clean first: the guest removes its targets (its own journal) and powers off; then the journal's kill.
        auto r = vm::control(rec.value("ctl", ""), "down\n", "DEVEMU-DOWN", std::chrono::seconds(60), pid);
        if (!r) spdlog::warn("{}: clean shutdown failed ({}); stopping qemu", name, r.error().message());
        for (int i = 0; i < 100 && core::process_start_time(pid) == start; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    DEVEMU_CHECK(core::replay_journal(sd.journal(name)));
    std::error_code ec;
    if (rec.contains("run_dir")) fs::remove_all(rec["run_dir"].get<std::string>(), ec);
    DEVEMU_CHECK(sd.forget(name));
    stop_local_cluster_if_ours(sd, rec.value("ceph_local_started", false), name);
    return {};
}

void register_vm_kind()
{
    core::register_kind({"vm", [](const core::StateDir& sd, const std::string& unit, const json& rec) { return stop_vm_unit(sd, unit, rec); },
                         [](const json& rec) {
                             core::Health h;
                             if (core::process_start_time(rec.value("pid", 0)) != rec.value("start_time", std::uint64_t{0}))
                                 h = {"dead", {"qemu is gone; run devemu down " + rec.value("name", "")}};
                             return h;
                         }});
}

std::vector<std::string> guest_devemu(const std::vector<std::string>& args)
{
    std::vector<std::string> argv = {core::self_exe().string(), "--state-dir", "/run/devemu"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

core::Result<int> vm_exec(const json& rec, const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    const pid_t pid = rec.value("pid", 0);
    if (pid <= 0 || core::process_start_time(pid) != rec.value("start_time", std::uint64_t{0}))
        return core::fail(core::Errc::missing, "the VM of this unit is not running", rec.value("name", ""), "devemu down " + rec.value("name", "") + " and up again");
    const fs::path dir = rec.value("run_dir", "");
    auto size_of = [](const fs::path& p) { std::error_code ec; auto n = fs::file_size(p, ec); return ec ? std::uintmax_t{0} : n; };
    const auto out0 = size_of(dir / "stdout.log"), err0 = size_of(dir / "stderr.log");
    std::string line = "exec ";
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].find_first_of("\n\x1f") != std::string::npos)
            return core::fail(core::Errc::invalid_input, "an argument holds a newline", args[i], "");
        line += (i ? "\x1f" : "") + args[i];
    }
    DEVEMU_TRY(ran, vm::control(rec.value("ctl", ""), line + "\n", "DEVEMU-RAN", std::chrono::seconds(900), pid));
    // The guest drained its serial lines before answering; let qemu's file writes land.
    for (int i = 0, stable = 0; i < 40 && stable < 3; ++i) {
        auto a = size_of(dir / "stdout.log") + size_of(dir / "stderr.log");
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        stable = a == size_of(dir / "stdout.log") + size_of(dir / "stderr.log") ? stable + 1 : 0;
    }
    auto tail_from = [](const fs::path& p, std::uintmax_t off) {
        auto all = core::read_file(p).value_or("");
        auto s = off < all.size() ? all.substr(off) : std::string();
        std::erase(s, '\r');
        return s;
    };
    out << tail_from(dir / "stdout.log", out0) << std::flush;
    err << tail_from(dir / "stderr.log", err0) << std::flush;
    return std::atoi(ran.c_str() + 11);
}

int cmd_up_vm(Context& ctx, const std::vector<std::string>& files, const VmUpOptions& vo)
{
    const bool as_json = vo.json, secrets = vo.secrets;
    if (files.size() != 1) return report({core::Errc::invalid_input, "up --vm takes one profile", "", "run one VM per profile"});
    auto prof = profile::load(files[0]);
    if (!prof) return report(prof.error());
    if (auto s = profile::check_exposure(*prof, vo.insecure); !s) return report(s.error());
    if (prof->targets.empty() && prof->gadgets.empty())
        return report({core::Errc::invalid_input, "the profile has no [[target]] and no [[gadget]]", prof->file, ""});
    const std::size_t n_units = prof->targets.size() + prof->gadgets.size();
    const std::string name = n_units > 1 ? fs::path(prof->file).stem().string()
                           : !prof->targets.empty() ? prof->targets[0].name : prof->gadgets[0].name;
    // A FunctionFS app (or any --exec command) runs in the VM: give it the host's / so its binary is there.
    bool host_root = !vo.exec.empty();
    for (auto& g : prof->gadgets)
        for (auto& f : g.functions) host_root = host_root || f.type == profile::FunctionType::ffs;

    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    if (sd->load(name)) return report({core::Errc::busy, "unit '" + name + "' is already up", ctx.state_dir.string(), "devemu down " + name + " first"});
    auto kernel = vm::find_kernel(ctx.kernel, ctx.cache_dir);
    if (!kernel) return report(kernel.error());
    auto base = vm::build_base({*kernel}, ctx.cache_dir);
    if (!base) return report(base.error());

    vm::VmConfig cfg;
    cfg.kernel = *kernel;
    cfg.cache_dir = ctx.cache_dir;
    cfg.run_dir = sd->unit_dir(name);
    cfg.net = true;
    json forwards = json::object();
    for (auto& t : prof->targets)
        if (t.fabric == profile::Fabric::iscsi) {
            auto port = core::free_loopback_port();
            if (!port) return report(port.error());
            cfg.forwards.push_back({*port, t.portal.port});
            forwards[t.name] = *port;
        }
    if (auto s = core::make_dirs(cfg.run_dir, 0700); !s) return report(s.error());
    cfg.initrd = cfg.run_dir / "initrd.cpio";
    const auto self = core::self_exe();
    vm::RunSpec run;
    run.net = true;
    run.load = {"configfs"};
    if (host_root) {
        run.host_root = cfg.host_root = true;
        std::error_code ec;
        run.cwd = fs::current_path(ec).string();
    } else {
        run.binaries = {self};
        run.files = {fs::absolute(prof->file)};
    }
    run.argv = guest_devemu({"-q", "up", "--in-vm", "--json", "--secrets", fs::absolute(prof->file).string(), "--timeout", std::to_string(vo.timeout)});
    if (!vo.exec.empty()) run.argv.insert(run.argv.end(), {"--exec", vo.exec});
    if (vo.insecure) run.argv.push_back("--insecure");
    for (auto& [t, port] : forwards.items()) run.argv.push_back("--advertise=" + t + "=" + std::to_string(port.get<int>()));
    run.down_argv = guest_devemu({"-q", "down", "--all"});
    run.stay = true;

    core::Transaction tx(sd->journal(name));
    // rbd backstores: the host makes clusters, pools and images (journaled here: `down` removes an ephemeral image
    // this `up` made); the guest's devemu only maps them. For cluster = "local", the VM gets a NIC on its network.
    std::optional<CephAttach> attached;
    ceph::Prepared prep;
    auto undo_host_side = [&] {
        if (auto r = tx.rollback(); !r) spdlog::error("rollback incomplete: {}", r.error().message());
        stop_local_cluster_if_ours(*sd, prep.started_local, name);
    };
    if (ceph::has_rbd(*prof)) {
        auto pr = prepare_rbd(*prof, {}, *sd, &tx, json::object(), RbdUp{vo.force, false, "", ctx.verbosity});
        if (!pr) {
            undo_host_side();
            return report(pr.error());
        }
        prep = *pr;
        if (prep.uses_local) {
            auto a = attach_local_cluster(*sd);
            if (!a) {
                undo_host_side();
                return report(a.error());
            }
            attached = std::move(*a);
            cfg.tap_fd = attached->tap.fd.get();
            cfg.tap_mac = attached->mac;
            run.eth1_addr = attached->addr;
            run.secret_files = {{kGuestCephSecret, attached->secret}, {kGuestCephConn, attached->conn}};
            run.argv.push_back(std::string("--ceph-local=") + kGuestCephConn);
        }
        for (auto& b : prof->backstores)   // a real cluster's keyring: the guest reads it at the same path
            if (b.type == profile::BackstoreType::rbd && b.cluster != "local" && !b.keyring.empty() && !run.host_root) run.files.push_back(b.keyring);
    }
    if (auto s = vm::build_initrd(*base, *kernel, run, cfg.initrd); !s) {
        undo_host_side();
        return report(s.error());
    }
    // Journal before acting: the pid is not known yet, so name qemu by its unit's control socket, which is in its
    // command line. A kill -9 of this devemu at any point leaves a journal that `down` can reap qemu from.
    if (auto s = tx.record({core::UndoOp::kill, "qemu", (cfg.run_dir / "ctl.sock").string(), 0, 0}); !s) return report(s.error());
    auto vmh = vm::start_detached(cfg);
    if (!vmh) {
        undo_host_side();
        return report(vmh.error());
    }
    attached.reset();   // qemu holds the tap now: it goes when qemu does
    if (auto s = tx.record({core::UndoOp::kill, "qemu", "", vmh->pid, vmh->start_time}); !s) return report(s.error());
    json rec = {{"name", name}, {"kind", "vm"}, {"state", "booting"}, {"profile", fs::absolute(prof->file).string()},
                {"pid", vmh->pid}, {"start_time", vmh->start_time}, {"ctl", vmh->ctl_socket.string()},
                {"run_dir", cfg.run_dir.string()}, {"forwards", forwards}, {"kvm", vmh->accel_kvm}};
    if (prep.uses_local) rec["uses_ceph_local"] = true, rec["ceph_eth1"] = run.eth1_addr;
    if (prep.started_local) rec["ceph_local_started"] = true;
    if (!prep.images.empty()) rec["rbd_images"] = prep.images;
    if (auto s = sd->save(name, rec); !s) return report(s.error());

    auto fail_and_stop = [&](const core::Error& e) {
        auto err = core::read_file(cfg.run_dir / "stderr.log").value_or("");
        int rc = report(e);
        if (!core::trim(err).empty()) std::cerr << "devemu: in the VM: " << core::trim(err) << "\n";
        tx.commit();   // the record and journal exist: stop through the one path that removes everything
        if (auto s = stop_vm_unit(*sd, name, rec); !s) report(s.error());
        return rc;
    };
    auto exit_line = vm::control(vmh->ctl_socket, "", "DEVEMU-EXIT", std::chrono::seconds(300), vmh->pid);
    if (!exit_line) return fail_and_stop(exit_line.error());
    const int guest_rc = std::atoi(exit_line->c_str() + 12);
    if (guest_rc != 0) {
        auto err = core::read_file(cfg.run_dir / "stderr.log").value_or("");
        auto line = core::last_line(err);
        if (line.starts_with("devemu: error: ")) line = line.substr(15);
        core::Error e{core::Errc::invalid_input, line.empty() ? "devemu up failed in the VM (exit " + std::to_string(guest_rc) + ")" : line, "", ""};
        tx.commit();
        std::cerr << "devemu: error: " << e.message() << "\n";
        if (auto s = stop_vm_unit(*sd, name, rec); !s) report(s.error());
        return guest_rc;
    }
    auto out = core::read_file(cfg.run_dir / "stdout.log").value_or("[]");
    auto units = json::parse(out, nullptr, false);
    if (units.is_discarded()) return fail_and_stop({core::Errc::kernel, "unreadable output from devemu in the VM", (cfg.run_dir / "stdout.log").string(), ""});
    for (auto& [t, port] : forwards.items()) {
        bool ok = false;
        for (int i = 0; i < 100 && !(ok = core::loopback_port_answers(port.get<std::uint16_t>())); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!ok) return fail_and_stop({core::Errc::timeout, "the portal of " + t + " does not answer on 127.0.0.1:" + std::to_string(port.get<int>()), name, ""});
    }
    // What a user needs, with the forwarded portal in place of the guest's.
    json shown = json::array();
    json stored_units = json::array();
    for (auto& u : units) {
        const std::string unit = u["unit"];
        if (u.value("kind", "") == "gadget") {
            // Its host side is the VM's own kernel: /dev/sdX and the bus numbers are the guest's.
            json g = u;
            g["name"] = unit;
            g["state"] = "up in VM " + name;
            stored_units.push_back({{"unit", unit}, {"kind", "gadget"}, {"gadget", g}});
            shown.push_back({{"unit", unit}, {"vm", name}, {"gadget", g}});
            if (!as_json) print_gadget(g, std::cout);
            continue;
        }
        json fake_rec = {{"name", unit}, {"state", "up in VM " + name}, {"info", u["access"]}, {"changes", u["changes"]}};
        std::string portal = forwards.contains(unit) ? "127.0.0.1:" + std::to_string(forwards[unit].get<int>()) : "";
        // The guest printed secrets (it runs with --secrets); keep them in the 0600 record, show them only when asked.
        json info = u["access"];
        if (!portal.empty()) {
            info["portal"] = portal;
            json urls = json::array();
            for (auto& url : info.value("urls", json::array())) {
                std::string s = with_portal(url, portal);
                if (!secrets && s.find('@') != std::string::npos) {
                    auto pct = s.find('%');
                    s = s.substr(0, pct + 1) + "SECRET" + s.substr(s.find('@'));
                }
                if (auto tp = s.find("target_password="); !secrets && tp != std::string::npos) s = s.substr(0, tp + 16) + "SECRET";
                urls.push_back(s);
            }
            info["urls"] = urls;
            // Discovery lists 127.0.0.1:PORT too (a second portal in the guest on the forwarded port number).
            json lines = json::array({"iscsiadm -m discovery -t sendtargets -p " + portal,
                                      "iscsiadm -m node -T " + info.value("wwn", "") + " -p " + portal + " --login"});
            info["iscsiadm"] = lines;
        }
        if (!secrets) info.erase("chap_secret");
        stored_units.push_back({{"unit", unit}, {"access", u["access"]}, {"portal", portal}});
        shown.push_back({{"unit", unit}, {"vm", name}, {"access", info}});
        if (!as_json) print_unit(fake_rec, info, std::cout);
    }
    rec["state"] = "up";
    rec["units"] = stored_units;
    tx.commit();
    if (auto s = sd->save(name, rec); !s) return report(s.error());
    if (as_json) std::cout << shown.dump(2) << "\n";
    else std::cout << "  vm         " << name << " (pid " << vmh->pid << ", " << (vmh->accel_kvm ? "kvm" : "tcg") << "); stop it with: devemu down " << name << "\n";
    return 0;
}

}  // namespace devemu::cli
