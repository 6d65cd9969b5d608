// devemu check NAME: exercise a unit as an initiator would; exit 1 when any check fails.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/statedir.hpp"
#include "core/text.hpp"
#include "core/unit_kind.hpp"
#include "usb/checker.hpp"
#include "usb/kind.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace devemu::cli {

int cmd_check(Context& ctx, const Args& args)
{
    po::options_description opts("devemu check NAME|VID:PID [--json] [--scratch 4M] [--bench] [--no-write]\n\n"
                                  "A target: logs in as an initiator: INQUIRY, READ CAPACITY(16), and a write -> read-verify of the last\n"
                                  "MiBs, which are saved first and restored after.\n"
                                  "A gadget (or any USB device by VID:PID): over libusb, detaching the kernel driver meanwhile: BOT class\n"
                                  "requests, SCSI commands, CBW/CSW conformance, the BOT thirteen cases, a restored write -> read-verify;\n"
                                  "a vendor bulk pair (the FunctionFS example) gets a loopback round trip. Exit 1 when a check fails.\n"
                                  "An `up --vm` unit: all its targets and gadgets (or NAME, one of them): iSCSI through the forwards,\n"
                                  "the rest in its VM.\n"
                                  "Examples: devemu check zram0; devemu check msc0 --bench; devemu check 1d6b:0104");
    opts.add_options()("scratch", po::value<std::string>()->default_value("4M"), "bytes to verify (targets)")(
        "bench", "gadgets: also measure sequential throughput over libusb")(
        "bench-size", po::value<std::string>()->default_value("32M"), "gadgets: bytes read and written back by --bench")("no-write", "gadgets: read-only checks");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    core::CheckRequest req;
    auto scratch = core::parse_size(p.vm["scratch"].as<std::string>());
    if (!scratch) return report({core::Errc::invalid_input, "--scratch is not a size", p.vm["scratch"].as<std::string>(), "e.g. --scratch 4M"});
    req.scratch = *scratch;
    const auto bench_size = core::parse_size(p.vm["bench-size"].as<std::string>()).value_or(0);
    if (bench_size < (1u << 20)) return report({core::Errc::invalid_input, "--bench-size is not a size of at least 1M", p.vm["bench-size"].as<std::string>(), "e.g. --bench-size 128M"});
    req.as_json = p.has("json");
    req.write = !p.has("no-write");
    req.bench_bytes = p.has("bench") ? bench_size : 0;
    for (auto flag : {"json", "bench", "no-write"})   // for a kind that relays the check (a VM's guest)
        if (p.has(flag)) req.flags.push_back(std::string("--") + flag);
    req.flags.push_back("--bench-size=" + p.vm["bench-size"].as<std::string>());

    auto sd = core::StateDir::open(ctx.state_dir, false);
    if (!sd) return report(sd.error());
    const auto name = p.positional[0];
    auto u = core::address_unit(*sd, name);   // a unit, or one in an `up --vm` unit's VM
    core::Result<core::CheckOutcome> r = std::unexpected(core::Error{});
    if (!u && usb::parse_vid_pid(name)) r = usb::check_usb(nullptr, nullptr, name, req);   // any USB device, no unit
    else if (!u) return report(u.error());
    else if (u->kind && u->kind->check) {
        req.held = u->held;
        r = u->kind->check(*sd, u->unit, u->record, req);
    } else return report({core::Errc::invalid_input, "nothing to check for this unit kind", name, ""});
    if (!r) return report(r.error());
    std::cout << r->relay_out << std::flush;
    std::cerr << r->relay_err << std::flush;
    if (req.as_json && !r->json.is_null()) std::cout << r->json.dump(2) << "\n";
    else if (!req.as_json) for (auto& l : r->lines) std::cout << l << "\n";
    return r->rc;
}

}  // namespace devemu::cli
