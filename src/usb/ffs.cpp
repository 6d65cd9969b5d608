// FunctionFS instances of a gadget: mounted (journaled) where the profile says, then the wait until the user's app
// has written its descriptors; and who still holds a mount when the gadget goes.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <thread>

#include <spdlog/spdlog.h>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/probe.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "usb/ffs.hpp"

namespace devemu::usb {

using core::Errc;
using profile::FunctionType;

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

core::Status wait_for_apps(core::Transaction& tx, const profile::Gadget& g, const UpOptions& opt, nlohmann::json& mounts)
{
    std::vector<std::string> waiting;
    for (auto& f : g.functions) {
        if (f.type != FunctionType::ffs) continue;
        DEVEMU_CHECK(mount_ffs(tx, f.name, f.mount));
        mounts[f.name] = f.mount;
        if (!ffs_ready(f.mount)) waiting.push_back(f.mount);
    }
    if (waiting.empty()) return {};
    // Apps the profile names: started here, each in its own session (a service's FunctionFS app), journaled so that
    // `down` (and a rollback) stops its whole process group before FunctionFS is unmounted.
    for (auto& f : g.functions) {
        if (f.type != FunctionType::ffs || f.app.empty() || ffs_ready(f.mount)) continue;
        const auto dir = fs::path(tx.journal()).parent_path() / g.name;   // the unit's dir (StateDir::unit_dir): forgotten with it
        std::error_code ec;
        fs::create_directories(dir, ec);
        const auto log = dir / ("app-" + f.name + ".log");
        auto so = core::SpawnOptions::daemon(log);
        so.extra_env = {"DEVEMU_UNIT=" + g.name, "DEVEMU_FFS=" + f.mount};
        DEVEMU_TRY(child, core::Child::spawn({"/bin/sh", "-c", f.app}, so));
        DEVEMU_CHECK(tx.record({core::UndoOp::kill_group, "app", "", child.pid(), core::process_start_time(child.pid())}));
        spdlog::info("started the app of {} (pid {}, log {}): {}", f.mount, child.pid(), log.string(), f.app);
        child.detach();
    }
    for (auto& f : g.functions)
        if (f.type == FunctionType::ffs && f.app.empty() && !ffs_ready(f.mount)) core::note("start your app on " + f.mount);
    if (opt.on_ffs_mounted) DEVEMU_CHECK(opt.on_ffs_mounted(tx, waiting));
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        std::erase_if(waiting, [](const std::string& m) { return ffs_ready(m); });
        if (waiting.empty()) break;
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
        if (secs >= opt.timeout) {
            core::progress_clear();
            return core::fail(Errc::timeout, fmt::format("no FunctionFS app wrote its descriptors within {} s", opt.timeout.count()), waiting.front(),
                              "start the app on that path (it writes descriptors and strings to ep0), or raise --timeout");
        }
        if (secs.count() >= 2) core::progress(fmt::format("waiting for the app on {}… {}s", waiting.front(), secs.count()));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    core::progress_clear();
    return {};
}

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

}  // namespace devemu::usb
