#include "bench/paths.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "backing/backing.hpp"
#include "backing/blockdev.hpp"
#include "bench/bringup.hpp"
#include "bench/placement.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/probe.hpp"
#include "core/progress.hpp"
#include "core/statedir.hpp"
#include "core/text.hpp"
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

    if (made) {
        DEVEMU_TRY(d, make_backing(sd, td, ext4, size));
        dev = d;
    }
    DEVEMU_CHECK(interrupted_status());

    DEVEMU_TRY(devices, bring_up(sd, td, r.paths, dev));
    // Buffered reads of the backing (LIO fileio, devemu's handler, tgtd's bs_rdwr, the USB functions) come from the page cache as far as
    // its pages are there: how far, before and after the runs (O_DIRECT paths do not use it).
    const auto resident_before = core::page_cache_resident(dev);

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
                DEVEMU_CHECK(interrupted_status());
                got[case_name(c) + "|" + p].push_back(s);
            }
    if (split) split->engine_free();
    const auto resident_after = core::page_cache_resident(dev);

    PathsOutcome out;
    json j = {{"backing", r.backing}, {"device", dev}, {"filled", made}, {"regime", ext4 ? "a file on ext4 on zram, filled through the page cache (buffered paths read it from there)" : made ? "a zram device" : "the user's"}, {"rounds", r.rounds}, {"runtime", base.runtime}, {"direct", base.direct},
              {"engine", "devemu io_uring"}, {"baseline", baseline}, {"numjobs", base.numjobs}, {"cpu", "whole machine busy time (/proc/stat) per I/O"}};
    j["split_cpus"] = split ? split->to_json() : json(false);
    j["page_cache"] = resident_before && resident_after ? json{{"file", dev}, {"before", *resident_before}, {"after", *resident_after}} : json(nullptr);
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
            DEVEMU_CHECK(interrupted_status());
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
