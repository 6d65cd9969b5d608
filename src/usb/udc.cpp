#include "usb/udc.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstring>
#include <map>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/text.hpp"

namespace devemu::usb {

using core::Errc;

KernelLog::KernelLog() : fd_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC))
{
    if (fd_ && ::lseek(fd_.get(), 0, SEEK_END) < 0) fd_.reset();   // no position at the end: no kernel reasons, rather than old ones
}

void KernelLog::poll()
{
    if (!fd_) return;
    char buf[2048];
    for (;;) {
        ssize_t n = ::read(fd_.get(), buf, sizeof buf - 1);
        if (n < 0 && errno == EPIPE) continue;   // overwritten records: keep reading
        if (n <= 0) break;
        std::string rec(buf, static_cast<size_t>(n));
        auto semi = rec.find(';');
        std::string msg = semi == std::string::npos ? rec : rec.substr(semi + 1);
        msg = std::string(core::trim(msg.substr(0, msg.find('\n'))));
        for (const char* key : {"dummy", "gadget", "ffs", "udc", "UDC", "usb ", "configfs"})
            if (msg.find(key) != std::string::npos) {
                lines_.push_back(msg);
                break;
            }
    }
}

std::string KernelLog::reason()
{
    poll();
    return lines_.empty() ? std::string() : lines_.back();
}

std::string KernelLog::find(const std::string& what)
{
    poll();
    for (auto& l : lines_)
        if (l.find(what) != std::string::npos) return l;
    return {};
}

namespace {

std::vector<std::string> udcs(const Roots& r)
{
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(r.sys / "class/udc", ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Which gadget (other than `self`) holds each UDC.
std::map<std::string, std::string> udc_users(const Roots& r, const std::string& self)
{
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(r.gadget, ec)) {
        if (e.path().filename() == self) continue;
        auto u = core::read_attr(e.path() / "UDC");
        if (u && !core::trim(*u).empty()) out[std::string(core::trim(*u))] = e.path().filename().string();
    }
    return out;
}

}  // namespace

core::Result<std::string> pick_udc(const profile::Gadget& g, const Roots& r, const std::string& file)
{
    auto all = udcs(r);
    auto users = udc_users(r, g.name);
    if (g.udc == "usbip") {   // exported with USB/IP: a free usbip-vudc
        for (auto& u : all)
            if (u.starts_with("usbip-vudc.") && !users.count(u)) return u;
        return core::fail(Errc::missing, "no free usbip-vudc UDC", (r.sys / "class/udc").string(),
                          "apt install usbip and modprobe usbip-vudc (devemu up loads it), or devemu down the gadget that holds it");
    }
    if (!g.udc.empty()) {
        if (std::find(all.begin(), all.end(), g.udc) == all.end())
            return core::fail(Errc::missing,
                              fmt::format("gadget '{}' names UDC '{}', which this kernel does not have (it has: {})", g.name, g.udc,
                                          all.empty() ? "none" : core::join(all, ", ")),
                              g.loc.str().empty() ? file : g.loc.str(), "remove udc = … to let devemu pick a dummy_udc, or load the UDC's driver");
        if (users.count(g.udc))
            return core::fail(Errc::busy, fmt::format("UDC {} is busy: gadget '{}' is bound to it", g.udc, users[g.udc]),
                              (r.gadget / users[g.udc] / "UDC").string(), "unbind that gadget, or pick another udc");
        return g.udc;
    }
    bool any_dummy = false;
    for (auto& u : all)
        if (u.starts_with("dummy_udc.")) {
            any_dummy = true;
            if (!users.count(u)) return u;
        }
    if (!any_dummy)
        return core::fail(Errc::missing, "no dummy UDC: dummy_hcd is not loaded", (r.sys / "class/udc").string(),
                          "modprobe dummy_hcd (devemu up loads it when the kernel has modules), or use --vm");
    return core::fail(Errc::busy, "every dummy UDC is busy: " + [&] {
        std::vector<std::string> v;
        for (auto& [u, who] : users) v.push_back(u + " (" + who + ")");
        return core::join(v, ", ");
    }(), (r.sys / "class/udc").string(), "devemu down one of them, or load dummy_hcd with num=N");
}

core::Status bind_udc(core::Transaction& tx, const std::string& name, const fs::path& udc_attr, const std::string& udc, const Roots& r)
{
    auto bound = core::read_attr(udc_attr);
    if (bound && core::trim(*bound) == udc) return {};
    const std::string hcd = udc.starts_with("dummy_udc.") ? (r.sys / "devices/platform" / ("dummy_hcd." + udc.substr(10))).string() : "";
    DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("unbind", udc_attr.string(), hcd)));
    if (auto s = core::write_attr(udc_attr, udc); !s) {
        const int err = s.error().sys_errno;
        std::string why = err == EBUSY ? "the UDC is taken by another gadget"
                        : err == ENODEV ? "a FunctionFS function has no descriptors yet, or the UDC is gone"
                        : err == EINVAL ? "the kernel rejected the gadget's descriptors" : std::strerror(err);
        return core::fail(err == EBUSY ? Errc::busy : Errc::kernel, fmt::format("cannot bind gadget '{}' to {}: {}", name, udc, why),
                          udc_attr.string(), "see dmesg; devemu ls shows which units hold which UDC");
    }
    bound = core::read_attr(udc_attr);
    if (!bound || core::trim(*bound) != udc)
        return core::fail(Errc::kernel, fmt::format("bind did not take: UDC reads '{}'", bound.value_or("?")), udc_attr.string(), "see dmesg");
    return {};
}

core::Status unbind_udc(const fs::path& udc_attr, const std::string& hcd)
{
    if (::access(udc_attr.c_str(), F_OK) != 0) return {};
    auto bound = core::read_attr(udc_attr);
    if (bound && core::trim(*bound).empty()) return {};
    // A newline, not an empty write: the gadget's UDC store strips one trailing '\n' (libusbgx #14).
    auto s = core::write_attr(udc_attr, "\n");
    if (const int e = s ? 0 : s.error().sys_errno; e != 0 && e != ENOENT && e != ENODEV && e != EINVAL) return s;
    // The disconnect on dummy_hcd's host side is asynchronous: wait until its root hubs have no device.
    if (hcd.empty()) return {};
    for (int i = 0; i < 250; ++i) {
        bool any = false;
        std::error_code ec;
        for (auto& hub : fs::directory_iterator(hcd, ec)) {
            auto n = hub.path().filename().string();
            if (n.starts_with("usb") && fs::exists(hub.path() / (n.substr(3) + "-1"), ec)) any = true;
        }
        if (!any) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return {};
}

void register_undo_ops()
{
    core::register_undo("unbind", [](const core::UndoRecord& r) { return unbind_udc(r.path, r.value); });
}

}  // namespace devemu::usb
