#include "lio/unit.hpp"

#include "lio/record.hpp"

#include <cerrno>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/apply_unit.hpp"
#include "core/unix_socket.hpp"
#include "fault/fault.hpp"
#include "lio/access.hpp"
#include "lio/disk_limits.hpp"
#include "lio/initiator.hpp"
#include "lio/mpath.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/netns.hpp"
#include "core/process.hpp"
#include "core/kmod.hpp"
#include "core/probe.hpp"
#include "core/progress.hpp"
#include "lio/model.hpp"
#include "lio/saveconfig.hpp"

namespace devemu::lio {

using core::Errc;
using nlohmann::json;

namespace {

// Is `address` one of this machine's (in this network namespace)? Not an address literal: yes (LIO says what is
// wrong with it).
bool address_present(const std::string& address) { return core::tcp_bind_errno(address, 0) != EADDRNOTAVAIL; }

// A portal's address must be on this machine before LIO can listen on it. At boot it may come later than
// network-online.target (DHCP, a slow link): wait up to `wait` for it, then fail naming the portal, before anything
// of the unit is made (rtslib's restore fails such a portal with EADDRNOTAVAIL and never retries it).
core::Status wait_for_portal_addresses(const profile::Target& t, std::chrono::seconds wait)
{
    if (t.fabric != profile::Fabric::iscsi) return {};
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (std::size_t k = 0; k < std::max<std::size_t>(1, t.paths.size()); ++k) {
        const auto p = t.path_portal(k);
        if (p.address == "0.0.0.0" || p.address == "::" || p.address == "[::]") continue;
        while (!address_present(p.address)) {
            if (std::chrono::steady_clock::now() >= deadline) {
                core::progress_clear();
                return core::fail(Errc::missing,
                                  wait.count() ? fmt::format("portal {}:{}: the address is not on this machine after {} s", p.address, p.port, wait.count())
                                               : fmt::format("portal {}:{}: the address is not on this machine", p.address, p.port),
                                  t.name, "bring its interface up, or give up --wait-address SECONDS for it to appear");
            }
            core::progress(fmt::format("target {}: waiting for {} (portal {}:{}) to appear", t.name, p.address, p.address, p.port));
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    core::progress_clear();
    return {};
}

// One HBA per backstore: keep the recorded one, else a free PLUGIN_N. core/ is listed once per process and a
// counter moves on from there, so the cost per new backstore stays flat however many HBAs exist.
std::string pick_hba(const std::string& plugin, const json& rec, const std::string& bs, const Roots& roots, std::set<std::string>& taken)
{
    if (rec.contains("backstores") && rec["backstores"].contains(bs)) {
        auto h = rec["backstores"][bs].value("hba", "");
        if (h.starts_with(plugin + "_")) {
            taken.insert(h);
            return h;
        }
    }
    static std::mutex mu;
    std::lock_guard lock(mu);
    static std::set<std::string> existing;
    static std::map<std::string, int> next;
    static bool listed = false;
    if (!listed) {
        std::error_code ec;
        for (auto& e : fs::directory_iterator(roots.target / "core", ec)) existing.insert(e.path().filename().string());
        listed = true;
    }
    for (int& n = next[plugin];; ++n) {
        auto h = fmt::format("{}_{}", plugin, n);
        if (!taken.count(h) && !existing.count(h)) {
            taken.insert(h);
            existing.insert(h);
            return h;
        }
    }
}

core::Status security_check(const profile::Target& t, const UpOptions& opt, const std::string& file)
{
    auto s = profile::check_exposure(t, opt.insecure);
    if (!s && s.error().where.empty()) s.error().where = file;   // an imported target has no line
    return s;
}

struct Built {
    TargetModel model;
    Generated gen;
    json backstores = json::object();
};

core::Result<Built> build(const profile::Profile& p, const profile::Target& t, const json& rec, const UpOptions& opt,
                          core::Transaction* tx)
{
    Built b;
    if (rec.contains("generated")) b.gen.values = rec["generated"].get<std::map<std::string, std::string>>();
    auto& m = b.model;
    m.spec = &t;
    m.portal_address = opt.in_vm && t.portal.loopback() ? "0.0.0.0" : t.portal.address;
    // Generated once per unit and kept in its record, so a rerun of `up` changes nothing.
    auto generated = [&](const std::string& key, const std::string& given, bool wwn) -> core::Result<std::string> {
        if (!given.empty()) return given;
        if (b.gen.values.count(key)) return b.gen.values[key];
        DEVEMU_TRY(fresh, wwn ? random_hex(9) : random_secret());
        return b.gen.get(key, wwn ? "naa.5001405" + fresh : fresh);
    };
    if (t.fabric == profile::Fabric::iscsi) m.wwn = t.wwn;
    else {
        DEVEMU_TRY(wwn, generated("wwn", t.wwn, true));
        DEVEMU_TRY(iwwn, generated("initiator_wwn", t.initiator_wwn, true));
        m.wwn = wwn, m.initiator_wwn = iwwn;
    }
    // Paths: path 1 is the target itself; a loopback path K is a tcm_loop target (a SCSI host) of its own, an
    // iSCSI path K the TPG tpgt_K on its own portal (the target's port + K - 1 unless the profile gives one).
    // (A target not read from a profile, such as an imported saveconfig.json's, has no path list: one path.)
    for (std::size_t k = 0; k < std::max<std::size_t>(1, t.paths.size()); ++k) {
        const profile::Path path = k < t.paths.size() ? t.paths[k] : profile::Path{};
        PathModel pm;
        pm.alua = path.alua;
        if (t.fabric == profile::Fabric::iscsi) {
            const profile::Portal portal = t.path_portal(k);
            pm.wwn = m.wwn;
            pm.tpgt = static_cast<std::uint16_t>(k + 1);
            pm.portal_address = opt.in_vm && portal.loopback() ? "0.0.0.0" : portal.address;
            pm.port = portal.port;
            // inside up --vm: the host's forward of this portal
            if (auto a = opt.advertise.find(forward_key(t.name, k)); a != opt.advertise.end()) pm.advertised_port = a->second;
        } else if (k == 0) {
            pm.wwn = m.wwn, pm.initiator_wwn = m.initiator_wwn;
        } else {
            DEVEMU_TRY(wwn, generated(fmt::format("wwn{}", k + 1), "", true));
            DEVEMU_TRY(iwwn, generated(fmt::format("initiator_wwn{}", k + 1), "", true));
            pm.wwn = wwn, pm.initiator_wwn = iwwn;
        }
        m.paths.push_back(pm);
    }
    for (auto& a : t.acls) {
        if (!a.chap_user.empty()) {
            DEVEMU_TRY(secret, generated("chap:" + a.initiator, a.chap_secret, false));
            m.chap[a.initiator] = {a.chap_user, secret};
        }
        if (!a.mutual_user.empty()) {
            DEVEMU_TRY(secret, generated("mutual:" + a.initiator, a.mutual_secret, false));
            m.mutual_chap[a.initiator] = {a.mutual_user, secret};
        }
    }
    std::set<std::string> taken;
    for (auto& l : t.luns) {
        const auto* spec = p.backstore(l.backstore);
        const auto client = opt.rbd.find(spec->name);
        auto backing = backing::resolve_backing(*spec, opt.roots, tx, backing::recorded_zram(rec, spec->name), opt.force,
                                                client == opt.rbd.end() ? nullptr : &client->second, backing::recorded_rbd(rec, spec->name));
        if (!backing) return std::unexpected(backing.error());
        const auto plugin = plugin_for(*spec, *backing);
        Backstore bs{spec, pick_hba(plugin, rec, spec->name, opt.roots, taken), *backing, plugin, spec->wwn};
        if (bs.serial.empty() && plugin != "user") {
            // A backstore an earlier devemu made without a serial keeps none: LIO refuses a serial on an exported device.
            const auto recorded = core::recorded_nodes(rec);
            const bool old = std::any_of(recorded.begin(), recorded.end(), [&](const core::Node& n) { return n.path == bs.dir(); }) &&
                             !std::any_of(recorded.begin(), recorded.end(), [&](const core::Node& n) { return n.path == bs.dir() + "/wwn/vpd_unit_serial"; });
            if (!old) {
                DEVEMU_TRY(hex, random_hex(32));
                bs.serial = b.gen.get("serial:" + spec->name, fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4),
                                                                         hex.substr(16, 4), hex.substr(20, 12)));
            }
        }
        json j = {{"hba", bs.hba}, {"plugin", plugin}, {"path", backing->path}, {"size", backing->size}};
        if (backing->zram >= 0) j["zram"] = backing->zram;
        if (backing->rbd >= 0) j["rbd"] = backing->rbd, j["image"] = spec->pool + "/" + spec->image;
        if (spec->type != profile::BackstoreType::user && !spec->faults.empty()) {   // dm devices under it (backing/dm)
            j["dm_faults"] = json::array();
            for (auto& f : spec->faults) {
                auto fj = fault::to_json(f);
                fj["dm"] = f.type == fault::Type::delay ? "dm-delay" : "dm-flakey";
                j["dm_faults"].push_back(fj);
            }
        }
        b.backstores[spec->name] = j;
        m.backstores.push_back(bs);
    }
    return b;
}

// tcm_loop: the TPG's `address` attribute is "HOST:0:TARGET"; each LUN is the SCSI disk HOST:0:TARGET:LUN.
// Waits (up to 5 s) for the kernel's scan to create the disks.
json loopback_devices(const TargetModel& m, const Roots& roots, std::size_t path = 0)
{
    json out = json::object();
    auto addr = core::read_attr(roots.target / m.tpg_dir(path) / "address");
    if (!addr) return out;
    for (int i = 0; i < 100 && out.size() < m.spec->luns.size(); ++i) {
        for (auto& l : m.spec->luns) {
            std::error_code ec;
            const auto dir = roots.sys / "class/scsi_device" / fmt::format("{}:{}", *addr, l.id) / "device/block";
            for (auto& blk : fs::directory_iterator(dir, ec)) out[std::to_string(l.id)] = "/dev/" + blk.path().filename().string();
        }
        if (out.size() < m.spec->luns.size()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return out;
}

// multipath = true: the initiator side on this kernel — the paths' disks (tcm_loop's, or open-iscsi sessions on every
// portal), then dm-multipath over them.
core::Result<json> multipath_up(const TargetModel& m, const UpOptions& opt, core::Transaction& txn)
{
    const auto& t = *m.spec;
    mpath::Want w{t.name, t.no_path_retry, {}, t.polling_interval, 0};
    for (auto& l : t.luns) w.luns.push_back({l.id, {}});
    json sessions;
    if (t.fabric == profile::Fabric::iscsi) {
        initiator::Want iw{t.name, m.wwn, {}, {}, "", "", "", "", "", {t.fast_timeouts}};
        for (auto& p : m.paths) iw.portals.push_back({p.portal_address, p.port, p.tpgt});
        if (!t.acls.empty()) {   // log in as the first ACL's initiator, with its CHAP
            const auto& acl = t.acls[0];
            iw.initiator_name = acl.initiator;
            if (auto c = m.chap.find(acl.initiator); c != m.chap.end()) std::tie(iw.chap_user, iw.chap_secret) = c->second;
            if (auto c = m.mutual_chap.find(acl.initiator); c != m.mutual_chap.end()) std::tie(iw.mutual_user, iw.mutual_secret) = c->second;
            if (!acl.luns.empty()) std::erase_if(w.luns, [&](const mpath::Lun& l) { return std::find(acl.luns.begin(), acl.luns.end(), l.id) == acl.luns.end(); });
        }
        for (auto& l : w.luns) iw.luns.push_back(l.id);
        DEVEMU_TRY(disks, initiator::up(iw, txn));
        w.fast_io_fail = t.fast_timeouts ? iw.timeouts.fast_io_fail() : 0;   // 0: multipath-tools' own
        sessions = json::array();
        for (std::size_t k = 0; k < disks.size(); ++k) {
            json devs = json::object();
            for (auto& [lun, d] : disks[k]) devs[std::to_string(lun)] = d;
            lift_transfer_cap(devs, opt.roots);
            sessions.push_back({{"portal", initiator::portal_arg(iw.portals[k])}, {"iface", initiator::iface_of(t.name)}});
            for (auto& l : w.luns) l.devices.push_back(disks[k].at(l.id));
        }
    } else {
        for (std::size_t k = 0; k < m.paths.size(); ++k) {
            const json devs = loopback_devices(m, opt.roots, k);
            lift_transfer_cap(devs, opt.roots);   // before dm stacks the limits
            for (auto& l : w.luns) {
                const std::string d = devs.value(std::to_string(l.id), "");
                if (d.empty()) return core::fail(Errc::timeout, fmt::format("path {} of LUN {} has no disk after 5 s", k + 1, l.id), t.name, "see dmesg");
                l.devices.push_back(d);
            }
        }
    }
    DEVEMU_TRY(out, mpath::up(w, txn));
    if (!sessions.is_null()) {
        out["sessions"] = sessions;
        out["timeouts"] = t.fast_timeouts ? "fast" : "distribution";
    }
    return out;
}

// CHAP credentials per initiator, as the model holds them: what access URLs, `ls --secrets` and export read.
json chap_record(const TargetModel& m)
{
    json out = json::object();
    for (auto& [ini, c] : m.chap) out[ini] = {{"user", c.first}, {"secret", c.second}};
    for (auto& [ini, c] : m.mutual_chap) out[ini]["mutual_user"] = c.first, out[ini]["mutual_secret"] = c.second;
    return out;
}

json login_info(const TargetModel& m, const json& devices, const Roots& roots)
{
    json info;
    const auto& t = *m.spec;
    info["fabric"] = profile::to_string(t.fabric);
    info["wwn"] = m.wwn;
    json luns = json::array();
    for (auto& l : t.luns) luns.push_back({{"lun", l.id}, {"backstore", l.backstore}});
    info["luns"] = luns;
    if (t.fabric == profile::Fabric::iscsi) {
        info["portal"] = fmt::format("{}:{}", m.portal_address, t.portal.port);
        if (m.paths.size() > 1) {
            info["paths"] = json::array();
            for (auto& pm : m.paths) info["paths"].push_back({{"tpgt", pm.tpgt}, {"portal", fmt::format("{}:{}", pm.portal_address, pm.port)}});
        }
        json acls = json::array();
        for (auto& a : t.acls) {
            json j = {{"initiator", a.initiator}};
            if (auto c = m.chap.find(a.initiator); c != m.chap.end()) j["chap_user"] = c->second.first;
            acls.push_back(j);
        }
        info["acls"] = acls;
    } else {
        info["initiator_wwn"] = m.initiator_wwn;
        info["devices"] = devices;
        if (m.paths.size() > 1) {   // each path's own disks (path 1's are `devices`)
            info["paths"] = json::array();
            for (std::size_t k = 0; k < m.paths.size(); ++k)
                info["paths"].push_back({{"wwn", m.paths[k].wwn}, {"initiator_wwn", m.paths[k].initiator_wwn},
                                         {"devices", k == 0 ? devices : loopback_devices(m, roots, k)}});
        }
    }
    return info;
}

// The io_uring TCMU handler of a user backstore: a supervisor process (devemu tcmu-serve --supervise) that
// restarts the handler when it dies. Journaled by its command line's UIO prefix before it is spawned, so `down`
// and a rollback stop it after the LUN is gone and before the backstore is removed. Kept when already running.
core::Result<json> start_handler(const Backstore& bs, const core::StateDir& sd, const std::string& unit, const json& had, core::Transaction& tx)
{
    const std::string prefix = fmt::format("tcm-user/{}/{}/", bs.hba.substr(bs.hba.find('_') + 1), bs.spec->name);
    auto specs = json::array();
    for (auto& f : bs.spec->faults) specs.push_back(fault::to_json(f));
    if (had.contains("supervisor") && core::process_start_time(had["supervisor"].get<std::int64_t>()) == had.value("start", std::uint64_t{0})) {
        // Running: `up` again sets the profile's fault chain (what `devemu fault` added goes; the profile is the state asked for).
        if (const std::string ctl = had.value("control", ""); !ctl.empty()) {
            DEVEMU_TRY(answer, core::request_line(ctl, json{{"op", "set"}, {"faults", specs}, {"where", bs.spec->loc.str()}}.dump(),
                                                  std::chrono::seconds(5), "is its handler running? devemu ls"));
            auto a = json::parse(answer, nullptr, false);
            if (!a.is_object() || !a.value("ok", false))
                return core::fail(Errc::invalid_input, a.is_object() ? a["error"].value("what", answer) : answer, bs.spec->loc.str(), "");
        }
        return had;
    }
    DEVEMU_CHECK(core::make_dirs(sd.unit_dir(unit), 0700));
    const auto stats = sd.unit_dir(unit) / ("tcmu-" + bs.spec->name + ".json");
    std::error_code ec;
    fs::remove(stats, ec);
    // The profile's faults, as the handler reads them at every start (a restart keeps what `devemu fault` changed).
    const auto faults = sd.unit_dir(unit) / ("tcmu-" + bs.spec->name + ".faults");
    const auto control = sd.unit_dir(unit) / ("tcmu-" + bs.spec->name + ".ctl");
    DEVEMU_CHECK(core::write_file_atomic(faults, specs.dump() + "\n", 0600));
    std::vector<std::string> argv = {core::self_exe().string(), "tcmu-serve", "--supervise", "--uio-prefix", prefix, "--backing", bs.backing.path,
                                     "--size", std::to_string(bs.backing.size), "--block-size", std::to_string(bs.spec->block_size),
                                     "--stats", stats.string(), "--serial", bs.spec->wwn.empty() ? bs.spec->name : bs.spec->wwn,
                                     "--faults", faults.string(), "--control", control.string()};
    if (bs.spec->readonly) argv.push_back("--readonly");
    if (bs.spec->write_cache) argv.push_back("--write-cache");
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "tcmu-serve", prefix, 0, 0}));
    // It serves the LUN after `up` returns: a session of its own, output in the unit's dir, none of our descriptors.
    const auto log = sd.unit_dir(unit) / ("tcmu-" + bs.spec->name + ".log");
    DEVEMU_TRY(child, core::Child::spawn(argv, core::SpawnOptions::daemon(log)));
    const pid_t pid = child.pid();
    const auto start = core::process_start_time(pid);
    // Ready when the handler has mapped the ring and written its first stats; a handler that cannot start exits.
    for (int i = 0; i < 250 && !fs::exists(stats, ec); ++i) {
        if (auto st = child.try_wait())
            return core::fail(Errc::kernel, fmt::format("the TCMU handler for '{}' exited ({}) before serving", bs.spec->name, *st), bs.backing.path,
                              "read " + log.string());
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!fs::exists(stats, ec))
        return core::fail(Errc::timeout, "the TCMU handler for '" + bs.spec->name + "' did not start serving in 5 s", prefix, "see dmesg");
    child.detach();
    return json{{"supervisor", pid}, {"start", start}, {"stats", stats.string()}, {"log", log.string()}, {"uio_prefix", prefix}, {"backing", bs.backing.path},
                {"faults", faults.string()}, {"control", control.string()}};
}

}  // namespace

