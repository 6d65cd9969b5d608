// devemu check NAME: exercise a unit as an initiator would; exit 1 when any check fails.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <iostream>

#include "cli/cli.hpp"
#include "cli/gadget.hpp"
#include "core/statedir.hpp"
#include "core/text.hpp"
#include "lio/check.hpp"
#include "usb/checker.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

namespace {

// The URL with the CHAP secret and the initiator the ACL expects, reaching the portal at `portal`.
std::pair<std::string, std::string> iscsi_target_of(const json& access, const std::string& portal)
{
    return {with_portal(access["urls"][0], portal), access.value("initiator", std::string("iqn.2026-11.org.devemu:check"))};
}

}  // namespace

int cmd_check(Context& ctx, const Args& args)
{
    po::options_description opts("devemu check NAME|VID:PID [--json] [--scratch 4M] [--bench] [--no-write]\n\n"
                                  "A target: logs in as an initiator: INQUIRY, READ CAPACITY(16), and a write -> read-verify of the last\n"
                                  "MiBs, which are saved first and restored after.\n"
                                  "A gadget (or any USB device by VID:PID): over libusb, detaching the kernel driver meanwhile: BOT class\n"
                                  "requests, SCSI commands, CBW/CSW conformance, the BOT thirteen cases, a restored write -> read-verify;\n"
                                  "a vendor bulk pair (the FunctionFS example) gets a loopback round trip. Exit 1 when a check fails.\n"
                                  "Examples: devemu check zram0; devemu check msc0 --bench; devemu check 1d6b:0104");
    opts.add_options()("scratch", po::value<std::string>()->default_value("4M"), "bytes to verify (targets)")(
        "bench", "gadgets: also measure sequential throughput over libusb")(
        "bench-size", po::value<std::string>()->default_value("32M"), "gadgets: bytes read and written back by --bench")("no-write", "gadgets: read-only checks");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    auto& vm = p.vm;
    auto scratch = core::parse_size(vm["scratch"].as<std::string>());
    if (!scratch) return report({core::Errc::invalid_input, "--scratch is not a size", vm["scratch"].as<std::string>(), "e.g. --scratch 4M"});
    const auto bench_size = core::parse_size(vm["bench-size"].as<std::string>()).value_or(0);
    if (bench_size < (1u << 20)) return report({core::Errc::invalid_input, "--bench-size is not a size of at least 1M", vm["bench-size"].as<std::string>(), "e.g. --bench-size 128M"});
    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    const auto name = p.positional[0];
    auto rec = sd->load(name);
    if (!rec && usb::parse_vid_pid(name)) return check_usb(ctx, nullptr, name, vm.count("json") > 0, p.has("bench") ? bench_size : 0, !p.has("no-write"));
    if (!rec) return report(rec.error());
    if (rec->value("kind", "") == "gadget") return check_usb(ctx, &*rec, name, vm.count("json") > 0, p.has("bench") ? bench_size : 0, !p.has("no-write"));

    std::vector<std::pair<std::string, std::vector<lio::CheckResult>>> runs;   // per unit
    if (rec->value("kind", "") == "target") {
        auto access = access_info(*rec, "", true);
        if (access.value("fabric", "") == "iscsi") {
            auto [url, ini] = iscsi_target_of(access, "");
            runs.push_back({name, lio::check_iscsi({url, ini, *scratch})});
        } else {
            const json devices = access.contains("devices") ? access["devices"] : json::object();
            for (auto it = devices.begin(); it != devices.end(); ++it)
                runs.push_back({name + " LUN " + it.key(), lio::check_block(it.value().get<std::string>(), *scratch)});
        }
    } else if (rec->value("kind", "") == "vm") {
        int gadget_rc = -1;
        for (auto& u : rec->value("units", json::array())) {
            const std::string unit = u["unit"];
            if (u.value("kind", "") == "gadget") {
                // The gadget's host side is the VM's kernel: run the checker there, with the same options.
                std::vector<std::string> a = guest_devemu({"check", unit});
                for (auto flag : {"json", "bench", "no-write"})
                    if (p.has(flag)) a.push_back(std::string("--") + flag);
                a.push_back("--bench-size=" + vm["bench-size"].as<std::string>());
                auto r = vm_exec(*rec, a, std::cout, std::cerr);
                if (!r) return report(r.error());
                gadget_rc = std::max(gadget_rc, *r);
                continue;
            }
            if (u["access"].value("fabric", "") != "iscsi") {
                runs.push_back({unit, {{"reach", false, "a loopback LUN lives in the VM's kernel; check it there: devemu vm run"}}});
                continue;
            }
            auto [url, ini] = iscsi_target_of(u["access"], u.value("portal", ""));
            runs.push_back({unit, lio::check_iscsi({url, ini, *scratch})});
        }
        if (runs.empty() && gadget_rc >= 0) return gadget_rc;
    } else {
        return report({core::Errc::invalid_input, "nothing to check for this unit kind", name, ""});
    }

    bool all_ok = true;
    json out = json::array();
    for (auto& [unit, results] : runs) {
        json checks = json::array();
        for (auto& r : results) {
            all_ok = all_ok && r.ok;
            checks.push_back({{"check", r.name}, {"ok", r.ok}, {"detail", r.detail}});
            if (!vm.count("json")) std::cout << "[" << (r.ok ? " ok " : "FAIL") << "] " << unit << ": " << r.name << " — " << r.detail << "\n";
        }
        out.push_back({{"unit", unit}, {"checks", checks}});
    }
    if (vm.count("json")) std::cout << json{{"ok", all_ok}, {"units", out}}.dump(2) << "\n";
    return all_ok ? 0 : 1;
}

}  // namespace devemu::cli
