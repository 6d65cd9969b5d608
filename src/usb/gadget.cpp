#include "usb/gadget.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "backing/backing.hpp"
#include "backing/blockdev.hpp"
#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/probe.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"

namespace devemu::usb {

using core::Errc;
using core::Node;
using core::NodeKind;
using nlohmann::json;
using profile::FunctionType;
using profile::Speed;

namespace {

const char* max_speed_name(Speed s) { return s == Speed::super ? "super-speed" : s == Speed::high ? "high-speed" : "full-speed"; }

std::string fn_dir(const profile::Function& f) { return fmt::format("{}.{}", profile::to_string(f.type), f.name); }

std::string hex4(unsigned v) { return fmt::format("{:#06x}", v); }

// Kernel messages logged from now on (for the reason behind a refused bind or a failed enumeration).
class KernelLog {
public:
    KernelLog() : fd_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC))
    {
        if (fd_) ::lseek(fd_.get(), 0, SEEK_END);
    }
    // Reads what arrived; keeps the lines about USB, gadgets and FunctionFS, without the record header.
    void poll()
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
    std::string reason()
    {
        poll();
        return lines_.empty() ? std::string() : lines_.back();
    }
    // The first line containing `what`, empty when none.
    std::string find(const std::string& what)
    {
        poll();
        for (auto& l : lines_)
            if (l.find(what) != std::string::npos) return l;
        return {};
    }

private:
    core::UniqueFd fd_;
    std::vector<std::string> lines_;
};

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

// A dummy UDC on purpose: never usbip-vudc or real hardware unless the profile names it.
core::Result<std::string> pick_udc(const profile::Gadget& g, const Roots& r, const std::string& file)
{
    auto all = udcs(r);
    auto users = udc_users(r, g.name);
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

// Creates the mount point (journaling each directory it makes) and mounts FunctionFS instance `name` there.
core::Status mount_ffs(core::Transaction& tx, const std::string& name, const fs::path& where)
{
    if (core::mounted_at(where.string(), "functionfs")) return {};
    std::vector<fs::path> made;
    for (fs::path p = where; !p.empty() && p != p.root_path() && !fs::exists(p); p = p.parent_path()) made.insert(made.begin(), p);
    for (auto& p : made) {
        DEVEMU_CHECK(tx.record({core::UndoOp::rmdir, p.string()}));
        if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return core::fail_errno("cannot create the FunctionFS mount point", p.string());
    }
    DEVEMU_CHECK(tx.record({core::UndoOp::umount, where.string()}));
    if (::mount(name.c_str(), where.c_str(), "functionfs", 0, nullptr) != 0)
        return core::fail_errno("cannot mount FunctionFS instance " + name, where.string(), "is usb_f_fs loaded? (modprobe usb_f_fs)");
    return {};
}

// A FunctionFS function is ready once its app has written descriptors and strings: the endpoint files appear.
bool ffs_ready(const fs::path& mount)
{
    std::error_code ec;
    for (auto& e : fs::directory_iterator(mount, ec))
        if (e.path().filename() != "ep0") return true;
    return false;
}

struct Resolved {
    std::map<std::string, std::string> lun_files;   // "FUNCTION/LUN" -> file
    json backstores = json::object();
};

core::Result<Resolved> resolve(const profile::Profile& p, const profile::Gadget& g, const json& rec, const UpOptions& opt,
                               core::Transaction* tx)
{
    Resolved r;
    for (auto& f : g.functions) {
        if (f.type != FunctionType::mass_storage) continue;
        for (std::size_t i = 0; i < f.luns.size(); ++i) {
            if (f.luns[i].backstore.empty()) continue;   // removable, no medium yet
            const auto* spec = p.backstore(f.luns[i].backstore);
            DEVEMU_TRY(b, backing::resolve_backing(*spec, opt.backing_roots, tx, backing::recorded_zram(rec, spec->name), opt.force));
            json j = {{"path", b.path}, {"size", b.size}};
            if (b.zram >= 0) j["zram"] = b.zram;
            r.backstores[spec->name] = j;
            r.lun_files[fmt::format("{}/{}", f.name, i)] = b.path;
        }
    }
    return r;
}

}  // namespace

