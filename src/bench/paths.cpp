#include "bench/paths.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include "backing/backing.hpp"
#include "backing/blockdev.hpp"
#include "bench/placement.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/probe.hpp"
#include "core/progress.hpp"
#include "core/statedir.hpp"
#include "core/text.hpp"
#include "core/unit_kind.hpp"
#include "lio/initiator.hpp"
#include "profile/profile.hpp"
#include "uring/bench.hpp"

namespace devemu::bench {

using core::Errc;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// What each path needs of the kernel and of the system, for missing_here().
struct PathNeeds {
    const char* name;
    std::vector<const char*> modules;
    std::vector<const char*> tools;
    const char* what;   // the table's legend
};

const std::vector<PathNeeds>& needs()
{
    static const std::vector<PathNeeds> n = {
        {"raw", {}, {}, "the backing itself"},
        {"fileio", {"target_core_mod", "target_core_file", "tcm_loop"}, {}, "LIO fileio, tcm_loop"},
        {"iblock", {"target_core_mod", "target_core_iblock", "tcm_loop"}, {}, "LIO iblock, tcm_loop"},
        {"user", {"target_core_mod", "target_core_user", "tcm_loop"}, {}, "LIO user (devemu's io_uring TCMU handler), tcm_loop"},
        {"iscsi", {"target_core_mod", "target_core_file", "iscsi_target_mod", "iscsi_tcp"}, {"iscsiadm", "iscsid"},
         "LIO fileio over iSCSI, open-iscsi to 127.0.0.1"},
        {"iscsi-user", {"target_core_mod", "target_core_user", "iscsi_target_mod", "iscsi_tcp"}, {"iscsiadm", "iscsid"},
         "LIO user (devemu's handler) over iSCSI, open-iscsi to 127.0.0.1: the peer of tgtd"},
        {"tgt-rdwr", {"iscsi_tcp"}, {"tgtd", "tgtadm", "iscsiadm", "iscsid"}, "tgtd bs_rdwr over iSCSI, open-iscsi to 127.0.0.1"},
        {"tgt-aio", {"iscsi_tcp"}, {"tgtd", "tgtadm", "iscsiadm", "iscsid"}, "tgtd bs_aio over iSCSI, open-iscsi to 127.0.0.1"},
        {"usb", {"libcomposite", "usb_f_mass_storage", "dummy_hcd", "usb_storage"}, {}, "the kernel's f_mass_storage, dummy_hcd, usb-storage"},
        {"usb-user", {"libcomposite", "usb_f_fs", "dummy_hcd", "usb_storage"}, {}, "devemu's userspace mass storage (FunctionFS), dummy_hcd"},
    };
    return n;
}

const PathNeeds* find_path(const std::string& name)
{
    for (auto& p : needs())
        if (name == p.name) return &p;
    return nullptr;
}

bool uses(const std::vector<std::string>& paths, std::initializer_list<const char*> any)
{
    for (auto& p : paths)
        for (auto* a : any)
            if (p == a) return true;
    return false;
}

double median(std::vector<double> v)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The machine's busy time (all CPUs, every process and the kernel's threads: a handler's, iscsi's, usb's), seconds.
double busy_seconds()
{
    auto s = core::read_attr("/proc/stat");
    if (!s) return 0;
    std::uint64_t v[10] = {};
    std::sscanf(s->c_str(), "cpu %lu %lu %lu %lu %lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    // user nice system idle iowait irq softirq steal: all but idle and iowait
    const std::uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return static_cast<double>(busy) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Everything the run made lives in units of its private state dir; removed in the reverse order of making:
// sessions, tgtd, the profile's units (targets, gadgets), the backing.
struct Teardown {
    const core::StateDir* sd = nullptr;
    std::vector<std::string> order;   // in the order made
    ~Teardown()
    {
        if (!sd) return;
        for (auto it = order.rbegin(); it != order.rend(); ++it) {
            auto s = core::down_unit(*sd, *it, sd->load_scalars(*it).value_or(json::object()));
            if (!s) spdlog::error("bench --paths: could not remove {}: {} (retry: DEVEMU_STATE_DIR={} devemu down --all)", *it, s.error().what,
                                  sd->root().string());
        }
    }
};

constexpr std::uint16_t kIscsiPort = 3260, kTgtPort = 3261;
constexpr int kTgtControlPort = 29;   // tgtd's control socket /var/run/tgtd/socket.29: not a system tgtd's (0)
const char* kIqnLio = "iqn.2026-11.org.devemu:bench-iscsi";
const char* kIqnLioUser = "iqn.2026-11.org.devemu:bench-iscsi-user";
const char* kIqnTgtRdwr = "iqn.2026-11.org.devemu:bench-tgt-rdwr";
const char* kIqnTgtAio = "iqn.2026-11.org.devemu:bench-tgt-aio";

std::string profile_text(const std::vector<std::string>& paths, const std::string& dev)
{
    std::string t;
    auto backstore = [&](const char* name, const char* type, const char* extra = "") {
        t += fmt::format("[[backstore]]\nname = \"{}\"\ntype = \"{}\"\npath = \"{}\"\n{}\n", name, type, dev, extra);
    };
    auto target = [&](const char* name, const char* fabric, const char* bs, const std::string& extra = "") {
        t += fmt::format("[[target]]\nname = \"{}\"\nfabric = \"{}\"\n{}\n[[target.lun]]\nid = 0\nbackstore = \"{}\"\n\n", name, fabric, extra, bs);
    };
    auto gadget = [&](const char* name, unsigned pid, const char* bs) {
        t += fmt::format("[[gadget]]\nname = \"{}\"\nproduct_id = {:#06x}\n[[gadget.function]]\ntype = \"mass_storage\"\nname = \"ms\"\n"
                         "[[gadget.function.lun]]\nbackstore = \"{}\"\n\n", name, pid, bs);
    };
    if (uses(paths, {"fileio"})) backstore("bp_fileio", "fileio"), target("bench-fileio", "loopback", "bp_fileio");
    if (uses(paths, {"iblock"})) backstore("bp_block", "block"), target("bench-iblock", "loopback", "bp_block");
    if (uses(paths, {"user"})) backstore("bp_user", "user", "handler = \"uring\"\n"), target("bench-user", "loopback", "bp_user");
    if (uses(paths, {"iscsi"}))
        backstore("bp_iscsi", "fileio"),
            target("bench-iscsi", "iscsi", "bp_iscsi", fmt::format("iqn = \"{}\"\nportal = \"127.0.0.1:{}\"\n", kIqnLio, kIscsiPort));
    if (uses(paths, {"iscsi-user"}))
        backstore("bp_iscsiu", "user", "handler = \"uring\"\n"),
            target("bench-iscsi-user", "iscsi", "bp_iscsiu", fmt::format("iqn = \"{}\"\nportal = \"127.0.0.1:{}\"\n", kIqnLioUser, kIscsiPort));
    if (uses(paths, {"usb"})) backstore("bp_usb", "fileio"), gadget("bench-usb", 0x0130, "bp_usb");
    if (uses(paths, {"usb-user"})) backstore("bp_usbu", "user", "handler = \"uring\"\n"), gadget("bench-usb-user", 0x0131, "bp_usbu");
    return t;
}

core::Status tgtadm(const std::vector<std::string>& args)
{
    std::vector<std::string> argv{"tgtadm", "-C", std::to_string(kTgtControlPort), "--lld", "iscsi"};
    argv.insert(argv.end(), args.begin(), args.end());
    DEVEMU_TRY(r, core::run(argv, std::chrono::seconds(30)));
    if (r.exit_code != 0) return core::fail(Errc::kernel, "tgtadm failed: " + std::string(core::trim(r.err + r.out)), fmt::format("{}", fmt::join(argv, " ")));
    return {};
}

// tgtd in its own process group, journaled (by its command line) before it starts; two targets on the backing.
core::Status tgt_up(const core::StateDir& sd, Teardown& td, const std::vector<std::string>& paths, const std::string& dev)
{
    core::Transaction tx(sd.journal("bench-tgtd"));
    td.order.push_back("bench-tgtd");
    const std::string portal = fmt::format("portal=127.0.0.1:{}", kTgtPort);
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "", portal, 0, 0, ""}));
    const auto log = sd.root() / "tgtd.log";
    auto child = core::Child::spawn({"tgtd", "-f", "-C", std::to_string(kTgtControlPort), "--iscsi", portal}, core::SpawnOptions::daemon(log));
    if (!child) return std::unexpected(child.error());
    child->detach();
    tx.commit();
    // Ready when its control socket answers.
    for (int i = 0;; ++i) {
        if (tgtadm({"--op", "show", "--mode", "sys"})) break;
        if (i == 100) return core::fail(Errc::timeout, "tgtd did not answer within 10 s", log.string(), "see its log");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    int tid = 0;
    for (auto [name, iqn, bstype] : {std::tuple{"tgt-rdwr", kIqnTgtRdwr, "rdwr"}, std::tuple{"tgt-aio", kIqnTgtAio, "aio"}}) {
        if (!uses(paths, {name})) continue;
        const auto t = std::to_string(++tid);
        DEVEMU_CHECK(tgtadm({"--op", "new", "--mode", "target", "--tid", t, "-T", iqn}));
        DEVEMU_CHECK(tgtadm({"--op", "new", "--mode", "logicalunit", "--tid", t, "--lun", "1", "-b", dev, "--bstype", bstype}));
        DEVEMU_CHECK(tgtadm({"--op", "bind", "--mode", "target", "--tid", t, "-I", "127.0.0.1"}));
    }
    return {};
}

// This kernel's initiator logged in to one target (a unit of its own: its journal logs out).
core::Result<std::string> login(const core::StateDir& sd, Teardown& td, const std::string& unit, const std::string& iqn, std::uint16_t port,
                                std::uint32_t lun)
{
    lio::initiator::Want w{unit, iqn, {{"127.0.0.1", port, 1}}, {lun}, "", "", "", "", "", {}};
    core::Transaction tx(sd.journal(unit));
    td.order.push_back(unit);
    DEVEMU_TRY(disks, lio::initiator::up(w, tx));
    tx.commit();
    return disks.at(0).at(lun);
}

struct Sample {
    double iops = 0, mbps = 0, cpu_us = 0;
    std::uint64_t p50 = 0, p99 = 0, ios = 0;
};

core::Result<Sample> measure(const uring::BenchOptions& base, const Case& c, const std::string& dev)
{
    uring::BenchOptions o = base;
    o.target = dev;
    o.rw = c.rw, o.bs = c.bs, o.iodepth = c.iodepth;
    o.batch = std::max(1u, c.iodepth / 4);
    o.json = true, o.fill = false, o.verify = false, o.compare_fio = false;
    const double b0 = busy_seconds();
    DEVEMU_TRY(r, uring::run_bench(o));
    const double busy = busy_seconds() - b0;
    Sample s;
    const json job = r.json["jobs"][0];
    for (auto side : {"read", "write"}) {
        const json& d = job[side];
        s.iops += d["iops"].get<double>();
        s.ios += d["total_ios"].get<std::uint64_t>();
        if (d["total_ios"].get<std::uint64_t>() > 0) {
            s.p50 = std::max<std::uint64_t>(s.p50, d["lat_ns"]["percentile"]["50.000000"].get<std::uint64_t>());
            s.p99 = std::max<std::uint64_t>(s.p99, d["lat_ns"]["percentile"]["99.000000"].get<std::uint64_t>());
        }
    }
    s.mbps = s.iops * c.bs / 1e6;
    s.cpu_us = s.ios ? busy / static_cast<double>(s.ios) * 1e6 : 0;
    return s;
}

}  // namespace

