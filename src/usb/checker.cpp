#include "usb/checker.hpp"

#include <libusb-1.0/libusb.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>

#include "core/text.hpp"
#include "scsi/cdb.hpp"
#include "usb/bot.hpp"
#include "usb/check_link.hpp"

namespace devemu::usb {

using core::Errc;
using nlohmann::json;
using namespace check;

namespace {

void check_loopback(libusb_device_handle* h, const Endpoints& e, Report& rep, const CheckOptions& opt, CheckReport& out)
{
    // The example app echoes what arrives on its OUT endpoint back on its IN endpoint, one transfer at a time.
    const int chunk = 64 * 1024;
    const std::uint64_t total = opt.bench ? opt.bench_bytes : 4ull << 20;
    std::mt19937_64 rng(std::random_device{}());
    std::vector<std::uint8_t> tx(chunk), rx(chunk);
    std::uint64_t done = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::string why;
    while (done < total && why.empty()) {
        for (auto& x : tx) x = static_cast<std::uint8_t>(rng());
        int n = 0;
        int rc = libusb_bulk_transfer(h, e.out, tx.data(), chunk, &n, timeout_ms);
        if (rc != 0 || n != chunk) {
            why = fmt::format("OUT transfer: {} ({} of {} bytes)", usb_err(rc), n, chunk);
            break;
        }
        int got = 0;
        while (got < chunk) {
            rc = libusb_bulk_transfer(h, e.in, rx.data() + got, chunk - got, &n, timeout_ms);
            if (rc != 0) break;
            got += n;
        }
        if (rc != 0) why = fmt::format("IN transfer: {} after {} bytes", usb_err(rc), got);
        else if (rx != tx) why = fmt::format("data differs after {} bytes", done);
        done += static_cast<std::uint64_t>(chunk);
    }
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.check("", "bulk loopback round trip", why.empty(), why.empty() ? fmt::format("{} KiB of random data echoed and compared", total / 1024) : why);
    if (why.empty()) out.bench = {{"bytes", total}, {"roundtrip_MBps", static_cast<double>(total) / 1e6 / secs}};
}

}  // namespace

std::optional<DeviceMatch> parse_vid_pid(const std::string& s)
{
    if (s.size() != 9 || s[4] != ':') return std::nullopt;
    for (std::size_t i = 0; i < 9; ++i)
        if (i != 4 && !std::isxdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    DeviceMatch m;
    m.vid = static_cast<std::uint16_t>(core::parse_number(s.substr(0, 4), 16).value_or(0));
    m.pid = static_cast<std::uint16_t>(core::parse_number(s.substr(5), 16).value_or(0));
    return m;
}

bool CheckReport::ok() const
{
    return std::none_of(items.begin(), items.end(), [](const CheckItem& i) { return i.result == "fail"; });
}

json CheckReport::to_json() const
{
    json checks = json::array();
    for (auto& i : items) {
        json j = {{"name", i.name}, {"result", i.result}, {"detail", i.detail}};
        if (auto lun = core::parse_number(i.lun)) j["lun"] = *lun;
        checks.push_back(j);
    }
    return {{"kind", kind}, {"device", device}, {"ok", ok()}, {"checks", checks}, {"bench", bench}};
}

core::Result<CheckReport> check_device(const DeviceMatch& m, const CheckOptions& opt)
{
    Ctx ctx;
    if (int rc = libusb_init(&ctx.ctx); rc != 0) return core::fail(Errc::kernel, "libusb_init failed: " + usb_err(rc), "/dev/bus/usb", "");
    libusb_device** list = nullptr;
    const auto count = libusb_get_device_list(ctx.ctx, &list);
    if (count < 0) return core::fail(Errc::kernel, "cannot list USB devices: " + usb_err(static_cast<int>(count)), "/dev/bus/usb", "");
    std::unique_ptr<libusb_device*, void (*)(libusb_device**)> free_list(list, [](libusb_device** l) { libusb_free_device_list(l, 1); });
    const std::string want = fmt::format("{:04x}:{:04x}", m.vid, m.pid);
    Handle handle;
    libusb_device* dev = nullptr;
    std::string seen_serial;
    for (ssize_t i = 0; i < count && !dev; ++i) {
        libusb_device_descriptor d{};
        if (libusb_get_device_descriptor(list[i], &d) != 0 || d.idVendor != m.vid || d.idProduct != m.pid) continue;
        if (m.bus && libusb_get_bus_number(list[i]) != m.bus) continue;
        if (m.device && libusb_get_device_address(list[i]) != m.device) continue;
        libusb_device_handle* h = nullptr;
        if (int rc = libusb_open(list[i], &h); rc != 0)
            return core::fail(Errc::busy, "cannot open USB device " + want + ": " + usb_err(rc),
                              fmt::format("/dev/bus/usb/{:03}/{:03}", libusb_get_bus_number(list[i]), libusb_get_device_address(list[i])),
                              "run as root, or add a udev rule for it");
        if (!m.serial.empty()) {
            unsigned char s[256] = {};
            if (d.iSerialNumber == 0 || libusb_get_string_descriptor_ascii(h, d.iSerialNumber, s, sizeof s) < 0 ||
                m.serial != reinterpret_cast<char*>(s)) {
                seen_serial = reinterpret_cast<char*>(s);
                libusb_close(h);
                continue;
            }
        }
        handle.h = h;
        dev = list[i];
    }
    if (!dev)
        return core::fail(Errc::missing, fmt::format("no USB device {}{} is attached", want, m.serial.empty() ? "" : " with serial " + m.serial), "/dev/bus/usb",
                          "is the gadget up and enumerated? devemu ls; lsusb");
    CheckReport out;
    out.device = {{"vid_pid", want}, {"bus", libusb_get_bus_number(dev)}, {"device", libusb_get_device_address(dev)},
                  {"speed", libusb_get_device_speed(dev)}};
    Report rep(out);
    auto found = find_interfaces(dev, true);
    out.kind = found.empty() ? "loopback" : "mass_storage";
    if (found.empty()) found = find_interfaces(dev, false);
    if (found.empty()) return core::fail(Errc::invalid_input, "device " + want + " has neither a mass-storage (BOT) interface nor a vendor bulk pair", "", "");
    if (out.kind == "loopback") found.resize(1);
    out.device["interface"] = found[0].intf;
    out.device["maxpacket"] = found[0].maxpacket;
    if (found.size() > 1) {
        out.device["interfaces"] = nlohmann::json::array();
        for (auto& e : found) out.device["interfaces"].push_back(e.intf);
    }
    // Detach usb-storage (or whatever holds it) for the duration; release re-attaches it.
    libusb_set_auto_detach_kernel_driver(handle.h, 1);
    std::size_t first_lun = 0;   // into the record's expectations
    for (std::size_t k = 0; k < found.size(); ++k) {
        const auto& e = found[k];
        if (int rc = libusb_claim_interface(handle.h, e.intf); rc != 0)
            return core::fail(Errc::busy, fmt::format("cannot claim interface {} of {}: {}", e.intf, want, usb_err(rc)), "",
                              "another program holds it (a FunctionFS host app? another devemu check?)");
        handle.intf = e.intf;
        if (out.kind == "loopback") {
            check_loopback(handle.h, e, rep, opt, out);
            break;
        }
        // This interface's share of what the record expects.
        CheckOptions mine = opt;
        if (found.size() > 1) {
            rep.set_interface(e.intf);
            const bool known = opt.luns_per_interface.size() == found.size();
            const std::size_t n = known ? static_cast<std::size_t>(opt.luns_per_interface[k]) : 0;
            mine.expect_luns = known ? static_cast<int>(n) : -1;
            auto slice = [&](auto v) {
                decltype(v) s;
                for (std::size_t i = first_lun; i < first_lun + n && i < v.size(); ++i) s.push_back(v[i]);
                return s;
            };
            mine.expect_sizes = slice(opt.expect_sizes);
            mine.expect_readonly = slice(opt.expect_readonly);
            mine.bench = opt.bench && k == 0;
            first_lun += n;
        }
        Bot bot(handle.h, e);
        check_msc(bot, rep, mine, out);
        libusb_release_interface(handle.h, e.intf);   // usb-storage binds it again
        handle.intf = -1;
    }
    return out;
}

}  // namespace devemu::usb