core::Status prepare_kernel(const profile::Profile& p, const UpOptions& opt)
{
    if (!opt.load_modules || p.gadgets.empty()) return {};
    Speed top = Speed::full;
    bool ms = false, ffs = false, acm = false;
    for (auto& g : p.gadgets) {
        top = std::max(top, g.speed);
        for (auto& f : g.functions) {
            ms = ms || f.type == FunctionType::mass_storage;
            ffs = ffs || f.type == FunctionType::ffs;
            acm = acm || f.type == FunctionType::acm;
        }
    }
    std::vector<core::ModuleWant> mods = {{"configfs"}, {"libcomposite"}};
    // dummy_hcd's speed is fixed when it loads; num=4 lets several gadgets (and other devemu units) coexist.
    mods.push_back({"dummy_hcd", fmt::format("num=4 is_high_speed={} is_super_speed={}", top >= Speed::high ? 1 : 0, top == Speed::super ? 1 : 0)});
    if (ms) mods.insert(mods.end(), {{"usb_f_mass_storage"}, {"usb-storage"}, {"sd_mod"}});
    if (ffs) mods.push_back({"usb_f_fs"});
    if (acm) mods.insert(mods.end(), {{"usb_f_acm"}, {"cdc_acm", "", true}});   // cdc_acm optional: no tty is reported then
    for (auto& g : p.gadgets)
        for (auto& f : g.functions)
            for (auto& l : f.luns)
                if (auto* b = p.backstore(l.backstore); b && b->type == profile::BackstoreType::zram) mods.push_back({"zram"});
    DEVEMU_CHECK(core::ensure_modules(mods));
    if (top == Speed::super) {
        auto ss = core::read_attr("/sys/module/dummy_hcd/parameters/is_super_speed");
        if (ss && core::trim(*ss) == "N")
            spdlog::warn("dummy_hcd was loaded without is_super_speed=1: super-speed gadgets run at high speed (rmmod dummy_hcd to change it)");
    }
    if (opt.roots.gadget == Roots{}.gadget) DEVEMU_CHECK(core::ensure_configfs_mounted());
    std::error_code ec;
    if (!fs::is_directory(opt.roots.gadget, ec))
        return core::fail(Errc::missing, "USB gadget configfs is not available", opt.roots.gadget.string(), "modprobe libcomposite, or use --vm");
    return {};
}

std::vector<Node> gadget_nodes(const profile::Gadget& g, const std::map<std::string, std::string>& lun_files)
{
    const std::string G = g.name;
    std::vector<Node> n;
    auto dir = [&](std::string p) { n.push_back({NodeKind::dir, std::move(p), "", true, ""}); };
    auto attr = [&](std::string p, std::string v) { n.push_back({NodeKind::attr, std::move(p), std::move(v), true, ""}); };
    dir(G);
    attr(G + "/idVendor", hex4(g.vendor_id));
    attr(G + "/idProduct", hex4(g.product_id));
    attr(G + "/bcdDevice", hex4(g.bcd_device));
    attr(G + "/bcdUSB", g.speed == Speed::super ? "0x0300" : "0x0200");
    attr(G + "/max_speed", max_speed_name(g.speed));
    dir(G + "/strings/0x409");
    attr(G + "/strings/0x409/manufacturer", g.manufacturer);
    attr(G + "/strings/0x409/product", g.product);
    attr(G + "/strings/0x409/serialnumber", g.serial);
    for (auto& f : g.functions) {
        const auto F = G + "/functions/" + fn_dir(f);
        dir(F);
        if (f.type != FunctionType::mass_storage) continue;
        attr(F + "/stall", f.stall ? "1" : "0");
        for (std::size_t i = 0; i < f.luns.size(); ++i) {
            const auto& l = f.luns[i];
            const auto L = fmt::format("{}/lun.{}", F, i);
            if (i == 0) n.push_back({NodeKind::ensure, L, "", true, ""});   // the kernel makes lun.0 with the function
            else dir(L);
            // ro and cdrom cannot change while a file is open: set them before `file`.
            attr(L + "/removable", l.removable ? "1" : "0");
            attr(L + "/cdrom", l.cdrom ? "1" : "0");
            attr(L + "/ro", l.readonly ? "1" : "0");
            attr(L + "/nofua", l.nofua ? "1" : "0");
            if (!l.inquiry_string.empty()) n.push_back({NodeKind::attr, L + "/inquiry_string", l.inquiry_string, false, ""});
            auto file = lun_files.find(fmt::format("{}/{}", f.name, i));
            if (file != lun_files.end()) attr(L + "/file", file->second);
        }
    }
    dir(G + "/configs/c.1");
    attr(G + "/configs/c.1/MaxPower", std::to_string(g.max_power));
    dir(G + "/configs/c.1/strings/0x409");
    attr(G + "/configs/c.1/strings/0x409/configuration", "devemu");
    for (auto& f : g.functions) n.push_back({NodeKind::link, G + "/configs/c.1/" + fn_dir(f), G + "/functions/" + fn_dir(f), true, ""});
    return n;
}

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

