// devemu up --vm PROFILE: boot a VM of the distribution kernel that runs `devemu up` on the profile, forward its
// iSCSI portals to 127.0.0.1, and record it as one unit whose `down` removes everything.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "ceph/image.hpp"
#include "ceph/prepare.hpp"
#include "ceph/rbd_up.hpp"
#include "vm/capture.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/netns.hpp"
#include "core/text.hpp"
#include "core/interrupt.hpp"
#include "core/transaction.hpp"
#include "lio/access.hpp"
#include "lio/kind.hpp"
#include "lio/saveconfig.hpp"
#include "profile/profile.hpp"
#include "vm/image.hpp"
#include "vm/kernel.hpp"
#include "vm/record.hpp"
#include "vm/runner.hpp"
#include "vm/unit.hpp"
#include "vm/unit_up_detail.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;
using nlohmann::json;

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
    const int n = 10 + static_cast<int>(core::parse_number(tap.ifname.substr(6)).value_or(0) % 240);
    CephAttach a{std::move(tap), fmt::format("10.99.0.{}/{}", n, ceph::kPrefix), fmt::format("52:54:00:63:00:{:02x}", n), "", ""};
    DEVEMU_TRY(secret, conn.secret());
    a.secret = secret + "\n";
    a.conn = ceph::to_json(ceph::Conn{conn.mon_host, conn.user, "", kGuestCephSecret, "", "", ""}).dump();
    return a;
}

// Everything one `up --vm` builds up, so each phase is a function and a failure undoes what was made.
struct Launch {
    profile::Profile prof;
    std::string name;
    VmConfig cfg;
    RunSpec run;
    json forwards = json::object();
    ceph::Prepared prep;
    std::optional<CephAttach> attached;
    bool saveconfig = false;   // import --vm: the guest imports a saveconfig.json
};

core::Result<Launch> plan_launch(const core::StateDir& sd, const UpVmRequest& req, const profile::Profile& prof)
{
    DEVEMU_CHECK(profile::check_exposure(prof, req.insecure));
    if (prof.targets.empty() && prof.gadgets.empty())
        return core::fail(core::Errc::invalid_input, "the profile has no [[target]] and no [[gadget]]", prof.file, "");
    Launch l{prof};
    l.saveconfig = req.saveconfig;
    l.name = vm_unit_name(prof);
    if (sd.load(l.name)) return core::fail(core::Errc::busy, "unit '" + l.name + "' is already up", sd.root().string(), "devemu down " + l.name + " first");
    const bool host_root = needs_host_root(prof, !req.exec.empty());
    l.cfg.cache_dir = req.cache_dir;
    l.cfg.run_dir = sd.unit_dir(l.name);
    l.cfg.net = l.run.net = true;
    for (auto& f : portal_forwards(prof)) {
        DEVEMU_TRY(port, core::free_loopback_port());
        l.cfg.forwards.push_back({port, f.guest});
        l.forwards[f.key] = port;
    }
    l.cfg.initrd = l.cfg.run_dir / "initrd.cpio";
    l.run.load = {"configfs"};
    if (host_root) {
        l.run.host_root = l.cfg.host_root = true;
        std::error_code ec;
        l.run.cwd = fs::current_path(ec).string();
    } else {
        l.run.binaries = {core::self_exe()};
        l.run.runtime_images = true;
        l.run.files = {fs::absolute(prof.file)};
    }
    l.run.argv = guest_devemu(guest_apply_args(req, fs::absolute(prof.file).string()));
    if (!req.exec.empty()) l.run.argv.insert(l.run.argv.end(), {"--exec", req.exec});
    for (auto& [t, port] : l.forwards.items()) l.run.argv.push_back("--advertise=" + t + "=" + std::to_string(port.get<int>()));
    // Gadgets: a writable share the guest's `devemu capture` writes into, so the pcapng lands on the host
    // (vm/capture.hpp) at file speed, not through the serial console (~200 KB/s). Only the device is there from
    // boot: the guest mounts it at the first capture (loading 9p at boot cost 0.6 s of a 1.9 s boot under TCG).
    if (!prof.gadgets.empty()) l.cfg.shares.push_back({capture_dir(l.cfg.run_dir), kGuestCaptureDir});
    l.run.down_argv = guest_devemu({"-q", "down", "--all"});
    l.run.stay = true;
    l.run.exec_ports = l.cfg.exec_ports = kExecPorts;
    l.run.load.push_back("virtio_console");
    l.run.load.push_back("virtio_blk");   // the host's backing files, and media `gadget insert` plugs in later
    return l;
}

