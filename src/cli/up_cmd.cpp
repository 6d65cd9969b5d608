// devemu up / plan / down: bring a profile's targets up as units, show the plan, remove them.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <iostream>
#include <numeric>
#include <optional>
#include <set>

#include "cli/cli.hpp"
#include "cli/exec.hpp"
#include "core/text.hpp"
#include "core/parallel.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "profile/profile.hpp"
#include "vm/host_disks.hpp"
#include "vm/unit.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

namespace {

void add_up_options(po::options_description& opts)
{
    opts.add_options()("force", "resize backing files, export devices that hold a filesystem")(
        "insecure", "allow a non-loopback portal without CHAP and ACLs")("secrets", "show CHAP secrets")(
        "vm", "run it in a VM of the distribution kernel (for hosts without LIO)")(
        "in-vm", "internal: devemu inside the VM")(
        "exec", po::value<std::string>(), "start CMD once everything is up (a FunctionFS app: once its functionfs is mounted);\n"
                                          "tear everything down when it exits")(
        "timeout", po::value<unsigned>()->default_value(30), "seconds to wait for enumeration and for FunctionFS apps")(
        "wait-address", po::value<unsigned>()->default_value(0), "seconds to wait for a portal's address to appear on this machine\n"
                                                                  "(a service at boot); then the target fails, named")(
        "ceph-local", po::value<std::string>(), "how cluster = \"local\" is reached from here: a connection file (JSON:\n"
                                                "mon_host, user, keyring or secret_file); default: `devemu ceph up`'s cluster");
    add_guest_options(opts);
}

}  // namespace

void add_guest_options(po::options_description& opts)
{
    opts.add_options()("advertise", po::value<std::vector<std::string>>()->composing(), "internal: TARGET[/PATH]=PORT, the host's forward of a portal")(
        "host-disk", po::value<std::vector<std::string>>()->composing(), "internal: BACKSTORE=SERIAL, the virtio disk a host file became");
}

core::Result<std::map<std::string, std::uint16_t>> advertised_ports(const Parsed& p)
{
    std::map<std::string, std::uint16_t> out;
    if (p.has("advertise"))
        for (auto& a : p.vm["advertise"].as<std::vector<std::string>>()) {
            auto eq = a.find('=');
            const auto port = eq == std::string::npos ? std::nullopt : core::parse_number(a.substr(eq + 1));
            if (!port || *port == 0 || *port > 65535) return core::fail(core::Errc::invalid_input, "--advertise takes TARGET=PORT", a, "");
            out[a.substr(0, eq)] = static_cast<std::uint16_t>(*port);
        }
    return out;
}

core::Result<std::map<std::string, std::string>> host_disk_serials(const Parsed& p)
{
    std::map<std::string, std::string> out;
    if (p.has("host-disk"))
        for (auto& a : p.vm["host-disk"].as<std::vector<std::string>>()) {
            const auto eq = a.find('=');
            if (eq == std::string::npos) return core::fail(core::Errc::invalid_input, "--host-disk takes BACKSTORE=SERIAL", a, "");
            out[a.substr(0, eq)] = a.substr(eq + 1);
        }
    return out;
}

int run_up_vm(Context& ctx, const Parsed& p, vm::UpVmRequest r)
{
    r.secrets = p.has("secrets");
    r.force = p.has("force");
    r.insecure = p.has("insecure");
    r.kernel = ctx.kernel;
    r.cache_dir = ctx.cache_dir;
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    auto res = vm::up_vm(*sd, r);
    if (!res) return report(res.error());
    for (auto& n : res->notes) std::cerr << "devemu: note: " << n << "\n";
    if (p.has("json")) std::cout << res->shown.dump(2) << "\n";
    else for (auto& l : res->lines) std::cout << l << "\n";
    return 0;
}