bool refresh_disks(json& rec, const Roots& roots)
{
    json host = rec.value("host", json::object());
    if (!host.contains("sysfs")) return true;
    const fs::path dev = roots.sys / "bus/usb/devices" / fs::path(host["sysfs"].get<std::string>()).filename();
    std::vector<std::string> ms;
    for (auto& f : rec.value("spec_functions", json::array()))
        if (f.value("type", "") == "mass_storage") ms.push_back(f["name"]);
    json disks = json::object(), ttys = json::object();
    map_interfaces(dev, ms, {}, disks, ttys);
    bool all = true;
    for (auto& l : rec["luns"]) {
        const auto key = fmt::format("{}/{}", l.value("function", ""), l.value("lun", 0));
        if (disks.contains(key)) l["disk"] = disks[key];
        else all = false;
    }
    rec["host"]["disks"] = disks;
    return all;
}

core::Result<std::vector<core::Step>> plan(const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd, const UpOptions& opt)
{
    json rec = sd.load(g.name).value_or(json::object());
    DEVEMU_TRY(r, resolve(p, g, rec, opt, nullptr));
    return core::diff(core::recorded_nodes(rec), gadget_nodes(g, r.lun_files), opt.roots.gadget);
}

core::Result<json> up(const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd, const UpOptions& opt)
{
    json rec = sd.load(g.name).value_or(json::object());
    if (!rec.empty() && rec.value("kind", "") != "gadget")
        return core::fail(Errc::busy, fmt::format("unit '{}' is a {}, not a gadget", g.name, rec.value("kind", "?")), sd.record_path(g.name).string(),
                          "rename the gadget or devemu down " + g.name);
    std::error_code ec;
    if (rec.empty() && fs::exists(opt.roots.gadget / g.name, ec))
        return core::fail(Errc::busy, fmt::format("a gadget named '{}' exists that devemu did not create", g.name), (opt.roots.gadget / g.name).string(),
                          "rename the gadget in the profile; devemu never changes what it did not make");
    const auto udc_attr = opt.roots.gadget / g.name / "UDC";
    std::string udc = rec.value("udc", "");
    if (udc.empty()) {
        DEVEMU_TRY(u, pick_udc(g, opt.roots, p.file));
        udc = u;
    }
    core::Transaction tx(sd.journal(g.name));
    DEVEMU_TRY(r, resolve(p, g, rec, opt, &tx));
    const auto desired = gadget_nodes(g, r.lun_files);
    auto steps = core::diff(core::recorded_nodes(rec), desired, opt.roots.gadget);
    // A bound gadget refuses most changes: unbind first, change, rebind (a media change on `file` does not need it).
    const bool only_media = std::all_of(steps.begin(), steps.end(), [](const core::Step& s) { return s.node.path.ends_with("/file"); });
    auto bound = core::read_attr(udc_attr);
    const bool was_bound = bound && !core::trim(*bound).empty();
    KernelLog klog;
    auto fail_rollback = [&](core::Error e) -> core::Result<json> {
        if (auto why = klog.reason(); !why.empty() && e.what.find(why) == std::string::npos) e.what += " (kernel: " + why + ")";
        if (auto s = tx.rollback(); !s) spdlog::error("rollback incomplete: {}", s.error().message());
        return std::unexpected(e);
    };
    if (was_bound && !steps.empty() && !only_media)
        if (auto s = core::undo({core::UndoOp::unbind, udc_attr.string()}); !s) return fail_rollback(s.error());
    for (auto& s : steps) spdlog::debug("{}: {}", g.name, core::describe(s));
    if (auto s = core::apply(tx, steps, opt.roots.gadget); !s) {
        auto e = s.error();
        e.what = fmt::format("gadget '{}': {}", g.name, e.what);
        return fail_rollback(e);
    }
    if (auto diffs = core::verify(desired, opt.roots.gadget); !diffs.empty())
        return fail_rollback({Errc::check_failed, fmt::format("read-back differs after apply ({} differences), rolled back: {}", diffs.size(), diffs.front()),
                              g.name, "see `devemu plan` and dmesg"});
    // FunctionFS: mount each instance, then wait until its app has written descriptors.
    json mounts = json::object();
    std::vector<std::string> waiting;
    for (auto& f : g.functions) {
        if (f.type != FunctionType::ffs) continue;
        if (auto s = mount_ffs(tx, f.name, f.mount); !s) return fail_rollback(s.error());
        mounts[f.name] = f.mount;
        if (!ffs_ready(f.mount)) waiting.push_back(f.mount);
    }
    if (!waiting.empty()) {
        for (auto& m : waiting) core::note("start your app on " + m);
        if (opt.on_ffs_mounted)
            if (auto s = opt.on_ffs_mounted(tx, waiting); !s) return fail_rollback(s.error());
        const auto start = std::chrono::steady_clock::now();
        for (;;) {
            std::erase_if(waiting, [](const std::string& m) { return ffs_ready(m); });
            if (waiting.empty()) break;
            auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
            if (secs >= opt.timeout)
                return fail_rollback({Errc::timeout, fmt::format("no FunctionFS app wrote its descriptors within {} s", opt.timeout.count()),
                                      waiting.front(), "start the app on that path (it writes descriptors and strings to ep0), or raise --timeout"});
            if (secs.count() >= 2) core::progress(fmt::format("waiting for the app on {}… {}s", waiting.front(), secs.count()));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        core::progress_clear();
    }
    // Bind: journal the unbind first, then write the UDC and read it back (libusbgx #12: a bind can fail silently).
    bound = core::read_attr(udc_attr);
    if (!bound || core::trim(*bound) != udc) {
        const std::string hcd = udc.starts_with("dummy_udc.") ? (opt.roots.sys / "devices/platform" / ("dummy_hcd." + udc.substr(10))).string() : "";
        if (auto s = tx.record({core::UndoOp::unbind, udc_attr.string(), hcd}); !s) return fail_rollback(s.error());
        if (auto s = core::write_attr(udc_attr, udc); !s) {
            auto e = s.error();
            const int err = e.sys_errno;
            std::string why = err == EBUSY ? "the UDC is taken by another gadget"
                            : err == ENODEV ? "a FunctionFS function has no descriptors yet, or the UDC is gone"
                            : err == EINVAL ? "the kernel rejected the gadget's descriptors" : std::strerror(err);
            return fail_rollback({err == EBUSY ? Errc::busy : Errc::kernel, fmt::format("cannot bind gadget '{}' to {}: {}", g.name, udc, why),
                                  udc_attr.string(), "see dmesg; devemu ls shows which units hold which UDC"});
        }
        bound = core::read_attr(udc_attr);
        if (!bound || core::trim(*bound) != udc)
            return fail_rollback({Errc::kernel, fmt::format("bind did not take: UDC reads '{}'", bound.value_or("?")), udc_attr.string(), "see dmesg"});
    }
    // Enumeration: the host half of dummy_hcd configures the device and its drivers bind (usb-storage -> /dev/sdX).
    std::size_t want_disks = 0;
    for (auto& f : g.functions)
        if (f.type == FunctionType::mass_storage) want_disks += f.luns.size();
    // cdc_acm gives each ACM function a tty on the host side (when the kernel has it).
    std::size_t want_ttys = 0;
    if (fs::exists("/sys/module/cdc_acm"))
        for (auto& f : g.functions) want_ttys += f.type == FunctionType::acm;
    json host = json::object();
    if (udc.starts_with("dummy_udc.")) {
        const auto start = std::chrono::steady_clock::now();
        std::optional<Enumerated> e;
        for (;;) {
            e = find_enumerated(g, udc, g.serial, opt.roots);
            // Configured = the host side set a configuration (the UDC's own `state` is not reset on unbind, so a
            // previous gadget's "configured" would lie).
            const std::string state = !e ? core::read_attr(opt.roots.sys / "class/udc" / udc / "state").value_or("?")
                                         : e->configured ? "configured" : "not configured";
            if (e && state == "configured" && e->disks.size() >= want_disks && e->ttys.size() >= want_ttys) break;
            auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
            // The host enumerated it but SET_CONFIGURATION failed: a function's endpoint descriptors were refused
            // (dummy_hcd enforces the USB maxpacket rules: bulk 64 full-speed, 512 high-speed, 1024 super-speed).
            if (e && state != "configured")
                if (auto l = klog.find("can't set config"); !l.empty())
                    return fail_rollback({Errc::invalid_input,
                                          fmt::format("the host could not configure gadget '{}': its descriptors were refused ({})", g.name, l),
                                          udc, "check the functions' endpoint descriptors: bulk maxpacket must be 512 at high speed, 1024 at super speed"});
            if (secs >= opt.timeout) {
                std::string what = !e ? fmt::format("the host side did not enumerate gadget '{}' within {} s (UDC state: {})", g.name, opt.timeout.count(), state)
                                 : state != "configured" ? fmt::format("the host did not configure gadget '{}' (UDC state: {}): a descriptor was rejected?", g.name, state)
                                 : fmt::format("gadget '{}' enumerated but only {} of {} disks appeared", g.name, e->disks.size(), want_disks);
                return fail_rollback({Errc::timeout, what, udc, "see dmesg; HS bulk endpoints need maxpacket 512 (SS: 1024)"});
            }
            if (secs.count() >= 2) core::progress(fmt::format("waiting for the host to enumerate {}… {}s", g.name, secs.count()));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        core::progress_clear();
        host = {{"sysfs", e->sysfs}, {"bus", e->bus}, {"device", e->device}, {"speed_mbps", e->speed}, {"disks", e->disks}, {"ttys", e->ttys}};
    }
    tx.commit();
    json luns = json::array();
    for (auto& f : g.functions)
        for (std::size_t i = 0; i < f.luns.size(); ++i) {
            const auto key = fmt::format("{}/{}", f.name, i);
            json l = {{"function", f.name}, {"lun", i}, {"backstore", f.luns[i].backstore}, {"file", r.lun_files[key]},
                      {"removable", f.luns[i].removable}, {"readonly", f.luns[i].readonly}};
            if (host.contains("disks") && host["disks"].contains(key)) l["disk"] = host["disks"][key];
            luns.push_back(l);
        }
    rec = {{"name", g.name}, {"kind", "gadget"}, {"profile", p.file}, {"state", "up"}, {"nodes", desired}, {"udc", udc},
           {"vid_pid", fmt::format("{:04x}:{:04x}", g.vendor_id, g.product_id)}, {"serial", g.serial},
           {"backstores", r.backstores}, {"host", host}, {"luns", luns}, {"ffs", mounts},
           {"changes", steps.size()}, {"spec_functions", [&] {
                json fns = json::array();
                for (auto& f : g.functions) fns.push_back({{"type", profile::to_string(f.type)}, {"name", f.name}});
                return fns;
            }()}};
    DEVEMU_CHECK(sd.save(g.name, rec));
    return rec;
}

namespace {
// Processes with a file open under `dir` ("NAME[PID]"), for a FunctionFS app that outlives its gadget. Members of
// the process groups in `ours` (an --exec app the journal stops first) are not listed.
std::vector<std::string> holders(const std::string& dir, const std::set<pid_t>& ours)
{
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& p : fs::directory_iterator("/proc", ec)) {
        const auto pid = p.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos || pid == std::to_string(::getpid())) continue;
        if (ours.count(::getpgid(static_cast<pid_t>(core::parse_number(pid).value_or(0))))) continue;
        for (auto& fd : fs::directory_iterator(p.path() / "fd", ec)) {
            auto t = fs::read_symlink(fd.path(), ec).string();
            if (t.starts_with(dir + "/")) {
                out.push_back(std::string(core::trim(core::read_attr(p.path() / "comm").value_or("?"))) + "[" + pid + "]");
                break;
            }
        }
    }
    return out;
}
}  // namespace

