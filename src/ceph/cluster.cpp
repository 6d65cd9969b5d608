#include "ceph/cluster.hpp"

#include "ceph/record.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>
#include <thread>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/netns.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"

namespace devemu::ceph {

using core::Errc;
using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kMonPort = 6789;

std::string uuid()
{
    std::random_device rd;
    std::uniform_int_distribution<int> hex(0, 15);
    std::string s;
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
        s += "0123456789abcdef"[hex(rd)];
    }
    return s;
}

// Clients (the ceph tools, krbd) use the v1 address; the monitor also listens on msgr2, else it warns.
std::string mon_addr() { return fmt::format("{}:{}", kHostAddr, kMonPort); }
std::string mon_addrvec() { return fmt::format("[v2:{}:3300,v1:{}:{}]", kHostAddr, kHostAddr, kMonPort); }

std::string conf_text(const fs::path& dir, const std::string& fsid, const LocalSpec& spec)
{
    std::string c = fmt::format(R"([global]
fsid = {fsid}
mon_host = {mon}
public_addr = {addr}
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
# A developer's disk is often more than 70% full: warn only when the mon's filesystem is nearly out of space.
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# There is no mgr (rbd needs none): without this the monitor warns about it two minutes after mkfs.
mon_mgr_mkfs_grace = 315360000
ms_bind_ipv6 = false
run_dir = {dir}/run
admin_socket = {dir}/run/$name.asok
log_file = {dir}/log/$name.log
keyring = {dir}/keyring
[mon]
mon_data = {dir}/mon/$id
[osd]
osd_data = {dir}/osd/$id
keyring = {dir}/osd/$id/keyring
osd_objectstore = {store}
osd_memory_target = 939524096
)",
                                fmt::arg("fsid", fsid), fmt::arg("mon", mon_addrvec()), fmt::arg("addr", kHostAddr), fmt::arg("dir", dir.string()),
                                fmt::arg("store", spec.store));
    if (spec.store == "memstore") c += fmt::format("memstore_device_bytes = {}\n", spec.osd_bytes);
    else
        c += fmt::format("bluestore_block_path = {dir}/osd/$id.block\nbluestore_block_create = true\nbluestore_block_size = {bytes}\n"
                         "bluestore_cache_autotune = false\nbluestore_cache_size = 134217728\nbluestore_fsck_on_mkfs = false\n",
                         fmt::arg("dir", dir.string()), fmt::arg("bytes", spec.osd_bytes));
    return c;
}

// A setup tool run on the host (not a client of the cluster): its failure is reported with its own last line.
core::Status tool(const std::vector<std::string>& argv, const std::string& netns = {})
{
    DEVEMU_TRY(r, core::run(argv, std::chrono::seconds(60), {}, netns));
    if (r.exit_code == 0) return {};
    const auto why = core::last_line(r.err.empty() ? r.out : r.err);
    return core::fail(Errc::kernel, fmt::format("{} failed: {}", argv[0], why), argv[0], "see the daemon logs under the state dir's units/ceph/log");
}

struct Daemon {
    std::string type, id;   // "mon","a" / "osd","0"
    [[nodiscard]] std::string name() const { return type + "." + id; }
};

// Runs ceph-mon / ceph-osd in the foreground of its own session inside the namespace, output to its log dir.
// Journaled by pid (the cluster's conf path in its command line is journaled once, before the first spawn).
core::Result<DaemonRecord> spawn(const fs::path& dir, const std::string& netns, const Daemon& d, core::Transaction& tx)
{
    const auto out = dir / "log" / (d.name() + ".out");
    auto so = core::SpawnOptions::daemon(out);
    so.netns = netns;
    DEVEMU_TRY(child, core::Child::spawn({"ceph-" + d.type, "-f", "-c", (dir / "ceph.conf").string(), "-i", d.id}, so));
    const auto start = core::process_start_time(child.pid());
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "ceph-" + d.type, "", child.pid(), start}));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (auto st = child.try_wait())
        return core::fail(Errc::kernel, fmt::format("ceph-{} exited ({}) at start", d.type, *st), out.string(), "read that log");
    const pid_t pid = child.pid();
    child.detach();
    return DaemonRecord{pid, start, (dir / "log" / (d.name() + ".log")).string()};
}

