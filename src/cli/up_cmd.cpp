// devemu up / plan / down: bring a profile's targets up as units, show the plan, remove them.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <numeric>
#include <optional>

#include "cli/cli.hpp"
#include "cli/gadget.hpp"
#include "cli/rbd.hpp"
#include "core/text.hpp"
#include "core/parallel.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "lio/unit.hpp"
#include "usb/gadget.hpp"
#include "profile/profile.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

void print_unit(const json& rec, const json& info, std::ostream& out)
{
    out << "target " << rec.value("name", "?") << ": " << rec.value("state", "?");
    if (rec.contains("changes")) out << " (" << rec["changes"].get<int>() << " changes)";
    out << "\n";
    if (info.value("fabric", "") == "iscsi") {
        out << "  portal     " << info.value("portal", "") << "\n  iqn        " << info.value("wwn", "") << "\n";
        if (info.contains("initiator")) out << "  initiator  " << info["initiator"].get<std::string>() << " (the ACL expects this IQN)\n";
        for (auto& u : info["urls"]) out << "  url        " << u.get<std::string>() << "\n";
        if (info.contains("chap_secret")) out << "  chap       " << info["chap_secret"].get<std::string>() << "\n";
        else if (!info.value("acls", json::array()).empty() && info["acls"][0].contains("chap_user"))
            out << "  chap       secret hidden: devemu ls --secrets\n";
        for (auto& l : info["iscsiadm"]) out << "  iscsiadm   " << l.get<std::string>() << "\n";
    } else {
        out << "  wwn        " << info.value("wwn", "") << " (nexus " << info.value("initiator_wwn", "") << ")\n";
        const json devices = info.contains("devices") ? info["devices"] : json::object();   // a named copy: items() of a temporary dangles
        for (auto it = devices.begin(); it != devices.end(); ++it)
            out << "  LUN " << it.key() << "      " << (it.value().is_string() ? it.value().get<std::string>() : "(no disk yet)") << "\n";
    }
}