core::Status down(const core::StateDir& sd, const std::string& unit)
{
    // An app we did not start keeps its FunctionFS files after the gadget is gone: it will only see errors. One we
    // started (--exec) is stopped, with every process of its group, before FunctionFS is unmounted.
    if (auto rec = sd.load(unit)) {
        std::set<pid_t> ours;
        for (auto& r : core::load_journal(sd.journal(unit)).value_or(std::vector<core::UndoRecord>{}))
            if (r.op == core::UndoOp::kill_group) ours.insert(static_cast<pid_t>(r.pid));
        const json mounts = rec->value("ffs", json::object());
        for (auto it = mounts.begin(); it != mounts.end(); ++it)
            if (auto h = holders(it.value().get<std::string>(), ours); !h.empty())
                spdlog::warn("{}: {} still has {} open; the gadget goes away under it", unit, core::join(h, ", "), it.value().get<std::string>());
    }
    auto s = core::replay_journal(sd.journal(unit));
    if (!s) return core::fail(s.error().code, "could not remove everything: " + s.error().message(), unit,
                              "stop the programs using the gadget (a FunctionFS app, a mounted /dev/sdX) and run devemu down again");
    return sd.forget(unit);
}

std::vector<std::string> health(const json& rec, const Roots& roots)
{
    auto out = core::verify(core::recorded_nodes(rec), roots.gadget);
    const std::string udc = rec.value("udc", "");
    auto bound = core::read_attr(roots.gadget / rec.value("name", "") / "UDC");
    if (!bound || core::trim(*bound) != udc)
        out.push_back(fmt::format("{}: asked for '{}', the kernel has '{}'", (roots.gadget / rec.value("name", "") / "UDC").string(), udc,
                                  bound.value_or("absent")));
    const json mounts = rec.value("ffs", json::object());   // a named copy: items() of a temporary dangles
    for (auto& [name, mount] : mounts.items())
        if (!core::mounted_at(mount.get<std::string>(), "functionfs")) out.push_back(mount.get<std::string>() + ": FunctionFS is no longer mounted");
    return out;
}

