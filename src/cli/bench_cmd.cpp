// devemu bench TARGET [fio-style options]
#include <iostream>

#include "cli/cli.hpp"
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "bench/paths.hpp"
#include "core/fs.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/statedir.hpp"
#include "uring/bench.hpp"
#include "uring/sweep.hpp"

namespace devemu::cli {

namespace {

// devemu bench --paths LIST BACKING [--case RW:BS:QD]… [options]: here when this kernel has every path's modules
// and tools, else (or with --vm) the same command in a VM of the distribution kernel with the host's root.
int bench_paths(Context& ctx, const Args& args)
{
    bench::PathsRequest r;
    Args rest, relay;
    bool want_vm = false, in_vm = false, explicit_case = false;
    std::string paths, svg;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        auto value = [&](const std::string& name, std::string& into) {
            if (a == "--" + name && i + 1 < args.size()) return into = args[++i], true;
            if (a.starts_with("--" + name + "=")) return into = a.substr(name.size() + 3), true;
            return false;
        };
        std::string v;
        if (value("paths", v)) {
            paths = v;
            relay.push_back("--paths=" + v);
        } else if (value("case", v)) {
            auto c = bench::parse_case(v);
            if (!c) return report(c.error());
            r.cases.push_back(*c);
            relay.push_back("--case=" + v);
        } else if (value("baseline", v)) {
            r.baseline = v;
            relay.push_back("--baseline=" + v);
        } else if (value("svg", v)) {
            svg = v;
        } else if (a == "--vm") {
            want_vm = true;
        } else if (a == "--in-vm") {
            in_vm = true;
        } else if (a == "--split-cpus") {
            r.split_cpus = true;
            relay.push_back(a);
        } else {
            if (a.starts_with("--rw") || a.starts_with("--bs") || a.starts_with("--iodepth")) explicit_case = true;
            rest.push_back(a);
            relay.push_back(a);
        }
    }
    r.paths = paths == "all" ? bench::all_paths() : core::split(paths, ',');
    auto o = uring::parse_options(rest);
    if (!o) return report(o.error());
    if (o->target.empty()) return report({core::Errc::invalid_input, "--paths needs a BACKING", "devemu bench", "e.g. devemu bench --paths all zram:512M"});
    if (o->compare_fio || !o->sweep.empty()) return report({core::Errc::invalid_input, "--paths goes with neither --compare-fio nor --sweep", "devemu bench", ""});
    if (r.cases.empty()) r.cases = explicit_case ? std::vector<bench::Case>{{o->rw, o->bs, o->iodepth}} : bench::default_cases();
    r.backing = o->target;
    r.base = *o;
    r.rounds = std::max(1u, o->repeat);
    r.verify = o->verify;
    if (auto s = bench::check_request(r); !s) return report(s.error());
    const std::string missing = in_vm ? "" : bench::missing_here(r.paths);
    if (!in_vm && (want_vm || !missing.empty())) {
        if (!bench::made_here(r.backing) && !missing.empty())
            return report({core::Errc::invalid_input, "a VM is needed (" + missing + "), and there the backing is zram:SIZE or ext4:SIZE", r.backing,
                           "use zram:SIZE or ext4:SIZE"});
        if (!missing.empty() && ctx.verbosity >= 0) core::note("bench --paths: " + missing + "; running in a VM of the distribution kernel");
        auto rc = bench::run_paths_in_vm(r, relay, svg, {ctx.kernel, ctx.cache_dir, ctx.state_dir, ctx.verbosity > 0});
        if (!rc) return report(rc.error());
        if (*rc == 0 && !svg.empty() && !o->json) std::cout << "plot: " << svg << "\n";
        return *rc;
    }
    r.state_dir = ctx.state_dir / "bench-paths";
    auto out = bench::run_paths(r);
    if (!out) return report(out.error());
    if (!svg.empty())
        if (auto s = core::write_file_atomic(svg, bench::paths_svg(out->json)); !s) return report(s.error());
    if (o->json) std::cout << out->json.dump(2) << "\n";
    else std::cout << out->text << (svg.empty() || in_vm ? "" : "plot: " + svg + "\n");   // in a VM: the host says where it is
    return out->failed ? 1 : 0;
}

}  // namespace

int cmd_bench(Context& ctx, const Args& args)
{
    for (auto& a : args)
        if (a == "--help" || a == "-h") {
            std::cout << uring::help_text();
            return 0;
        }
    std::vector<std::string> rest;
    for (auto& a : args)
        if (a != "-v" && a != "-q") rest.push_back(a);
    for (auto& a : rest)
        if (a == "--paths" || a.starts_with("--paths=")) return bench_paths(ctx, rest);
    auto o = uring::parse_options(rest);
    if (!o) return report(o.error());
    // A unit from `devemu ls` (NAME or NAME:LUN): bench the disk its loopback target exposes on this kernel.
    if (!o->target.starts_with("zram:") && !std::filesystem::exists(o->target)) {
        const auto colon = o->target.find(':');
        const auto unit = o->target.substr(0, colon);
        const auto lun = colon == std::string::npos ? std::string() : o->target.substr(colon + 1);
        if (auto sd = core::StateDir::open(ctx.state_dir, false); sd)
            if (auto rec = sd->load(unit); rec) {
                auto devices = rec->value("info", nlohmann::json::object()).value("devices", nlohmann::json::object());
                if (devices.empty())
                    return report({core::Errc::invalid_input, "unit " + unit + " exposes no local block device (iSCSI, or in a VM)", o->target,
                                   "bench it where its disk is: a loopback target, or log in with an initiator first"});
                auto key = lun.empty() ? devices.begin().key() : lun;
                if (!devices.contains(key)) return report({core::Errc::invalid_input, "unit " + unit + " has no LUN " + key, o->target, ""});
                o->target = devices[key].get<std::string>();
            }
    }
    if (!o->sweep.empty()) {
        auto pts = uring::parse_sweep(o->sweep, *o);
        if (!pts) return report(pts.error());
        if (auto s = uring::run_sweep(*o, *pts); !s) return report(s.error());
        if (!o->svg.empty()) {
            auto title = fmt::format("devemu bench {} {}", o->target, uring::to_string(o->rw));
            if (auto s = core::write_file_atomic(o->svg, uring::sweep_svg(*pts, title)); !s) return report(s.error());
        }
        if (o->json) {
            nlohmann::json j = nlohmann::json::array();
            for (auto& p : *pts) j.push_back({{"bs", p.bs}, {"iodepth", p.iodepth}, {"iops", p.iops}, {"mbps", p.mbps}, {"p50_ns", p.p50}, {"p99_ns", p.p99}});
            std::cout << j.dump(2) << "\n";
        } else {
            std::cout << uring::sweep_table(*pts) << (o->svg.empty() ? "" : "plot: " + o->svg + "\n");
        }
        return 0;
    }
    auto out = uring::run_bench(*o);
    if (!out) return report(out.error());
    if (o->json) std::cout << out->json.dump(2) << "\n";
    else std::cout << out->text;
    return out->verify_failed ? 1 : 0;
}

}  // namespace devemu::cli
