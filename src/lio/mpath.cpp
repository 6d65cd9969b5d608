#include "lio/mpath.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "backing/dm.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::lio::mpath {

using core::Errc;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path conf_dir = "/etc/multipath/conf.d";
const char* const udevd = "/lib/systemd/systemd-udevd";
// A daemon devemu started is marked, so that every unit using it shares it: each journals the stop, and the stop
// happens only when no unit's map is left (the last `down`), whichever unit started it.
const fs::path multipathd_mark = "/run/devemu-multipathd.started";
const fs::path udevd_mark = "/run/devemu-udevd.started";

core::Result<core::RunResult> tool(const std::vector<std::string>& argv, std::chrono::seconds timeout = std::chrono::seconds(30))
{
    // udevadm and systemd-udevd do nothing in a chroot (devemu's VM runs the host's root as one) unless told to.
    ::setenv("SYSTEMD_IGNORE_CHROOT", "1", 0);
    return core::run(argv, timeout);
}

bool multipathd_running()
{
    // "pid 123 idle" (or running, configure, …); a daemon that is not there: an error and no pid
    auto r = tool({"multipathd", "show", "daemon"}, std::chrono::seconds(5));
    return r && r->exit_code == 0 && r->out.starts_with("pid ");
}

bool udevd_running()
{
    if (!fs::exists("/run/udev/control")) return false;
    auto r = tool({"udevadm", "control", "--ping", "-t", "2"}, std::chrono::seconds(5));
    return r && r->exit_code == 0;
}

template <class F>
bool wait_for(F ok, std::chrono::milliseconds limit)
{
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!ok()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

// multipath's WWID of a SCSI disk: "3" and the NAA the kernel read from VPD page 0x83 (as udev's ID_SERIAL has it).
core::Result<std::string> wwid_of(const std::string& dev)
{
    const auto attr = fs::path("/sys/block") / fs::path(dev).filename() / "device/wwid";
    auto w = core::read_attr(attr);
    if (!w || !core::trim(*w).starts_with("naa."))
        return core::fail(Errc::kernel, "the disk has no NAA identifier (VPD page 0x83)", attr.string(),
                          "a LIO backstore needs a unit serial; devemu sets one: down and up again");
    return "3" + std::string(core::trim(*w).substr(4));
}

std::string alias_of(const Want& w, std::uint32_t lun) { return fmt::format("devemu-{}-{}", w.unit, lun); }

std::string device_name(const std::string& majmin)
{
    std::error_code ec;
    auto target = fs::read_symlink(fs::path("/sys/dev/block") / majmin, ec);
    return ec ? majmin : target.filename().string();
}

}  // namespace

std::string conf_text(const Want& w, const std::vector<std::string>& wwids)
{
    std::string out = fmt::format("# Written by devemu for unit {}; `devemu down {}` removes it.\n", w.unit, w.unit);
    if (w.polling_interval)   // a defaults setting: the profile asked for it (it applies to the whole multipathd)
        out += fmt::format("defaults {{\n    polling_interval {}\n}}\n", w.polling_interval);
    if (w.qemu)   // two virtio-scsi paths to one file: no ALUA, both used (I/O is in flight on the path that is cut)
        out += "devices {\n"
               "    device {\n"
               "        vendor \"QEMU\"\n"
               "        product \"QEMU HARDDISK\"\n"
               "        path_checker directio\n"
               "        detect_checker no\n"
               "        path_grouping_policy multibus\n"
               "        prio const\n"
               "        failback immediate\n";
    else
        out += "devices {\n"
               "    device {\n"
               "        vendor \"LIO-ORG\"\n"
               "        product \".*\"\n"
               "        # LIO answers TEST UNIT READY with GOOD on a dead path (multipath-tools#54): read instead\n"
               "        path_checker directio\n"
               "        # else multipath picks tur for any ALUA device (\"storage device autodetected\")\n"
               "        detect_checker no\n"
               "        hardware_handler \"1 alua\"\n"
               "        prio alua\n"
               "        path_grouping_policy group_by_prio\n"
               "        failback immediate\n";
    if (w.fast_io_fail)   // multipathd writes it to an iSCSI session's recovery_tmo: how long a dead session holds I/O
        out += fmt::format("        fast_io_fail_tmo {}\n", w.fast_io_fail);
    out += "    }\n"
           "}\n"
           "multipaths {\n";
    for (std::size_t i = 0; i < w.luns.size() && i < wwids.size(); ++i)
        out += fmt::format("    multipath {{\n        wwid {}\n        alias {}\n        no_path_retry {}\n    }}\n", wwids[i], alias_of(w, w.luns[i].id),
                           w.no_path_retry);
    out += "}\n";
    return out;
}