core::Status prepare_kernel(const profile::Profile& p, const UpOptions& opt)
{
    if (!opt.load_modules) return {};
    std::vector<core::ModuleWant> mods = {{"configfs"}, {"target_core_mod"}};
    const core::ModuleWant crc32c{"crc32c", "", true};   // may be built in
    for (auto& t : p.targets) {
        if (t.fabric == profile::Fabric::iscsi) mods.insert(mods.end(), {{"iscsi_target_mod"}, crc32c});   // crc32c: login digests
        else mods.insert(mods.end(), {{"tcm_loop"}, {"sd_mod"}});   // sd_mod: the LUNs become /dev/sdX
        for (auto& l : t.luns) {
            auto* b = p.backstore(l.backstore);
            if (b->type == profile::BackstoreType::fileio) mods.push_back({"target_core_file"});
            else if (b->type == profile::BackstoreType::user) mods.push_back({"target_core_user"});
            else mods.push_back({"target_core_iblock"});
            if (b->type == profile::BackstoreType::zram || b->path.starts_with("zram:")) mods.push_back({"zram"});
            if (b->type == profile::BackstoreType::rbd) mods.insert(mods.end(), {crc32c, {"rbd"}});   // libcrc32c softdep
        }
    }
    DEVEMU_CHECK(core::ensure_modules(mods));
    if (opt.roots.target == Roots{}.target) DEVEMU_CHECK(core::ensure_configfs_mounted());
    std::error_code ec;
    if (!fs::is_directory(opt.roots.target, ec))
        return core::fail(Errc::missing, "LIO is not available (no configfs target directory)", opt.roots.target.string(),
                          "modprobe target_core_mod, or use --vm");
    return {};
}

