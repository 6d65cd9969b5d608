// The "target" unit kind: a LIO target with its backstores (and TCMU handlers), as lio::up made it.
#include "lio/kind.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "backing/backing.hpp"
#include "ceph/prepare.hpp"
#include "ceph/rbd_up.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/parallel.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/unix_socket.hpp"
#include "lio/access.hpp"
#include "lio/check.hpp"
#include "lio/failover.hpp"
#include "lio/initiator.hpp"
#include "lio/mpath.hpp"
#include "lio/paths.hpp"
#include "lio/record.hpp"
#include "lio/unit.hpp"
#include "profile/profile.hpp"

namespace devemu::lio {

using nlohmann::json;

namespace {

// ALUA: the access-state attribute of each target port group the record made ({group, backstore} -> attribute,
// and the state the profile asked for).
struct AluaAttr {
    std::string group, backstore;
    fs::path attr;
    std::string asked;
};
std::vector<AluaAttr> alua_attrs(const TargetRecord& r, const Roots& roots)
{
    std::vector<AluaAttr> out;
    for (auto& n : r.nodes) {
        if (n.kind != core::NodeKind::attr || !n.path.ends_with("/alua_access_state")) continue;
        const fs::path p(n.path);   // core/HBA/BACKSTORE/alua/GROUP/alua_access_state
        out.push_back({p.parent_path().filename().string(), p.parent_path().parent_path().parent_path().filename().string(),
                       roots.target / n.path, n.value});
    }
    return out;
}

std::string alua_name(const std::string& number)
{
    for (auto st : {profile::AluaState::active_optimized, profile::AluaState::active_non_optimized, profile::AluaState::standby,
                    profile::AluaState::unavailable, profile::AluaState::transitioning})
        if (std::to_string(static_cast<int>(st)) == core::trim(number)) return profile::to_string(st);
    return "state " + std::string(core::trim(number));
}

}

core::Health target_health(const json& rec, const Roots& roots)
{
    auto r = target_record(rec);
    if (!r) return {"unreadable", {r.error().message()}};
    core::Health h;
    // A group's state that `devemu fault … alua` changed is said as such, not as drift of an attribute.
    const auto alua = alua_attrs(*r, roots);
    for (auto& line : core::verify(r->nodes, roots.target))
        if (std::none_of(alua.begin(), alua.end(), [&](const AluaAttr& a) { return line.starts_with(a.attr.string() + ":"); })) h.detail.push_back(line);
    for (auto& n : r->nodes)   // a LUN's port reads back as "TG Port Alias: GROUP\nTG Port Group ID: …"
        if (n.path.ends_with("/alua_tg_pt_gp"))
            if (auto now = core::read_attr(roots.target / n.path); now && now->find("TG Port Alias: " + n.value + "\n") == std::string::npos)
                h.detail.push_back(fmt::format("{}: the LUN's port is not in ALUA group {} (the kernel has: {})", n.path, n.value,
                                               core::trim(now->substr(0, now->find('\n')))));
    for (auto& a : alua)
        if (auto now = core::read_attr(a.attr); now && core::trim(*now) != a.asked)
            h.detail.push_back(fmt::format("ALUA group {} is {} (devemu fault {} alua {} {})", a.group, alua_name(*now), r->name, a.group, alua_name(a.asked)));
    for (auto& [bs, handler] : r->handlers)
        if (core::process_start_time(handler.supervisor) != handler.start)
            h.detail.push_back("the TCMU handler of backstore " + bs + " is not running (devemu up again restarts it)");
    for (auto k : paths_down(*r, roots))
        h.detail.push_back(path_count(*r) == 1 ? "its path is down (devemu fault " + r->name + " path up)"
                                                : fmt::format("its path {} is down (devemu fault {} path {} up)", k, r->name, k));
    const json maps = r->info.contains("multipath") ? r->info["multipath"].value("maps", json::object()) : json::object();
    for (auto it = maps.begin(); it != maps.end(); ++it) {
        const std::string alias = it.value().value("alias", "");
        auto p = mpath::paths_of(alias);
        if (!p) h.detail.push_back("multipath map " + alias + " is gone (devemu up again)");
        else
            for (auto& st : *p)
                if (!st.active) h.detail.push_back(fmt::format("multipath map {}: path {} is failed", alias, st.device));
    }
    if (!h.detail.empty()) h.status = "drift";
    return h;
}

// dm-multipath over the paths: each LUN's map, and each path's state as the kernel has it now.
std::vector<std::string> multipath_lines(const json& info)
{
    std::vector<std::string> out;
    const json maps = info.contains("multipath") ? info["multipath"].value("maps", json::object()) : json::object();
    for (auto it = maps.begin(); it != maps.end(); ++it) {
        std::string states;
        if (auto p = mpath::paths_of(it.value().value("alias", "")))
            for (auto& st : *p) states += fmt::format("{}{} {}", states.empty() ? "" : ", ", st.device, st.active ? "active" : "failed");
        else if (it.value().contains("paths")) {   // the map is in another kernel (an `up --vm` guest's): as `up` read it back
            for (auto& st : it.value()["paths"])
                states += fmt::format("{}{} {}", states.empty() ? "" : ", ", fs::path(st.value("device", "?")).filename().string(), st.value("state", "?"));
            states += " at up";
        } else states = "no map";
        out.push_back(fmt::format("multipath  LUN {}: {} ({})", it.key(), it.value().value("device", ""), states));
    }
    return out;
}

std::vector<std::string> target_lines(const json& rec, const json& info)
{
    std::vector<std::string> out;
    out.push_back(fmt::format("target {}: {}{}", rec.value("name", "?"), rec.value("state", "?"),
                              rec.contains("changes") ? " (" + core::changes_in_words(rec["changes"].get<int>()) + ")" : ""));
    if (info.value("fabric", "") == "iscsi") {
        out.push_back("  portal     " + info.value("portal", ""));
        out.push_back("  iqn        " + info.value("wwn", ""));
        if (info.contains("initiator")) out.push_back("  initiator  " + info["initiator"].get<std::string>() + " (the ACL expects this IQN)");
        for (auto& u : info["urls"]) out.push_back("  url        " + u.get<std::string>());
        if (info.contains("chap_secret")) out.push_back("  chap       " + info["chap_secret"].get<std::string>());
        else if (!info.value("acls", json::array()).empty() && info["acls"][0].contains("chap_user"))
            out.push_back("  chap       secret hidden: devemu ls --secrets");
        for (auto& l : info["iscsiadm"]) out.push_back("  iscsiadm   " + l.get<std::string>());
        const json paths = info.value("paths", json::array());   // named: see below
        for (std::size_t k = 1; k < paths.size(); ++k) {
            const json urls = paths[k].value("urls", json::array());
            out.push_back(fmt::format("  path {}     portal {} (tpgt {}){}", k + 1, paths[k].value("portal", "?"), paths[k].value("tpgt", 0),
                                      urls.empty() ? "" : "  " + urls[0].get<std::string>()));
        }
        if (info.contains("multipath") && info["multipath"].contains("sessions"))
            out.push_back(fmt::format("  sessions   open-iscsi on {} portals (iface {}), {} timeouts", info["multipath"]["sessions"].size(),
                                      info["multipath"]["sessions"][0].value("iface", "?"), info["multipath"].value("timeouts", "?")));
    } else {
        out.push_back(fmt::format("  wwn        {} (nexus {})", info.value("wwn", ""), info.value("initiator_wwn", "")));
        const json devices = info.contains("devices") ? info["devices"] : json::object();   // named: items() of a temporary dangles
        for (auto it = devices.begin(); it != devices.end(); ++it)
            out.push_back("  LUN " + it.key() + "      " + (it.value().is_string() ? it.value().get<std::string>() : "(no disk yet)"));
        const json paths = info.value("paths", json::array());
        for (std::size_t k = 1; k < paths.size(); ++k) {
            std::string disks;
            const json devs = paths[k].value("devices", json::object());   // named, as above
            for (auto it = devs.begin(); it != devs.end(); ++it) disks += fmt::format(" LUN {} {}", it.key(), it.value().is_string() ? it.value().get<std::string>() : "(no disk yet)");
            out.push_back(fmt::format("  path {}     {} (nexus {}):{}", k + 1, paths[k].value("wwn", ""), paths[k].value("initiator_wwn", ""), disks));
        }
    }
    for (auto& l : multipath_lines(info)) out.push_back("  " + l);
    return out;
}

namespace {

UpOptions options_of(const core::UpRequest& req)
{
    UpOptions opt;
    opt.force = req.force;
    opt.insecure = req.insecure;
    opt.in_vm = req.in_vm;
    opt.advertise = req.advertise;
    opt.address_wait = req.address_wait;
    return opt;
}

core::Result<std::vector<core::UnitOutcome>> plan_targets(const profile::Profile& p, const core::StateDir& sd, const UpOptions& opt)
{
    std::vector<core::UnitOutcome> out;
    for (auto& t : p.targets) {
        DEVEMU_TRY(pl, plan(p, t, sd, opt));
        core::UnitOutcome o{t.name};
        for (auto& s : pl.steps) o.steps.push_back(core::describe(s));
        out.push_back(std::move(o));
    }
    return out;
}

core::Result<std::vector<core::UnitOutcome>> up_targets(const profile::Profile& p, const core::StateDir& sd, const core::UpRequest& req)
{
    if (p.targets.empty()) return std::vector<core::UnitOutcome>{};
    auto opt = options_of(req);
    if (!req.apply) return plan_targets(p, sd, opt);
    DEVEMU_CHECK(prepare_kernel(p, opt));
    std::vector<std::string> names;
    for (auto& t : p.targets) names.push_back(t.name);
    auto rbd = ceph::prepare_units_rbd(p, names, sd, ceph::RbdUp{req.force, req.in_vm, req.ceph_local});
    opt.rbd = rbd.clients;
    // Targets are independent units: brought up side by side, reported in profile order.
    std::vector<core::Result<json>> recs(p.targets.size(), std::unexpected(core::Error{}));
    core::parallel_for(p.targets.size(), 16, [&](std::size_t i) {
        recs[i] = rbd.err[i] ? std::unexpected(*rbd.err[i]) : up(p, p.targets[i], sd, opt);
    });
    std::vector<core::UnitOutcome> out;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        auto& rec = recs[i];
        if (const auto local = ceph::finish_unit_rbd(rbd, i, rec.has_value()); local.uses) {
            // The first target that came up owns a cluster this `up` started: its `down` stops it.
            auto r = target_record(*rec);
            if (r) {
                r->uses_ceph_local = true;
                r->ceph_local_started = local.owns;
                *rec = *r;
            }
            auto s = r ? sd.save(p.targets[i].name, *rec) : core::Status(std::unexpected(r.error()));
            if (!s) rec = std::unexpected(s.error());
        }
        out.push_back({p.targets[i].name, std::move(rec)});
    }
    ceph::finish_units_rbd(rbd, sd);   // a cluster no target took over (every one that would have failed) is stopped
    return out;
}

core::Described describe_target(const json& rec, core::DescribeFor what, bool secrets)
{
    core::Described d;
    const auto info = access_info(rec, "", secrets);
    if (what == core::DescribeFor::up) {
        d.json = {{"unit", rec.value("name", "")}, {"changes", rec.value("changes", 0)}, {"access", info}};
        d.lines = target_lines(rec, info);
        return d;
    }
    if (rec.contains("info")) d.json["access"] = info;
    const auto r = target_record(rec);
    if (secrets && r) {
        const json& chap = r->chap;
        for (auto it = chap.begin(); it != chap.end(); ++it) {
            if (it.value().contains("secret")) d.json["secrets"]["chap:" + it.key()] = it.value()["secret"];
            if (it.value().contains("mutual_secret")) d.json["secrets"]["mutual:" + it.key()] = it.value()["mutual_secret"];
        }
    }
    // TCMU handlers: what the handler itself last wrote (pid, commands in flight, counts) and its restarts.
    for (const auto& [bs, handler] : r ? r->handlers : std::map<std::string, HandlerRecord>{}) {
        json h = {{"supervisor", handler.supervisor}};
        if (!handler.log.empty()) h["log"] = handler.log;   // its stdout/stderr
        if (auto st = json::parse(core::read_file(handler.stats).value_or("{}"), nullptr, false); st.is_object()) h.update(st);
        auto sup = json::parse(core::read_file(std::filesystem::path(handler.stats).replace_extension(".supervisor")).value_or("{}"), nullptr, false);
        if (sup.is_object()) h["restarts"] = sup.value("restarts", 0);
        d.json["handlers"][bs] = h;
        std::string faults;
        for (auto& f : h.value("faults", json::array()))
            faults += fmt::format("{}{} ({} events)", faults.empty() ? ", faults: " : ", ", f.value("id", "?"), f.value("events", 0));
        if (h.value("dropped_writes", 0) > 0) faults += fmt::format(", {} writes dropped", h.value("dropped_writes", 0));
        if (h.value("aborted", 0) > 0) faults += fmt::format(", {} commands aborted by the initiator", h.value("aborted", 0));
        d.lines.push_back(fmt::format("handler {}: pid {}, {} in flight (max {}), {} commands, {} restarts{}{}", bs, h.value("pid", 0),
                                      h.value("in_flight", 0), h.value("max_in_flight", 0), h.value("commands", 0), h.value("restarts", 0), faults,
                                      what == core::DescribeFor::ls_verbose && h.contains("log") ? ", log " + h["log"].get<std::string>() : ""));
    }
    if (r) for (auto& l : multipath_lines(r->info)) d.lines.push_back(l);
    // ALUA target port groups, as the kernel has them now.
    for (auto& a : r ? alua_attrs(*r, Roots{}) : std::vector<AluaAttr>{}) {
        const std::string now = alua_name(core::read_attr(a.attr).value_or("?"));
        d.json["alua"][a.group] = {{"backstore", a.backstore}, {"state", now}};
        d.lines.push_back(fmt::format("ALUA group {} ({}): {}", a.group, a.backstore, now));
    }
    return d;
}

core::Result<core::CheckOutcome> check_target(const json& rec, const core::CheckRequest& req)
{
    std::vector<std::pair<std::string, std::vector<CheckResult>>> runs;   // per unit
    const std::string name = rec.value("name", "");
    auto access = access_info(rec, "", true);
    if (access.value("fabric", "") == "iscsi") {
        runs.push_back({name, check_iscsi({access["urls"][0], access.value("initiator", std::string(kCheckInitiator)), req.scratch})});
    } else {
        const json devices = access.contains("devices") ? access["devices"] : json::object();
        for (auto it = devices.begin(); it != devices.end(); ++it)
            runs.push_back({name + " LUN " + it.key(), check_block(it.value().get<std::string>(), req.scratch)});
    }
    return render_checks(runs);
}

core::Result<json> set_alua(const TargetRecord& r, const std::string& backstore, const json& request, const Roots& roots)
{
    const std::string group = request.value("group", ""), state = request.value("state", "");
    auto st = profile::alua_state(state);
    if (!st) return core::fail(core::Errc::invalid_input, "unknown ALUA state \"" + state + "\"", state,
                               "use active/optimized, active/non-optimized, standby, unavailable or transitioning");
    std::vector<AluaAttr> hits;
    for (auto& a : alua_attrs(r, roots))
        if (a.group == group && (backstore.empty() || a.backstore == backstore)) hits.push_back(a);
    if (hits.empty()) {
        std::string have;
        for (auto& a : alua_attrs(r, roots)) have += (have.empty() ? "" : ", ") + a.group;
        return core::fail(core::Errc::invalid_input, "target " + r.name + " has no ALUA group " + group, group,
                          have.empty() ? "give a kernel backstore [[backstore.alua]] groups in the profile" : "its groups: " + have);
    }
    if (hits.size() > 1) return core::fail(core::Errc::invalid_input, "ALUA group " + group + " is on several backstores", group, "name one: devemu fault " + r.name + ":BACKSTORE alua …");
    const auto want = std::to_string(static_cast<int>(*st));
    DEVEMU_CHECK(core::write_attr(hits[0].attr, want));
    auto now = core::read_attr(hits[0].attr);
    if (!now || core::trim(*now) != want)
        return core::fail(core::Errc::check_failed, "the group did not change: the kernel has '" + std::string(core::trim(now.value_or("?"))) + "'",
                          hits[0].attr.string(), "see dmesg");
    return json{{"alua", {{"group", group}, {"backstore", hits[0].backstore}, {"state", profile::to_string(*st)}}}};
}

// `devemu fault`: a path change on the target's transport, or the request to each user backstore's handler (or the
// one named), through its control socket.
core::Result<json> fault_target(const json& rec, const std::string& backstore, const json& request)
{
    DEVEMU_TRY(r, target_record(rec));
    if (request.value("op", "") == "path")
        return set_path(r, request.value("path", std::size_t{0}), request.value("state", "") == "down", Roots{});
    if (request.value("op", "") == "alua") return set_alua(r, backstore, request, Roots{});
    json out = json::object();
    for (auto& [bs, handler] : r.handlers) {
        if (!backstore.empty() && bs != backstore) continue;
        if (handler.control.empty())
            return core::fail(core::Errc::invalid_input, "backstore " + bs + "'s handler was started by a devemu without faults", r.name,
                              "devemu down " + r.name + " and up again");
        DEVEMU_TRY(answer, core::request_line(handler.control, request.dump(), std::chrono::seconds(5),
                                              "is its handler running? devemu ls " + r.name));
        auto a = json::parse(answer, nullptr, false);
        if (!a.is_object()) return core::fail(core::Errc::io, "an unreadable answer from the handler", handler.control, "");
        if (!a.value("ok", false)) {
            const json e = a.value("error", json::object());
            return core::fail(core::Errc::invalid_input, e.value("what", "refused"), e.value("where", handler.control), e.value("fix", ""));
        }
        out[bs] = a["faults"];
    }
    // Kernel backstores: their faults are the dm devices the profile built; `ls` shows them, a change is refused.
    for (auto& [bs, info] : r.backstores.items()) {
        if ((!backstore.empty() && bs != backstore) || !info.contains("dm_faults") || out.contains(bs)) continue;
        if (request.value("op", "") != "ls")
            return core::fail(core::Errc::invalid_input, "backstore " + bs + " is a kernel backstore: its faults are dm devices its profile built",
                              r.name, "change its [[backstore.fault]] tables, devemu down " + r.name + " and up again; or use a `user` backstore for faults at run time");
        out[bs] = info["dm_faults"];
    }
    if (out.empty())
        return core::fail(core::Errc::invalid_input,
                          backstore.empty() ? "target " + r.name + " has no backstore with a fault chain"
                                            : "target " + r.name + " has no user backstore " + backstore,
                          r.name, "faults go on a `user` backstore (type = \"user\"): its data path is devemu's");
    return out;
}

}  // namespace

