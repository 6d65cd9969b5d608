// devemu bench TARGET [fio-style options]
#include <iostream>

#include "cli/cli.hpp"
#include <fmt/format.h>

#include <filesystem>

#include "core/fs.hpp"
#include "core/statedir.hpp"
#include "uring/bench.hpp"
#include "uring/sweep.hpp"

namespace devemu::cli {

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