core::Result<std::vector<PathState>> paths_of(const std::string& alias)
{
    auto r = core::run({"dmsetup", "status", alias}, std::chrono::seconds(10));
    if (!r || r->exit_code != 0) return core::fail(Errc::missing, "no multipath map", alias, "devemu up again");
    auto out = parse_status(r->out);
    if (!out) return core::fail(Errc::kernel, "not a multipath map: " + r->out, alias, "");
    for (auto& p : *out) p.device = device_name(p.device);
    return *out;
}

std::optional<std::vector<PathState>> parse_status(const std::string& status)
{
    // 0 LEN multipath <#features> <f...> <#hw> <h...> <#pgs> <next pg> {<A|E|D> <#ps args> <a...> <#paths> <#sel args> {<dev> <A|F> <fails> <args...>}}
    auto tok = core::split(std::string(core::trim(status)), ' ');
    std::vector<PathState> out;
    auto num = [&](std::size_t i) -> std::size_t { return i < tok.size() ? std::strtoul(tok[i].c_str(), nullptr, 10) : 0; };
    std::size_t i = 3;
    if (tok.size() < 4 || tok[2] != "multipath") return std::nullopt;
    i += 1 + num(i);                   // features
    i += 1 + num(i);                   // hardware handler
    const std::size_t groups = num(i);
    i += 2;                            // #groups, next group
    for (std::size_t g = 0; g < groups && i < tok.size(); ++g) {
        i += 1;                        // state
        i += 1 + num(i);               // the selector's group status
        const std::size_t paths = num(i), args = num(i + 1);
        i += 2;
        for (std::size_t p = 0; p < paths && i + 1 < tok.size(); ++p) {
            out.push_back({tok[i], tok[i + 1] == "A"});
            i += 3 + args;
        }
    }
    return out;
}

core::Result<json> up(const Want& w, core::Transaction& tx)
{
    DEVEMU_CHECK(core::ensure_modules({{"dm_mod", "", true}, {"dm_multipath", "", true}, {"scsi_dh_alua", "", true}}));
    for (const char* t : {"multipath", "multipathd", "dmsetup"})
        if (core::which(t).empty())
            return core::fail(Errc::missing, std::string(t) + " is not installed", w.unit, "apt-get install multipath-tools");
    json out = {{"started", {{"multipathd", false}, {"udevd", false}}}, {"maps", json::object()}};
    // udev names the paths (ID_SERIAL) for multipath; a VM has no udevd until we start one.
    if (udevd_running() && fs::exists(udevd_mark)) DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("udevd_stop", udevd)));   // devemu's: shared
    if (!udevd_running()) {
        if (::access(udevd, X_OK) != 0) return core::fail(Errc::missing, "udev is not running and systemd-udevd is not installed", udevd, "apt-get install udev");
        DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("udevd_stop", udevd)));
        DEVEMU_CHECK(core::write_file_atomic(udevd_mark, "", 0644));
        DEVEMU_TRY(r, tool({udevd, "--daemon"}));
        // (under TCG, with the host's root over 9p, loading its rules takes seconds)
        if (r.exit_code != 0 || !wait_for(udevd_running, std::chrono::seconds(30)))
            return core::fail(Errc::kernel, fmt::format("systemd-udevd did not answer within 30 s (exit {}): {}", r.exit_code, core::trim(r.err)), udevd, "");
        out["started"]["udevd"] = true;
        DEVEMU_CHECK(tool({"udevadm", "trigger", "--action=add", "--subsystem-match=block"}));
    }
    DEVEMU_CHECK(tool({"udevadm", "settle", "-t", "20"}));
    // Every path of a LUN must be the same disk.
    std::vector<std::string> wwids;
    for (auto& l : w.luns) {
        std::string first;
        for (auto& d : l.devices) {
            DEVEMU_TRY(id, wwid_of(d));
            if (first.empty()) first = id;
            else if (id != first)
                return core::fail(Errc::kernel, fmt::format("LUN {}'s paths are different disks ({} and {})", l.id, first, id), d, "see dmesg");
        }
        wwids.push_back(first);
    }
    const auto conf = conf_dir / ("devemu-" + w.unit + ".conf");
    if (!fs::exists(conf_dir)) DEVEMU_CHECK(core::make_dirs(conf_dir, 0755));
    if (!fs::exists(conf)) DEVEMU_CHECK(tx.record({core::UndoOp::unlink, conf.string()}));
    DEVEMU_CHECK(core::write_file_atomic(conf, conf_text(w, wwids), 0644));
    out["conf"] = conf.string();
    if (!multipathd_running()) {
        DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("multipathd_stop", "multipathd")));
        DEVEMU_CHECK(core::write_file_atomic(multipathd_mark, "", 0644));
        DEVEMU_TRY(r, tool({"multipathd"}));   // it daemonizes: a session of its own, none of our descriptors
        if (r.exit_code != 0 || !wait_for(multipathd_running, std::chrono::seconds(30)))
            return core::fail(Errc::kernel, "multipathd did not start: " + std::string(core::trim(r.err + r.out)), "multipathd", "");
        out["started"]["multipathd"] = true;
    } else {
        if (fs::exists(multipathd_mark)) DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("multipathd_stop", "multipathd")));   // devemu's: shared
        DEVEMU_CHECK(tool({"multipathd", "reconfigure"}));
    }
    for (std::size_t i = 0; i < w.luns.size(); ++i) {
        const auto alias = alias_of(w, w.luns[i].id);
        if (!backing::find_dm(alias)) {
            DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("mpath_forget", "multipath", wwids[i])));
            DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("mpath_flush", "multipath", alias)));
            DEVEMU_CHECK(tool({"multipath", "-a", wwids[i]}));
            DEVEMU_CHECK(tool({"multipath", wwids[i]}));
        }
        // Read back: the map exists, and every path is in it and active.
        const std::size_t want = w.luns[i].devices.size();
        std::vector<PathState> paths;
        wait_for([&] {
            auto p = paths_of(alias);
            if (p) paths = *p;
            return p && paths.size() == want && std::all_of(paths.begin(), paths.end(), [](const PathState& s) { return s.active; });
        }, std::chrono::seconds(15));
        auto dev = backing::find_dm(alias);
        if (!dev) return core::fail(Errc::kernel, "multipath made no map " + alias, wwids[i], "see multipath -v3 " + wwids[i]);
        std::size_t active = 0;
        for (auto& p : paths) active += p.active;
        if (paths.size() != want || active != want)
            return core::fail(Errc::check_failed, fmt::format("map {} has {} of {} paths active", alias, active, want), alias, "see multipath -ll and dmesg");
        json jp = json::array();
        for (auto& p : paths) jp.push_back({{"device", "/dev/" + p.device}, {"state", p.active ? "active" : "failed"}});
        out["maps"][std::to_string(w.luns[i].id)] = {{"alias", alias}, {"wwid", wwids[i]}, {"device", "/dev/mapper/" + alias}, {"dm", dev->node}, {"paths", jp},
                                                     {"path_devices", w.luns[i].devices}};   // path K's disk, in path order
    }
    return out;
}

