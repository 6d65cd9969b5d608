// devemu gadget eject|insert: a media change on a gadget that is up (here, or in an `up --vm` guest).
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/statedir.hpp"
#include "usb/gadget.hpp"
#include "core/unit_kind.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

int cmd_gadget(Context& ctx, const Args& args)
{
    po::options_description opts("devemu gadget eject NAME [--lun N] [--force]\n       devemu gadget insert NAME FILE [--lun N] [--force]\n\n"
                                  "Media change on a removable mass-storage LUN of a gadget that is up (the host sees the medium go or come).\n"
                                  "Example: devemu gadget eject msc0; devemu gadget insert msc0 /tmp/other.img");
    opts.add_options()("lun", po::value<unsigned>()->default_value(0), "LUN number")(
        "force", "eject even when the host has locked the medium; insert a device that holds data");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 2)) return *rc;
    const auto& verb = p.positional[0];
    if (verb != "eject" && verb != "insert") return report({core::Errc::invalid_input, "unknown gadget command '" + verb + "'", "", "eject or insert"});
    if (verb == "insert" && p.positional.size() != 3)
        return report({core::Errc::invalid_input, "insert needs NAME and FILE", "", "devemu gadget insert msc0 /path/to/image"});
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    const auto lun = p.vm["lun"].as<unsigned>();
    const auto rec = sd->load(p.positional[1]);
    if (const auto* kind = rec ? core::find_kind(rec->value("kind", "")) : nullptr; kind && kind->relay) {
        // A gadget of `up --vm`: the media change happens in the VM (FILE is a path there).
        std::vector<std::string> a = {"devemu", "gadget", verb, p.positional[1], "--lun", std::to_string(lun)};
        if (verb == "insert") a.push_back(p.positional[2]);
        if (p.has("force")) a.push_back("--force");
        if (p.has("json")) a.push_back("--json");
        return relayed(kind->relay(*rec, a));
    }
    auto s = usb::change_media(*sd, p.positional[1], lun, verb == "insert" ? p.positional[2] : "", p.has("force"), usb::Roots{});
    if (!s) return report(s.error());
    if (p.has("json")) std::cout << json{{"unit", p.positional[1]}, {"lun", lun}, {"medium", verb == "insert" ? p.positional[2] : ""}}.dump() << "\n";
    else std::cout << p.positional[1] << " LUN " << lun << ": " << (verb == "insert" ? "medium " + p.positional[2] : std::string("ejected")) << "\n";
    return 0;
}

}  // namespace devemu::cli
