// devemu failover NAME|--qemu-paths [--flaps N] [--duration S] [--down-for MS] [--between MS] [--all-down MS] [--rw …] [--bs …] [--iodepth N]
// [--svg FILE] [--json]: paths cut and restored under fio's crc32c verify, each event measured.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <iostream>

#include "cli/cli.hpp"
#include "core/fs.hpp"
#include "core/progress.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "lio/failover.hpp"
#include "vm/qemu_paths.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

namespace {

int print_report(const Parsed& p, const json& j, int rc)
{
    if (p.has("svg") && j.contains("svg"))
        if (auto s = core::write_file_atomic(p.vm["svg"].as<std::string>(), j["svg"].get<std::string>(), 0644); !s) return report(s.error());
    if (p.has("json")) std::cout << j.dump(2) << "\n";
    else
        for (auto& l : j.value("lines", json::array())) std::cout << l.get<std::string>() << "\n";
    return rc;
}

}  // namespace

int cmd_failover(Context& ctx, const Args& args)
{
    po::options_description opts("devemu failover NAME [--flaps 10] [--down-for 1000] [--between 500] [--all-down MS] [--svg FILE] [--json]\n\n"
                                  "Runs fio (crc32c verify) on the target's multipath device while it cuts its paths one at a time (round\n"
                                  "robin) for --down-for ms each, waits until multipathd has the path back, and, with --all-down, takes every\n"
                                  "path down for that long at the end. For each event: the time from the cut to the next completion, the\n"
                                  "longest stretch without one, the slowest I/O, and when the path was back; the errors the application saw\n"
                                  "and fio's verify mismatches. Exit 1 when there were any (expected with --all-down past no_path_retry).\n"
                                  "Needs a target with paths = 2+ and multipath = true. Example: devemu failover mp --flaps 20 --svg mp.svg\n"
                                  "devemu failover --qemu-paths […]: in a `devemu vm run --mpath-disk FILE --host-root` guest, the same over its two\n"
                                  "virtio-scsi paths to FILE; a cut is QMP drive_del on the host, a restore a new drive and disk (Rapido's mpath_local).");
    opts.add_options()("flaps", po::value<std::size_t>()->default_value(10), "path cuts")(
        "down-for", po::value<std::uint64_t>()->default_value(1000), "ms each cut lasts")(
        "between", po::value<std::uint64_t>()->default_value(500), "ms after a path is back before the next cut")(
        "all-down", po::value<std::uint64_t>()->default_value(0), "ms with every path down, at the end (0: not done)")(
        "duration", po::value<std::uint64_t>()->default_value(0), "seconds: cut until then (with --flaps as the most cuts; give a large --flaps)")(
        "rw", po::value<std::string>()->default_value("randwrite"), "fio's rw (a writing one)")(
        "bs", po::value<std::string>()->default_value("4k"), "fio's bs")("iodepth", po::value<unsigned>()->default_value(8), "fio's iodepth")(
        "svg", po::value<std::string>(), "write the timeline there")("qemu-paths", "the guest's two QEMU paths (vm run --mpath-disk), not a target");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    if (p.positional.empty() == !p.has("qemu-paths"))
        return report({core::Errc::invalid_input, p.positional.empty() ? "say which target" : "a target or --qemu-paths, not both", "devemu failover",
                       "devemu failover NAME, or devemu failover --qemu-paths in a vm run --mpath-disk guest"});
    const json options = {{"flaps", p.vm["flaps"].as<std::size_t>()}, {"down_for_ms", p.vm["down-for"].as<std::uint64_t>()},
                          {"between_ms", p.vm["between"].as<std::uint64_t>()}, {"all_down_ms", p.vm["all-down"].as<std::uint64_t>()}, {"duration_s", p.vm["duration"].as<std::uint64_t>()},
                          {"rw", p.vm["rw"].as<std::string>()}, {"bs", p.vm["bs"].as<std::string>()}, {"iodepth", p.vm["iodepth"].as<unsigned>()}};
    json j;
    int rc = 0;
    if (p.has("qemu-paths")) {
        auto o = lio::FailoverOptions::from_json(options);
        if (!o) return report(o.error());
        o->scratch = ctx.state_dir / "failover-qemu";
        o->progress = [](const std::string& line) { core::progress(line); };
        auto rep = vm::qemu_failover(ctx.state_dir, *o);
        core::progress_clear();
        if (!rep) return report(rep.error());
        return print_report(p, rep->result_json(), rep->ok() ? 0 : 1);
    }
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    const auto name = p.positional[0];
    auto u = core::address_unit(*sd, name);   // a unit, or a target in an `up --vm` unit's VM
    if (!u) return report(u.error());
    const auto* kind = u->kind;
    const auto* rec = &u->record;
    // The report as JSON (with its lines), from this kernel or from an `up --vm` unit's guest, and its exit code.
    if (kind && kind->relay) {   // the paths are in the VM: the guest's devemu runs it with the same options
        std::vector<std::string> a = {"devemu", "failover", name, "--json"};
        for (auto [flag, key] : {std::pair{"flaps", "flaps"}, {"down-for", "down_for_ms"}, {"between", "between_ms"}, {"all-down", "all_down_ms"}, {"duration", "duration_s"},
                                 {"iodepth", "iodepth"}, {"rw", "rw"}, {"bs", "bs"}})
            a.push_back(fmt::format("--{}={}", flag, options[key].is_string() ? options[key].get<std::string>() : options[key].dump()));
        auto r = kind->relay(*rec, a, {}, -1);
        if (!r) return report(r.error());
        j = json::parse(r->out, nullptr, false);
        if (!j.is_object()) return relayed(r);
        rc = r->rc;
    } else {
        if (!kind || !kind->failover)
            return report({core::Errc::invalid_input, "a " + rec->value("kind", "?") + " unit has no paths to cut", name,
                           "devemu failover takes a target with multipath = true"});
        json o = options;
        o["scratch"] = (sd->unit_dir(name) / "failover").string();
        auto r = kind->failover(*rec, o);
        if (!r) return report(r.error());
        j = r->json;
        j["lines"] = r->lines;
        rc = j.value("ok", false) ? 0 : 1;
    }
    return print_report(p, j, rc);
}

}  // namespace devemu::cli
