// devemu ls: the units in the state dir, and whether the kernel still holds what each recorded.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

namespace {

// One unit as `ls --json` shows it; `extra`: what its kind adds to the line `ls` prints.
json entry(const core::StateDir& sd, const std::string& u, bool secrets, bool verbose, std::vector<std::string>& extra)
{
    auto rec = sd.load(u);
    json j = {{"name", u}};
    if (!rec && rec.error().code == core::Errc::invalid_input) {   // a record this devemu cannot read
        j["state"] = "unreadable";
        j["health"] = {{"status", "unreadable"}, {"detail", rec.error().message()}};
        return j;
    }
    if (!rec) {
        j["state"] = "incomplete";
        j["health"] = {{"status", "incomplete"}, {"detail", "only a journal is left (crash during up?): run devemu down " + u}};
        return j;
    }
    j["kind"] = rec->value("kind", "?");
    j["state"] = rec->value("state", "?");
    j["profile"] = rec->value("profile", "");
    const auto* kind = core::find_kind(rec->value("kind", ""));
    if (!kind) {
        j["health"] = {{"status", "unknown"}};
        return j;
    }
    const auto h = kind->health(*rec);
    j["health"] = {{"status", h.status}};
    if (h.detail.size() == 1 && h.status == "dead") j["health"]["detail"] = h.detail[0];
    else if (!h.detail.empty()) j["health"]["detail"] = h.detail;
    if (kind->describe) {
        auto d = kind->describe(*rec, verbose ? core::DescribeFor::ls_verbose : core::DescribeFor::ls, secrets);
        j.update(d.json);
        extra = std::move(d.lines);
    }
    if (secrets && !j.contains("secrets")) j["secrets"] = json::object();
    return j;
}

}  // namespace

int cmd_ls(Context& ctx, const Args& args)
{
    po::options_description opts("devemu ls [--json] [--secrets] [--names]\n\nUnits and their health: does the kernel still hold what `up` made?\n"
                                  "Example: devemu ls --json");
    opts.add_options()("secrets", "include CHAP secrets")("names", "the unit names only, one per line (no health check: for scripts and completion)");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    if (p.has("names")) {   // no lock, no kernel reads: the completion calls it at every TAB
        std::error_code ec;
        if (!std::filesystem::is_directory(ctx.state_dir, ec)) return 0;
    }
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    if (p.has("names")) {
        for (auto& u : sd->units()) std::cout << u << "\n";
        return 0;
    }
    json out = json::array();
    std::vector<std::vector<std::string>> extras;
    for (auto& u : sd->units()) {
        extras.emplace_back();
        out.push_back(entry(*sd, u, p.has("secrets"), ctx.verbosity > 0, extras.back()));
    }
    if (p.has("json")) {
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    if (out.empty()) std::cout << "no units (state dir " << ctx.state_dir.string() << ")\n";
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto& j = out[i];
        std::cout << j["name"].get<std::string>() << "  " << j.value("kind", "?") << "  " << j.value("state", "") << "  " << j["health"].value("status", "");
        for (auto& e : extras[i]) std::cout << "  " << e;
        std::cout << "\n";
        if (j["health"].contains("detail")) {
            auto& d = j["health"]["detail"];
            if (d.is_array()) for (auto& l : d) std::cout << "    " << l.get<std::string>() << "\n";
            else std::cout << "    " << d.get<std::string>() << "\n";
        }
        if (j.contains("secrets")) for (auto& [k, v] : j["secrets"].items()) std::cout << "    " << k << " = " << v.get<std::string>() << "\n";
    }
    return 0;
}

}  // namespace devemu::cli
