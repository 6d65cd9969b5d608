// devemu import saveconfig.json / devemu export [NAME…]: targetcli-fb's format in and out.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <set>

#include "cli/cli.hpp"
#include "core/unit_kind.hpp"
#include "lio/access.hpp"
#include "lio/kind.hpp"
#include "core/fs.hpp"
#include "core/text.hpp"
#include "core/statedir.hpp"
#include "lio/saveconfig.hpp"
#include "lio/unit.hpp"
#include "vm/host_disks.hpp"
#include "vm/unit.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

int cmd_import(Context& ctx, const Args& args)
{
    po::options_description opts("devemu import FILE [--vm] [--force] [--insecure] [--json]\n\nBrings up what targetcli-fb's saveconfig.json "
                                  "describes, through the same validation and reconcile as `up`.\nKeys devemu does not understand are "
                                  "listed, never dropped silently. Rerunnable (with --vm: in the running VM of FILE).\n"
                                  "Example: devemu import /etc/target/saveconfig.json\n         devemu import --vm saveconfig.json   # a host without LIO");
    opts.add_options()("force", "as for up")("insecure", "as for up")("secrets", "show CHAP secrets")(
        "vm", "import it in a VM of the distribution kernel, its portals forwarded to 127.0.0.1 (as up --vm)")("in-vm", "internal: devemu inside the VM");
    add_guest_options(opts);
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    auto& vm = p.vm;
    const auto file = p.positional[0];
    if (p.has("vm")) {   // the guest's devemu imports it; files and devices stay the host's, as for up --vm
        vm::UpVmRequest r;
        r.profile = file;
        r.saveconfig = true;
        return run_up_vm(ctx, p, r);
    }
    auto text = core::read_file(file);
    if (!text) return report(text.error());
    auto doc = json::parse(*text, nullptr, false);
    if (doc.is_discarded()) return report({core::Errc::invalid_input, "not valid JSON", file, "pass the file targetcli's saveconfig wrote"});
    auto serials = host_disk_serials(p);   // in an import --vm guest: storage object -> virtio disk serial
    if (!serials) return report(serials.error());
    std::set<std::string> host_disk_names;
    for (auto& [b, serial] : *serials) host_disk_names.insert(b);
    auto im = lio::from_saveconfig(doc, file, host_disk_names);
    if (!im) return report(im.error());
    if (!serials->empty())
        if (auto s = vm::use_host_disks(im->profile, *serials); !s) return report(s.error());
    for (auto& n : im->notes) std::cerr << "devemu: note: " << n << "\n";

    lio::UpOptions opt;
    opt.force = vm.count("force") > 0;
    opt.insecure = vm.count("insecure") > 0;
    opt.in_vm = p.has("in-vm");
    auto adv = advertised_ports(p);
    if (!adv) return report(adv.error());
    opt.advertise = *adv;
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    if (auto s = lio::prepare_kernel(im->profile, opt); !s) return report(s.error());
    int rc = 0, ok = 0;
    json out = json::array();
    for (auto& t : im->profile.targets) {   // per object: one failure does not stop the rest
        auto rec = lio::up(im->profile, t, *sd, opt);
        if (!rec) {
            rc = report(rec.error());
            out.push_back({{"unit", t.name}, {"ok", false}, {"error", rec.error().message()}});
            continue;
        }
        ++ok;
        const auto access = lio::access_info(*rec, "", p.has("secrets"));
        out.push_back({{"unit", t.name}, {"ok", true}, {"changes", (*rec)["changes"]}, {"access", access}});
        if (!vm.count("json")) for (auto& l : lio::target_lines(*rec, access)) std::cout << l << "\n";
    }
    if (vm.count("json")) std::cout << json{{"targets", out}, {"notes", im->notes}}.dump(2) << "\n";
    else std::cout << "imported " << ok << " of " << im->profile.targets.size() << " targets; " << im->notes.size() << " notes\n";
    return rc;
}

int cmd_export(Context& ctx, const Args& args)
{
    po::options_description opts("devemu export [NAME…] [-o FILE]\n\nWrites devemu's targets as targetcli-fb's saveconfig.json "
                                  "(attributes read live from configfs).\nExample: devemu export -o /etc/target/saveconfig.json");
    opts.add_options()("output,o", po::value<std::string>(), "file (written atomically); default stdout");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    auto& vm = p.vm;
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    auto names = p.positional;
    if (names.empty()) names = sd->units();
    std::vector<json> recs;
    struct InVm {
        std::string name;
        json rec;
        const core::UnitKind* kind;
        std::string held;   // one target in it; empty: all of them
    };
    std::vector<InVm> in_vms;
    for (auto& n : names) {
        auto u = core::address_unit(*sd, n);   // a unit, or a target in an `up --vm` unit's VM
        if (!u) return report(u.error());
        if (u->kind && u->kind->relay) in_vms.push_back({u->unit, u->record, u->kind, u->held});
        else recs.push_back(u->record);
    }
    auto whole = lio::to_saveconfig(recs, lio::Roots{});
    // An `up --vm` unit: its guest's devemu exports the guest's targets (attributes read from the guest's configfs);
    // a backstore on a host file names the host's file, not the VM's disk.
    for (auto& [n, rec, kind, held] : in_vms) {
        std::vector<std::string> argv = {"devemu", "export"};
        if (!held.empty()) argv.push_back(held);
        auto r = kind->relay(rec, argv, {}, -1);
        if (!r) return report(r.error());
        if (r->rc != 0) return report({core::Errc::kernel, "export in the VM failed (exit " + std::to_string(r->rc) + "): " + core::last_line(r->err), n, ""});
        const auto part = json::parse(r->out, nullptr, false);
        if (part.is_discarded()) return report({core::Errc::kernel, "the VM's export is not JSON", n, ""});
        const auto host_paths = rec.value("host_disks", json::object()).get<std::map<std::string, std::string>>();
        if (auto s = lio::merge_saveconfig(whole, part, host_paths, n); !s) return report(s.error());
    }
    auto doc = whole.dump(2) + "\n";
    if (vm.count("output")) {
        if (auto s = core::write_file_atomic(vm["output"].as<std::string>(), doc, 0600); !s) return report(s.error());
    } else {
        std::cout << doc;
    }
    return 0;
}

}  // namespace devemu::cli
