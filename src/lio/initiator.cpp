#include "lio/initiator.hpp"

#include <dirent.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::lio::initiator {

using core::Errc;
namespace fs = std::filesystem;

namespace {

constexpr int kSessionExists = 15;   // iscsiadm: ISCSI_ERR_SESS_EXISTS
constexpr int kNoObjects = 21;       // iscsiadm: ISCSI_ERR_NO_OBJS_FOUND
const fs::path kIfaces = "/etc/iscsi/ifaces";

core::Result<core::RunResult> iscsiadm(std::vector<std::string> args, std::chrono::seconds timeout = std::chrono::seconds(30))
{
    args.insert(args.begin(), "iscsiadm");
    return core::run(args, timeout);
}

core::Status checked(const std::vector<std::string>& args, const std::string& where, std::initializer_list<int> also_ok = {})
{
    DEVEMU_TRY(r, iscsiadm(args));
    if (r.exit_code == 0) return {};
    for (int c : also_ok)
        if (r.exit_code == c) return {};
    return core::fail(Errc::kernel, fmt::format("iscsiadm {} failed ({}): {}", args.empty() ? "" : args[0] + " " + (args.size() > 1 ? args[1] : ""),
                                                r.exit_code, core::last_line(r.err.empty() ? r.out : r.err)),
                      where, "see iscsiadm's message; the kernel log (dmesg) has the target's side");
}

// The iscsid devemu starts carries this pid file in its command line: every unit that finds it running shares it
// (journals its stop), and it stops with the last of them (no session left).
const std::string kMarker = "/run/devemu-iscsid.pid";

// 0: none; 1: one runs; 2: devemu's runs
int iscsid_state()
{
    std::error_code ec;
    int state = 0;
    for (auto& e : fs::directory_iterator("/proc", ec)) {
        const auto n = e.path().filename().string();
        if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
        if (auto comm = core::read_file(e.path() / "comm"); !comm || core::trim(*comm) != "iscsid") continue;
        state = std::max(state, core::read_file(e.path() / "cmdline").value_or("").find(kMarker) != std::string::npos ? 2 : 1);
    }
    return state;
}

bool any_session()
{
    std::error_code ec;
    return fs::exists("/sys/class/iscsi_session", ec) && !fs::is_empty("/sys/class/iscsi_session", ec);
}

std::string node_portal(const Portal& p)
{
    const std::string a = p.address == "0.0.0.0" ? "127.0.0.1" : p.address == "::" ? "::1" : p.address;
    return a.find(':') != std::string::npos ? fmt::format("[{}]:{}", a, p.port) : fmt::format("{}:{}", a, p.port);
}

// The disks of the session iface `iface` has with `iqn` on TPG `tpgt`: LUN -> /dev/sdX.
std::map<std::uint32_t, std::string> session_disks(const std::string& iqn, std::uint16_t tpgt, const std::string& iface)
{
    std::map<std::uint32_t, std::string> out;
    std::error_code ec;
    for (auto& s : fs::directory_iterator("/sys/class/iscsi_session", ec)) {
        auto name = core::read_attr(s.path() / "targetname");
        auto tp = core::read_attr(s.path() / "tpgt");
        auto ifn = core::read_attr(s.path() / "ifacename");
        if (!name || core::trim(*name) != iqn || !tp || core::trim(*tp) != std::to_string(tpgt) || !ifn || core::trim(*ifn) != iface) continue;
        const auto dev = fs::canonical(s.path() / "device", ec);
        if (ec) continue;
        for (auto& t : fs::directory_iterator(dev, ec)) {
            if (!t.path().filename().string().starts_with("target")) continue;
            for (auto& sd : fs::directory_iterator(t.path(), ec)) {
                const auto hctl = core::split(sd.path().filename().string(), ':');
                if (hctl.size() != 4) continue;
                for (auto& blk : fs::directory_iterator(sd.path() / "block", ec))
                    out[static_cast<std::uint32_t>(std::strtoul(hctl[3].c_str(), nullptr, 10))] = "/dev/" + blk.path().filename().string();
            }
        }
    }
    return out;
}

}  // namespace

std::string iface_of(const std::string& unit) { return "devemu-" + unit; }

std::string portal_arg(const Portal& p) { return fmt::format("{},{}", node_portal(p), p.tpgt); }

