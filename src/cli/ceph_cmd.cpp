// devemu ceph up|down|status: devemu's local mini-cluster (one mon, one OSD, in a network namespace of its own).
#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "ceph/cluster.hpp"
#include "ceph/image.hpp"
#include "cli/cli.hpp"
#include "core/text.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

namespace {

const char* kHelp = R"(devemu ceph up|down|status [options]

A local Ceph cluster for rbd backstores (cluster = "local" in a profile): one monitor and one OSD, cephx on, in a
network namespace devemu makes (the daemons listen on 10.99.0.1 there; VMs of `up --vm` get a NIC on it).
`up` waits for HEALTH_OK; run again, it restarts a daemon that died. `down` stops it and removes everything.
`up` of a profile with cluster = "local" starts it when it is not running (and its `down` stops it again).

Examples:
  devemu ceph up                       memstore OSD of 1 GiB (fast; its data is lost if the OSD crashes)
  devemu ceph up --store bluestore     an OSD on a sparse file: what was acknowledged survives an OSD crash
  devemu ceph status --json
  ip netns exec $(devemu ceph status --json | jq -r .netns) rbd -c CONF ls   (the CONF that status prints)

Options)";

}  // namespace

int cmd_ceph(Context& ctx, const Args& args)
{
    po::options_description opts(kHelp);
    opts.add_options()("store", po::value<std::string>()->default_value("memstore"), "up: memstore or bluestore")(
        "size", po::value<std::string>()->default_value("1G"), "up: the OSD's capacity")(
        "pool", po::value<std::vector<std::string>>()->composing(), "up: pools to make (default: rbd)")(
        "timeout", po::value<int>()->default_value(90), "up: seconds to wait for HEALTH_OK")(
        "conn", po::value<std::string>(), "internal (rm-image): the cluster, as JSON");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    const std::string verb = p.positional[0];
    if (verb == "rm-image") {   // the undo step of an ephemeral image: no state-dir lock (it runs inside `down`)
        if (p.positional.size() != 2 || !p.has("conn")) return report({core::Errc::invalid_input, "rm-image takes --conn JSON POOL/IMAGE", "", ""});
        auto conn = ceph::conn_from_json(json::parse(p.vm["conn"].as<std::string>(), nullptr, false));
        const auto& spec = p.positional[1];
        auto slash = spec.find('/');
        if (auto s = ceph::remove_image(conn, spec.substr(0, slash), spec.substr(slash + 1)); !s) return report(s.error());
        return 0;
    }
    auto sd = core::StateDir::open(ctx.state_dir, verb != "status");
    if (!sd) return report(sd.error());
    if (verb == "up") {
        ceph::LocalSpec spec;
        spec.store = p.vm["store"].as<std::string>();
        auto size = core::parse_size(p.vm["size"].as<std::string>());
        if (!size || *size < (std::uint64_t{256} << 20))
            return report({core::Errc::invalid_input, "--size " + p.vm["size"].as<std::string>() + " is not a size of at least 256M", "--size", "e.g. --size 2G"});
        spec.osd_bytes = *size;
        if (p.has("pool")) spec.pools = p.vm["pool"].as<std::vector<std::string>>();
        auto progress = [&](const std::string& step) { if (ctx.verbosity >= 0) std::cerr << "devemu: ceph: " << step << "\n"; };
        auto rec = ceph::up(*sd, spec, progress, p.vm["timeout"].as<int>());
        if (!rec) return report(rec.error());
        auto st = ceph::status(*sd);
        if (p.has("json")) std::cout << st.dump(2) << "\n";
        else for (auto& l : ceph::status_lines(st)) std::cout << l << "\n";
        return 0;
    }
    if (verb == "down") {
        if (auto s = ceph::down(*sd); !s) return report(s.error());
        if (!p.has("json")) std::cout << "ceph: down\n";
        else std::cout << json{{"up", false}}.dump() << "\n";
        return 0;
    }
    if (verb == "status") {
        auto st = ceph::status(*sd);
        if (p.has("json")) std::cout << st.dump(2) << "\n";
        else for (auto& l : ceph::status_lines(st)) std::cout << l << "\n";
        return st.value("up", false) && st.value("health", "") == "HEALTH_OK" ? 0 : 1;
    }
    return report({core::Errc::invalid_input, "unknown ceph command '" + verb + "'", "", "use up, down or status"});
}

}  // namespace devemu::cli