int cmd_up(Context& ctx, const Args& args, bool apply)
{
    po::options_description opts(apply ? "devemu up PROFILE… [--vm] [--force] [--insecure] [--exec CMD] [--timeout S] [--json]\n\n"
                                         "Brings up the targets and USB gadgets a profile declares, or updates them: only the difference\n"
                                         "is applied. A gadget is ready when this machine's host side has enumerated it.\n"
                                         "Examples: devemu up --vm targets/zram-iscsi.toml\n"
                                         "          devemu up gadgets/ffs-app.toml --exec 'build/ffs-loopback /dev/usb-ffs/app'"
                                       : "devemu plan PROFILE… [--json]\n\nWhat `up` would change; changes nothing.\n"
                                         "Example: devemu plan targets/file-iscsi.toml");
    opts.add_options()("force", "resize backing files, export devices that hold a filesystem")(
        "insecure", "allow a non-loopback portal without CHAP and ACLs")("secrets", "show CHAP secrets")(
        "vm", "run it in a VM of the distribution kernel (for hosts without LIO)")(
        "in-vm", "internal: devemu inside the VM")(
        "exec", po::value<std::string>(), "start CMD once everything is up (a FunctionFS app: once its functionfs is mounted);\n"
                                          "tear everything down when it exits")(
        "timeout", po::value<unsigned>()->default_value(30), "seconds to wait for enumeration and for FunctionFS apps")(
        "ceph-local", po::value<std::string>(), "how cluster = \"local\" is reached from here: a connection file (JSON:\n"
                                                "mon_host, user, keyring or secret_file); default: `devemu ceph up`'s cluster")("advertise", po::value<std::vector<std::string>>()->composing(),
                                                           "internal: TARGET=PORT, the host's forward of its portal");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    if (p.vm.count("vm")) {
        VmUpOptions vo;
        vo.json = p.has("json");
        vo.secrets = p.has("secrets");
        if (p.has("exec")) vo.exec = p.vm["exec"].as<std::string>();
        vo.timeout = p.vm["timeout"].as<unsigned>();
        vo.force = p.has("force");
        vo.insecure = p.has("insecure");
        return cmd_up_vm(ctx, p.positional, vo);
    }
    lio::UpOptions opt;
    opt.force = p.vm.count("force") > 0;
    opt.insecure = p.vm.count("insecure") > 0;
    opt.in_vm = p.vm.count("in-vm") > 0;
    if (p.has("advertise"))
        for (auto& a : p.vm["advertise"].as<std::vector<std::string>>()) {
            auto eq = a.find('=');
            const auto port = eq == std::string::npos ? std::nullopt : core::parse_number(a.substr(eq + 1));
            if (!port || *port == 0 || *port > 65535) return report({core::Errc::invalid_input, "--advertise takes TARGET=PORT", a, ""});
            opt.advertise[a.substr(0, eq)] = static_cast<std::uint16_t>(*port);
        }

    std::vector<profile::Profile> profiles;
    for (auto& f : p.positional) {   // everything validated before anything is touched
        auto prof = profile::load(f);
        if (!prof) return report(prof.error());
        if (auto s = profile::check_exposure(*prof, opt.insecure); !s) return report(s.error());
        profiles.push_back(std::move(*prof));
    }
    auto sd = core::StateDir::open(ctx.state_dir, apply);
    if (!sd) return report(sd.error());
    json out = json::array();
    int rc = 0;
    core::Child app;
    GadgetRun run;
    run.force = opt.force;
    run.json = p.has("json");
    run.timeout = std::chrono::seconds(p.vm["timeout"].as<unsigned>());
    run.app = &app;
    run.in_vm = opt.in_vm;
    if (p.has("exec")) run.exec = p.vm["exec"].as<std::string>();
    if (!run.exec.empty() && !apply) return report({core::Errc::invalid_input, "--exec is for up", "", ""});
    std::vector<std::string> made;
    for (auto& prof : profiles) {
        if (apply && !prof.targets.empty())
            if (auto s = lio::prepare_kernel(prof, opt); !s) return report(s.error());
        if (!apply) {
            for (auto& t : prof.targets) {
                auto pl = lio::plan(prof, t, *sd, opt);
                if (!pl) return report(pl.error());
                json steps = json::array();
                for (auto& s : pl->steps) steps.push_back(core::describe(s));
                out.push_back({{"unit", t.name}, {"steps", steps}});
                if (!p.vm.count("json")) {
                    std::cout << "target " << t.name << ": " << (pl->steps.empty() ? "up to date" : std::to_string(pl->steps.size()) + " changes") << "\n";
                    for (auto& s : steps) std::cout << "  " << s.get<std::string>() << "\n";
                }
            }
            for (auto& g : prof.gadgets) {
                auto pl = usb::plan(prof, g, *sd, usb::UpOptions{});
                if (!pl) return report(pl.error());
                json steps = json::array();
                for (auto& s : *pl) steps.push_back(core::describe(s));
                out.push_back({{"unit", g.name}, {"steps", steps}});
                if (!p.vm.count("json")) {
                    std::cout << "gadget " << g.name << ": " << (pl->empty() ? "up to date" : std::to_string(pl->size()) + " changes") << "\n";
                    for (auto& s : steps) std::cout << "  " << s.get<std::string>() << "\n";
                }
            }
            continue;
        }
        // rbd backstores: clusters, pools and images first (journaled in each target's own journal), one target
        // at a time; the kernel maps them in lio::up.
        std::vector<std::optional<core::Transaction>> rbd_tx(prof.targets.size());
        std::vector<std::optional<core::Error>> rbd_err(prof.targets.size());
        std::vector<ceph::Prepared> rbd_prep(prof.targets.size());
        RbdUp ru{opt.force, opt.in_vm, p.has("ceph-local") ? p.vm["ceph-local"].as<std::string>() : "", ctx.verbosity};
        for (std::size_t i = 0; i < prof.targets.size(); ++i) {
            const auto& t = prof.targets[i];
            if (!ceph::has_rbd(prof, t.name)) continue;   // no journal touched, no record read for the others
            rbd_tx[i].emplace(sd->journal(t.name));
            auto prep = prepare_rbd(prof, {t.name}, *sd, &*rbd_tx[i], sd->load(t.name).value_or(json::object()), ru);
            auto clients = prep ? rbd_clients(*prep) : std::unexpected(prep.error());
            if (!clients) {
                rbd_err[i] = clients.error();
                continue;
            }
            rbd_prep[i] = *prep;
            opt.rbd.insert(clients->begin(), clients->end());
        }
        // Targets are independent units: bring them up side by side, report in profile order.
        std::vector<core::Result<json>> recs(prof.targets.size(), std::unexpected(core::Error{}));
        core::parallel_for(prof.targets.size(), 16, [&](std::size_t i) {
            recs[i] = rbd_err[i] ? std::unexpected(*rbd_err[i]) : lio::up(prof, prof.targets[i], *sd, opt);
        });
        bool started_local = false;
        for (auto& pr : rbd_prep) started_local = started_local || pr.started_local;
        for (std::size_t i = 0; i < recs.size(); ++i) {
            auto& rec = recs[i];
            if (rbd_tx[i]) {
                if (rec) rbd_tx[i]->commit();
                else if (auto r = rbd_tx[i]->rollback(); !r) spdlog::error("rollback incomplete: {}", r.error().message());
            }
            if (rec && rbd_prep[i].uses_local) {
                // The first target that came up owns a cluster this `up` started: its `down` stops it.
                (*rec)["uses_ceph_local"] = true;
                if (started_local) (*rec)["ceph_local_started"] = true, started_local = false;
                if (auto s = sd->save(prof.targets[i].name, *rec); !s) rc = report(s.error());
            }
            if (!rec) {
                rc = report(rec.error());
                continue;   // per object: one failing target does not stop the others; the summary exit says so
            }
            auto info = access_info(*rec, "", p.vm.count("secrets") > 0);
            out.push_back({{"unit", prof.targets[i].name}, {"changes", (*rec)["changes"]}, {"access", info}});
            made.push_back(prof.targets[i].name);
            if (!p.vm.count("json")) print_unit(*rec, info, std::cout);
        }
        stop_local_cluster_if_ours(*sd, started_local, "");   // still set: every target that would have owned it failed
        if (!prof.gadgets.empty())
            if (int g = up_gadgets(prof, *sd, run, out, made); g != 0) rc = g;
    }
    if (p.vm.count("json")) std::cout << out.dump(2) << "\n";
    if (!run.exec.empty() && opt.in_vm && rc == 0) return run_exec(ctx, run, made, out);
    if (!run.exec.empty() && !opt.in_vm) {
        sd = std::unexpected(core::Error{});   // release the lock: the app may call devemu itself (check, eject, ls)
        if (rc != 0) {   // the failed unit rolled back; --exec owns the lifetime of the rest, so they go too
            if (app.running()) app.terminate();
            if (!made.empty()) cmd_down(ctx, made);
            return rc;
        }
        return run_exec(ctx, run, made, out);
    }
    return rc;
}

