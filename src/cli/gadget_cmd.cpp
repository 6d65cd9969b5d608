// devemu gadget eject|insert: a media change on a gadget that is up (here, or in an `up --vm` guest).
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/cli.hpp"
#include "core/statedir.hpp"
#include "core/progress.hpp"
#include "usb/capture.hpp"
#include "vm/capture.hpp"
#include "vm/host_disks.hpp"
#include "vm/record.hpp"
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
        "force", "eject even when the host has locked the medium; insert a device that holds data")(
        "host-disk", po::value<std::string>(), "internal: in an `up --vm` guest, FILE is the host's, plugged in as the virtio disk with this serial");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 2)) return *rc;
    const auto& verb = p.positional[0];
    if (verb != "eject" && verb != "insert") return report({core::Errc::invalid_input, "unknown gadget command '" + verb + "'", "", "eject or insert"});
    if (verb == "insert" && p.positional.size() != 3)
        return report({core::Errc::invalid_input, "insert needs NAME and FILE", "", "devemu gadget insert msc0 /path/to/image"});
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    const auto lun = p.vm["lun"].as<unsigned>();
    const auto addressed = core::address_unit(*sd, p.positional[1]);   // a gadget, or one in an `up --vm` unit's VM
    const auto* rec = addressed ? &addressed->record : nullptr;
    if (const auto* kind = addressed ? addressed->kind : nullptr; kind && kind->relay) {
        const std::string& unit = addressed->unit;   // the VM's unit; p.positional[1] is the gadget in it
        // A gadget of `up --vm`: the media change happens in the VM. FILE is the host's when the host has it (plugged
        // into the VM as a disk, the host's never-clobber rules applied here), else a path in the VM.
        std::vector<std::string> a = {"devemu", "gadget", verb, p.positional[1], "--lun", std::to_string(lun)};
        if (verb == "insert") a.push_back(p.positional[2]);
        std::error_code ec;
        const bool vm_unit = rec->value("kind", "") == "vm";
        std::string serial;
        if (verb == "insert" && vm_unit && std::filesystem::exists(p.positional[2], ec)) {
            auto plugged = vm::plug_host_medium(*sd, unit, p.positional[2], p.has("force"));
            if (!plugged) return report(plugged.error());
            serial = *plugged;
            a.push_back("--host-disk=" + serial);
        }
        if (p.has("force")) a.push_back("--force");
        if (p.has("json")) a.push_back("--json");
        auto r = kind->relay(*rec, a, print_relayed, -1);
        if (r && r->rc == 0 && vm_unit)   // a medium plugged in for this LUN and now out of it is unplugged
            if (auto s = vm::media_changed(*sd, unit, p.positional[1] + "/" + std::to_string(lun), serial); !s) return report(s.error());
        return relayed(r);
    }
    // In an `up --vm` guest, a host file plugged in as a virtio disk (the host checked it: it may hold a filesystem).
    std::string file = verb == "insert" ? p.positional[2] : "", in_vm;
    if (p.has("host-disk")) {
        auto node = vm::find_virtio_disk(p.vm["host-disk"].as<std::string>());
        if (!node) return report(node.error());
        in_vm = node->string();
    }
    auto s = usb::change_media(*sd, p.positional[1], lun, in_vm.empty() ? file : in_vm, p.has("force") || !in_vm.empty(), usb::Roots{});
    if (!s) return report(s.error());
    const std::string where = in_vm.empty() ? "" : " (the VM's " + in_vm + ")";
    if (p.has("json")) {
        json j{{"unit", p.positional[1]}, {"lun", lun}, {"medium", file}};
        if (!in_vm.empty()) j["in_vm"] = in_vm;
        std::cout << j.dump() << "\n";
    } else std::cout << p.positional[1] << " LUN " << lun << ": " << (verb == "insert" ? "medium " + file + where : std::string("ejected")) << "\n";
    return 0;
}

}  // namespace devemu::cli