// rbd backstores: the host makes clusters, pools and images (journaled in `tx`: `down` removes an ephemeral image
// this `up` made); the guest's devemu only maps them. For cluster = "local", the VM gets a NIC on its network.
core::Status prepare_host_rbd(const core::StateDir& sd, const UpVmRequest& req, core::Transaction& tx, Launch& l)
{
    if (!ceph::has_rbd(l.prof)) return {};
    DEVEMU_TRY(prep, ceph::prepare_rbd(l.prof, {}, sd, &tx, json::object(), ceph::RbdUp{req.force, false, ""}));
    l.prep = prep;
    if (l.prep.uses_local) {
        DEVEMU_TRY(a, attach_local_cluster(sd));
        l.attached = std::move(a);
        l.cfg.tap_fd = l.attached->tap.fd.get();
        l.cfg.tap_mac = l.attached->mac;
        l.run.eth1_addr = l.attached->addr;
        l.run.secret_files = {{kGuestCephSecret, l.attached->secret}, {kGuestCephConn, l.attached->conn}};
        l.run.argv.push_back(std::string("--ceph-local=") + kGuestCephConn);
    }
    for (auto& b : l.prof.backstores)   // a real cluster's keyring: the guest reads it at the same path
        if (b.type == profile::BackstoreType::rbd && b.cluster != "local" && !b.keyring.empty() && !l.run.host_root) l.run.files.push_back(b.keyring);
    return {};
}

// Backstores on host files and devices: the VM gets each as a virtio disk (vm/host_disks.hpp), the guest serves the
// disk in place of the path.
core::Status prepare_host_disks(const core::StateDir& sd, const UpVmRequest& req, core::Transaction& tx, Launch& l)
{
    DEVEMU_TRY(disks, plan_host_disks(l.prof, tx, req.force));
    if (disks.empty()) return {};
    // Two VMs writing one file would corrupt it (qemu's lock would refuse the second, in words less clear).
    for (auto& d : disks)
        if (auto other = vm_serving(sd, d.path.string()))
            return core::fail(core::Errc::busy, "the VM of unit '" + other->unit + "' serves this file already (" + other->what + ")", d.path.string(),
                              "devemu down " + other->unit + " first, or give this profile a copy");
    for (auto& d : disks)
        for (auto& b : d.backstores) l.run.argv.push_back("--host-disk=" + b + "=" + d.serial);
    l.cfg.disks = std::move(disks);
    return {};
}

// The guest's `devemu up` has ended (DEVEMU-EXIT): its error as ours, or its units once their forwards answer.
core::Result<json> guest_units(const DetachedVm& vmh, const Launch& l)
{
    DEVEMU_TRY(exit_line, control(vmh.ctl_socket, "", "DEVEMU-EXIT", std::chrono::seconds(300), vmh.pid));
    const int guest_rc = static_cast<int>(core::parse_number(exit_line.substr(std::min<std::size_t>(exit_line.size(), 12))).value_or(1));
    const auto err = core::read_file(l.cfg.run_dir / "stderr.log").value_or("");
    if (guest_rc != 0) return std::unexpected(guest_up_error(guest_rc, err));
    auto units = guest_units_of(core::read_file(l.cfg.run_dir / "stdout.log").value_or(""), l.saveconfig);
    if (units.is_discarded()) return core::fail(core::Errc::kernel, "unreadable output from devemu in the VM", (l.cfg.run_dir / "stdout.log").string(), "");
    DEVEMU_CHECK(forwards_answer(l.forwards.get<std::map<std::string, std::uint16_t>>(), l.name));
    return units;
}

// A failed VM's console, copied out of its run directory (which `down` removes) to STATE/logs/NAME.console.log.
std::optional<fs::path> keep_console(const core::StateDir& sd, const std::string& name, const fs::path& run_dir)
{
    const fs::path to = sd.root() / "logs" / (name + ".console.log");
    auto text = core::read_file(run_dir / "console.log");
    if (!text || !core::make_dirs(to.parent_path(), 0700) || !core::write_file_atomic(to, *text, 0600)) return std::nullopt;
    return to;
}