namespace {

core::Result<core::UpRequest> request_of(const Parsed& p, bool apply)
{
    core::UpRequest req;
    req.apply = apply;
    req.force = p.has("force");
    req.insecure = p.has("insecure");
    req.in_vm = p.has("in-vm");
    req.secrets = p.has("secrets");
    req.timeout = std::chrono::seconds(p.vm["timeout"].as<unsigned>());
    req.address_wait = std::chrono::seconds(p.vm["wait-address"].as<unsigned>());
    if (p.has("ceph-local")) req.ceph_local = p.vm["ceph-local"].as<std::string>();
    DEVEMU_TRY(adv, advertised_ports(p));
    req.advertise = adv;
    return req;
}

int up_in_vm(Context& ctx, const Parsed& p)
{
    vm::UpVmRequest r;
    if (p.positional.size() != 1) return report({core::Errc::invalid_input, "up --vm takes one profile", "", "run one VM per profile"});
    if (p.vm["wait-address"].as<unsigned>() > 0)   // it used to be taken and ignored
        return report({core::Errc::invalid_input, "--wait-address waits for an address of this machine; an up --vm portal is the VM's, forwarded from 127.0.0.1",
                       "--wait-address", "leave it out with --vm"});
    r.profile = p.positional[0];
    if (p.has("exec")) r.exec = p.vm["exec"].as<std::string>();
    r.timeout = p.vm["timeout"].as<unsigned>();
    return run_up_vm(ctx, p, r);
}

// One profile through every kind that has units in it, in the kinds' order; appends what `up --json` or `plan --json`
// prints to `out` and the units that came up to `made`. Returns an exit code (per unit: one failing does not stop the others).
int up_profile(const profile::Profile& prof, const core::StateDir& sd, const core::UpRequest& req, bool as_json, json& out, std::vector<std::string>& made)
{
    int rc = 0;
    for (const auto* kind : core::all_kinds()) {
        if (!kind->up) continue;
        auto outcomes = kind->up(prof, sd, req);
        if (!outcomes) return report(outcomes.error());
        for (auto& o : *outcomes) {
            if (!req.apply) {
                out.push_back({{"unit", o.unit}, {"steps", o.steps}});
                if (as_json) continue;
                std::cout << kind->name << " " << o.unit << ": " << core::changes_in_words(static_cast<long long>(o.steps.size())) << "\n";
                for (auto& s : o.steps) std::cout << "  " << s << "\n";
                continue;
            }
            if (!o.record) {
                rc = report(o.record.error());
                continue;
            }
            made.push_back(o.unit);
            const auto d = kind->describe ? kind->describe(*o.record, core::DescribeFor::up, req.secrets) : core::Described{{{"unit", o.unit}}, {}};
            out.push_back(d.json);
            if (!as_json) for (auto& l : d.lines) std::cout << l << "\n";
        }
    }
    return rc;
}

}  // namespace