// Polls `ready` every 300 ms until it says yes or `timeout_s` passes; reports progress each few seconds.
core::Status wait_for(const std::string& what, int timeout_s, const Progress& progress, const std::function<core::Result<bool>()>& ready,
                      const std::string& where)
{
    const auto t0 = Clock::now();
    int shown = 0;
    std::optional<core::Error> last;
    while (Clock::now() - t0 < std::chrono::seconds(timeout_s)) {
        auto r = ready();
        if (r && *r) return {};
        if (!r) last = r.error();
        const int secs = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - t0).count());
        if (secs >= 3 && secs / 3 != shown && progress) {
            shown = secs / 3;
            progress(fmt::format("waiting for {}… {}s", what, secs));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    return core::fail(Errc::timeout, fmt::format("the local cluster did not reach {} in {} s{}", what, timeout_s, last ? ": " + last->what : ""), where,
                      "read the daemon logs under " + where);
}

core::Result<json> ceph_json(const Conn& c, const std::vector<std::string>& args, int timeout_s = 5)
{
    auto a = args;
    a.insert(a.end(), {"--format", "json"});
    DEVEMU_TRY(out, cli(c, "ceph", a, timeout_s));
    auto j = json::parse(out, nullptr, false);
    if (j.is_discarded()) return core::fail(Errc::kernel, "unreadable output of ceph " + args.front(), c.conf);
    return j;
}

core::Result<std::string> health(const Conn& c)
{
    DEVEMU_TRY(h, ceph_json(c, {"health"}));
    std::string s = h.value("status", "?");
    const json checks = h.value("checks", json::object());   // named: items() of a temporary dangles
    for (auto& [k, v] : checks.items()) s += fmt::format("; {}: {}", k, v["summary"].value("message", ""));
    return s;
}

// One small object written, read back and removed in `pool`.
core::Result<bool> probe_io(const Conn& c, const std::string& pool)
{
    const std::string obj = "devemu-probe";
    DEVEMU_CHECK(cli(c, "rados", {"-p", pool, "put", obj, "/etc/hostname"}, 5));
    DEVEMU_TRY(got, cli(c, "rados", {"-p", pool, "get", obj, "-"}, 5));
    DEVEMU_CHECK(cli(c, "rados", {"-p", pool, "rm", obj}, 5));
    return got == core::read_file("/etc/hostname").value_or("?");
}

Conn conn_for(const fs::path& dir, const std::string& netns)
{
    Conn c;
    c.conf = (dir / "ceph.conf").string();
    c.keyring = (dir / "keyring").string();
    c.mon_host = mon_addr();
    c.netns = netns;
    c.where = dir.string();
    return c;
}