const std::vector<std::string>& all_paths()
{
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (auto& p : needs()) v.push_back(p.name);
        return v;
    }();
    return names;
}

core::Result<Case> parse_case(const std::string& s)
{
    auto parts = core::split(s, ':');
    const auto bad = [&] { return core::fail(Errc::invalid_input, "--case \"" + s + "\" is not RW:BS:QD", "devemu bench", "e.g. --case randread:4k:32"); };
    if (parts.size() != 3) return bad();
    Case c;
    bool rw_ok = false;
    for (auto rw : {uring::Rw::read, uring::Rw::write, uring::Rw::randread, uring::Rw::randwrite, uring::Rw::randrw})
        if (parts[0] == uring::to_string(rw)) c.rw = rw, rw_ok = true;
    auto bs = core::parse_size(parts[1]);
    auto qd = core::parse_number(parts[2]);
    if (!rw_ok || !bs || !qd || *qd == 0 || *qd > 4096 || *bs < 512 || *bs % 512 || *bs > (64u << 20)) return bad();
    c.bs = static_cast<std::uint32_t>(*bs), c.iodepth = static_cast<unsigned>(*qd);
    return c;
}

std::string case_name(const Case& c) { return fmt::format("{} {} QD{}", core::format_size(c.bs), uring::to_string(c.rw), c.iodepth); }

