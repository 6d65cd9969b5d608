// The host side of a gadget on dummy_hcd: the USB device this machine's own host stack made of it, and the /dev
// nodes (sdX, ttyACMn) its drivers gave the functions.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <regex>
#include <thread>

#include "core/fs.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "usb/gadget.hpp"
#include "usb/udc.hpp"

namespace devemu::usb {

using core::Errc;
using nlohmann::json;
using profile::FunctionType;

namespace {

// Recursively finds SCSI devices ("H:C:T:L" with a block/ child) under an interface; LUN -> /dev/sdX.
std::map<unsigned, std::string> disks_under(const fs::path& intf)
{
    static const std::regex hctl(R"((\d+):(\d+):(\d+):(\d+))");
    std::map<unsigned, std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(intf, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        std::smatch m;
        const auto name = it->path().filename().string();
        if (!std::regex_match(name, m, hctl) || !fs::is_directory(it->path() / "block", ec)) continue;
        for (auto& b : fs::directory_iterator(it->path() / "block", ec))
            out[static_cast<unsigned>(core::parse_number(m[4].str()).value_or(0))] = "/dev/" + b.path().filename().string();
        it.disable_recursion_pending();
    }
    return out;
}

std::string find_tty(const fs::path& intf)
{
    std::error_code ec;
    for (auto& t : fs::directory_iterator(intf / "tty", ec)) return "/dev/" + t.path().filename().string();
    return {};
}

// What the host gave each function of the device at `dev`: interfaces in number order, taken by the functions in
// config-link (profile) order. disks: "FUNCTION/LUN" -> /dev/sdX of the mass-storage functions `ms`; ttys: the
// /dev/ttyACMn of the ACM functions `acm` (cdc_acm puts it under the control interface, class 02).
void map_interfaces(const fs::path& dev, const std::vector<std::string>& ms, const std::vector<std::string>& acm, json& disks, json& ttys)
{
    std::vector<fs::path> intfs;
    std::error_code ec;
    for (auto& i : fs::directory_iterator(dev, ec))
        if (i.path().filename().string().starts_with(dev.filename().string() + ":")) intfs.push_back(i.path());
    std::sort(intfs.begin(), intfs.end(), [](const fs::path& a, const fs::path& b) {
        auto num = [](const fs::path& p) { auto s = p.filename().string(); return core::parse_number(s.substr(s.rfind('.') + 1)).value_or(0); };
        return num(a) < num(b);
    });
    std::size_t next_ms = 0, next_acm = 0;
    for (auto& i : intfs) {
        auto cls = core::read_attr(i / "bInterfaceClass").value_or("");
        if (cls == "08" && next_ms < ms.size()) {
            for (auto& [lun, disk] : disks_under(i)) disks[fmt::format("{}/{}", ms[next_ms], lun)] = disk;
            ++next_ms;
        } else if (cls == "02" && next_acm < acm.size()) {
            if (auto t = find_tty(i); !t.empty()) ttys[acm[next_acm]] = t;
            ++next_acm;
        }
    }
}

}  // namespace

std::optional<Enumerated> find_enumerated(const profile::Gadget& g, const std::string& udc, const std::string& serial, const Roots& roots)
{
    if (!udc.starts_with("dummy_udc.")) return std::nullopt;
    const auto hcd = roots.sys / "devices/platform" / ("dummy_hcd." + udc.substr(10));
    std::error_code ec;
    for (auto& hub : fs::directory_iterator(hcd, ec)) {
        const auto hub_name = hub.path().filename().string();
        if (!hub_name.starts_with("usb")) continue;
        const auto dev = hub.path() / (hub_name.substr(3) + "-1");
        auto vid = core::read_attr(dev / "idVendor"), pid = core::read_attr(dev / "idProduct"), ser = core::read_attr(dev / "serial");
        if (!vid || !pid) continue;
        if (core::parse_number(*vid, 16) != g.vendor_id || core::parse_number(*pid, 16) != g.product_id) continue;
        if (ser && *ser != serial) continue;
        Enumerated e;
        e.sysfs = (roots.sys / "bus/usb/devices" / dev.filename()).string();
        e.bus = static_cast<int>(core::read_number(dev / "busnum").value_or(0));
        e.device = static_cast<int>(core::read_number(dev / "devnum").value_or(0));
        e.speed = core::read_attr(dev / "speed").value_or("?");
        e.configured = !core::read_attr(dev / "bConfigurationValue").value_or("").empty();
        std::vector<std::string> ms, acm;
        for (auto& f : g.functions) {
            if (f.type == FunctionType::mass_storage) ms.push_back(f.name);
            if (f.type == FunctionType::acm) acm.push_back(f.name);
        }
        map_interfaces(dev, ms, acm, e.disks, e.ttys);
        return e;
    }
    return std::nullopt;
}

bool refresh_disks(GadgetRecord& rec, const Roots& roots)
{
    if (!rec.host.contains("sysfs")) return true;
    const fs::path dev = roots.sys / "bus/usb/devices" / fs::path(rec.host["sysfs"].get<std::string>()).filename();
    std::vector<std::string> ms;
    for (auto& f : rec.spec_functions)
        if (f.type == "mass_storage") ms.push_back(f.name);
    json disks = json::object(), ttys = json::object();
    map_interfaces(dev, ms, {}, disks, ttys);
    bool all = true;
    for (auto& l : rec.luns) {
        const auto key = fmt::format("{}/{}", l.function, l.lun);
        if (disks.contains(key)) l.disk = disks[key].get<std::string>();
        else all = false;
    }
    rec.host["disks"] = disks;
    return all;
}

core::Result<nlohmann::json> wait_enumerated(const profile::Gadget& g, const std::string& udc, const Roots& roots, std::chrono::seconds timeout,
                                             KernelLog& klog)
{
    if (!udc.starts_with("dummy_udc.")) return nlohmann::json::object();
    std::size_t want_disks = 0, want_ttys = 0;
    for (auto& f : g.functions)
        if (f.type == FunctionType::mass_storage) want_disks += f.luns.size();
    // cdc_acm gives each ACM function a tty on the host side (when the kernel has it).
    if (fs::exists("/sys/module/cdc_acm"))
        for (auto& f : g.functions) want_ttys += f.type == FunctionType::acm;
    const auto start = std::chrono::steady_clock::now();
    std::optional<Enumerated> e;
    for (;;) {
        e = find_enumerated(g, udc, g.serial, roots);
        // Configured = the host side set a configuration (the UDC's own `state` is not reset on unbind, so a
        // previous gadget's "configured" would lie).
        const std::string state = !e ? core::read_attr(roots.sys / "class/udc" / udc / "state").value_or("?")
                                     : e->configured ? "configured" : "not configured";
        if (e && state == "configured" && e->disks.size() >= want_disks && e->ttys.size() >= want_ttys) break;
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
        // The host enumerated it but SET_CONFIGURATION failed: a function's endpoint descriptors were refused
        // (dummy_hcd enforces the USB maxpacket rules: bulk 64 full-speed, 512 high-speed, 1024 super-speed).
        if (e && state != "configured")
            if (auto l = klog.find("can't set config"); !l.empty()) {
                core::progress_clear();
                return core::fail(Errc::invalid_input, fmt::format("the host could not configure gadget '{}': its descriptors were refused ({})", g.name, l),
                                  udc, "check the functions' endpoint descriptors: bulk maxpacket must be 512 at high speed, 1024 at super speed");
            }
        if (secs >= timeout) {
            core::progress_clear();
            std::string what = !e ? fmt::format("the host side did not enumerate gadget '{}' within {} s (UDC state: {})", g.name, timeout.count(), state)
                             : state != "configured" ? fmt::format("the host did not configure gadget '{}' (UDC state: {}): a descriptor was rejected?", g.name, state)
                             : fmt::format("gadget '{}' enumerated but only {} of {} disks appeared", g.name, e->disks.size(), want_disks);
            return core::fail(Errc::timeout, what, udc, "see dmesg; HS bulk endpoints need maxpacket 512 (SS: 1024)");
        }
        if (secs.count() >= 2) core::progress(fmt::format("waiting for the host to enumerate {}… {}s", g.name, secs.count()));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    core::progress_clear();
    return nlohmann::json{{"sysfs", e->sysfs}, {"bus", e->bus}, {"device", e->device}, {"speed_mbps", e->speed}, {"disks", e->disks}, {"ttys", e->ttys}};
}

}  // namespace devemu::usb