int cmd_up(Context& ctx, const Args& args, bool apply)
{
    po::options_description opts(apply ? "devemu up PROFILE… [--vm] [--force] [--insecure] [--exec CMD] [--timeout S] [--json]\n\n"
                                         "Brings up the targets and USB gadgets a profile declares, or updates them: only the difference\n"
                                         "is applied (with --vm: in the running VM of the profile). A gadget is ready when this\n"
                                         "machine's host side has enumerated it.\n"
                                         "Examples: devemu up --vm targets/zram-iscsi.toml\n"
                                         "          devemu up gadgets/ffs-app.toml --exec 'build/ffs-loopback /dev/usb-ffs/app'"
                                       : "devemu plan PROFILE… [--json]\n\nWhat `up` would change; changes nothing.\n"
                                         "Example: devemu plan targets/file-iscsi.toml");
    add_up_options(opts);
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    // A VM of `up --vm` starts empty, so its plan would be the whole profile (`plan --vm` used to go on and bring the
    // VM up); a second `up --vm` of a running one applies the difference in the guest.
    if (p.has("vm") && !apply)
        return report({core::Errc::invalid_input, "plan --vm: an `up --vm` VM starts empty, so up would make everything the profile declares",
                       p.positional.empty() ? "" : p.positional[0], "check the profile with `devemu profile check FILE`; on a kernel with LIO, `devemu plan` shows the difference"});
    if (p.has("vm")) return up_in_vm(ctx, p);
    auto req = request_of(p, apply);
    if (!req) return report(req.error());
    auto serials = host_disk_serials(p);   // in an `up --vm` guest: backstore -> virtio disk serial
    if (!serials) return report(serials.error());
    const auto& host_disks = *serials;
    std::vector<profile::Profile> profiles;
    std::set<std::string> host_disk_names;
    for (auto& [b, serial] : host_disks) host_disk_names.insert(b);
    for (auto& f : p.positional) {   // everything validated before anything is touched
        auto prof = profile::load(f, host_disk_names);
        if (!prof) return report(prof.error());
        if (!host_disks.empty())
            if (auto s = vm::use_host_disks(*prof, host_disks); !s) return report(s.error());
        if (auto s = profile::check_exposure(*prof, req->insecure); !s) return report(s.error());
        profiles.push_back(std::move(*prof));
    }
    ExecRun run{p.has("exec") ? p.vm["exec"].as<std::string>() : "", req->in_vm, {}};
    if (!run.exec.empty() && !apply) return report({core::Errc::invalid_input, "--exec is for up", "", ""});
    req->on_ffs_mounted = start_on_ffs(run);
    auto sd = core::StateDir::open(ctx.state_dir, apply);
    if (!sd) return report(sd.error());
    json out = json::array();
    std::vector<std::string> made;
    int rc = 0;
    for (auto& prof : profiles)
        if (int r = up_profile(prof, *sd, *req, p.has("json"), out, made); r != 0) rc = r;
    if (p.has("json")) std::cout << out.dump(2) << "\n";
    if (run.exec.empty()) return rc;
    if (run.in_vm) return rc == 0 ? run_exec(ctx, run, made, out) : rc;
    sd = std::unexpected(core::Error{});   // release the lock: the app may call devemu itself (check, eject, ls)
    if (rc != 0) {   // the failed unit rolled back; --exec owns the lifetime of the rest, so they go too
        if (run.app.running()) run.app.terminate();
        if (!made.empty()) cmd_down(ctx, made);
        return rc;
    }
    return run_exec(ctx, run, made, out);
}

int cmd_down(Context& ctx, const Args& args)
{
    po::options_description opts("devemu down NAME…|--all|--profile FILE\n\nRemoves exactly what `up` made, in reverse, from the unit's journal.\n"
                                  "Idempotent: works after a crash at any point of `up`.\nExample: devemu down zram0");
    opts.add_options()("all", "every unit in the state dir")(
        "profile", po::value<std::string>(), "the units a profile declares and those `up` brought up from it (a service's stop)");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    if (p.positional.empty() && !p.has("all") && !p.has("profile")) {
        std::cout << opts;
        return 2;
    }
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    auto names = p.vm.count("all") ? sd->units() : p.positional;
    if (p.has("profile")) {
        const auto file = p.vm["profile"].as<std::string>();
        std::set<std::string> want;
        if (auto prof = profile::load(file); prof) {
            for (auto& t : prof->targets) want.insert(t.name);
            for (auto& g : prof->gadgets) want.insert(g.name);
        }
        std::error_code ec;
        const auto abs = std::filesystem::absolute(file, ec).lexically_normal().string();
        for (auto& u : sd->units())   // brought up from this file (also when it has changed or is gone since)
            if (auto top = sd->load_scalars(u); top && (top->value("profile", "") == file || top->value("profile", "") == abs)) want.insert(u);
        for (auto& u : sd->units())
            if (want.count(u)) names.push_back(u);
        if (names.empty()) {
            std::cout << "nothing to remove for " << file << "\n";
            return 0;
        }
    }
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
    // A name with neither record nor journal is nothing to remove, or a unit another holds (a target or gadget in an
    // `up --vm` VM): its holder removes it, first and one by one (the VM and its record stay).
    std::vector<char> done(names.size(), 0);
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (errors[i] || !recs[i].empty() || std::filesystem::exists(sd->journal(names[i]))) continue;
        done[i] = 1;
        auto u = core::address_unit(*sd, names[i]);
        if (!u || u->held.empty() || !u->kind || !u->kind->down_held) lines[i] = names[i] + ": nothing to remove";
        else if (auto s = u->kind->down_held(*sd, u->unit, u->held); !s) errors[i] = s.error();
        else lines[i] = names[i] + ": down (in " + u->unit + ", which stays up)";
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
            if (errors[i] || done[i]) return;
            auto s = core::down_unit(*sd, n, recs[i]);   // no record: the journal is all there is
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