std::vector<Case> default_cases() { return {{uring::Rw::randread, 4096, 32}, {uring::Rw::randwrite, 4096, 32}, {uring::Rw::read, 128 << 10, 8}}; }

std::string missing_here(const std::vector<std::string>& paths)
{
    auto km = core::Kmod::open();
    for (auto& name : paths) {
        const auto* p = find_path(name);
        if (!p) continue;
        for (auto* m : p->modules) {
            const bool known = km && !km->lookup(m).empty();
            if (!known) return fmt::format("path {} needs the kernel module {}, which this kernel ({}) does not have", name, m, core::trim(core::read_attr("/proc/sys/kernel/osrelease").value_or("?")));
        }
        for (auto* t : p->tools)
            if (core::which(t).empty()) return fmt::format("path {} needs {}, which is not installed", name, t);
    }
    if (paths.size() > 1 || (paths.size() == 1 && paths[0] != "raw"))
        if (!core::filesystem_known("configfs") && !(km && !km->lookup("configfs").empty())) return "this kernel has no configfs";
    return "";
}

bool made_here(const std::string& backing) { return backing.starts_with("zram:") || backing.starts_with("ext4:"); }

core::Status check_request(const PathsRequest& r)
{
    if (r.paths.empty()) return core::fail(Errc::invalid_input, "--paths names no path", "devemu bench", fmt::format("choose from {}, or all", fmt::join(all_paths(), ",")));
    for (auto& p : r.paths)
        if (!find_path(p)) return core::fail(Errc::invalid_input, "unknown path \"" + p + "\"", "--paths", fmt::format("choose from {}, or all", fmt::join(all_paths(), ",")));
    if (r.cases.empty()) return core::fail(Errc::invalid_input, "no workload", "--case");
    if (!r.baseline.empty() && !uses(r.paths, {r.baseline.c_str()}))
        return core::fail(Errc::invalid_input, "--baseline " + r.baseline + " is not one of the paths", "--baseline", "name one of --paths");
    if (made_here(r.backing)) {
        auto sz = core::parse_size(r.backing.substr(5));
        if (!sz || *sz < (16u << 20)) return core::fail(Errc::invalid_input, "not zram:SIZE or ext4:SIZE (at least 16M)", r.backing, "e.g. zram:1G");
        if (r.backing.starts_with("ext4:") && uses(r.paths, {"iblock"}))
            return core::fail(Errc::invalid_input, "path iblock needs a block device; ext4:SIZE is a file", r.backing, "drop iblock from --paths, or use zram:SIZE");
    }
    return {};
}

