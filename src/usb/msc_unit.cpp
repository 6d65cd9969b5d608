#include "usb/msc_unit.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <thread>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/progress.hpp"
#include "fault/fault.hpp"
#include "usb/ffs.hpp"
#include "usb/msc_serve.hpp"

namespace devemu::usb {

namespace fs = std::filesystem;
using core::Errc;
using nlohmann::json;

std::string msc_instance(const profile::Gadget& g, const profile::Function& f) { return g.name + "-" + f.name; }

namespace {

MscConfig config_for(const profile::Profile& p, const profile::Function& f, const json& backstores, const std::string& mount, const fs::path& stats,
                     const fs::path& control)
{
    MscConfig c;
    c.control = control.string();
    c.mount = mount;
    c.stall = f.stall;
    c.stats = stats.string();
    c.faults_state = fs::path(stats).replace_extension(".faults").string();
    for (auto& l : f.luns) {
        const auto* b = p.backstore(l.backstore);
        MscLun m;
        m.name = b->name;
        m.backing = backstores[b->name].value("path", "");
        m.size = backstores[b->name].value("size", std::uint64_t{0});
        m.block_size = b->block_size;
        m.readonly = l.readonly || b->readonly;
        m.removable = l.removable;
        m.nofua = l.nofua;
        m.serial = b->wwn.empty() ? b->name : b->wwn;
        m.inquiry = l.inquiry_string;
        for (auto& spec : b->faults) m.faults.push_back(fault::to_json(spec));
        c.luns.push_back(m);
    }
    return c;
}

}  // namespace

core::Result<json> start_msc_servers(core::Transaction& tx, const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd,
                                     const json& backstores, const json& had, std::chrono::seconds timeout)
{
    json out = json::object();
    for (auto& f : g.functions) {
        if (f.type != profile::FunctionType::mass_storage || !f.user_engine) continue;
        const auto dir = sd.unit_dir(g.name);
        const auto mount = dir / ("ffs-" + f.name);
        if (had.contains(f.name)) {   // running from a previous up: kept (a changed LUN needs down and up)
            const auto& h = had[f.name];
            if (core::process_start_time(h.value("supervisor", std::int64_t{0})) == h.value("start", std::uint64_t{0}) && ffs_ready(mount)) {
                out[f.name] = h;
                continue;
            }
        }
        DEVEMU_CHECK(core::make_dirs(dir, 0700));
        DEVEMU_CHECK(mount_ffs(tx, msc_instance(g, f), mount));
        const auto stats = dir / ("usb-" + f.name + ".json"), config = dir / ("usb-" + f.name + ".conf"), log = dir / ("usb-" + f.name + ".log"),
                   control = dir / ("usb-" + f.name + ".ctl");
        std::error_code ec;
        fs::remove(stats, ec);
        fs::remove(fs::path(stats).replace_extension(".faults"), ec);   // a new server starts from the profile's faults
        DEVEMU_CHECK(core::write_file_atomic(config, json(config_for(p, f, backstores, mount.string(), stats, control)).dump(2) + "\n", 0600));
        // Journaled by its configuration's path (on its command line) before it runs: down stops it after the unbind
        // and before FunctionFS is unmounted.
        DEVEMU_CHECK(tx.record({core::UndoOp::kill, "usb-serve", config.string(), 0, 0}));
        DEVEMU_TRY(child, core::Child::spawn({core::self_exe().string(), "usb-serve", "--config", config.string()}, core::SpawnOptions::daemon(log)));
        const pid_t pid = child.pid();
        const auto start = core::process_start_time(pid);
        const auto t0 = std::chrono::steady_clock::now();
        while (!ffs_ready(mount) || !fs::exists(stats, ec)) {
            if (auto st = child.try_wait())
                return core::fail(Errc::kernel, fmt::format("devemu's mass-storage server for '{}' exited ({}) before serving", f.name, *st),
                                  log.string(), "read that log");
            if (std::chrono::steady_clock::now() - t0 > timeout)
                return core::fail(Errc::timeout, fmt::format("devemu's mass-storage server for '{}' did not start in {} s", f.name, timeout.count()),
                                  log.string(), "read that log");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        child.detach();
        out[f.name] = {{"supervisor", pid}, {"start", start}, {"stats", stats.string()}, {"log", log.string()}, {"config", config.string()},
                       {"mount", mount.string()}, {"control", control.string()}};
    }
    return out;
}

json msc_server_status(const json& servers)
{
    json out = json::object();
    for (auto& [fn, h] : servers.items()) {
        json s = json::parse(core::read_file(h.value("stats", "")).value_or("{}"), nullptr, false);
        if (!s.is_object()) s = json::object();
        auto sup = json::parse(core::read_file(fs::path(h.value("stats", "")).replace_extension(".supervisor")).value_or("{}"), nullptr, false);
        s["supervisor"] = h.value("supervisor", std::int64_t{0});
        s["restarts"] = sup.is_object() ? sup.value("restarts", 0) : 0;
        s["running"] = core::process_start_time(h.value("supervisor", std::int64_t{0})) == h.value("start", std::uint64_t{0});
        out[fn] = s;
    }
    return out;
}

}  // namespace devemu::usb
