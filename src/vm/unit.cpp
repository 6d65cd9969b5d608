// The "vm" unit kind's ops other than `up`: down, health, describe, check, and running commands in its guest.
#include "vm/unit.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "ceph/rbd_up.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "core/progress.hpp"
#include "core/unix_socket.hpp"
#include "lio/access.hpp"
#include "lio/check.hpp"
#include "vm/exec_frames.hpp"
#include "vm/host_disks.hpp"
#include "vm/runner.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;
using nlohmann::json;

core::Status stop_vm_unit(const core::StateDir& sd, const std::string& name, const VmRecord& rec, bool clean)
{
    const bool alive = rec.pid > 0 && core::process_start_time(rec.pid) == rec.start_time;
    if (alive && clean) {
        // Clean first: the guest removes its targets (its own journal) and powers off; then the journal's kill.
        auto r = control(rec.ctl, "down\n", "DEVEMU-DOWN", std::chrono::seconds(60), static_cast<pid_t>(rec.pid));
        if (!r) spdlog::warn("{}: clean shutdown failed ({}); stopping qemu", name, r.error().message());
        for (int i = 0; i < 100 && core::process_start_time(rec.pid) == rec.start_time; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    DEVEMU_CHECK(core::replay_journal(sd.journal(name)));
    std::error_code ec;
    if (!rec.run_dir.empty()) fs::remove_all(rec.run_dir, ec);
    DEVEMU_CHECK(sd.forget(name));
    ceph::stop_local_cluster_if_ours(sd, rec.ceph_local_started, name);
    return {};
}

std::vector<std::string> guest_devemu(const std::vector<std::string>& args, const std::string& devemu)
{
    std::vector<std::string> argv = {devemu.empty() ? core::self_exe().string() : devemu, "--state-dir", "/run/devemu"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

namespace {

// The old way, for a VM started before the exec ports: one command at a time on the control tty, its output read
// from the VM's stdout/stderr logs.
core::Result<Ran> exec_on_control_tty(const VmRecord& rec, const std::string& joined)
{
    const auto pid = static_cast<pid_t>(rec.pid);
    const fs::path dir = rec.run_dir;
    auto size_of = [](const fs::path& p) { std::error_code ec; auto n = fs::file_size(p, ec); return ec ? std::uintmax_t{0} : n; };
    const auto out0 = size_of(dir / "stdout.log"), err0 = size_of(dir / "stderr.log");
    DEVEMU_TRY(ran, control(rec.ctl, "exec " + joined + "\n", "DEVEMU-RAN", std::chrono::seconds(900), pid));
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

// A free exec port of the VM (its lock held by the returned fd while the command runs), waiting while all are busy.
core::Result<std::pair<core::UniqueFd, int>> take_exec_port(const VmRecord& rec, std::chrono::seconds timeout)
{
    const fs::path dir = rec.run_dir;
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        for (int k = 0; k < kExecPorts; ++k) {
            core::UniqueFd lock(::open((dir / fmt::format("exec{}.lock", k)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
            if (!lock) return core::fail_errno("cannot open", (dir / fmt::format("exec{}.lock", k)).string());
            if (::flock(lock.get(), LOCK_EX | LOCK_NB) == 0) {
                core::progress_clear();
                return std::pair{std::move(lock), k};
            }
        }
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count();
        if (secs >= timeout.count())
            return core::fail(core::Errc::timeout, fmt::format("all {} exec channels of the VM stayed busy for {} s", kExecPorts, timeout.count()), rec.name,
                              "see what runs there: devemu vm exec " + rec.name + " -- ps");
        if (secs >= 2) core::progress(fmt::format("{} commands already run in the VM of {}; waiting for one to end… {}s", kExecPorts, rec.name, secs));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

}  // namespace

core::Result<Ran> vm_exec(const VmRecord& rec, const std::vector<std::string>& args, const core::OutputSink& sink, std::chrono::seconds timeout,
                          int stdin_fd)
{
    const auto pid = static_cast<pid_t>(rec.pid);
    if (pid <= 0 || core::process_start_time(pid) != rec.start_time)
        return core::fail(core::Errc::missing, "the VM of this unit is not running", rec.name, "devemu down " + rec.name + " and up again");
    std::string joined;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].find_first_of("\n\x1f") != std::string::npos)
            return core::fail(core::Errc::invalid_input, "an argument holds a newline", args[i], "");
        joined += (i ? "\x1f" : "") + args[i];
    }
    const fs::path dir = rec.run_dir;
    std::error_code ec;
    if (!fs::exists(dir / "exec0.sock", ec)) {
        if (stdin_fd >= 0) spdlog::warn("{}: this VM was started by an older devemu: the command gets no stdin", rec.name);
        DEVEMU_TRY(old, exec_on_control_tty(rec, joined));
        if (sink) sink(false, old.out), sink(true, old.err), old.out.clear(), old.err.clear();
        return old;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    DEVEMU_TRY(taken, take_exec_port(rec, timeout));
    const fs::path sock = dir / fmt::format("exec{}.sock", taken.second);
    DEVEMU_TRY(conn, core::connect_unix(sock, "is the VM still running? see devemu ls"));
    const std::string id = fmt::format("{}.{}", ::getpid(), taken.second);
    const std::string req = (stdin_fd >= 0 ? "execi " : "exec ") + id + " " + joined + "\n";
    for (std::size_t off = 0; off < req.size();) {
        const ssize_t w = ::write(conn.get(), req.data() + off, req.size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return core::fail_errno("cannot write to", sock.string());
        off += static_cast<std::size_t>(w);
    }
    // Until this command's "ID x STATUS"; its output to the sink, or collected.
    Ran out;
    const core::OutputSink collect = [&](bool to_stderr, std::string_view d) { (to_stderr ? out.err : out.out).append(d); };
    ExecFrames frames(id);
    const auto start_wait = std::min(timeout, std::chrono::seconds(20));   // a port nobody serves never starts it
    const auto start_by = std::chrono::steady_clock::now() + start_wait;
    // stdin, once the command runs (the guest reads the request line alone): "i LEN\n" + bytes, "i 0\n" at its end.
    std::string to_send;
    bool stdin_open = stdin_fd >= 0;
    for (;;) {
        if (frames.status()) {
            out.rc = *frames.status();
            return out;
        }
        if (!to_send.empty()) {
            const ssize_t w = ::send(conn.get(), to_send.data(), to_send.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) to_send.erase(0, static_cast<std::size_t>(w));
            else if (w < 0 && errno != EAGAIN && errno != EINTR) return core::fail_errno("cannot write to", sock.string());
        }
        if (!frames.started() && std::chrono::steady_clock::now() > start_by)
            return core::fail(core::Errc::timeout, fmt::format("exec channel {} of the VM did not start the command within {} s", taken.second, start_wait.count()), rec.name,
                              "see console.log in " + dir.string());
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0)
            return core::fail(core::Errc::timeout, fmt::format("the command in the VM did not end within {} s", timeout.count()), rec.name,
                              "it was stopped; see console.log in " + dir.string());
        // The channel (its output; room for stdin still to send) and stdin itself once the command runs.
        pollfd p[2] = {{conn.get(), static_cast<short>(POLLIN | (to_send.empty() ? 0 : POLLOUT)), 0},
                       {stdin_open && frames.started() && to_send.empty() ? stdin_fd : -1, POLLIN, 0}};
        const int r = ::poll(p, 2, static_cast<int>(std::min<long>(left, 1000)));
        if (r < 0 && errno != EINTR) return core::fail_errno("poll", sock.string());
        if (core::process_start_time(pid) != rec.start_time) return core::fail(core::Errc::kernel, "the VM stopped", rec.name, "see console.log in " + dir.string());
        if (r > 0 && p[1].fd >= 0 && p[1].revents) {   // stdin has data, its end, or is unreadable (that ends it too)
            char data[65536];
            const ssize_t n = ::read(stdin_fd, data, sizeof data);
            if (n > 0) to_send = fmt::format("i {}\n", n) + std::string(data, static_cast<std::size_t>(n));
            else if (n == 0 || errno != EINTR) to_send = "i 0\n", stdin_open = false;
        }
        if (r <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char chunk[65536];
        const ssize_t n = ::read(conn.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return core::fail(core::Errc::kernel, "the VM closed its exec channel", sock.string(), "see console.log beside it");
        DEVEMU_CHECK(frames.feed(std::string_view(chunk, static_cast<std::size_t>(n)), sink ? sink : collect));
    }
}

namespace {

// `devemu check` of an `up --vm` unit: its iSCSI targets from here through their forwards; its gadgets' host side
// is the VM's kernel, so the checker runs there, with the same options, and its output is relayed.
core::Result<core::CheckOutcome> check_vm(const VmRecord& rec, const core::CheckRequest& req)
{
    std::vector<std::pair<std::string, std::vector<lio::CheckResult>>> runs;
    core::CheckOutcome relayed{json(), {}, -1};   // no JSON of its own: the guest printed it
    std::vector<std::pair<std::string, json>> docs;   // --json: each guest check's answer
    for (auto& u : rec.units) {
        if (!req.held.empty() && u.unit != req.held) continue;
        if (u.kind == "gadget" || u.access.value("fabric", "") != "iscsi") {   // a gadget's host side, a loopback LUN: the VM's kernel
            std::vector<std::string> a = guest_devemu({"check", u.unit}, rec.devemu);
            a.insert(a.end(), req.flags.begin(), req.flags.end());
            DEVEMU_TRY(r, vm_exec(rec, a));
            auto doc = req.as_json ? json::parse(r.out, nullptr, false) : json();
            if (doc.is_object()) docs.push_back({u.unit, doc});
            else relayed.relay_out += r.out;
            relayed.relay_err += r.err;
            relayed.rc = std::max(relayed.rc, r.rc);
            continue;
        }
        runs.push_back({u.unit, lio::check_iscsi({lio::with_portal(u.access["urls"][0], u.portal),
                                                  u.access.value("initiator", std::string(lio::kCheckInitiator)), req.scratch})});
    }
    if (runs.empty() && docs.size() == 1) relayed.json = docs[0].second;   // one unit's check: its answer as it is
    if (runs.empty() && docs.size() <= 1 && relayed.rc >= 0) return relayed;
    auto out = lio::render_checks(runs);
    for (auto& [unit, doc] : docs) {   // one JSON document for several: the targets' units, then each gadget's answer
        if (doc.contains("units") && doc["units"].is_array())
            for (auto& one : doc["units"]) out.json["units"].push_back(one);
        else out.json["units"].push_back({{"unit", unit}, {"gadget", doc}});
        out.json["ok"] = out.json["ok"].get<bool>() && doc.value("ok", false);
    }
    out.relay_out = relayed.relay_out;
    out.relay_err = relayed.relay_err;
    out.rc = std::max(out.rc, relayed.rc);
    return out;
}

// `devemu down HELD` of one unit in a VM: the guest's devemu removes it; a medium `gadget insert` plugged in for it
// is unplugged; the VM and its other units stay (`up --vm` of the profile again brings it back).
core::Status down_guest_unit(const core::StateDir& sd, const std::string& unit, const std::string& held)
{
    DEVEMU_TRY(rec, load_vm_record(sd, unit));
    DEVEMU_TRY(r, vm_exec(rec, guest_devemu({"down", held}, rec.devemu)));
    if (r.rc != 0) return core::fail(core::Errc::kernel, "down in the VM failed (exit " + std::to_string(r.rc) + "): " + core::last_line(r.err), held, "");
    for (auto& [key, serial] : rec.inserted)
        if (key.starts_with(held + "/")) DEVEMU_CHECK(media_changed(sd, unit, key, ""));
    DEVEMU_TRY(after, load_vm_record(sd, unit));   // media_changed saved what it changed
    std::erase_if(after.units, [&](const GuestUnit& u) { return u.unit == held; });
    return sd.save(unit, after);
}

core::Described describe_vm(const json& j, core::DescribeFor what, bool secrets)
{
    core::Described d;
    auto rec = vm_record(j);
    if (!rec) return d;
    // The forwards of the targets up in it (one taken down alone keeps its port for the next `up --vm`, unshown).
    d.json["forwards"] = json::object();
    d.json["pid"] = rec->pid;
    std::string line;
    for (auto& [key, port] : rec->forwards) {
        const auto target = key.substr(0, key.find('/'));
        if (std::none_of(rec->units.begin(), rec->units.end(), [&](const GuestUnit& u) { return u.unit == target; })) continue;
        d.json["forwards"][key] = port;
        line += fmt::format("{}{}@127.0.0.1:{}", line.empty() ? "" : "  ", key, port);
    }
    if (!line.empty()) d.lines.push_back(line);
    if (!rec->host_disks.empty()) {
        d.json["host_disks"] = rec->host_disks;
        for (auto& [b, path] : rec->host_disks) d.lines.push_back(fmt::format("data: {} on the host's {}", b, path));
    }
    for (auto& [serial, path] : rec->media) {   // the ones `gadget insert` plugged in (the rest are backstores')
        if (std::any_of(rec->host_disks.begin(), rec->host_disks.end(), [&](const auto& b) { return b.second == path; })) continue;
        d.json["media"][serial] = path;
        d.lines.push_back(fmt::format("data: the host's {} plugged in ({})", path, serial));
    }
    if (what != core::DescribeFor::up && core::process_start_time(rec->pid) == rec->start_time) {
        // `ls`: the guest's own view of its units (their health against the guest's configfs, a server's counters).
        auto r = vm_exec(*rec, guest_devemu({"ls", "--json"}, rec->devemu), {}, std::chrono::seconds(10));
        const json answer = r && r->rc == 0 ? json::parse(r->out, nullptr, false) : json();
        const bool answered = answer.is_array();
        const json units = answered ? answer : json::array();
        if (answered) d.json["guest"] = units;
        else {
            const std::string why = !r ? r.error().message() : r->rc != 0 ? fmt::format("its devemu ls exited {}: {}", r->rc, core::last_line(r->err)) : "unreadable answer";
            d.json["health"] = {{"status", "unknown"}, {"detail", "cannot ask the VM: " + why}};
        }
        json detail = json::array();
        std::string worst = "healthy";
        for (auto& u : units) {
            if (!u.is_object()) continue;
            const std::string name = u.value("name", "?"), status = u.contains("health") ? u["health"].value("status", "?") : "?";
            d.lines.push_back(fmt::format("in the VM: {} {} {}", name, u.value("kind", "?"), status));
            if (status == "healthy") continue;
            worst = status;
            const json det = u.contains("health") ? u["health"].value("detail", json()) : json();
            if (det.is_string()) detail.push_back("in the VM, " + name + ": " + det.get<std::string>());
            for (auto& l : det.is_array() ? det : json::array()) detail.push_back("in the VM, " + name + ": " + l.get<std::string>());
        }
        for (auto& u : rec->units)   // what `up` made and the guest no longer lists
            if (answered && std::none_of(units.begin(), units.end(), [&](const json& g) { return g.value("name", "") == u.unit; }))
                worst = "drift", detail.push_back("in the VM, " + u.unit + ": gone (devemu down " + rec->name + ", then up again)");
        if (worst != "healthy") d.json["health"] = {{"status", worst}, {"detail", detail}};
    }
    if (secrets)   // the guest's units' CHAP secrets, kept in this 0600 record
        for (auto& u : rec->units)
            if (u.access.contains("chap_secret") && u.access.contains("initiator"))
                d.json["secrets"]["chap:" + u.access["initiator"].get<std::string>()] = u.access["chap_secret"];
    return d;
}

}  // namespace

void register_vm_kind()
{
    core::UnitKind k;
    k.name = "vm";
    k.down = [](const core::StateDir& sd, const std::string& unit, const json& top) -> core::Status {
        DEVEMU_TRY(rec, vm_record(top));
        return stop_vm_unit(sd, unit, rec);
    };
    k.health = [](const json& j) {
        auto rec = vm_record(j);
        if (!rec) return core::Health{"unreadable", {rec.error().message()}};
        core::Health h;
        if (core::process_start_time(rec->pid) != rec->start_time) h = {"dead", {"qemu is gone; run devemu down " + rec->name}};
        return h;
    };
    k.describe = describe_vm;
    k.relay = [](const json& j, std::vector<std::string> argv, const core::OutputSink& sink, int stdin_fd) -> core::Result<core::Relayed> {
        DEVEMU_TRY(rec, vm_record(j));
        if (!argv.empty() && argv[0] == "devemu") argv = guest_devemu({argv.begin() + 1, argv.end()}, rec.devemu);
        DEVEMU_TRY(r, vm_exec(rec, argv, sink, std::chrono::seconds(900), stdin_fd));
        return core::Relayed{r.rc, r.out, r.err};
    };
    k.check = [](const core::StateDir&, const std::string&, const json& j, const core::CheckRequest& req) -> core::Result<core::CheckOutcome> {
        DEVEMU_TRY(rec, vm_record(j));
        return check_vm(rec, req);
    };
    k.holds = [](const json& j, const std::string& name) {
        auto rec = vm_record(j);
        return rec && std::any_of(rec->units.begin(), rec->units.end(), [&](const GuestUnit& u) { return u.unit == name; });
    };
    k.down_held = down_guest_unit;
    core::register_kind(std::move(k));
}

}  // namespace devemu::vm