core::Status change_media(const core::StateDir& sd, const std::string& unit, unsigned lun, const std::string& file, bool force, const Roots& roots)
{
    DEVEMU_TRY(rec, sd.load(unit));
    if (rec.value("kind", "") != "gadget") return core::fail(Errc::invalid_input, "'" + unit + "' is not a gadget unit", sd.record_path(unit).string(), "devemu ls");
    json* entry = nullptr;
    for (auto& l : rec["luns"])
        if (l["lun"].get<unsigned>() == lun && !entry) entry = &l;
    if (!entry) return core::fail(Errc::invalid_input, fmt::format("gadget '{}' has no LUN {}", unit, lun), unit, "devemu ls " + unit);
    const std::string fn = (*entry)["function"];
    if (!(*entry)["removable"].get<bool>())
        return core::fail(Errc::invalid_input, fmt::format("LUN {} of gadget '{}' is not removable", lun, unit), rec.value("profile", unit),
                          "set removable = true on that [[gadget.function.lun]] and devemu down/up");
    if (!file.empty()) {
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0) return core::fail_errno("cannot use as medium", file, "give an existing image file or block device");
        if (S_ISBLK(st.st_mode)) DEVEMU_CHECK(backing::check_block_device_free(file, force));
        else if (!S_ISREG(st.st_mode)) return core::fail(Errc::invalid_input, "not a regular file or block device", file, "");
    }
    const auto attr = roots.gadget / unit / "functions" / ("mass_storage." + fn) / fmt::format("lun.{}", lun) / "file";
    const std::string value = file.empty() ? "\n" : fs::absolute(file).string();
    if (auto s = core::write_attr(attr, value); !s) {
        if (s.error().sys_errno == EBUSY && file.empty()) {
            if (!force)
                return core::fail(Errc::busy, "the host has locked the medium (PREVENT ALLOW MEDIUM REMOVAL)", attr.string(),
                                  "unmount it on the host side, or pass --force (forced_eject)");
            DEVEMU_CHECK(core::write_attr(attr.parent_path() / "forced_eject", "1"));
        } else {
            return s;
        }
    }
    // Keep the record in step, so `ls` health and a rerun of `up` see the medium that is in now.
    auto now = core::read_attr(attr).value_or("");
    if (now != (file.empty() ? "" : value))
        return core::fail(Errc::check_failed, fmt::format("media change did not take: the LUN holds '{}'", now), attr.string(), "see dmesg");
    for (auto& n : rec["nodes"])
        if (n["path"] == fs::relative(attr, roots.gadget).string()) n["value"] = now;
    (*entry)["file"] = now;
    return sd.save(unit, rec);
}

}  // namespace devemu::usb