// Starts qemu and records the unit as "booting": from here on, `down` (or a failure below) removes everything.
core::Result<VmRecord> start_vm(const core::StateDir& sd, core::Transaction& tx, Launch& l, DetachedVm& vmh)
{
    // Journal before acting: the pid is not known yet, so name qemu by its unit's control socket, which is in its
    // command line. A kill -9 of this devemu at any point leaves a journal that `down` can reap qemu from.
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "qemu", (l.cfg.run_dir / "ctl.sock").string(), 0, 0}));
    DEVEMU_TRY(h, start_detached(l.cfg));
    vmh = h;
    l.attached.reset();   // qemu holds the tap now: it goes when qemu does
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "qemu", "", vmh.pid, vmh.start_time}));
    VmRecord rec;
    rec.name = l.name;
    rec.profile = fs::absolute(l.prof.file).string();
    rec.pid = vmh.pid;
    rec.start_time = vmh.start_time;
    rec.ctl = vmh.ctl_socket.string();
    rec.run_dir = l.cfg.run_dir.string();
    rec.devemu = core::self_exe().string();
    rec.forwards = l.forwards.get<std::map<std::string, std::uint16_t>>();
    for (auto& f : portal_forwards(l.prof)) rec.guest_ports[f.key] = f.guest;
    rec.host_root = l.run.host_root;
    rec.kvm = vmh.accel_kvm;
    rec.uses_ceph_local = l.prep.uses_local;
    rec.ceph_eth1 = l.run.eth1_addr;
    rec.ceph_local_started = l.prep.started_local;
    rec.rbd_images = l.prep.images;
    for (auto& d : l.cfg.disks) {
        for (auto& b : d.backstores) rec.host_disks[b] = d.path.string();
        rec.media[d.serial] = d.path.string();
    }
    DEVEMU_CHECK(sd.save(l.name, rec));
    return rec;
}

}  // namespace

core::Result<profile::Profile> load_vm_profile(const UpVmRequest& req, std::vector<std::string>* notes)
{
    if (!req.saveconfig) return profile::load(req.profile);
    DEVEMU_TRY(text, core::read_file(req.profile));
    const auto doc = json::parse(text, nullptr, false);
    if (doc.is_discarded()) return core::fail(core::Errc::invalid_input, "not valid JSON", req.profile, "pass the file targetcli's saveconfig wrote");
    DEVEMU_TRY(im, lio::from_saveconfig(doc, req.profile));
    if (notes) notes->insert(notes->end(), im.notes.begin(), im.notes.end());
    return im.profile;
}

std::vector<std::string> guest_apply_args(const UpVmRequest& req, const std::string& file)
{
    std::vector<std::string> a = {"-q", req.saveconfig ? "import" : "up", "--in-vm", "--json", "--secrets", file};
    if (!req.saveconfig) a.insert(a.end(), {"--timeout", std::to_string(req.timeout)});
    if (req.insecure) a.push_back("--insecure");
    return a;
}

json guest_units_of(const std::string& out, bool saveconfig)
{
    auto j = json::parse(out.empty() ? (saveconfig ? "{}" : "[]") : out, nullptr, false);
    if (j.is_discarded() || !saveconfig) return j.is_array() || j.is_discarded() ? j : json(json::value_t::discarded);
    json units = json::array();   // import's {"targets": [{unit, ok, changes, access}], "notes"}: the targets it brought up
    for (auto& t : j.value("targets", json::array()))
        if (t.value("ok", false)) units.push_back({{"unit", t.value("unit", "")}, {"kind", "target"}, {"changes", t.value("changes", 0)}, {"access", t.value("access", json::object())}});
    return units;
}

