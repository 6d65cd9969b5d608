// devemu ls: the units recorded in the state dir.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/statedir.hpp"

namespace po = boost::program_options;

namespace devemu::cli {

int cmd_ls(Context& ctx, const Args& args)
{
    po::options_description opts("devemu ls [--json]\n\nExample: devemu ls --json");
    opts.add_options()("help,h", "this help")("json", "machine-readable output")("verbose,v", "")("quiet,q", "");
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    if (vm.count("help")) {
        std::cout << opts;
        return 0;
    }
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    nlohmann::json out = nlohmann::json::array();
    for (auto& u : sd->units()) {
        auto rec = sd->load(u);
        nlohmann::json j = rec ? *rec : nlohmann::json{{"name", u}, {"state", "incomplete (journal only): run devemu down " + u}};
        j["name"] = u;
        out.push_back(j);
    }
    if (vm.count("json")) std::cout << out.dump(2) << "\n";
    else if (out.empty()) std::cout << "no units (state dir " << ctx.state_dir.string() << ")\n";
    else
        for (auto& j : out) std::cout << j["name"].get<std::string>() << "  " << j.value("kind", "?") << "  " << j.value("state", "") << "\n";
    return 0;
}

}  // namespace devemu::cli
