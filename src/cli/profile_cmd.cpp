// devemu profile check FILE…: parse and validate, touch nothing.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/text.hpp"
#include "profile/profile.hpp"

namespace po = boost::program_options;

namespace devemu::cli {

int cmd_profile(Context&, const Args& args)
{
    po::options_description opts("devemu profile check FILE… [--insecure] [--json]\n\n"
                                 "Validates everything `up` would before touching anything (the same errors, at the same file:line).\n"
                                 "Example: devemu profile check targets/*.toml");
    opts.add_options()("insecure", "as for up: allow a non-loopback portal without CHAP and ACLs");
    Parsed parsed;
    if (auto rc = parse_command(args, opts, parsed, 2)) return *rc;
    auto& vm = parsed.vm;
    const auto& rest = parsed.positional;
    if (rest[0] != "check") {
        std::cout << opts;
        return 2;
    }
    int rc = 0;
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 1; i < rest.size(); ++i) {
        auto p = profile::load(rest[i]);
        if (p)
            if (auto s = profile::check_exposure(*p, vm.count("insecure") > 0); !s) p = std::unexpected(s.error());
        if (!p) {
            rc = std::max(rc, vm.count("json") ? p.error().exit_code() : report(p.error()));
            out.push_back({{"file", rest[i]}, {"ok", false}, {"error", p.error().message()}});
            continue;
        }
        out.push_back({{"file", rest[i]}, {"ok", true}, {"backstores", p->backstores.size()}, {"targets", p->targets.size()},
                       {"gadgets", p->gadgets.size()}});
        if (!vm.count("json"))
            std::cout << rest[i] << ": ok (" << core::count_of(std::ssize(p->backstores), "backstore") << ", "
                      << core::count_of(std::ssize(p->targets), "target") << ", " << core::count_of(std::ssize(p->gadgets), "gadget") << ")\n";
    }
    if (vm.count("json")) std::cout << out.dump(2) << "\n";
    return rc;
}

}  // namespace devemu::cli