core::Result<PathsOutcome> run_paths(const PathsRequest& r)
{
    DEVEMU_CHECK(check_request(r));
    if (r.split_cpus) DEVEMU_CHECK(SplitCpus::possible());
    const std::string baseline = !r.baseline.empty() ? r.baseline : uses(r.paths, {"raw"}) ? "raw" : r.paths[0];
    // The backing: zram:SIZE or ext4:SIZE made here (and filled), or what the user names.
    std::string dev;
    bool made = false, ext4 = false;
    std::uint64_t size = 0;
    if (made_here(r.backing)) {
        ext4 = r.backing.starts_with("ext4:");
        if (ext4 && core::which("mkfs.ext4").empty()) return core::fail(Errc::missing, "ext4:SIZE needs mkfs.ext4", r.backing, "apt install e2fsprogs");
        size = *core::parse_size(r.backing.substr(5)) / 4096 * 4096;
        made = true;
    } else {
        struct stat st {};
        if (::stat(r.backing.c_str(), &st) != 0) return core::fail_errno("cannot use the backing", r.backing, "name a block device, a file, or zram:SIZE");
        if (!S_ISBLK(st.st_mode) && uses(r.paths, {"iblock"}))
            return core::fail(Errc::invalid_input, "path iblock needs a block device; this is a file", r.backing, "drop iblock from --paths, or use zram:SIZE or a /dev path");
        if (S_ISBLK(st.st_mode)) DEVEMU_CHECK(backing::check_block_device_free(r.backing, r.base.force));
        dev = r.backing;
    }
    uring::install_stop_handler();
    if (fs::exists(r.state_dir)) {   // a run that was killed (-9, a crash): its journals remove what it left, first
        DEVEMU_TRY(old, core::StateDir::open(r.state_dir));
        Teardown left;
        left.sd = &old;
        left.order = old.units();
        auto rank = [](const std::string& u) { return u == "bench-backing" ? 0 : u.starts_with("bench-login-") ? 3 : u == "bench-tgtd" ? 2 : 1; };
        std::stable_sort(left.order.begin(), left.order.end(), [&](auto& a, auto& b) { return rank(a) < rank(b); });   // removed last to first
        if (!left.order.empty()) spdlog::warn("bench --paths: removing what an earlier run left in {}", r.state_dir.string());
    }
    fs::remove_all(r.state_dir);
    DEVEMU_TRY(sd, core::StateDir::open(r.state_dir));
    Teardown td;
    td.sd = &sd;
    auto stopped = [] { return uring::interrupted() ? core::fail(Errc::io, "interrupted", "devemu bench --paths", "everything it made is removed") : core::Status{}; };

    if (made) {
        core::progress("bench --paths: making the zram backing");
        if (!fs::exists("/sys/class/zram-control")) {
            DEVEMU_TRY(km, core::Kmod::open());
            DEVEMU_CHECK(km.load("zram"));
        }
        profile::Backstore b;
        // ext4:SIZE: the file on ext4 on a zram device a little larger (the filesystem's own blocks).
        b.name = "bench_backing", b.type = profile::BackstoreType::zram, b.size = ext4 ? size + size / 16 + (64u << 20) : size;
        core::Transaction tx(sd.journal("bench-backing"));
        td.order.push_back("bench-backing");
        DEVEMU_TRY(bk, backing::resolve_backing(b, {}, &tx, std::nullopt, false));
        dev = bk.path;
        if (ext4) {
            const auto mnt = sd.root() / "mnt";
            DEVEMU_TRY(mk, core::run({"mkfs.ext4", "-q", "-F", dev}, std::chrono::seconds(120)));
            if (mk.exit_code != 0) return core::fail(Errc::kernel, "mkfs.ext4 failed: " + std::string(core::trim(mk.err)), dev);
            fs::create_directories(mnt);
            DEVEMU_CHECK(tx.record({core::UndoOp::umount, mnt.string(), "", 0, 0, ""}));
            DEVEMU_TRY(mo, core::run({"mount", "-t", "ext4", dev, mnt.string()}, std::chrono::seconds(60)));
            if (mo.exit_code != 0) return core::fail(Errc::kernel, "cannot mount the ext4 backing: " + std::string(core::trim(mo.err)), mnt.string());
            dev = (mnt / "disk.img").string();
        }
        tx.commit();
        core::progress(fmt::format("bench --paths: filling {} ({}) with random data", dev, core::format_size(size)));
        DEVEMU_CHECK(uring::fill_device(dev, size));
    }
    DEVEMU_CHECK(stopped());

    // The LIO and USB paths: one profile through the unit kinds, as `devemu up` does it.
    std::map<std::string, std::string> devices{{"raw", dev}};
    const std::string text = profile_text(r.paths, dev);
    if (!text.empty()) {
        core::progress("bench --paths: bringing up the LIO and USB paths");
        const auto file = sd.root() / "paths.toml";
        DEVEMU_CHECK(core::write_file_atomic(file, text));
        DEVEMU_TRY(prof, profile::load(file));
        core::UpRequest req;
        req.force = true;   // the backing is the run's own, or the user's, already checked above
        req.timeout = std::chrono::seconds(60);
        for (const auto* kind : core::all_kinds()) {
            if (!kind->up) continue;
            DEVEMU_TRY(outs, kind->up(prof, sd, req));
            for (auto& o : outs) {
                td.order.push_back(o.unit);
                if (!o.record) return std::unexpected(o.record.error());
                const json rec = *o.record;
                const json d = kind->describe ? kind->describe(rec, core::DescribeFor::ls, false).json : json::object();
                std::string disk;
                if (d.contains("luns") && d["luns"].is_array() && !d["luns"].empty()) disk = d["luns"][0].value("disk", "");
                if (d.contains("access") && d["access"].contains("devices") && d["access"]["devices"].contains("0")) disk = d["access"]["devices"]["0"];
                devices[o.unit.substr(6)] = disk;   // "bench-fileio" -> "fileio"
            }
        }
        DEVEMU_CHECK(stopped());
    }
    if (uses(r.paths, {"iscsi"})) {
        core::progress("bench --paths: logging in to the LIO iSCSI target");
        DEVEMU_TRY(d, login(sd, td, "bench-login-iscsi", kIqnLio, kIscsiPort, 0));
        devices["iscsi"] = d;
    }
    if (uses(r.paths, {"iscsi-user"})) {
        core::progress("bench --paths: logging in to the LIO iSCSI target of the user backstore");
        DEVEMU_TRY(d, login(sd, td, "bench-login-iscsi-user", kIqnLioUser, kIscsiPort, 0));
        devices["iscsi-user"] = d;
    }
    if (uses(r.paths, {"tgt-rdwr", "tgt-aio"})) {
        core::progress("bench --paths: starting tgtd and logging in");
        DEVEMU_CHECK(tgt_up(sd, td, r.paths, dev));
        if (uses(r.paths, {"tgt-rdwr"})) {
            DEVEMU_TRY(d, login(sd, td, "bench-login-tgt-rdwr", kIqnTgtRdwr, kTgtPort, 1));
            devices["tgt-rdwr"] = d;
        }
        if (uses(r.paths, {"tgt-aio"})) {
            DEVEMU_TRY(d, login(sd, td, "bench-login-tgt-aio", kIqnTgtAio, kTgtPort, 1));
            devices["tgt-aio"] = d;
        }
    }
    DEVEMU_CHECK(stopped());
    for (auto& p : r.paths)
        if (devices[p].empty()) return core::fail(Errc::timeout, "path " + p + " came up without a disk", r.state_dir.string(), "see dmesg");

    // --split-cpus: the device's side (what the units started, the kernel's threads of these paths) away from the
    // engine's CPU for the measured runs; the verify pass and the teardown run unpinned.
    std::optional<SplitCpus> split;
    if (r.split_cpus) {
        std::vector<std::string> kthreads;
        if (uses(r.paths, {"usb"})) kthreads.push_back("file-storage");
        if (uses(r.paths, {"iscsi", "iscsi-user"})) kthreads.insert(kthreads.end(), {"iscsi_trx", "iscsi_ttx"});
        DEVEMU_TRY(placed, SplitCpus::place(sd, kthreads));
        split.emplace(std::move(placed));
        DEVEMU_CHECK(split->engine_pinned());
    }

    // Alternating rounds: case by case, every path once per round.
    uring::BenchOptions base = r.base;
    if (base.runtime <= 0) base.runtime = 5;
    base.time_based = true;
    std::map<std::string, std::vector<Sample>> got;   // case|path -> runs
    const std::size_t total = r.cases.size() * r.rounds * r.paths.size();
    std::size_t n = 0;
    for (auto& c : r.cases)
        for (unsigned round = 0; round < r.rounds; ++round)
            for (auto& p : r.paths) {
                core::progress(fmt::format("bench --paths: [{}/{}] {} on {} ({}), round {}/{}", ++n, total, case_name(c), p, devices[p], round + 1, r.rounds));
                DEVEMU_TRY(s, measure(base, c, devices[p]));
                DEVEMU_CHECK(stopped());
                got[case_name(c) + "|" + p].push_back(s);
            }
    if (split) split->engine_free();

    PathsOutcome out;
    json j = {{"backing", r.backing}, {"device", dev}, {"filled", made}, {"regime", ext4 ? "a file on ext4 on zram (page cache: buffered paths read it without sleeping)" : made ? "a zram device" : "the user's"}, {"rounds", r.rounds}, {"runtime", base.runtime}, {"direct", base.direct},
              {"engine", "devemu io_uring"}, {"baseline", baseline}, {"numjobs", base.numjobs}, {"cpu", "whole machine busy time (/proc/stat) per I/O"}};
    j["split_cpus"] = split ? split->to_json() : json(false);
    j["paths"] = json::array();
    for (auto& p : r.paths) j["paths"].push_back({{"path", p}, {"what", find_path(p)->what}, {"device", devices[p]}});
    j["cases"] = json::array();
    for (auto& c : r.cases) {
        json jc = {{"case", case_name(c)}, {"rw", uring::to_string(c.rw)}, {"bs", c.bs}, {"iodepth", c.iodepth}, {"paths", json::array()}};
        double base_iops = 0;
        for (auto& p : r.paths) {
            const auto& runs = got[case_name(c) + "|" + p];
            std::vector<double> iops, mbps, p50, p99, cpu;
            std::uint64_t ios = 0;
            for (auto& s : runs)
                iops.push_back(s.iops), mbps.push_back(s.mbps), p50.push_back(double(s.p50)), p99.push_back(double(s.p99)), cpu.push_back(s.cpu_us), ios += s.ios;
            const double m = median(iops);
            const double spread = m > 0 ? (*std::max_element(iops.begin(), iops.end()) - *std::min_element(iops.begin(), iops.end())) / m : 0;
            json jp = {{"path", p}, {"iops", m}, {"mbps", median(mbps)}, {"p50_ns", median(p50)}, {"p99_ns", median(p99)}, {"cpu_us_per_io", median(cpu)},
                       {"spread", spread}, {"runs_iops", iops}, {"total_ios", ios}};
            if (p == baseline) base_iops = m;
            jc["paths"].push_back(jp);
        }
        if (base_iops > 0)
            for (auto& jp : jc["paths"]) jp["ratio"] = jp["iops"].get<double>() / base_iops;
        j["cases"].push_back(jc);
    }

    if (r.verify) {
        j["verify"] = json::object();
        for (auto& p : r.paths) {
            core::progress(fmt::format("bench --paths: verify on {} ({})", p, devices[p]));
            uring::BenchOptions o = r.base;
            o.target = devices[p];
            o.rw = uring::Rw::randwrite, o.bs = 4096, o.iodepth = 8, o.batch = 2;
            o.verify = true, o.json = true, o.fill = false, o.compare_fio = false, o.time_based = false, o.runtime = 0, o.numjobs = 1;
            o.size = 8u << 20;
            DEVEMU_TRY(v, uring::run_bench(o));
            DEVEMU_CHECK(stopped());
            const json jv = v.json["devemu"]["verify"];
            j["verify"][p] = jv;
            if (v.verify_failed) out.failed = true;
        }
    }
    core::progress_clear();
    out.text = paths_table(j);
    out.json = j;
    return out;
}

}  // namespace devemu::bench
