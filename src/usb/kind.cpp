// The "gadget" unit kind: a USB gadget on a UDC, as usb::up made it.
#include "usb/kind.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "backing/backing.hpp"
#include "ceph/rbd_up.hpp"
#include "core/fs.hpp"
#include "core/text.hpp"
#include "core/unix_socket.hpp"
#include "backing/blockdev.hpp"
#include "profile/profile.hpp"
#include "usb/checker.hpp"
#include "usb/gadget.hpp"
#include "usb/msc_unit.hpp"
#include "usb/record.hpp"
#include "usb/udc.hpp"

namespace devemu::usb {

using nlohmann::json;

std::vector<std::string> gadget_lines(const json& j)
{
    std::vector<std::string> out;
    auto r = gadget_record(j);
    if (!r) return {r.error().message()};
    const auto& rec = *r;
    out.push_back(fmt::format("gadget {}: {}{}", rec.name, rec.state, j.contains("changes") ? " (" + core::changes_in_words(rec.changes) + ")" : ""));
    out.push_back("  udc        " + rec.udc);
    out.push_back("  id         " + rec.vid_pid + " serial " + rec.serial);
    const json& host = rec.host;
    if (host.contains("bus"))
        out.push_back(fmt::format("  usb        bus {} device {}, {} Mbit/s ({})", host["bus"].get<int>(), host["device"].get<int>(),
                                  host.value("speed_mbps", "?"), host.value("sysfs", "")));
    if (host.contains("usbip"))
        out.push_back(fmt::format("  usbip      exported on port {}: attach it with  usbip attach -r THIS_HOST -d {}", host["usbip"].value("port", 3240),
                                  host["usbip"].value("busid", "?")));
    for (auto& l : rec.luns)
        out.push_back(fmt::format("  LUN {}      {}  {}{}{}", l.lun, l.disk.value_or("(no disk)"), l.file.empty() ? "(no medium)" : l.file,
                                  l.readonly ? " ro" : "", l.removable ? " removable" : ""));
    const json ttys = host.value("ttys", json::object());   // named: items() of a temporary dangles
    for (auto it = ttys.begin(); it != ttys.end(); ++it) out.push_back("  acm " + it.key() + "    " + it.value().get<std::string>());
    for (auto& [fn, mount] : rec.ffs) out.push_back("  ffs " + fn + "    " + mount);
    // From the record only: with --vm these lines are printed on the host, where the server's process is not.
    for (auto it = rec.servers.begin(); it != rec.servers.end(); ++it)
        out.push_back(fmt::format("  server     {}: devemu's own function, supervisor pid {} (devemu ls --json: what it served)", it.key(),
                                  it.value().value("supervisor", std::int64_t{0})));
    out.push_back("  stop it:   devemu down " + rec.name);
    return out;
}

namespace {

core::Result<std::vector<core::UnitOutcome>> up_gadgets(const profile::Profile& p, const core::StateDir& sd, const core::UpRequest& req)
{
    std::vector<core::UnitOutcome> out;
    if (p.gadgets.empty()) return out;
    UpOptions opt;
    opt.force = req.force;
    opt.timeout = req.timeout;
    if (!req.apply) {
        for (auto& g : p.gadgets) {
            DEVEMU_TRY(pl, plan(p, g, sd, opt));
            core::UnitOutcome o{g.name};
            for (auto& s : pl) o.steps.push_back(core::describe(s));
            out.push_back(std::move(o));
        }
        return out;
    }
    DEVEMU_CHECK(prepare_kernel(p, opt));
    // rbd LUNs: clusters, pools and images first (as for targets), journaled with the gadget that uses them.
    std::vector<std::string> names;
    for (auto& g : p.gadgets) names.push_back(g.name);
    auto rbd = ceph::prepare_units_rbd(p, names, sd, ceph::RbdUp{req.force, req.in_vm, req.ceph_local});
    opt.rbd = rbd.clients;
    for (std::size_t i = 0; i < p.gadgets.size(); ++i) {
        const auto& g = p.gadgets[i];
        if (req.on_ffs_mounted)
            opt.on_ffs_mounted = [&](core::Transaction& tx, const std::vector<std::string>& mounts) { return req.on_ffs_mounted(tx, g.name, mounts); };
        auto rec = rbd.err[i] ? std::unexpected(*rbd.err[i]) : up(p, g, sd, opt);
        if (const auto local = ceph::finish_unit_rbd(rbd, i, rec.has_value()); local.uses) {
            // The first gadget that came up owns a cluster this `up` started: its `down` stops it.
            (*rec)["uses_ceph_local"] = true;
            (*rec)["ceph_local_started"] = local.owns;
            if (auto s = sd.save(g.name, *rec); !s) rec = std::unexpected(s.error());
        }
        out.push_back({g.name, std::move(rec)});
    }
    ceph::finish_units_rbd(rbd, sd);
    return out;
}

core::Described describe_gadget(const json& j, core::DescribeFor what, bool)
{
    core::Described d;
    if (what == core::DescribeFor::up) {
        d.json = {{"unit", j.value("name", "")}, {"kind", "gadget"}};
        for (auto key : {"changes", "udc", "vid_pid", "serial", "host", "luns", "ffs", "servers"}) d.json[key] = j.contains(key) ? j[key] : json();
        d.lines = gadget_lines(j);
        return d;
    }
    for (auto key : {"udc", "vid_pid", "host", "luns", "ffs"})
        if (j.contains(key)) d.json[key] = j[key];
    auto rec = gadget_record(j);
    if (!rec) return d;
    if (!rec->servers.empty()) d.json["servers"] = msc_server_status(rec->servers);
    std::string line;
    if (!rec->vid_pid.empty()) line = rec->vid_pid + " on " + rec->udc;
    for (auto& l : rec->luns)
        if (l.disk) line += fmt::format("{}LUN {}={}", line.empty() ? "" : "  ", l.lun, *l.disk);
    if (!line.empty()) d.lines.push_back(line);
    if (rec->host.contains("usbip"))
        d.lines.push_back(fmt::format("USB/IP on port {}: usbip attach -r THIS_HOST -d {}", rec->host["usbip"].value("port", 3240), rec->host["usbip"].value("busid", "?")));
    return d;
}

// What the checker should find: the record's LUNs, read-only flags and sizes (of the files or devices behind them).
core::Result<DeviceMatch> expectations(const GadgetRecord& rec, const std::string& what, CheckOptions& opt)
{
    auto vp = parse_vid_pid(rec.vid_pid);
    if (!vp) return core::fail(core::Errc::invalid_input, "the unit record has no VID:PID", what, "devemu down and up again");
    DeviceMatch m = *vp;
    m.serial = rec.serial;
    m.bus = rec.host.value("bus", 0);
    m.device = rec.host.value("device", 0);
    if (rec.luns.empty()) return m;
    opt.expect_luns = static_cast<int>(rec.luns.size());
    for (std::size_t i = 0; i < rec.luns.size(); ++i) {   // the record's LUNs are in function (= interface) order
        if (i == 0 || rec.luns[i].function != rec.luns[i - 1].function) opt.luns_per_interface.push_back(0);
        ++opt.luns_per_interface.back();
    }
    for (auto& l : rec.luns) {
        opt.expect_readonly.push_back(l.readonly);
        std::uint64_t size = 0;
        if (!l.file.empty()) {
            std::error_code ec;
            if (std::filesystem::is_regular_file(l.file, ec)) size = std::filesystem::file_size(l.file, ec);
            else if (std::filesystem::is_block_file(l.file, ec)) size = backing::block_device_size(l.file).value_or(0);
        }
        opt.expect_sizes.push_back(size);
    }
    return m;
}

}  // namespace

core::Result<core::CheckOutcome> check_usb(const core::StateDir* sd, const json* rec, const std::string& what, const core::CheckRequest& req)
{
    CheckOptions opt;
    opt.bench = req.bench_bytes > 0;
    if (req.bench_bytes) opt.bench_bytes = req.bench_bytes;
    opt.write = req.write;
    DeviceMatch m;
    std::optional<GadgetRecord> typed;
    if (rec) {
        DEVEMU_TRY(t, gadget_record(*rec));
        typed = std::move(t);
        DEVEMU_TRY(mm, expectations(*typed, what, opt));
        m = mm;
    } else {
        auto vp = parse_vid_pid(what);
        if (!vp) return core::fail(core::Errc::invalid_input, "'" + what + "' is neither a unit nor VID:PID", what, "devemu ls; or e.g. devemu check 1d6b:0104");
        m = *vp;
    }
    auto r = check_device(m, opt);
    if (typed && typed->host.contains("sysfs")) {
        // The checker detached usb-storage; it is back now, but the disks take a moment (and may get new names).
        GadgetRecord& updated = *typed;
        bool all = false;
        for (int i = 0; i < 200 && !(all = refresh_disks(updated, Roots{})); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!all) spdlog::warn("{}: not every LUN has a disk again after the check (see dmesg)", what);
        if (sd)   // under the lock now: `check` itself runs without it, as long as it takes
            if (auto locked = core::StateDir::open(sd->root()); locked)
                if (auto s = locked->save(what, updated); !s) spdlog::warn("{}", s.error().message());
    }
    if (!r) return std::unexpected(r.error());
    core::CheckOutcome out{r->to_json(), {}, r->ok() ? 0 : 1};
    out.lines.push_back(fmt::format("{}: {} device {} on bus {} device {}", what, r->kind, r->device.value("vid_pid", ""), r->device.value("bus", 0),
                                    r->device.value("device", 0)));
    for (auto& i : r->items)
        out.lines.push_back(fmt::format("[{}] {}{}{}", i.result == "pass" ? " ok " : i.result == "fail" ? "FAIL" : "info", i.lun.empty() ? "" : "LUN " + i.lun + ": ",
                                        i.name, i.detail.empty() ? "" : " — " + i.detail));
    return out;
}

namespace {

// `devemu fault GADGET …`: a disconnect/connect on the UDC (either engine), and for devemu's own function, USB
// faults and block faults through its server's control socket.
core::Result<json> fault_gadget(const json& j, const std::string& backstore, const json& req)
{
    DEVEMU_TRY(rec, gadget_record(j));
    const std::string op = req.value("op", ""), f = req.value("fault", "");
    if (op == "path" || op == "alua")
        return core::fail(core::Errc::invalid_input, "a gadget has no paths or ALUA groups", rec.name, "devemu fault NAME usb disconnect|connect");
    if (op == "usb" && (f == "disconnect" || f == "connect")) {
        // Unplug and plug back: the gadget leaves its UDC and binds again (dummy_hcd's soft_connect does not come
        // back: the host reads no descriptor after a reconnect, error -71, on Debian's 6.1).
        const auto attr = Roots{}.gadget / rec.name / "UDC";
        if (f == "disconnect") DEVEMU_CHECK(unbind_udc(attr));
        else if (core::trim(core::read_attr(attr).value_or("")) != rec.udc) DEVEMU_CHECK(core::write_attr(attr, rec.udc));
        return json{{"usb", {{"state", f == "connect" ? "connected (the host enumerates it again)" : "disconnected"}}}};
    }
    if (rec.servers.empty())
        return core::fail(core::Errc::invalid_input, "the kernel's f_mass_storage has no fault hooks", rec.name,
                          "USB and block faults need devemu's own function: engine = \"user\" (or a user backstore) on the mass_storage function");
    json out = json::object();
    for (auto it = rec.servers.begin(); it != rec.servers.end(); ++it) {
        json r = req;
        if (!backstore.empty()) r["backstore"] = backstore;
        DEVEMU_TRY(answer, core::request_line(it.value().value("control", ""), r.dump(), std::chrono::seconds(5), "is its server running? devemu ls"));
        auto a = json::parse(answer, nullptr, false);
        if (!a.is_object() || !a.value("ok", false)) {
            const auto e = a.is_object() ? a.value("error", json::object()) : json::object();
            return core::fail(core::Errc::invalid_input, e.value("what", answer), e.value("where", rec.name), e.value("fix", ""));
        }
        if (a.contains("usb")) out["usb"] = a["usb"];
        const json faults = a.value("faults", json::object());   // named: items() of a temporary dangles
        for (auto fi = faults.begin(); fi != faults.end(); ++fi) out[fi.key()] = fi.value();
    }
    return out;
}

}  // namespace

void register_gadget_kind()
{
    register_undo_ops();
    backing::register_undo_ops();
    core::UnitKind k;
    k.name = "gadget";
    k.up = up_gadgets;
    k.up_order = 1;   // after targets: a gadget may export what a target's profile made
    k.down = [](const core::StateDir& sd, const std::string& unit, const json& top) -> core::Status {
        DEVEMU_CHECK(down(sd, unit));
        ceph::stop_local_cluster_if_ours(sd, top.value("ceph_local_started", false), unit);   // only if no other unit uses it
        return {};
    };
    k.health = [](const json& rec) {
        auto r = gadget_record(rec);
        if (!r) return core::Health{"unreadable", {r.error().message()}};
        core::Health h;
        h.detail = health(*r, Roots{});
        if (!h.detail.empty()) h.status = "drift";
        return h;
    };
    k.describe = describe_gadget;
    k.fault = fault_gadget;
    k.check = [](const core::StateDir& sd, const std::string& unit, const json& rec, const core::CheckRequest& req) { return check_usb(&sd, &rec, unit, req); };
    core::register_kind(std::move(k));
}

}  // namespace devemu::usb