core::Result<UnitPlan> plan(const profile::Profile& p, const profile::Target& t, const core::StateDir& sd, const UpOptions& opt)
{
    DEVEMU_CHECK(security_check(t, opt, p.file));
    json rec = sd.load(t.name).value_or(json::object());
    DEVEMU_TRY(b, build(p, t, rec, opt, nullptr));
    return UnitPlan{t.name, core::diff(core::recorded_nodes(rec), b.model.nodes(), opt.roots.target)};
}

core::Result<json> up(const profile::Profile& p, const profile::Target& t, const core::StateDir& sd, const UpOptions& opt)
{
    DEVEMU_CHECK(security_check(t, opt, p.file));
    if (!opt.in_vm) DEVEMU_CHECK(wait_for_portal_addresses(t, opt.address_wait));
    json rec = sd.load(t.name).value_or(json::object());
    if (!rec.empty() && rec.value("profile", "") != p.file && rec.value("kind", "") == "target")
        spdlog::info("unit {} was brought up from {}; updating it from {}", t.name, rec.value("profile", "?"), p.file);
    core::Transaction tx(sd.journal(t.name));
    DEVEMU_TRY(b, build(p, t, rec, opt, &tx));
    json handlers = rec.value("handlers", json::object());
    core::UnitApply a{fmt::format("target '{}'", t.name), t.name, opt.roots.target, core::recorded_nodes(rec), b.model.nodes()};
    a.verify_unchanged = false;   // with nothing to change, the diff has just read every node and found it as asked
    // Backstores first, then their userspace handlers (a user backstore's commands start with the LUN: tcm_loop
    // scans at once), then the rest.
    a.phases = 2;
    a.phase_of = [](const core::Step& s) { return s.node.path.starts_with("core/") && s.action != core::Action::remove ? 0 : 1; };
    a.before_phase = [&](int phase, core::Transaction& txn, const std::vector<core::Step>&) -> core::Status {
        for (auto& bs : b.model.backstores) {
            if (phase != 1 || bs.plugin != "user") continue;
            DEVEMU_TRY(h, start_handler(bs, sd, t.name, handlers.value(bs.spec->name, json::object()), txn));
            handlers[bs.spec->name] = h;
        }
        return {};
    };
    a.explain = [&](core::Error& e) {
        // LIO says EINVAL when a portal's port is taken by another program: say what it is.
        const auto& addr = b.model.portal_address;
        if (e.where.find("/np/") != std::string::npos && core::tcp_port_taken(addr, t.portal.port))
            e = {core::Errc::busy, fmt::format("target '{}': portal {}:{} is taken: another program listens there", t.name, addr, t.portal.port),
                 e.where, fmt::format("stop it (ss -ltnp 'sport = :{}' shows which), or give the target another portal", t.portal.port)};
    };
    // multipath = true: dm-multipath over the paths, on this kernel, before the transaction commits.
    json mp_info;
    if (t.multipath)
        a.after_verify = [&](core::Transaction& txn) -> core::Status {
            DEVEMU_TRY(m, multipath_up(b.model, opt, txn));
            mp_info = m;
            return {};
        };
    DEVEMU_TRY(steps, core::apply_unit(tx, a));
    const auto& desired = a.desired;
    json devices = t.fabric == profile::Fabric::loopback ? loopback_devices(b.model, opt.roots) : json::object();
    lift_transfer_cap(devices, opt.roots);
    TargetRecord r;
    r.name = t.name;
    r.profile = p.file;
    r.nodes = desired;
    r.generated = b.gen.values;
    r.backstores = b.backstores;
    r.info = login_info(b.model, devices, opt.roots);
    if (!mp_info.is_null()) r.info["multipath"] = mp_info;
    r.changes = steps.size();
    r.spec = spec_of(t, p);
    r.chap = chap_record(b.model);
    r.handlers = handlers.get<std::map<std::string, HandlerRecord>>();
    rec = r;
    DEVEMU_CHECK(sd.save(t.name, rec));
    return rec;
}

core::Status down(const core::StateDir& sd, const std::string& unit)
{
    auto s = core::replay_journal(sd.journal(unit));
    if (!s) return core::fail(s.error().code, "could not remove everything: " + s.error().message(), unit,
                              "fix the cause (a session still using a LUN?) and run devemu down again");
    return sd.forget(unit);
}

}  // namespace devemu::lio
