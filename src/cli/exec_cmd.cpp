// up --exec: start the app, wait for it or a signal, tear down.
#include "cli/exec.hpp"


#include <spdlog/spdlog.h>

#include <iostream>

#include "core/journal.hpp"
#include "core/statedir.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"

using nlohmann::json;

namespace devemu::cli {

namespace {

// The --exec command, in a process group of its own so that `down` (journaled as kill_group) and a signal to
// `up --exec` stop everything it started: a shell's children, a pipeline. In the VM it outlives this devemu (the
// VM's end, or `down`, ends it); on a host it dies with us.
core::Result<core::Child> spawn_app(const ExecRun& run, std::vector<std::string> env)
{
    core::SpawnOptions so;
    so.extra_env = std::move(env);
    so.die_with_parent = !run.in_vm;
    so.new_session = run.in_vm;
    so.own_group = true;
    return core::Child::spawn({"/bin/sh", "-c", run.exec}, so);
}

core::UndoRecord app_undo(const core::Child& app)
{
    return {core::UndoOp::kill_group, "app", "", app.pid(), core::process_start_time(app.pid())};
}

}  // namespace

std::function<core::Status(core::Transaction&, const std::string&, const std::vector<std::string>&)> start_on_ffs(ExecRun& run)
{
    return [&run](core::Transaction& tx, const std::string& unit, const std::vector<std::string>& mounts) -> core::Status {
        if (run.exec.empty() || run.app.running()) return {};
        DEVEMU_TRY(child, spawn_app(run, {"DEVEMU_UNIT=" + unit, "DEVEMU_FFS=" + core::join(mounts, ":")}));
        DEVEMU_CHECK(tx.record(app_undo(child)));
        spdlog::info("started the app (pid {}): {}", child.pid(), run.exec);
        run.app = std::move(child);   // in the VM, run_exec detaches it once everything is up
        return {};
    };
}

int run_exec(Context& ctx, ExecRun& run, const std::vector<std::string>& units, const json& out)
{
    if (!run.app.running()) {   // not started by a FunctionFS wait: start it now
        std::vector<std::string> disks;
        for (auto& u : out)
            for (auto& l : u.value("luns", json::array()))
                if (l.contains("disk")) disks.push_back(l["disk"]);
        auto child = spawn_app(run, {"DEVEMU_UNITS=" + core::join(units, " "), "DEVEMU_DISKS=" + core::join(disks, " ")});
        if (!child) return report(child.error());
        run.app = std::move(*child);
        // Journaled in every unit it was started for, so that `down` of any of them stops it first. (No lock: the
        // caller holds it in the VM, and released it on a host so that the app may call devemu.)
        auto sd = core::StateDir::open(ctx.state_dir, false);
        if (!sd) return report(sd.error());
        for (auto& u : units) {
            core::Transaction tx(sd->journal(u));
            if (auto s = tx.record(app_undo(run.app)); !s) return report(s.error());
            tx.commit();
        }
    }
    if (run.in_vm) {   // in the VM the command outlives this devemu
        run.app.detach();
        return 0;
    }
    std::cout << std::flush;
    const int app_rc = core::wait_or_stop_on_signal(run.app);
    spdlog::info("the app exited ({}); tearing down {}", app_rc, core::join(units, " "));
    std::vector<std::string> args(units.begin(), units.end());
    int rc = cmd_down(ctx, args);
    return rc != 0 ? rc : app_rc;
}

}  // namespace devemu::cli