namespace devemu::cli {

int cmd_capture(Context& ctx, const Args& args)
{
    po::options_description opts("devemu capture NAME -o FILE.pcapng [--duration S] [--gadget G]\n\n"
                                  "Records a gadget's USB traffic (usbmon on its bus, only its device) as pcapng for Wireshark and tshark.\n"
                                  "Stops after --duration, or on Ctrl-C / SIGTERM; the file appears complete or not at all.\n"
                                  "NAME may be an `up --vm` unit or a gadget in its VM: the capture runs there and the file lands here.\n"
                                  "Example: devemu capture msc-user -o /tmp/msc.pcapng --duration 10; tshark -r /tmp/msc.pcapng");
    opts.add_options()("output,o", po::value<std::string>()->required(), "the pcapng file")(
        "duration", po::value<unsigned>()->default_value(0), "seconds (0: until interrupted)")(
        "gadget", po::value<std::string>(), "with an `up --vm` unit holding several gadgets: which one");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 1)) return *rc;
    auto sd = core::StateDir::open(ctx.state_dir);
    if (!sd) return report(sd.error());
    const auto addressed = core::address_unit(*sd, p.positional[0]);   // a gadget, or one in an `up --vm` unit's VM
    if (!addressed) return report(addressed.error());
    const auto* rec = &addressed->record;
    if (rec->value("kind", "") == "vm") {
        auto vrec = vm::vm_record(*rec);
        if (!vrec) return report(vrec.error());
        vm::VmCaptureOptions o;
        o.gadget = p.has("gadget") ? p.vm["gadget"].as<std::string>() : addressed->held;
        o.file = std::filesystem::absolute(p.vm["output"].as<std::string>()).string();
        o.duration = std::chrono::seconds(p.vm["duration"].as<unsigned>());
        if (!p.has("json"))
            std::cerr << "capturing in the VM of " << p.positional[0] << " to " << o.file
                      << (o.duration.count() ? " for " + std::to_string(o.duration.count()) + " s" : std::string(" until Ctrl-C")) << "\n";
        o.progress = [](const std::string& line) { core::progress(line); };
        auto r = vm::capture_in_vm(*vrec, o);
        core::progress_clear();
        if (!r) return report(r.error());
        if (p.has("json"))
            std::cout << json{{"unit", p.positional[0]}, {"gadget", r->gadget}, {"file", o.file}, {"packets", r->packets}, {"bytes", r->bytes}}.dump() << "\n";
        else std::cout << o.file << ": " << r->packets << " packets, " << r->bytes << " bytes of data (gadget " << r->gadget << " in the VM)\n";
        return 0;
    }
    if (rec->value("kind", "") != "gadget")
        return report({core::Errc::invalid_input, "'" + p.positional[0] + "' is not a gadget unit", sd->record_path(p.positional[0]).string(), "devemu ls"});
    const auto host = rec->value("host", json::object());
    if (!host.contains("bus") || !host.contains("device"))
        return report({core::Errc::invalid_input, "gadget '" + p.positional[0] + "' has no host side on this machine to capture",
                       sd->record_path(p.positional[0]).string(), "its UDC is not a dummy_hcd one; capture on the host it is plugged into"});
    usb::CaptureOptions o;
    o.bus = host["bus"].get<int>();
    o.device = host["device"].get<int>();
    o.file = p.vm["output"].as<std::string>();
    o.duration = std::chrono::seconds(p.vm["duration"].as<unsigned>());
    if (!p.has("json"))
        std::cerr << "capturing bus " << o.bus << " device " << o.device << " to " << o.file
                  << (o.duration.count() ? " for " + std::to_string(o.duration.count()) + " s" : std::string(" until Ctrl-C")) << "\n";
    o.progress = [](std::uint64_t n) { core::progress(std::to_string(n) + " packets"); };
    auto r = usb::capture(o);
    core::progress_clear();
    if (!r) return report(r.error());
    if (p.has("json")) std::cout << json{{"unit", p.positional[0]}, {"file", o.file}, {"packets", r->packets}, {"bytes", r->bytes}}.dump() << "\n";
    else std::cout << o.file << ": " << r->packets << " packets, " << r->bytes << " bytes of data\n";
    return 0;
}

}  // namespace devemu::cli