// Everything a fresh cluster needs before its daemons run: namespace and bridge, conf, keys, monmap, mon mkfs.
core::Status make_cluster(const fs::path& dir, const std::string& netns, const LocalSpec& spec, const std::string& fsid, core::Transaction& tx)
{
    DEVEMU_CHECK(core::netns_create(netns, tx));
    DEVEMU_CHECK(core::ip(netns, {"link", "add", kBridge, "type", "bridge"}));
    DEVEMU_CHECK(core::ip(netns, {"addr", "add", fmt::format("{}/{}", kHostAddr, kPrefix), "dev", kBridge}));
    DEVEMU_CHECK(core::ip(netns, {"link", "set", kBridge, "up"}));
    for (auto sub : {"run", "log", "mon/a", "osd/0"}) DEVEMU_CHECK(core::make_dirs(dir / sub, 0700));
    DEVEMU_CHECK(core::write_file_atomic(dir / "ceph.conf", conf_text(dir, fsid, spec), 0600));
    const auto keyring = (dir / "keyring").string();
    DEVEMU_CHECK(tool({"ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"}));
    DEVEMU_CHECK(tool({"ceph-authtool", keyring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                       "--cap", "mgr", "allow *", "--cap", "mds", "allow *"}));
    ::chmod(keyring.c_str(), 0600);
    DEVEMU_CHECK(tool({"monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon_addrvec(), (dir / "monmap").string()}));
    return tool({"ceph-mon", "-c", (dir / "ceph.conf").string(), "--mkfs", "-i", "a", "--monmap", (dir / "monmap").string(), "--keyring", keyring});
}

core::Status make_osd(const fs::path& dir, const Conn& c, const std::string& osd_uuid)
{
    DEVEMU_TRY(id, cli(c, "ceph", {"osd", "new", osd_uuid}));
    if (core::trim(id) != "0") return core::fail(Errc::kernel, "the monitor gave the OSD id " + std::string(core::trim(id)) + ", not 0", c.conf);
    const auto key = (dir / "osd/0/keyring").string();
    DEVEMU_CHECK(cli(c, "ceph", {"auth", "get-or-create", "osd.0", "mon", "allow profile osd", "mgr", "allow profile osd", "osd", "allow *", "-o", key}));
    return tool({"ceph-osd", "-c", c.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid}, c.netns);
}

}  // namespace

std::string netns_name(const core::StateDir& sd)
{
    std::uint32_t h = 2166136261u;   // FNV-1a: stable across runs and builds
    for (unsigned char ch : fs::absolute(sd.root()).string()) h = (h ^ ch) * 16777619u;
    return fmt::format("devemu-ceph-{:08x}", h);
}

core::Status ensure_pool(const Conn& c, const std::string& pool)
{
    DEVEMU_TRY(pools, ceph_json(c, {"osd", "pool", "ls"}));
    for (auto& p : pools)
        if (p == pool) return {};
    DEVEMU_CHECK(cli(c, "ceph", {"osd", "pool", "create", pool, "8", "8"}));
    DEVEMU_CHECK(cli(c, "rbd", {"pool", "init", pool}));
    return {};
}

std::vector<std::string> stopped_daemons(const CephRecord& rec)
{
    std::vector<std::string> out;
    for (auto& [name, d] : rec.daemons)
        if (!d.alive()) out.push_back(name);
    return out;
}

core::Result<Conn> local_conn(const core::StateDir& sd)
{
    auto rec = sd.load(kUnit);
    if (!rec || rec->value("state", "") != "up")
        return core::fail(Errc::missing, "the local Ceph cluster is not up", sd.record_path(kUnit).string(), "devemu ceph up");
    return conn_for(sd.unit_dir(kUnit), rec->value("netns", ""));
}

namespace {

// Makes a fresh cluster's monitor, keys and OSD, or restarts the daemons of one that is recorded; journaled in `tx`.
core::Status start_daemons(const core::StateDir& sd, const std::string& netns, const LocalSpec& spec, const Conn& c, bool fresh, CephRecord& rec,
                           core::Transaction& tx, const Progress& progress)
{
    const fs::path dir = sd.unit_dir(kUnit);
    if (fresh) {
        if (progress) progress(fmt::format("making a cluster in namespace {} ({} OSD of {})", netns, spec.store, core::format_size(spec.osd_bytes)));
        rec = CephRecord{};
        rec.netns = netns;
        rec.dir = dir.string();
        rec.fsid = uuid();
        rec.mon_host = mon_addr();
        rec.store = spec.store;
        rec.osd_bytes = spec.osd_bytes;
        rec.conf = c.conf;
        rec.keyring = c.keyring;
        rec.bridge = kBridge;
        DEVEMU_CHECK(sd.save(kUnit, rec));
        DEVEMU_CHECK(make_cluster(dir, netns, spec, rec.fsid, tx));
        // Any daemon or tool still running with this conf: stopped by `down` even if its pid was never recorded.
        DEVEMU_CHECK(tx.record({core::UndoOp::kill, "ceph", c.conf, 0, 0}));
    }
    if (!rec.alive("mon.a")) {
        if (progress && !fresh) progress("restarting mon.a");
        DEVEMU_TRY(d, spawn(dir, netns, {"mon", "a"}, tx));
        rec.daemons["mon.a"] = d;
    }
    DEVEMU_CHECK(wait_for("a monitor quorum", 30, progress, [&]() -> core::Result<bool> { return cli(c, "ceph", {"mon", "stat"}, 3).has_value(); }, dir.string()));
    if (fresh) {
        if (progress) progress("making osd.0");
        DEVEMU_CHECK(make_osd(dir, c, uuid()));
    }
    if (!rec.alive("osd.0") && !fresh && rec.store == "memstore")
        return core::fail(Errc::kernel, "osd.0 died, and with memstore its data is gone: the cluster cannot serve its images again",
                          rec.daemons.contains("osd.0") ? rec.daemons["osd.0"].log : dir.string(),
                          "devemu ceph down, then up again (--store bluestore keeps data across an OSD crash)");
    if (!rec.alive("osd.0")) {
        if (progress && !fresh) progress("restarting osd.0");
        DEVEMU_TRY(d, spawn(dir, netns, {"osd", "0"}, tx));
        rec.daemons["osd.0"] = d;
    }
    return {};
}

// Until the cluster serves I/O: osd.0 up, the pools made, HEALTH_OK, and a write read back.
core::Status wait_serving(const fs::path& dir, const LocalSpec& spec, const Conn& c, const Progress& progress, int timeout_s)
{
    auto osd_up = [&]() -> core::Result<bool> {
        DEVEMU_TRY(st, ceph_json(c, {"osd", "stat"}, 3));
        return st.value("num_up_osds", 0) == 1;
    };
    if (auto s = wait_for("osd.0 up", timeout_s, progress, osd_up, dir.string()); !s) return s;
    for (auto& p : spec.pools)
        if (auto s = ensure_pool(c, p); !s) return s;
    std::string last;
    auto healthy = [&]() -> core::Result<bool> {
        DEVEMU_TRY(h, health(c));
        last = h;
        return h == "HEALTH_OK";
    };
    if (auto s = wait_for("HEALTH_OK", timeout_s, progress, healthy, dir.string()); !s) {
        auto e = s.error();
        e.what += " (last: " + last + ")";
        return std::unexpected(e);
    }
    // HEALTH_OK without a mgr says nothing about placement groups: prove the OSD serves I/O (write, read back).
    if (progress) progress("checking that the OSD serves I/O");
    if (auto s = wait_for("a working write and read", timeout_s, progress, [&]() -> core::Result<bool> { return probe_io(c, spec.pools.front()); }, dir.string()); !s)
        return s;
    return {};
}

}  // namespace

core::Result<json> up(const core::StateDir& sd, const LocalSpec& spec, const Progress& progress, int timeout_s)
{
    if (spec.store != "memstore" && spec.store != "bluestore")
        return core::fail(Errc::invalid_input, "unknown OSD store \"" + spec.store + "\"", "--store", "use memstore or bluestore");
    for (auto bin : {"ceph-mon", "ceph-osd", "ceph", "rbd", "rados", "ceph-authtool", "monmaptool"})
        if (core::which(bin).empty())
            return core::fail(Errc::missing, std::string(bin) + " is not installed", "PATH", "apt-get install ceph-mon ceph-osd ceph-common (or run tools/setup)");
    const fs::path dir = sd.unit_dir(kUnit);
    const auto loaded = sd.load(kUnit);
    bool fresh = !loaded;
    CephRecord rec;
    if (loaded) {
        DEVEMU_TRY(r, ceph_record(*loaded));
        rec = r;
    }
    // A start that never finished (devemu killed, machine rebooted: /run is gone but a /var state dir is not)
    // and no daemon left running: clear it out and start afresh.
    if (!fresh && rec.state != "up" && !rec.alive("mon.a") && !rec.alive("osd.0")) {
        if (progress) progress("clearing an unfinished earlier start");
        DEVEMU_CHECK(down(sd));
        fresh = true;
    }
    const std::string netns = fresh || rec.netns.empty() ? netns_name(sd) : rec.netns;
    if (fresh && core::netns_exists(netns))
        return core::fail(Errc::busy, "network namespace " + netns + " exists but devemu has no record of it", core::netns_file(netns).string(),
                          "ip netns delete " + netns + " if nothing uses it");
    const auto t0 = Clock::now();
    core::Transaction tx(sd.journal(kUnit));
    auto failed = [&](core::Error e) -> core::Result<json> {
        if (fresh) {
            if (auto r = tx.rollback(); !r) spdlog::error("rollback incomplete: {}", r.error().message());
            if (auto s = sd.forget(kUnit); !s) spdlog::error("{}", s.error().message());
        }
        return std::unexpected(e);
    };
    const Conn c = conn_for(dir, netns);
    if (auto s = start_daemons(sd, netns, spec, c, fresh, rec, tx, progress); !s) return failed(s.error());
    tx.commit();
    rec.state = "starting";
    DEVEMU_CHECK(sd.save(kUnit, rec));
    if (auto s = wait_serving(dir, spec, c, progress, timeout_s); !s) return failed(s.error());
    rec.state = "up";
    rec.health = "HEALTH_OK";
    rec.up_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    DEVEMU_CHECK(sd.save(kUnit, rec));
    return json(rec);
}

core::Status down(const core::StateDir& sd)
{
    auto rec = sd.load(kUnit);
    if (!rec && !fs::exists(sd.journal(kUnit))) return {};
    if (auto s = core::replay_journal(sd.journal(kUnit)); !s)
        return core::fail(s.error().code, "could not stop the local cluster: " + s.error().message(), sd.journal(kUnit).string(),
                          "fix the cause and run devemu ceph down again");
    return sd.forget(kUnit);
}

json status(const core::StateDir& sd)
{
    auto rec = sd.load(kUnit);
    if (!rec) return {{"name", kUnit}, {"up", false}, {"netns", netns_name(sd)}};
    json out = *rec;
    out["up"] = rec->value("state", "") == "up";
    if (auto typed = ceph_record(*rec))
        for (auto& [name, d] : typed->daemons) out["daemons"][name]["running"] = d.alive();
    const Conn c = conn_for(sd.unit_dir(kUnit), rec->value("netns", ""));
    if (auto h = health(c)) out["health"] = *h;
    else {
        out["health"] = "unreachable";
        out["error"] = h.error().what;
        return out;
    }
    if (auto st = ceph_json(c, {"osd", "stat"})) out["osds_up"] = st->value("num_up_osds", 0);
    json pools = json::object();
    if (auto ls = ceph_json(c, {"osd", "pool", "ls"}))
        for (auto& p : *ls) {
            auto imgs = cli(c, "rbd", {"ls", "-p", p.get<std::string>(), "--format", "json"}, 3);
            pools[p.get<std::string>()] = imgs ? json::parse(*imgs, nullptr, false) : json::array();
        }
    out["pools"] = pools;
    return out;
}

std::vector<std::string> status_lines(const json& st)
{
    if (!st.value("up", false) && st.value("state", "") == "") return {"ceph: no local cluster (devemu ceph up)"};
    std::vector<std::string> out;
    out.push_back(fmt::format("ceph: {}, {}", st.value("state", "?"), st.value("health", "?")));
    out.push_back(fmt::format("  mon        {} in network namespace {}", st.value("mon_host", ""), st.value("netns", "")));
    out.push_back(fmt::format("  osd        {}, {}{}", st.value("store", ""), core::format_size(st.value("osd_bytes", std::uint64_t{0})),
                              st.contains("osds_up") ? fmt::format(", {}/1 up", st["osds_up"].get<int>()) : ""));
    const json daemons = st.value("daemons", json::object()), pools = st.value("pools", json::object());   // named: items() of a temporary dangles
    for (auto& [name, d] : daemons.items())
        out.push_back(fmt::format("  {}{}pid {}{}, log {}", name, std::string(name.size() < 10 ? 11 - name.size() : 1, ' '), d.value("pid", 0),
                                  d.value("running", true) ? "" : " (not running)", d.value("log", "")));
    for (auto& [pool, images] : pools.items()) {
        std::string line = "  pool       " + pool + ":";
        for (auto& i : images) line += " " + i.get<std::string>();
        out.push_back(line + (images.empty() ? " (no images)" : ""));
    }
    out.push_back("  conf       " + st.value("conf", ""));
    out.push_back("  keyring    " + st.value("keyring", "") + " (client.admin, 0600)");
    return out;
}

}  // namespace devemu::ceph