core::Status forwards_answer(const std::map<std::string, std::uint16_t>& forwards, const std::string& name)
{
    for (auto& [key, port] : forwards) {
        bool ok = false;
        for (int i = 0; i < 100 && !(ok = core::loopback_port_answers(port)); ++i) {
            if (core::interrupted()) return core::fail(core::Errc::interrupted, "interrupted", name, "");
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (!ok) return core::fail(core::Errc::timeout, "the portal of " + key + " does not answer on 127.0.0.1:" + std::to_string(port), name, "");
    }
    return {};
}

std::string data_line(const std::vector<std::string>& backstores, const fs::path& path, const std::string& serial)
{
    return fmt::format("  data       {} on the host: {} (the VM's virtio disk {}; kept after down)", core::join(backstores, ", "), path.string(), serial);
}

core::Error guest_up_error(int rc, const std::string& err)
{
    auto line = core::last_line(err);
    if (line.starts_with("devemu: error: ")) line = line.substr(15);
    const auto code = rc == 1 ? core::Errc::check_failed : rc == 124 ? core::Errc::timeout : core::Errc::invalid_input;
    return core::Error{code, line.empty() ? "devemu up failed in the VM (exit " + std::to_string(rc) + ")" : line, "", ""};
}

std::string vm_unit_name(const profile::Profile& prof)
{
    const std::size_t n_units = prof.targets.size() + prof.gadgets.size();
    return n_units > 1 ? fs::path(prof.file).stem().string() : !prof.targets.empty() ? prof.targets[0].name : prof.gadgets[0].name;
}

bool needs_host_root(const profile::Profile& prof, bool exec)
{
    // A FunctionFS app (or any --exec command) runs in the VM: give it the host's / so its binary is there.
    bool host_root = exec;
    for (auto& g : prof.gadgets)
        for (auto& f : g.functions) host_root = host_root || f.type == profile::FunctionType::ffs;
    // So do the host tools a profile's kernel side runs: multipath-tools and udevd (multipath = true), dmsetup (faults
    // under a kernel backstore).
    for (auto& t : prof.targets) host_root = host_root || t.multipath;
    for (auto& b : prof.backstores) host_root = host_root || (b.type != profile::BackstoreType::user && !b.faults.empty());
    return host_root;
}

std::vector<PortalForward> portal_forwards(const profile::Profile& prof)
{
    std::vector<PortalForward> out;
    for (auto& t : prof.targets)
        if (t.fabric == profile::Fabric::iscsi)
            for (std::size_t k = 0; k < std::max<std::size_t>(1, t.paths.size()); ++k) out.push_back({lio::forward_key(t.name, k), t.path_portal(k).port});
    return out;
}

namespace {

// What a user needs of one guest target, with the forwarded portal in place of the guest's; the CHAP secret only
// when asked (the guest printed it: it runs with --secrets; the 0600 record keeps it).
json forwarded_access(json info, const std::string& portal, bool secrets, const json& forwards, const std::string& unit)
{
    if (!portal.empty()) {
        info["portal"] = portal;
        json urls = json::array();
        for (auto& url : info.value("urls", json::array())) {
            std::string s = lio::with_portal(url, portal);
            if (!secrets && s.find('@') != std::string::npos) s = s.substr(0, s.find('%') + 1) + "SECRET" + s.substr(s.find('@'));
            if (auto tp = s.find("target_password="); !secrets && tp != std::string::npos) s = s.substr(0, tp + 16) + "SECRET";
            urls.push_back(s);
        }
        info["urls"] = urls;
        // Discovery lists 127.0.0.1:PORT too (a second portal in the guest on the forwarded port number).
        info["iscsiadm"] = json::array({"iscsiadm -m discovery -t sendtargets -p " + portal,
                                        "iscsiadm -m node -T " + info.value("wwn", "") + " -p " + portal + " --login"});
    }
    // Paths 2..N: each its own forwarded portal, and its LUNs' URLs through it.
    if (info.contains("paths") && info["paths"].is_array() && !info["paths"].empty() && !portal.empty()) info["paths"][0]["portal"] = portal;
    if (info.contains("paths") && info["paths"].is_array())
        for (std::size_t k = 1; k < info["paths"].size(); ++k)
            if (const auto key = lio::forward_key(unit, k); forwards.contains(key)) {
                const std::string fwd = "127.0.0.1:" + std::to_string(forwards[key].get<int>());
                info["paths"][k]["portal"] = fwd;
                json urls = json::array();
                for (auto& url : info.value("urls", json::array())) urls.push_back(lio::with_portal(url, fwd));
                info["paths"][k]["urls"] = urls;
            }
    if (!secrets) info.erase("chap_secret");
    return info;
}

}  // namespace

void take_guest_units(const json& units, const std::string& vm_name, const json& forwards, bool secrets, std::vector<GuestUnit>& stored, UpVmResult& res)
{
    for (auto& u : units) {
        const std::string unit = u["unit"];
        if (u.value("kind", "") == "gadget") {
            // Its host side is the VM's own kernel: /dev/sdX and the bus numbers are the guest's.
            json g = u;
            g["name"] = unit;
            g["state"] = "up in VM " + vm_name;
            stored.push_back({unit, "gadget", json::object(), "", g});
            res.shown.push_back({{"unit", unit}, {"vm", vm_name}, {"gadget", g}});
            if (const auto* k = core::find_kind("gadget"); k && k->describe)
                for (auto& line : k->describe(g, core::DescribeFor::up, secrets).lines) res.lines.push_back(line);
            continue;
        }
        const std::string portal = forwards.contains(unit) ? "127.0.0.1:" + std::to_string(forwards[unit].get<int>()) : "";
        const json info = forwarded_access(u["access"], portal, secrets, forwards, unit);
        stored.push_back({unit, "target", u["access"], portal, json::object()});
        res.shown.push_back({{"unit", unit}, {"vm", vm_name}, {"access", info}});
        for (auto& line : lio::target_lines({{"name", unit}, {"state", "up in VM " + vm_name}, {"changes", u["changes"]}}, info)) res.lines.push_back(line);
    }
}

core::Result<UpVmResult> up_vm(const core::StateDir& sd, const UpVmRequest& req)
{
    std::vector<std::string> notes;
    DEVEMU_TRY(prof, load_vm_profile(req, &notes));
    std::error_code ec;
    const auto file = fs::weakly_canonical(fs::absolute(prof.file), ec);
    for (auto& rec : vm_records(sd))   // a VM brought up from this profile runs: its guest applies the difference
        if (!rec.profile.empty() && fs::weakly_canonical(rec.profile, ec) == file) {
            auto res = reup_vm(sd, req, prof, rec);
            if (res) res->notes = notes;
            return res;
        }
    // From here to the record's "up", Ctrl-C (or SIGTERM, SIGHUP) undoes what this made: no qemu, no record left.
    core::InterruptScope interrupt_scope;
    DEVEMU_TRY(l, plan_launch(sd, req, prof));
    DEVEMU_TRY(kernel, find_kernel(req.kernel, req.cache_dir));
    DEVEMU_TRY(base, build_base({kernel}, req.cache_dir));
    l.cfg.kernel = kernel;
    DEVEMU_CHECK(core::make_dirs(l.cfg.run_dir, 0700));
    if (!l.cfg.shares.empty()) DEVEMU_CHECK(core::make_dirs(capture_dir(l.cfg.run_dir), 0700));
    core::Transaction tx(sd.journal(l.name));
    DetachedVm vmh;
    core::Result<VmRecord> rec = std::unexpected(core::Error{});
    if (auto s = prepare_host_rbd(sd, req, tx, l); !s) rec = std::unexpected(s.error());
    else if (auto d = prepare_host_disks(sd, req, tx, l); !d) rec = std::unexpected(d.error());
    else if (auto b = build_initrd(base, kernel, l.run, l.cfg.initrd); !b) rec = std::unexpected(b.error());
    else if (core::interrupted()) rec = core::fail(core::Errc::interrupted, "interrupted", l.name, "");
    else rec = start_vm(sd, tx, l, vmh);
    if (!rec) {   // nothing runs yet: undo what the host made (an image, a cluster this call started)
        if (auto r = tx.rollback(); !r) spdlog::error("rollback incomplete: {}", r.error().message());
        fs::remove_all(l.cfg.run_dir, ec);
        ceph::stop_local_cluster_if_ours(sd, l.prep.started_local, l.name);
        return std::unexpected(rec.error());
    }
    auto units = guest_units(vmh, l);
    if (!units) {   // the record and journal exist: stop through the one path that removes everything
        auto e = units.error();
        if (e.code == core::Errc::interrupted) e = {core::Errc::interrupted, "interrupted: the VM is stopped and nothing of it is left", l.name, ""};
        else if (e.code != core::Errc::invalid_input && e.code != core::Errc::check_failed) {
            if (auto err = core::last_line(core::read_file(l.cfg.run_dir / "stderr.log").value_or("")); !err.empty()) e.what += "; in the VM: " + err;
            const auto said = core::read_file(l.cfg.run_dir / "qemu.log").value_or("");
            if (!core::trim(said).empty()) {   // qemu's own complaint (a disk it cannot open or lock): it never booted, no console
                e = qemu_error(said, l.name, e.code);
            } else if (auto kept = keep_console(sd, l.name, l.cfg.run_dir)) {   // the VM hung, stopped or broke
                e.where = l.name;
                e.fix = "read the VM's console, kept in " + kept->string();
            }
        }
        tx.commit();
        // Interrupted: the guest may not listen yet (a boot), and it has made nothing to keep, so qemu is killed.
        if (auto s = stop_vm_unit(sd, l.name, *rec, e.code != core::Errc::interrupted); !s) spdlog::error("{}", s.error().message());
        return std::unexpected(e);
    }
    UpVmResult res;
    res.notes = notes;
    take_guest_units(*units, l.name, l.forwards, req.secrets, rec->units, res);
    if (!rec->host_disks.empty())
        for (auto& shown : res.shown) shown["host_disks"] = rec->host_disks;
    rec->state = "up";
    tx.commit();
    DEVEMU_CHECK(sd.save(l.name, *rec));
    for (auto& d : l.cfg.disks) res.lines.push_back(data_line(d.backstores, d.path, d.serial));
    res.lines.push_back(fmt::format("  vm         {} (pid {}, {}); stop it with: devemu down {}", l.name, vmh.pid, vmh.accel_kvm ? "kvm" : "tcg", l.name));
    return res;
}

}  // namespace devemu::vm