core::Result<Disks> up(const Want& w, core::Transaction& tx)
{
    for (const char* t : {"iscsiadm", "iscsid"})
        if (core::which(t).empty())
            return core::fail(Errc::missing, std::string(t) + " is not installed", w.unit, "apt-get install open-iscsi");
    if (!fs::exists("/etc/iscsi/initiatorname.iscsi"))
        return core::fail(Errc::missing, "open-iscsi has no initiator name", "/etc/iscsi/initiatorname.iscsi",
                          "dpkg-reconfigure open-iscsi (or write InitiatorName=iqn.… there)");
    DEVEMU_CHECK(core::ensure_modules({{"iscsi_tcp"}, {"sd_mod"}}));   // (a VM has no udev to load sd_mod for the new disks)
    // iscsiadm locks its records under /run/lock/iscsi and cannot make /run/lock (absent in a minimal VM)
    if (!fs::exists("/run/lock")) DEVEMU_CHECK(core::make_dirs("/run/lock", 0755));
    const int iscsid = iscsid_state();
    if (iscsid != 1) DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("iscsid_stop", kMarker)));   // ours (or to be): shared
    if (iscsid == 0) {
        // Named by the pid file in its command line, journaled before it starts.
        const auto log = fs::path("/run") / "devemu-iscsid.log";
        // (it daemonizes: its first process exits once the daemon runs, in a session of its own)
        DEVEMU_TRY(child, core::Child::spawn({"iscsid", "-p", kMarker}, core::SpawnOptions::daemon(log)));
        // Ready when it listens on the abstract socket iscsiadm talks to.
        bool ok = false;
        for (int i = 0; i < 300 && !ok; ++i) {
            if (auto st = child.try_wait(); st && *st != 0)
                return core::fail(Errc::kernel, fmt::format("iscsid exited ({}) at start: {}", *st, core::last_line(core::read_file(log).value_or(""))), log.string(),
                                  "read " + log.string());
            ok = core::read_file("/proc/net/unix").value_or("").find("@ISCSIADM_ABSTRACT_NAMESPACE") != std::string::npos;
            if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!ok) return core::fail(Errc::timeout, "iscsid did not answer within 15 s", log.string(), "read " + log.string());
        child.detach();
    }
    const std::string iface = iface_of(w.unit);
    DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("iscsi_iface", iface)));
    // (iscsiadm does not make its ifaces directory; the package does not ship it either)
    if (!fs::exists(kIfaces)) DEVEMU_CHECK(core::make_dirs(kIfaces, 0755));
    if (!fs::exists(kIfaces / iface)) DEVEMU_CHECK(checked({"-m", "iface", "-I", iface, "-o", "new"}, iface));
    if (!w.initiator_name.empty())
        DEVEMU_CHECK(checked({"-m", "iface", "-I", iface, "-o", "update", "-n", "iface.initiatorname", "-v", w.initiator_name}, iface));
    for (auto& p : w.portals) {
        const std::string portal = portal_arg(p), where = w.iqn + " " + portal;
        DEVEMU_CHECK(tx.record(core::UndoRecord::named_op("iscsi_logout", iface, w.iqn + '\x1f' + node_portal(p))));
        DEVEMU_CHECK(checked({"-m", "node", "-o", "new", "-T", w.iqn, "-p", portal, "-I", iface}, where));
        std::vector<std::pair<std::string, std::string>> set = {{"node.startup", "manual"}};
        if (w.timeouts.fast)   // else the node keeps what iscsid.conf gives every new record
            set.insert(set.end(), {{"node.session.timeo.replacement_timeout", std::to_string(w.timeouts.replacement())},
                                   {"node.conn[0].timeo.noop_out_interval", std::to_string(w.timeouts.noop_interval())},
                                   {"node.conn[0].timeo.noop_out_timeout", std::to_string(w.timeouts.noop_timeout())}});
        if (!w.chap_user.empty()) {
            set.insert(set.end(), {{"node.session.auth.authmethod", "CHAP"}, {"node.session.auth.username", w.chap_user}, {"node.session.auth.password", w.chap_secret}});
            if (!w.mutual_user.empty())
                set.insert(set.end(), {{"node.session.auth.username_in", w.mutual_user}, {"node.session.auth.password_in", w.mutual_secret}});
        }
        for (auto& [k, v] : set) DEVEMU_CHECK(checked({"-m", "node", "-T", w.iqn, "-p", node_portal(p), "-I", iface, "-o", "update", "-n", k, "-v", v}, where));
        DEVEMU_CHECK(checked({"-m", "node", "-T", w.iqn, "-p", node_portal(p), "-I", iface, "--login"}, where, {kSessionExists}));
    }
    // Read back: every session has a disk for every LUN (the kernel scans after login).
    Disks out(w.portals.size());
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (std::size_t k = 0; k < w.portals.size(); ++k) {
        for (;;) {
            out[k] = session_disks(w.iqn, w.portals[k].tpgt, iface);
            bool all = true;
            for (auto l : w.luns) all = all && out[k].contains(l) && fs::exists(out[k][l]);
            if (all) break;
            if (std::chrono::steady_clock::now() > end)
                return core::fail(Errc::timeout, fmt::format("the session on {} has {} of {} LUNs after 20 s", node_portal(w.portals[k]), out[k].size(), w.luns.size()),
                                  w.iqn, "see iscsiadm -m session -P 3 and dmesg");
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    return out;
}

void register_undo_ops()
{
    core::register_undo("iscsid_stop", [](const core::UndoRecord& r) -> core::Status {
        if (any_session()) return {};   // another unit's (this unit's logged out before): it keeps the daemon
        DEVEMU_CHECK(core::undo({core::UndoOp::kill, "iscsid", r.path, 0, 0}));
        std::error_code ec;
        fs::remove(r.path, ec);   // its pid file (iscsid leaves it on SIGTERM)
        return {};
    });
    core::register_undo("iscsi_logout", [](const core::UndoRecord& r) -> core::Status {
        const auto parts = core::split(r.value, '\x1f');
        if (parts.size() != 2) return core::fail(Errc::invalid_input, "bad iscsi_logout step", r.value, "");
        const std::vector<std::string> node = {"-m", "node", "-T", parts[0], "-p", parts[1], "-I", r.path};
        auto logout = node;
        logout.push_back("--logout");
        // A session whose target is already gone logs out at once; one in recovery, after its replacement_timeout.
        DEVEMU_CHECK(checked(logout, parts[0] + " " + parts[1], {kNoObjects}));
        auto del = node;
        del.insert(del.end(), {"-o", "delete"});
        return checked(del, parts[0] + " " + parts[1], {kNoObjects});
    });
    core::register_undo("iscsi_iface", [](const core::UndoRecord& r) -> core::Status {
        if (!fs::exists(kIfaces / r.path)) return {};
        return checked({"-m", "iface", "-I", r.path, "-o", "delete"}, r.path, {kNoObjects});
    });
}

}  // namespace devemu::lio::initiator
