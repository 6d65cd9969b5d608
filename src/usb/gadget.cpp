#include "usb/gadget.hpp"

#include "usb/record.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "backing/backing.hpp"
#include "backing/blockdev.hpp"
#include "core/apply_unit.hpp"
#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/probe.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "usb/ffs.hpp"
#include "usb/msc_unit.hpp"
#include "usb/usbip.hpp"
#include "usb/udc.hpp"

namespace devemu::usb {

using core::Errc;
using core::Node;
using core::NodeKind;
using nlohmann::json;
using profile::FunctionType;
using profile::Speed;

namespace {

const char* max_speed_name(Speed s) { return s == Speed::super ? "super-speed" : s == Speed::high ? "high-speed" : "full-speed"; }

// A function's configfs directory; one devemu serves is a FunctionFS instance.
std::string fn_dir(const profile::Gadget& g, const profile::Function& f)
{
    if (f.type == FunctionType::mass_storage && f.user_engine) return "ffs." + msc_instance(g, f);
    return fmt::format("{}.{}", profile::to_string(f.type), f.name);
}

std::string hex4(unsigned v) { return fmt::format("{:#06x}", v); }

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
            const auto client = opt.rbd.find(spec->name);
            DEVEMU_TRY(b, backing::resolve_backing(*spec, opt.backing_roots, tx, backing::recorded_zram(rec, spec->name), opt.force,
                                                   client == opt.rbd.end() ? nullptr : &client->second, backing::recorded_rbd(rec, spec->name)));
            json j = {{"path", b.path}, {"size", b.size}};
            if (b.zram >= 0) j["zram"] = b.zram;
            if (b.rbd >= 0) j["rbd"] = b.rbd, j["image"] = spec->pool + "/" + spec->image;
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
    bool ms = false, ffs = false, acm = false, host_ms = false;
    for (auto& g : p.gadgets) {
        top = std::max(top, g.speed);
        for (auto& f : g.functions) {
            ms = ms || (f.type == FunctionType::mass_storage && !f.user_engine);
            host_ms = host_ms || f.type == FunctionType::mass_storage;
            ffs = ffs || f.type == FunctionType::ffs || (f.type == FunctionType::mass_storage && f.user_engine);
            acm = acm || f.type == FunctionType::acm;
        }
    }
    std::vector<core::ModuleWant> mods = {{"configfs"}, {"libcomposite"}};
    // dummy_hcd's speed is fixed when it loads; kDummyHcdNum lets several gadgets (and other devemu units) coexist.
    mods.push_back({"dummy_hcd", fmt::format("num={} is_high_speed={} is_super_speed={}", core::kDummyHcdNum, top >= Speed::high ? 1 : 0, top == Speed::super ? 1 : 0)});
    if (ms) mods.push_back({"usb_f_mass_storage"});
    if (host_ms) mods.insert(mods.end(), {{"usb-storage"}, {"sd_mod"}});
    for (auto& g : p.gadgets)
        if (g.udc == "usbip") mods.push_back({"usbip-vudc"});
    if (ffs) mods.push_back({"usb_f_fs"});
    if (acm) mods.insert(mods.end(), {{"usb_f_acm"}, {"cdc_acm", "", true}});   // cdc_acm optional: no tty is reported then
    for (auto& g : p.gadgets)
        for (auto& f : g.functions)
            for (auto& l : f.luns)
                if (auto* b = p.backstore(l.backstore); b && (b->type == profile::BackstoreType::zram || b->path.starts_with("zram:")))
                    mods.push_back({"zram"});
                else if (b && b->type == profile::BackstoreType::rbd)
                    mods.insert(mods.end(), {{"crc32c", "", true}, {"rbd"}});   // libcrc32c: rbd's softdep; may be built in
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
    // Not read back: the kernel rewrites bcdUSB when a host enumerates the gadget (composite.c: 0x0320 at super
    // speed, 0x0210 for a high-speed link on a super-speed UDC), so `ls` would call every enumerated one drift.
    n.push_back({NodeKind::attr, G + "/bcdUSB", g.speed == Speed::super ? "0x0300" : "0x0200", false, ""});
    attr(G + "/max_speed", max_speed_name(g.speed));
    dir(G + "/strings/0x409");
    attr(G + "/strings/0x409/manufacturer", g.manufacturer);
    attr(G + "/strings/0x409/product", g.product);
    attr(G + "/strings/0x409/serialnumber", g.serial);
    for (auto& f : g.functions) {
        const auto F = G + "/functions/" + fn_dir(g, f);
        dir(F);
        if (f.type != FunctionType::mass_storage || f.user_engine) continue;
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
    for (auto& f : g.functions) n.push_back({NodeKind::link, G + "/configs/c.1/" + fn_dir(g, f), G + "/functions/" + fn_dir(g, f), true, ""});
    return n;
}

core::Result<std::vector<core::Step>> plan(const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd, const UpOptions& opt)
{
    json rec = sd.load(g.name).value_or(json::object());
    DEVEMU_TRY(r, resolve(p, g, rec, opt, nullptr));
    return core::diff(core::recorded_nodes(rec), gadget_nodes(g, r.lun_files), opt.roots.gadget);
}

namespace {
std::vector<LunRecord> lun_records(const profile::Gadget& g, const std::map<std::string, std::string>& lun_files, const json& host)
{
    std::vector<LunRecord> luns;
    for (auto& f : g.functions)
        for (std::size_t i = 0; i < f.luns.size(); ++i) {
            const auto key = fmt::format("{}/{}", f.name, i);
            const auto file = lun_files.find(key);
            LunRecord l{f.name, static_cast<unsigned>(i), f.luns[i].backstore, file == lun_files.end() ? "" : file->second, f.luns[i].removable,
                        f.luns[i].readonly, std::nullopt};
            if (host.contains("disks") && host["disks"].contains(key)) l.disk = host["disks"][key].get<std::string>();
            luns.push_back(l);
        }
    return luns;
}

// A record devemu did not write, or a gadget in configfs it did not make: refused, nothing touched.
core::Status check_ours(const profile::Gadget& g, const json& rec, const core::StateDir& sd, const UpOptions& opt)
{
    if (!rec.empty() && rec.value("kind", "") != "gadget")
        return core::fail(Errc::busy, fmt::format("unit '{}' is a {}, not a gadget", g.name, rec.value("kind", "?")), sd.record_path(g.name).string(),
                          "rename the gadget or devemu down " + g.name);
    std::error_code ec;
    if (rec.empty() && fs::exists(opt.roots.gadget / g.name, ec))
        return core::fail(Errc::busy, fmt::format("a gadget named '{}' exists that devemu did not create", g.name), (opt.roots.gadget / g.name).string(),
                          "rename the gadget in the profile; devemu never changes what it did not make");
    return {};
}
}  // namespace

// Reconcile the configfs tree, mount FunctionFS and wait for the apps, bind, wait for the host side: each step
// journaled in one transaction, rolled back (with the kernel's reason) when any fails.
core::Result<json> up(const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd, const UpOptions& opt)
{
    json rec = sd.load(g.name).value_or(json::object());
    DEVEMU_CHECK(check_ours(g, rec, sd, opt));
    const auto udc_attr = opt.roots.gadget / g.name / "UDC";
    std::string udc = rec.value("udc", "");
    if (udc.empty()) {
        DEVEMU_TRY(u, pick_udc(g, opt.roots, p.file));
        udc = u;
    }
    core::Transaction tx(sd.journal(g.name));
    DEVEMU_TRY(r, resolve(p, g, rec, opt, &tx));
    core::UnitApply a{fmt::format("gadget '{}'", g.name), g.name, opt.roots.gadget, core::recorded_nodes(rec), gadget_nodes(g, r.lun_files)};
    // A bound gadget refuses most changes: unbind first, change, rebind (a media change on `file` does not need it).
    a.before_phase = [&](int, core::Transaction&, const std::vector<core::Step>& plan) -> core::Status {
        const bool only_media = std::all_of(plan.begin(), plan.end(), [](const core::Step& s) { return s.node.path.ends_with("/file"); });
        return plan.empty() || only_media ? core::Status{} : unbind_udc(udc_attr);
    };
    KernelLog klog;
    json mounts = json::object(), host, servers;
    a.after_verify = [&](core::Transaction& txn) -> core::Status {
        DEVEMU_TRY(sv, start_msc_servers(txn, p, g, sd, r.backstores, rec.value("servers", json::object()), opt.timeout));
        servers = sv;
        DEVEMU_CHECK(wait_for_apps(txn, g, opt, mounts));
        DEVEMU_CHECK(bind_udc(txn, g.name, udc_attr, udc, opt.roots));
        DEVEMU_TRY(h, wait_enumerated(g, udc, opt.roots, opt.timeout, klog));
        host = h;
        if (is_usbip_udc(udc)) {   // no host side here: another machine attaches it
            DEVEMU_TRY(u, start_usbipd(txn, sd, g.name, udc));
            host["usbip"] = u;
        }
        return {};
    };
    a.explain = [&](core::Error& e) {
        if (auto why = klog.reason(); !why.empty() && e.what.find(why) == std::string::npos) e.what += " (kernel: " + why + ")";
    };
    DEVEMU_TRY(steps, core::apply_unit(tx, a));
    const auto& desired = a.desired;
    GadgetRecord out;
    out.name = g.name;
    out.profile = p.file;
    out.nodes = desired;
    out.udc = udc;
    out.vid_pid = fmt::format("{:04x}:{:04x}", g.vendor_id, g.product_id);
    out.serial = g.serial;
    out.backstores = r.backstores;
    out.host = host;
    out.luns = lun_records(g, r.lun_files, host);
    out.ffs = mounts.get<std::map<std::string, std::string>>();
    out.servers = servers;
    out.changes = steps.size();
    for (auto& f : g.functions) out.spec_functions.push_back({profile::to_string(f.type), f.name});
    rec = out;
    DEVEMU_CHECK(sd.save(g.name, rec));
    return rec;
}

core::Status down(const core::StateDir& sd, const std::string& unit)
{
    // An app we did not start keeps its FunctionFS files after the gadget is gone: it will only see errors. One we
    // started (--exec) is stopped, with every process of its group, before FunctionFS is unmounted.
    auto j = sd.load(unit);
    if (auto rec = j ? gadget_record(*j) : std::unexpected(j.error())) {
        std::set<pid_t> ours;
        for (auto& r : core::load_journal(sd.journal(unit)).value_or(std::vector<core::UndoRecord>{}))
            if (r.op == core::UndoOp::kill_group) ours.insert(static_cast<pid_t>(r.pid));
        for (auto& [fn, mount] : rec->ffs)
            if (auto h = holders(mount, ours); !h.empty())
                spdlog::warn("{}: {} still has {} open; the gadget goes away under it", unit, core::join(h, ", "), mount);
    }
    auto s = core::replay_journal(sd.journal(unit));
    if (!s) return core::fail(s.error().code, "could not remove everything: " + s.error().message(), unit,
                              "stop the programs using the gadget (a FunctionFS app, a mounted /dev/sdX) and run devemu down again");
    return sd.forget(unit);
}

std::vector<std::string> health(const GadgetRecord& rec, const Roots& roots)
{
    auto out = core::verify(rec.nodes, roots.gadget);
    const auto attr = roots.gadget / rec.name / "UDC";
    auto bound = core::read_attr(attr);
    if (!bound || core::trim(*bound) != rec.udc)
        out.push_back(fmt::format("{}: asked for '{}', the kernel has '{}'", attr.string(), rec.udc, bound.value_or("absent")));
    for (auto& [name, mount] : rec.ffs)
        if (!core::mounted_at(mount, "functionfs")) out.push_back(mount + ": FunctionFS is no longer mounted");
    if (rec.host.contains("usbip") && !tcp_listening(usbip_port)) out.push_back("usbipd no longer listens on port 3240: the gadget cannot be attached");
    const auto servers = msc_server_status(rec.servers);
    for (auto it = servers.begin(); it != servers.end(); ++it)
        if (!it->value("running", false)) out.push_back(fmt::format("function '{}': devemu's mass-storage server is not running", it.key()));
    return out;
}

core::Status change_media(const core::StateDir& sd, const std::string& unit, unsigned lun, const std::string& file, bool force, const Roots& roots)
{
    DEVEMU_TRY(j, sd.load(unit));
    if (j.value("kind", "") != "gadget") return core::fail(Errc::invalid_input, "'" + unit + "' is not a gadget unit", sd.record_path(unit).string(), "devemu ls");
    DEVEMU_TRY(rec, gadget_record(j));
    LunRecord* entry = nullptr;
    for (auto& l : rec.luns)
        if (l.lun == lun && !entry) entry = &l;
    if (!entry) return core::fail(Errc::invalid_input, fmt::format("gadget '{}' has no LUN {}", unit, lun), unit, "devemu ls " + unit);
    const std::string fn = entry->function;
    if (rec.servers.contains(fn))
        return core::fail(Errc::invalid_input, fmt::format("function '{}' of gadget '{}' is devemu's own, which has no media change yet", fn, unit),
                          rec.profile.empty() ? unit : rec.profile, "use engine = \"kernel\" on that function for insert/eject");
    if (!entry->removable)
        return core::fail(Errc::invalid_input, fmt::format("LUN {} of gadget '{}' is not removable", lun, unit), rec.profile.empty() ? unit : rec.profile,
                          "set removable = true on that [[gadget.function.lun]] and devemu down/up");
    if (!file.empty()) {
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0) return core::fail_errno("cannot use as medium", file, "give an existing image file or block device");
        if (S_ISBLK(st.st_mode)) DEVEMU_CHECK(backing::check_block_device_free(file, force));
        else if (!S_ISREG(st.st_mode)) return core::fail(Errc::invalid_input, "not a regular file or block device", file, "");
    }
    const auto attr = roots.gadget / unit / "functions" / ("mass_storage." + fn) / fmt::format("lun.{}", lun) / "file";
    const std::string value = file.empty() ? "\n" : fs::absolute(file).string();
    auto s = core::write_attr(attr, value);
    // Right after the host attached the disk (a `check` re-attaches usb-storage), its partition scan holds the
    // device open for a moment, and sd locks a removable medium while it is open: wait that out (2 s) first.
    for (int i = 0; i < 20 && !s && s.error().sys_errno == EBUSY && file.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        s = core::write_attr(attr, value);
    }
    if (!s) {
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
    for (auto& n : rec.nodes)
        if (n.path == fs::relative(attr, roots.gadget).string()) n.value = now;
    entry->file = now;
    return sd.save(unit, rec);
}

}  // namespace devemu::usb
