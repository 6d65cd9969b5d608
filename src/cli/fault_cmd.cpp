// devemu fault NAME[:BACKSTORE] add KEY=VALUE… | clear [ID] | ls: faults in a unit's data path at run time.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "fault/fault.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

int cmd_fault(Context& ctx, const Args& args)
{
    po::options_description opts("devemu fault NAME[:BACKSTORE] add KEY=VALUE… | clear [ID] | ls [--json]\n"
                                  "devemu fault NAME path [K] down|up\n"
                                  "devemu fault NAME alua GROUP STATE\n"
                                  "devemu fault GADGET usb FAULT [count=N]\n\n"
                                  "Faults in a unit's data path (a `user` backstore's handler), changed at run time; each change is\n"
                                  "atomic: no command is lost or served twice. Keys as in a profile's [[backstore.fault]]:\n"
                                  "  type=delay delay=5ms|1ms..20ms     type=error [probability=0.01] [mode=always|once|sticky]\n"
                                  "  type=flakey up=10s down=2s [drop_writes=true]   type=stall [for=30s]   type=rate iops=N|bandwidth=20M\n"
                                  "  any: id=NAME op=read|write|rw lba=FIRST..LAST seed=N\n"
                                  "path down|up: a loopback target's commands fail as a lost transport; an iSCSI target drops its\n"
                                  "sessions and refuses logins (an initiator's queued I/O completes when it is up and it logs back in);\n"
                                  "K: one path of a multipath unit (1, 2, …). alua GROUP STATE: a target port group's ALUA state\n"
                                  "  (active/optimized, active/non-optimized, standby, unavailable, transitioning).\n"
                                  "usb FAULT: disconnect|connect (any gadget); for devemu's own function, the next N commands get\n"
                                  "  halt-in|halt-out|stall-data|stall-status|bad-signature|bad-tag|bad-residue|no-csw.\n"
                                  "Example: devemu fault t0 add type=error op=read lba=2048..4095; devemu fault t0 clear");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 2)) return *rc;
    const std::string target = p.positional[0];
    const auto colon = target.find(':');
    const std::string name = target.substr(0, colon), backstore = colon == std::string::npos ? "" : target.substr(colon + 1);
    auto req = fault::request({p.positional.begin() + 1, p.positional.end()});
    if (!req) return report(req.error());
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    auto u = core::address_unit(*sd, name);   // a unit, or one in an `up --vm` unit's VM
    if (!u) return report(u.error());
    const auto* kind = u->kind;
    const auto* rec = &u->record;
    if (kind && kind->relay) {   // an `up --vm` unit: its data paths are in the VM
        std::vector<std::string> a = {"devemu", "fault"};
        a.insert(a.end(), p.positional.begin(), p.positional.end());
        if (p.has("json")) a.push_back("--json");
        return relayed(kind->relay(*rec, a, print_relayed, -1));
    }
    if (!kind || !kind->fault) return report({core::Errc::invalid_input, "a " + rec->value("kind", "?") + " unit has no fault chain", name, "faults go on a target's `user` backstore"});
    auto out = kind->fault(*rec, backstore, *req);
    if (!out) return report(out.error());
    if (p.has("json")) {
        std::cout << out->dump(2) << "\n";
        return 0;
    }
    for (auto& l : fault::lines(name, *out)) std::cout << l << "\n";
    return 0;
}

}  // namespace devemu::cli
