// devemu ls: the units in the state dir, and whether the kernel still holds what each recorded.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

namespace {

// "healthy", or what differs from the record: the unit's kind says.
json health_of(const json& rec)
{
    const auto* kind = core::find_kind(rec.value("kind", ""));
    if (!kind) return {{"status", "unknown"}};
    const auto h = kind->health(rec);
    json j = {{"status", h.status}};
    if (h.detail.size() == 1 && h.status == "dead") j["detail"] = h.detail[0];
    else if (!h.detail.empty()) j["detail"] = h.detail;
    return j;
}

json secrets_of(const json& rec)
{
    json out = json::object();
    const json chap = rec.contains("chap") ? rec["chap"] : json::object();   // named: items() of a temporary dangles
    for (auto it = chap.begin(); it != chap.end(); ++it) {
        if (it.value().contains("secret")) out["chap:" + it.key()] = it.value()["secret"];
        if (it.value().contains("mutual_secret")) out["mutual:" + it.key()] = it.value()["mutual_secret"];
    }
    for (auto& u : rec.value("units", json::array()))   // up --vm: the guest's units
        if (u.contains("access") && u["access"].contains("chap_secret") && u["access"].contains("initiator"))
            out["chap:" + u["access"]["initiator"].get<std::string>()] = u["access"]["chap_secret"];
    return out;
}

}  // namespace

int cmd_ls(Context& ctx, const Args& args)
{
    po::options_description opts("devemu ls [--json] [--secrets]\n\nUnits and their health: does the kernel still hold what `up` made?\n"
                                  "Example: devemu ls --json");
    opts.add_options()("secrets", "include CHAP secrets");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    auto& vm = p.vm;
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    json out = json::array();
    for (auto& u : sd->units()) {
        auto rec = sd->load(u);
        json j = {{"name", u}};
        if (!rec && rec.error().code == core::Errc::invalid_input) {   // a record this devemu cannot read
            j["state"] = "unreadable";
            j["health"] = {{"status", "unreadable"}, {"detail", rec.error().message()}};
        } else if (!rec) {
            j["state"] = "incomplete";
            j["health"] = {{"status", "incomplete"}, {"detail", "only a journal is left (crash during up?): run devemu down " + u}};
        } else {
            j["kind"] = rec->value("kind", "?");
            j["state"] = rec->value("state", "?");
            j["profile"] = rec->value("profile", "");
            j["health"] = health_of(*rec);
            if (rec->contains("info")) j["access"] = access_info(*rec, "", vm.count("secrets") > 0);
            if (rec->contains("forwards")) j["forwards"] = (*rec)["forwards"];
            if (rec->contains("pid")) j["pid"] = (*rec)["pid"];
            // TCMU handlers: what the handler itself last wrote (pid, commands in flight, counts) and its restarts.
            const json handlers = rec->value("handlers", json::object());
            for (auto it = handlers.begin(); it != handlers.end(); ++it) {
                json h = {{"supervisor", it.value().value("supervisor", 0)}};
                if (it.value().contains("log")) h["log"] = it.value()["log"];   // its stdout/stderr
                const std::string stats = it.value().value("stats", "");
                if (auto st = json::parse(core::read_file(stats).value_or("{}"), nullptr, false); st.is_object()) h.update(st);
                auto sup = json::parse(core::read_file(std::filesystem::path(stats).replace_extension(".supervisor")).value_or("{}"), nullptr, false);
                if (sup.is_object()) h["restarts"] = sup.value("restarts", 0);
                j["handlers"][it.key()] = h;
            }
            for (auto key : {"udc", "vid_pid", "host", "luns", "ffs"})
                if (j["kind"] == "gadget" && rec->contains(key)) j[key] = (*rec)[key];
            if (vm.count("secrets")) j["secrets"] = secrets_of(*rec);
        }
        out.push_back(j);
    }
    if (vm.count("json")) {
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    if (out.empty()) std::cout << "no units (state dir " << ctx.state_dir.string() << ")\n";
    for (auto& j : out) {
        std::cout << j["name"].get<std::string>() << "  " << j.value("kind", "?") << "  " << j.value("state", "") << "  "
                  << j["health"].value("status", "");
        if (j.contains("forwards"))
            for (auto& [t, port] : j["forwards"].items()) std::cout << "  " << t << "@127.0.0.1:" << port.get<int>();
        if (j.contains("handlers"))
            for (auto& [bs, h] : j["handlers"].items())
                std::cout << "  handler " << bs << ": pid " << h.value("pid", 0) << ", " << h.value("in_flight", 0) << " in flight (max "
                          << h.value("max_in_flight", 0) << "), " << h.value("commands", 0) << " commands, " << h.value("restarts", 0) << " restarts"
                          << (ctx.verbosity > 0 && h.contains("log") ? ", log " + h["log"].get<std::string>() : "");
        if (j.contains("vid_pid")) std::cout << "  " << j["vid_pid"].get<std::string>() << " on " << j.value("udc", "?");
        for (auto& l : j.value("luns", json::array()))
            if (l.contains("disk")) std::cout << "  LUN " << l["lun"].get<int>() << "=" << l["disk"].get<std::string>();
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