int cmd_down(Context& ctx, const Args& args)
{
    po::options_description opts("devemu down NAME…|--all\n\nRemoves exactly what `up` made, in reverse, from the unit's journal.\n"
                                  "Idempotent: works after a crash at any point of `up`.\nExample: devemu down zram0");
    opts.add_options()("all", "every unit in the state dir");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    if (p.positional.empty() && !p.has("all")) {
        std::cout << opts;
        return 2;
    }
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    auto names = p.vm.count("all") ? sd->units() : p.positional;
    // Each unit goes through its kind's `down`; a unit with only a journal (a crash during `up`) has it replayed.
    // Kinds with a higher down_order go after the rest (the local Ceph cluster: rbd mappings need it to unmap).
    std::vector<json> recs(names.size());
    std::vector<int> order(names.size(), 0);
    std::vector<std::string> lines(names.size());
    std::vector<std::optional<core::Error>> errors(names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto top = sd->load_scalars(names[i]);   // kind, pid, flags: the units parse their own journals
        if (!top && top.error().code == core::Errc::invalid_input) errors[i] = top.error();   // a newer devemu's record
        recs[i] = top.value_or(json::object());
        if (const auto* k = core::find_kind(recs[i].value("kind", ""))) order[i] = k->down_order;
    }
    std::vector<std::size_t> idx(names.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return order[a] < order[b]; });
    // Units of one order are independent: removed side by side (LIO's per-LUN RCU waits overlap), reported in order.
    for (std::size_t from = 0; from < idx.size();) {
        std::size_t to = from;
        while (to < idx.size() && order[idx[to]] == order[idx[from]]) ++to;
        core::parallel_for(to - from, 64, [&](std::size_t j) {
            const std::size_t i = idx[from + j];
            const auto& n = names[i];
            if (errors[i]) return;
            if (recs[i].empty() && !std::filesystem::exists(sd->journal(n))) {
                lines[i] = n + ": nothing to remove";
                return;
            }
            const auto* kind = core::find_kind(recs[i].value("kind", ""));
            auto s = kind ? kind->down(*sd, n, recs[i]) : core::down_by_journal(*sd, n);   // no record: the journal is all there is
            if (!s) errors[i] = s.error();
            else lines[i] = n + ": down";
        });
        from = to;
    }
    int rc = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (errors[i]) rc = report(*errors[i]);
        else std::cout << lines[i] << "\n";
    }
    return rc;
}

}  // namespace devemu::cli
