#include "lio/failover.hpp"

#include <fcntl.h>
#include <signal.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <thread>

#include "backing/dm.hpp"
#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "lio/mpath.hpp"
#include "lio/paths.hpp"

namespace devemu::lio {

using nlohmann::json;
using core::Errc;
namespace fs = std::filesystem;

namespace {

double now_ms()
{
    return static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count()) / 1000.0;
}

std::uint64_t ms_of(const json& j, const char* key, std::uint64_t dflt)
{
    // (an integer of either signedness: a JSON literal written in C++ is signed, one parsed from text unsigned)
    return j.contains(key) && j[key].is_number_integer() && j[key].get<std::int64_t>() >= 0 ? j[key].get<std::uint64_t>() : dflt;
}

}  // namespace

core::Result<FailoverOptions> FailoverOptions::from_json(const json& j)
{
    FailoverOptions o;
    o.flaps = ms_of(j, "flaps", o.flaps);
    o.down_for = std::chrono::milliseconds(ms_of(j, "down_for_ms", static_cast<std::uint64_t>(o.down_for.count())));
    o.between = std::chrono::milliseconds(ms_of(j, "between_ms", static_cast<std::uint64_t>(o.between.count())));
    o.all_down = std::chrono::milliseconds(ms_of(j, "all_down_ms", 0));
    o.duration = std::chrono::seconds(ms_of(j, "duration_s", 0));
    o.rw = j.value("rw", o.rw);
    o.bs = j.value("bs", o.bs);
    o.iodepth = static_cast<unsigned>(ms_of(j, "iodepth", o.iodepth));
    if (o.rw != "randwrite" && o.rw != "write" && o.rw != "randrw" && o.rw != "rw")
        return core::fail(Errc::invalid_input, "--rw " + o.rw + ": a verified run writes", o.rw, "use randwrite, write, randrw or rw");
    if (o.iodepth < 1 || o.iodepth > 256) return core::fail(Errc::invalid_input, "--iodepth must be 1..256", std::to_string(o.iodepth), "");
    if (o.flaps == 0 && o.all_down.count() == 0) return core::fail(Errc::invalid_input, "nothing to do: --flaps 0 and no --all-down", "--flaps", "");
    return o;
}

json FailoverOptions::to_json() const
{
    return {{"flaps", flaps}, {"down_for_ms", down_for.count()}, {"between_ms", between.count()}, {"all_down_ms", all_down.count()},
            {"duration_s", duration.count()}, {"rw", rw}, {"bs", bs}, {"iodepth", iodepth}};
}

