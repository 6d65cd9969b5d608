// The "vm" unit kind's ops other than `up`: down, health, describe, check, and running commands in its guest.
#include "vm/unit.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "ceph/rbd_up.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "lio/access.hpp"
#include "lio/check.hpp"
#include "vm/runner.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;
using nlohmann::json;

core::Status stop_vm_unit(const core::StateDir& sd, const std::string& name, const json& rec)
{
    const pid_t pid = rec.value("pid", 0);
    const std::uint64_t start = rec.value("start_time", std::uint64_t{0});
    const bool alive = pid > 0 && core::process_start_time(pid) == start;
    if (alive) {
        // Clean first: the guest removes its targets (its own journal) and powers off; then the journal's kill.
        auto r = control(rec.value("ctl", ""), "down\n", "DEVEMU-DOWN", std::chrono::seconds(60), pid);
        if (!r) spdlog::warn("{}: clean shutdown failed ({}); stopping qemu", name, r.error().message());
        for (int i = 0; i < 100 && core::process_start_time(pid) == start; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    DEVEMU_CHECK(core::replay_journal(sd.journal(name)));
    std::error_code ec;
    if (rec.contains("run_dir")) fs::remove_all(rec["run_dir"].get<std::string>(), ec);
    DEVEMU_CHECK(sd.forget(name));
    ceph::stop_local_cluster_if_ours(sd, rec.value("ceph_local_started", false), name);
    return {};
}

std::vector<std::string> guest_devemu(const std::vector<std::string>& args)
{
    std::vector<std::string> argv = {core::self_exe().string(), "--state-dir", "/run/devemu"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

core::Result<Ran> vm_exec(const json& rec, const std::vector<std::string>& args)
{
    const pid_t pid = rec.value("pid", 0);
    if (pid <= 0 || core::process_start_time(pid) != rec.value("start_time", std::uint64_t{0}))
        return core::fail(core::Errc::missing, "the VM of this unit is not running", rec.value("name", ""), "devemu down " + rec.value("name", "") + " and up again");
    const fs::path dir = rec.value("run_dir", "");
    auto size_of = [](const fs::path& p) { std::error_code ec; auto n = fs::file_size(p, ec); return ec ? std::uintmax_t{0} : n; };
    const auto out0 = size_of(dir / "stdout.log"), err0 = size_of(dir / "stderr.log");
    std::string line = "exec ";
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].find_first_of("\n\x1f") != std::string::npos)
            return core::fail(core::Errc::invalid_input, "an argument holds a newline", args[i], "");
        line += (i ? "\x1f" : "") + args[i];
    }
    DEVEMU_TRY(ran, control(rec.value("ctl", ""), line + "\n", "DEVEMU-RAN", std::chrono::seconds(900), pid));
    // The guest drained its serial lines before answering; let qemu's file writes land.
    for (int i = 0, stable = 0; i < 40 && stable < 3; ++i) {
        auto a = size_of(dir / "stdout.log") + size_of(dir / "stderr.log");
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        stable = a == size_of(dir / "stdout.log") + size_of(dir / "stderr.log") ? stable + 1 : 0;
    }
    auto tail_from = [](const fs::path& p, std::uintmax_t off) {
        auto all = core::read_file(p).value_or("");
        auto s = off < all.size() ? all.substr(off) : std::string();
        std::erase(s, '\r');
        return s;
    };
    return Ran{static_cast<int>(core::parse_number(ran.substr(std::min<std::size_t>(ran.size(), 11))).value_or(1)), tail_from(dir / "stdout.log", out0),
               tail_from(dir / "stderr.log", err0)};
}

namespace {

// `devemu check` of an `up --vm` unit: its iSCSI targets from here through their forwards; its gadgets' host side
// is the VM's kernel, so the checker runs there, with the same options, and its output is relayed.
core::Result<core::CheckOutcome> check_vm(const json& rec, const core::CheckRequest& req)
{
    std::vector<std::pair<std::string, std::vector<lio::CheckResult>>> runs;
    core::CheckOutcome relayed{json(), {}, -1};   // no JSON of its own: the guest printed it
    for (auto& u : rec.value("units", json::array())) {
        const std::string unit = u["unit"];
        if (u.value("kind", "") == "gadget") {
            std::vector<std::string> a = guest_devemu({"check", unit});
            a.insert(a.end(), req.flags.begin(), req.flags.end());
            DEVEMU_TRY(r, vm_exec(rec, a));
            relayed.relay_out += r.out;
            relayed.relay_err += r.err;
            relayed.rc = std::max(relayed.rc, r.rc);
            continue;
        }
        if (u["access"].value("fabric", "") != "iscsi") {
            runs.push_back({unit, {{"reach", false, "a loopback LUN lives in the VM's kernel; check it there: devemu vm run"}}});
            continue;
        }
        const auto& access = u["access"];
        runs.push_back({unit, lio::check_iscsi({lio::with_portal(access["urls"][0], u.value("portal", "")),
                                                access.value("initiator", std::string(lio::kCheckInitiator)), req.scratch})});
    }
    if (runs.empty() && relayed.rc >= 0) return relayed;
    auto out = lio::render_checks(runs);
    out.relay_out = relayed.relay_out;
    out.relay_err = relayed.relay_err;
    out.rc = std::max(out.rc, relayed.rc);
    return out;
}

core::Described describe_vm(const json& rec, core::DescribeFor, bool secrets)
{
    core::Described d;
    if (rec.contains("forwards")) d.json["forwards"] = rec["forwards"];
    if (rec.contains("pid")) d.json["pid"] = rec["pid"];
    std::string line;
    const json forwards = rec.value("forwards", json::object());   // named: items() of a temporary dangles
    for (auto it = forwards.begin(); it != forwards.end(); ++it) line += fmt::format("{}{}@127.0.0.1:{}", line.empty() ? "" : "  ", it.key(), it.value().get<int>());
    if (!line.empty()) d.lines.push_back(line);
    if (secrets)   // the guest's units' CHAP secrets, kept in this 0600 record
        for (auto& u : rec.value("units", json::array()))
            if (u.contains("access") && u["access"].contains("chap_secret") && u["access"].contains("initiator"))
                d.json["secrets"]["chap:" + u["access"]["initiator"].get<std::string>()] = u["access"]["chap_secret"];
    return d;
}

}  // namespace

void register_vm_kind()
{
    core::UnitKind k;
    k.name = "vm";
    k.down = [](const core::StateDir& sd, const std::string& unit, const json& rec) { return stop_vm_unit(sd, unit, rec); };
    k.health = [](const json& rec) {
        core::Health h;
        if (core::process_start_time(rec.value("pid", 0)) != rec.value("start_time", std::uint64_t{0}))
            h = {"dead", {"qemu is gone; run devemu down " + rec.value("name", "")}};
        return h;
    };
    k.describe = describe_vm;
    k.check = [](const core::StateDir&, const std::string&, const json& rec, const core::CheckRequest& req) { return check_vm(rec, req); };
    core::register_kind(std::move(k));
}

}  // namespace devemu::vm