void register_undo_ops()
{
    core::register_undo("mpath_flush", [](const core::UndoRecord& r) -> core::Status {
        if (!backing::find_dm(r.value)) return {};
        // Queued I/O would hold the map forever: fail it first, then remove the map (a reader may hold it briefly).
        (void)tool({"dmsetup", "message", r.value, "0", "fail_if_no_path"});
        for (int i = 0; i < 50; ++i) {
            auto f = tool({"multipath", "-f", r.value});
            if (!backing::find_dm(r.value)) return {};
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return core::fail(Errc::busy, "the multipath map is in use", r.value, "close what holds /dev/mapper/" + r.value + ", then devemu down again");
    });
    core::register_undo("mpath_forget", [](const core::UndoRecord& r) -> core::Status {
        (void)tool({"multipath", "-w", r.value});   // not in the wwids file: nothing to forget
        return {};
    });
    core::register_undo("multipathd_stop", [](const core::UndoRecord&) -> core::Status {
        std::error_code ec;
        if (!multipathd_running()) return fs::remove(multipathd_mark, ec), core::Status{};
        // another unit's map is still there (this unit's were flushed before): it keeps the daemon
        if (auto maps = core::run({"dmsetup", "ls", "--target", "multipath"}, std::chrono::seconds(10));
            maps && maps->exit_code == 0 && maps->out.find("No devices found") == std::string::npos && !core::trim(maps->out).empty())
            return {};
        fs::remove(multipathd_mark, ec);
        (void)tool({"multipathd", "shutdown"});
        if (!wait_for([] { return !multipathd_running(); }, std::chrono::seconds(10)))
            return core::fail(Errc::timeout, "multipathd did not stop in 10 s", "multipathd", "multipathd shutdown");
        return {};
    });
    core::register_undo("udevd_stop", [](const core::UndoRecord&) -> core::Status {
        std::error_code ec;
        if (multipathd_running()) return {};   // a multipathd another unit keeps needs udev's names
        fs::remove(udevd_mark, ec);
        if (!udevd_running()) return {};
        (void)tool({"udevadm", "control", "--exit"});
        wait_for([] { return !udevd_running(); }, std::chrono::seconds(5));
        return {};
    });
}

}  // namespace devemu::lio::mpath