void register_target_kind()
{
    backing::register_undo_ops();
    mpath::register_undo_ops();
    initiator::register_undo_ops();
    core::UnitKind k;
    k.name = "target";
    k.up = up_targets;
    k.up_order = 0;
    k.down = [](const core::StateDir& sd, const std::string& unit, const json& top) -> core::Status {
        DEVEMU_CHECK(down(sd, unit));
        // A target whose `up` started the local Ceph cluster stops it, unless another unit uses it. (An unreadable
        // record has already been refused by load_scalars; a journal-only unit started nothing that lasts.)
        const auto r = target_record(top);
        ceph::stop_local_cluster_if_ours(sd, r && r->ceph_local_started, unit);
        return {};
    };
    k.health = [](const json& rec) { return target_health(rec, Roots{}); };
    k.describe = describe_target;
    k.fault = fault_target;
    k.failover = [](const json& rec, const json& options) -> core::Result<core::Described> {
        DEVEMU_TRY(r, target_record(rec));
        DEVEMU_TRY(o, FailoverOptions::from_json(options));
        o.scratch = options.value("scratch", std::string("/tmp/devemu-failover"));
        o.progress = [](const std::string& line) { core::progress(line); };
        DEVEMU_TRY(rep, run_failover(r, o));
        core::progress_clear();
        core::Described d;
        d.json = rep.result_json();
        d.lines = rep.lines();
        return d;
    };
    k.check = [](const core::StateDir&, const std::string&, const json& rec, const core::CheckRequest& req) { return check_target(rec, req); };
    core::register_kind(std::move(k));
}

}  // namespace devemu::lio