std::vector<std::pair<double, double>> parse_lat_log(const std::string& text)
{
    std::vector<std::pair<double, double>> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        char* end = nullptr;
        const double t = std::strtod(line.c_str(), &end);
        if (end == line.c_str() || *end != ',') continue;
        const double lat_ns = std::strtod(end + 1, nullptr);
        out.emplace_back(t, lat_ns / 1e6);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void measure_event(FailoverEvent& e, const std::vector<std::pair<double, double>>& done, double start_ms, double end_ms)
{
    auto it = std::lower_bound(done.begin(), done.end(), std::pair<double, double>{start_ms, -1e300});
    e.next_completion_ms = it == done.end() ? -1 : it->first - start_ms;
    double prev = start_ms, stall = 0, slow = 0;
    for (; it != done.end() && it->first <= end_ms; ++it) {
        stall = std::max(stall, it->first - prev);
        slow = std::max(slow, it->second);
        prev = it->first;
    }
    e.longest_stall_ms = std::max(stall, end_ms - prev);
    e.max_latency_ms = slow;
}

bool failed_in_map(const FailoverEvent& e, const std::vector<std::pair<double, std::vector<bool>>>& timeline)
{
    const double stop = e.back_s >= 0 ? e.back_s : std::numeric_limits<double>::max();
    for (auto& [t, active] : timeline) {
        if (t < e.cut_s || t > stop) continue;
        for (std::size_t k = 0; k < active.size(); ++k)
            if (!active[k] && (e.path == 0 || e.path == k + 1)) return true;
    }
    return false;
}

namespace {

struct Run {
    PathSet& ps;
    const FailoverOptions& o;
    std::string& alias = ps.alias;
    std::vector<std::string>& names = ps.names;   // each path's disk (sdX), path order
    double t0 = 0;
    FailoverReport rep;

    void sample()
    {
        auto p = mpath::paths_of(alias);
        if (!p) return;
        std::vector<bool> active(names.size(), false);
        for (auto& st : *p)
            for (std::size_t k = 0; k < names.size(); ++k)
                if (st.device == names[k]) active[k] = st.active;
        rep.timeline.push_back({(now_ms() - t0) / 1000.0, active});
    }
    void hold(std::chrono::milliseconds d)
    {
        const auto end = std::chrono::steady_clock::now() + d;
        do {
            sample();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        } while (std::chrono::steady_clock::now() < end);
    }
    // Until every path is active in the map again (multipathd reinstates a path at its next check); -1 after 60 s.
    double wait_back()
    {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (std::chrono::steady_clock::now() < end) {
            sample();
            const auto& last = rep.timeline.empty() ? std::vector<bool>{} : rep.timeline.back().second;
            if (!last.empty() && std::all_of(last.begin(), last.end(), [](bool a) { return a; })) return rep.timeline.back().first;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return -1;
    }
    core::Status cut(std::size_t k, bool down) { return ps.set(k, down, names); }
};

}  // namespace

core::Result<FailoverReport> run_failover(const TargetRecord& r, const FailoverOptions& o)
{
    const json maps = r.info.contains("multipath") ? r.info["multipath"].value("maps", json::object()) : json::object();
    if (maps.empty())
        return core::fail(Errc::invalid_input, "target " + r.name + " has no multipath map", r.name,
                          "give its profile paths = 2 and multipath = true");
    const std::size_t n = path_count(r);
    PathSet ps{maps.begin().value().value("alias", ""), {}, [&r](std::size_t k, bool down, std::vector<std::string>&) -> core::Status {
                   auto s = set_path(r, k, down, Roots{});
                   if (!s) return std::unexpected(s.error());
                   return {};
               }};
    const std::string lun = maps.begin().key();
    const json by_path = maps.begin().value().value("path_devices", json::array());   // each path's disk (a unit from before: none)
    for (std::size_t k = 0; k < n; ++k) {
        if (k < by_path.size()) {
            ps.names.push_back(fs::path(by_path[k].get<std::string>()).filename().string());
            continue;
        }
        const json devs = k == 0 ? r.info.value("devices", json::object()) : r.info["paths"][k].value("devices", json::object());
        ps.names.push_back(fs::path(devs.value(lun, "")).filename().string());
    }
    if (!backing::find_dm(ps.alias)) return core::fail(Errc::missing, "multipath map " + ps.alias + " is not there", r.name, "devemu up again");
    if (!paths_down(r, Roots{}).empty()) return core::fail(Errc::invalid_input, "a path of " + r.name + " is down already", r.name, "devemu fault " + r.name + " path K up");
    return run_failover(ps, o);
}

core::Result<FailoverReport> run_failover(PathSet& ps, const FailoverOptions& o)
{
    const std::size_t n = ps.names.size();
    Run run{ps, o};
    auto dm = backing::find_dm(run.alias);
    if (!dm) return core::fail(Errc::missing, "multipath map " + run.alias + " is not there", run.alias, "");
    auto& rep = run.rep;
    rep.device = "/dev/mapper/" + run.alias;
    rep.paths = run.names;
    const auto size = core::read_number(fs::path("/sys/block") / fs::path(dm->node).filename() / "size");
    const std::uint64_t region = std::min<std::uint64_t>(size ? *size * 512 : 0, 64ull << 20);
    if (region < (1u << 20)) return core::fail(Errc::invalid_input, "the map is smaller than 1 MiB", dm->node, "");
    DEVEMU_CHECK(core::make_dirs(o.scratch, 0700));
    const auto lat = o.scratch / "failover";
    for (auto& e : fs::directory_iterator(o.scratch)) if (e.path().filename().string().starts_with("failover_")) fs::remove(e.path());
    const std::vector<std::string> argv = {"fio", "--name=failover", "--filename=" + dm->node, "--rw=" + o.rw, "--bs=" + o.bs,
                                           fmt::format("--iodepth={}", o.iodepth), "--ioengine=libaio", "--direct=1", fmt::format("--size={}", region),
                                           "--verify=crc32c", "--verify_backlog=64", "--verify_fatal=0", "--continue_on_error=all",
                                           "--time_based", "--runtime=3600", "--write_lat_log=" + lat.string(), "--log_unix_epoch=1",
                                           "--output-format=json"};
    core::UniqueFd out(::open((o.scratch / "fio.json").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    core::UniqueFd err(::open((o.scratch / "fio.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!out || !err) return core::fail_errno("cannot write", o.scratch.string());
    core::SpawnOptions so;
    so.stdout_fd = out.get();
    so.stderr_fd = err.get();
    DEVEMU_TRY(fio, core::Child::spawn(argv, so));
    run.t0 = now_ms();
    run.hold(std::chrono::milliseconds(1500));   // fio running, completions flowing
    if (auto st = fio.try_wait())
        return core::fail(Errc::kernel, fmt::format("fio exited ({}) before the first cut: {}", *st, core::read_file(o.scratch / "fio.err").value_or("")),
                          dm->node, "");
    const double stop_cuts_ms = o.duration.count() ? run.t0 + static_cast<double>(o.duration.count()) * 1000.0 : 0;
    for (std::size_t i = 0; i < o.flaps && (!stop_cuts_ms || now_ms() < stop_cuts_ms); ++i) {
        const std::size_t k = i % n + 1;
        if (o.progress)
            o.progress(o.duration.count() ? fmt::format("cut {}: path {} ({}), {:.0f} of {} s", i + 1, k, run.names[k - 1], (now_ms() - run.t0) / 1000.0,
                                                        o.duration.count())
                                          : fmt::format("cut {}/{}: path {} ({})", i + 1, o.flaps, k, run.names[k - 1]));
        FailoverEvent e;
        e.path = k;
        e.cut_s = (now_ms() - run.t0) / 1000.0;
        DEVEMU_CHECK(run.cut(k, true));
        run.hold(o.down_for);
        DEVEMU_CHECK(run.cut(k, false));
        e.restored_s = (now_ms() - run.t0) / 1000.0;
        e.back_s = run.wait_back();
        rep.events.push_back(e);
        run.hold(o.between);
    }
    if (o.all_down.count() > 0) {
        if (o.progress) o.progress("every path down");
        FailoverEvent e;
        e.cut_s = (now_ms() - run.t0) / 1000.0;
        for (std::size_t k = 1; k <= n; ++k) DEVEMU_CHECK(run.cut(k, true));
        run.hold(o.all_down);
        for (std::size_t k = 1; k <= n; ++k) DEVEMU_CHECK(run.cut(k, false));
        e.restored_s = (now_ms() - run.t0) / 1000.0;
        e.back_s = run.wait_back();
        rep.events.push_back(e);
        run.hold(o.between);
    }
    ::kill(fio.pid(), SIGINT);   // fio stops, verifies what is in flight and writes its report
    std::optional<int> st;
    for (int i = 0; i < 600 && !(st = fio.try_wait()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rep.fio_exit = st ? *st : fio.terminate();
    const double end = now_ms();
    rep.runtime_s = (end - run.t0) / 1000.0;
    // fio's own count of errors, and what its log says they were
    // (fio may put a line before its JSON, such as the signal it stopped on)
    const std::string text = core::read_file(o.scratch / "fio.json").value_or("");
    auto report = json::parse(text.substr(std::min(text.size(), text.find('{'))), nullptr, false);
    rep.report_read = report.is_object() && report.contains("jobs") && !report["jobs"].empty();
    if (rep.report_read) rep.total_err = report["jobs"][0].value("total_err", std::uint64_t{0});
    std::istringstream errs(core::read_file(o.scratch / "fio.err").value_or(""));
    for (std::string line; std::getline(errs, line);) {
        if (line.find("io_u error") != std::string::npos) ++rep.io_errors;
        else if (line.find("verify") != std::string::npos && (line.find("fail") != std::string::npos || line.find("bad") != std::string::npos))
            ++rep.verify_mismatches;
    }
    // fio names only some errors in its log when it goes on after them: its count is the one to trust
    rep.io_errors = std::max(rep.io_errors, rep.total_err > rep.verify_mismatches ? rep.total_err - rep.verify_mismatches : 0);
    std::vector<std::pair<double, double>> done;
    for (auto& e : fs::directory_iterator(o.scratch))
        if (e.path().filename().string().starts_with("failover_clat")) {
            auto more = parse_lat_log(core::read_file(e.path()).value_or(""));
            done.insert(done.end(), more.begin(), more.end());
        }
    std::sort(done.begin(), done.end());
    rep.ios = done.size();
    for (auto& e : rep.events) {
        const double stop = e.back_s >= 0 ? e.back_s : e.restored_s + 1.0;
        measure_event(e, done, run.t0 + e.cut_s * 1000.0, run.t0 + stop * 1000.0);
        e.failed_in_map = failed_in_map(e, rep.timeline);
    }
    for (double t = 0; t < rep.runtime_s; t += 0.1) {
        const double a = run.t0 + t * 1000.0;
        const auto lo = std::lower_bound(done.begin(), done.end(), std::pair<double, double>{a, -1e300});
        const auto hi = std::lower_bound(done.begin(), done.end(), std::pair<double, double>{a + 100.0, -1e300});
        rep.completions.push_back({t, static_cast<std::uint64_t>(hi - lo)});
    }
    return rep;
}

json FailoverReport::result_json() const
{
    json j = to_json();
    j["svg"] = svg();
    j["ok"] = ok();   // any error the application saw (expected with every path down past no_path_retry) fails it
    j["lines"] = lines();
    return j;
}

json FailoverReport::to_json() const
{
    json ev = json::array();
    for (auto& e : events)
        ev.push_back({{"path", e.path == 0 ? json("all") : json(e.path)}, {"cut_s", e.cut_s}, {"restored_s", e.restored_s}, {"back_s", e.back_s},
                      {"next_completion_ms", e.next_completion_ms}, {"longest_stall_ms", e.longest_stall_ms}, {"max_latency_ms", e.max_latency_ms},
                      {"failed_in_map", e.failed_in_map}});
    json tl = json::array();
    for (auto& [t, a] : timeline) tl.push_back({{"t", t}, {"active", a}});
    return {{"device", device}, {"paths", paths}, {"events", ev}, {"ios", ios}, {"io_errors", io_errors}, {"verify_mismatches", verify_mismatches},
            {"fio_total_err", total_err}, {"fio_exit", fio_exit}, {"fio_report", report_read}, {"runtime_s", runtime_s}, {"timeline", tl}};
}

std::vector<std::string> FailoverReport::lines() const
{
    std::vector<std::string> out;
    out.push_back(fmt::format("failover {}: {} events over {} paths ({}), fio with crc32c verify, {:.1f} s", device, events.size(), paths.size(),
                              core::join(paths, ", "), runtime_s));
    out.push_back("  event  path  cut at   next I/O   longest stall   slowest I/O   back after the restore");
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        out.push_back(fmt::format("  {:5}  {:4}  {:6.1f} s  {:>8}  {:>11.0f} ms  {:>9.0f} ms   {}", i + 1, e.path == 0 ? std::string("all") : std::to_string(e.path),
                                  e.cut_s, e.next_completion_ms < 0 ? std::string("none") : fmt::format("{:.0f} ms", e.next_completion_ms),
                                  e.longest_stall_ms, e.max_latency_ms,
                                  e.back_s < 0                ? std::string("not back in 60 s")
                                  : e.failed_in_map           ? fmt::format("{:.1f} s", e.back_s - e.restored_s)
                                                              : std::string("never failed in the map: no I/O failed on it while it was down")));
    }
    out.push_back(fmt::format("  {} I/Os; application errors {}; verify mismatches {}; fio's error count {}{}", ios, io_errors, verify_mismatches,
                              total_err, report_read ? "" : " (fio wrote no report)"));
    return out;
}

std::string FailoverReport::svg() const
{
    const double w = 900, lane = 26, top = 30, chart = 120;
    const double span = std::max(runtime_s, 1.0);
    auto x = [&](double t) { return 60 + t / span * (w - 80); };
    const double h = top + lane * static_cast<double>(paths.size()) + chart + 50;
    std::string s = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n", w, h);
    s += fmt::format("<text x=\"10\" y=\"18\">devemu failover {}: path states (green active, red failed) and I/O completions per 100 ms</text>\n", device);
    for (std::size_t k = 0; k < paths.size(); ++k) {
        const double y = top + lane * static_cast<double>(k);
        s += fmt::format("<text x=\"10\" y=\"{}\">{}</text>\n", y + 16, paths[k]);
        for (std::size_t i = 0; i + 1 < timeline.size(); ++i) {
            const bool a = k < timeline[i].second.size() && timeline[i].second[k];
            s += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\"/>\n", x(timeline[i].first), y + 4,
                             std::max(0.5, x(timeline[i + 1].first) - x(timeline[i].first)), lane - 8, a ? "#3a3" : "#d33");
        }
    }
    std::uint64_t peak = 1;
    for (auto& [t, c] : completions) peak = std::max(peak, c);
    const double base = top + lane * static_cast<double>(paths.size()) + chart + 10;
    for (auto& [t, c] : completions)
        s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#36c\"/>\n", x(t), base - chart * static_cast<double>(c) / static_cast<double>(peak),
                         std::max(0.5, x(t + 0.1) - x(t)), chart * static_cast<double>(c) / static_cast<double>(peak));
    for (auto& e : events) s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#000\" stroke-dasharray=\"3,3\"/>\n", x(e.cut_s), top, base);
    s += fmt::format("<text x=\"60\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\">{:.0f} s</text>\n", base + 18, w - 60, base + 18, runtime_s);
    s += fmt::format("<text x=\"10\" y=\"{}\">{} per 100 ms at most</text>\n</svg>\n", base - chart + 4, peak);
    return s;
}

}  // namespace devemu::lio
