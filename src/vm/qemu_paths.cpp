#include "vm/qemu_paths.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <map>
#include <thread>

#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/statedir.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "core/unix_socket.hpp"
#include "lio/failover.hpp"
#include "lio/mpath.hpp"

namespace devemu::vm {

using core::Errc;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// qemu's option syntax doubles a comma inside a value
std::string escaped(const std::string& s)
{
    std::string out;
    for (char c : s) out += c == ',' ? std::string(",,") : std::string(1, c);
    return out;
}

std::string drive_id(int k, int gen) { return gen == 0 ? fmt::format("mpd{}", k) : fmt::format("mpd{}_{}", k, gen); }
std::string device_id(int k, int gen) { return gen == 0 ? fmt::format("mpp{}", k) : fmt::format("mpp{}_{}", k, gen); }
std::string drive_opts(int k, int gen, const fs::path& file)
{
    // file.locking=off: two drives of one qemu open the same file (the guest's multipath keeps them coherent)
    return fmt::format("if=none,id={},file={},format=raw,file.locking=off", drive_id(k, gen), escaped(file.string()));
}
std::string device_opts(int k, int gen)
{
    return fmt::format("scsi-hd,bus=mps.0,channel=0,scsi-id={},lun=0,drive={},id={},serial={},wwn={},share-rw=on", k, drive_id(k, gen), device_id(k, gen),
                       kPathsSerial, kPathsWwn);
}

core::Status write_line(int fd, const std::string& l)
{
    const std::string s = l + "\n";
    std::size_t off = 0;
    while (off < s.size()) {
        const ssize_t w = ::write(fd, s.data() + off, s.size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return core::fail_errno("cannot write", "qemu paths");
        off += static_cast<std::size_t>(w);
    }
    return {};
}

// One line from fd into/out of `buf`; an error at EOF or the deadline.
core::Result<std::string> read_line(int fd, std::string& buf, std::chrono::milliseconds timeout)
{
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto nl = buf.find('\n'); nl != std::string::npos) {
            std::string l = buf.substr(0, nl);
            buf.erase(0, nl + 1);
            if (!l.empty() && l.back() == '\r') l.pop_back();
            return l;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
        if (left <= 0) return core::fail(Errc::timeout, "no answer in time", "qemu paths", "");
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 500)));
        if (r < 0 && errno != EINTR) return core::fail_errno("poll", "qemu paths");
        if (r <= 0) continue;
        char b[4096];
        const ssize_t n = ::read(fd, b, sizeof b);
        if (n <= 0) return core::fail(Errc::kernel, "the other side closed the channel", "qemu paths", "");
        buf.append(b, static_cast<std::size_t>(n));
    }
}

}  // namespace

std::vector<std::string> mpath_disk_args(const fs::path& file, const fs::path& run_dir)
{
    std::vector<std::string> a = {"-device", "virtio-scsi-pci,id=mps"};
    for (int k = 1; k <= 2; ++k) a.insert(a.end(), {"-drive", drive_opts(k, 0, file), "-device", device_opts(k, 0)});
    a.insert(a.end(), {"-device", "virtio-serial-pci,id=vser", "-chardev", fmt::format("socket,id=paths,path={}", escaped((run_dir / "paths.sock").string())),
                       "-device", fmt::format("virtserialport,bus=vser.0,chardev=paths,name={}", kPathsPort), "-chardev",
                       fmt::format("socket,id=qmp,path={}", escaped((run_dir / "qmp.sock").string())), "-mon", "chardev=qmp,mode=control"});
    return a;
}

core::Result<Qmp> Qmp::start(core::UniqueFd fd)
{
    Qmp q;
    q.fd_ = std::move(fd);
    DEVEMU_TRY(greeting, q.line(std::chrono::seconds(30)));
    if (greeting.find("\"QMP\"") == std::string::npos) return core::fail(Errc::kernel, "not a QMP greeting: " + greeting, "qemu", "");
    DEVEMU_CHECK(write_line(q.fd_.get(), R"({"execute":"qmp_capabilities"})"));
    for (;;) {
        DEVEMU_TRY(l, q.line(std::chrono::seconds(10)));
        if (l.find("\"return\"") != std::string::npos) return q;
        if (l.find("\"error\"") != std::string::npos) return core::fail(Errc::kernel, "QMP refused its capabilities: " + l, "qemu", "");
    }
}

core::Result<std::string> Qmp::line(std::chrono::milliseconds timeout) { return read_line(fd_.get(), buf_, timeout); }

core::Result<std::string> Qmp::hmp(const std::string& command)
{
    DEVEMU_CHECK(write_line(fd_.get(), json{{"execute", "human-monitor-command"}, {"arguments", {{"command-line", command}}}}.dump()));
    for (;;) {
        DEVEMU_TRY(l, line(std::chrono::seconds(30)));
        auto j = json::parse(l, nullptr, false);
        if (!j.is_object()) continue;
        if (j.contains("event")) {
            events_.push_back(l);
            continue;
        }
        if (j.contains("error")) return core::fail(Errc::kernel, j["error"].value("desc", l), command, "");
        if (j.contains("return")) return j["return"].is_string() ? j["return"].get<std::string>() : std::string();
    }
}

core::Status Qmp::wait_event(const std::string& name, const std::string& device, std::chrono::milliseconds timeout)
{
    auto match = [&](const std::string& l) {
        auto j = json::parse(l, nullptr, false);
        return j.is_object() && j.value("event", "") == name && j.contains("data") && j["data"].value("device", "") == device;
    };
    for (auto& e : events_)
        if (match(e)) {
            events_.clear();
            return {};
        }
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        DEVEMU_TRY(l, line(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now())));
        if (match(l)) return {};
    }
    return core::fail(Errc::timeout, "qemu did not report " + name + " for " + device, "qemu", "");
}

void serve_paths(core::UniqueFd relay, core::UniqueFd qmp_fd, const fs::path& file)
{
    auto qmp = Qmp::start(std::move(qmp_fd));
    if (!qmp) {
        spdlog::error("vm: --mpath-disk: {}", qmp.error().message());
        return;
    }
    std::array<int, 3> gen{0, 0, 0};
    std::array<bool, 3> cut{false, false, false};
    std::string buf;
    for (;;) {
        auto l = read_line(relay.get(), buf, std::chrono::hours(24));
        if (!l) return;   // the VM is gone
        const auto w = core::split(*l, ' ');
        const int k = w.size() == 2 ? static_cast<int>(core::parse_number(w[1]).value_or(0)) : 0;
        auto answer = [&](core::Status s) { (void)write_line(relay.get(), s ? "ok" : "error " + s.error().what); };
        auto quiet = [](const core::Result<std::string>& out) -> core::Status {   // HMP says nothing (or OK) when it worked
            if (!out) return std::unexpected(out.error());
            const auto t = std::string(core::trim(*out));
            if (!t.empty() && t != "OK") return core::fail(Errc::kernel, t, "qemu", "");
            return {};
        };
        if ((k != 1 && k != 2) || (w[0] != "cut" && w[0] != "restore")) {
            answer(core::fail(Errc::invalid_input, "unknown request: " + *l, "qemu paths", "cut K | restore K"));
            continue;
        }
        if (w[0] == "cut") {
            // Rapido's way: the drive's backend goes; the guest's disk stays and every I/O to it fails.
            auto s = cut[k] ? core::Status{} : quiet(qmp->hmp("drive_del " + drive_id(k, gen[k])));
            if (s) cut[k] = true;
            answer(s);
            continue;
        }
        if (!cut[k]) {
            answer({});
            continue;
        }
        // The orphaned disk goes (the guest removes its sdX), then a fresh drive on the same file and a new disk.
        auto s = quiet(qmp->hmp("device_del " + device_id(k, gen[k])));
        if (s) s = qmp->wait_event("DEVICE_DELETED", device_id(k, gen[k]), std::chrono::seconds(30));
        if (s) {
            ++gen[k];
            s = quiet(qmp->hmp("drive_add 0 " + drive_opts(k, gen[k], file)));
        }
        if (s) s = quiet(qmp->hmp("device_add " + device_opts(k, gen[k])));
        if (s) cut[k] = false;
        answer(s);
    }
}

namespace {

// The guest's disk of path K: the scsi-hd on target K whose WWN is ours (as the kernel read it from VPD 0x83).
std::string disk_of(int k)
{
    std::error_code ec;
    const std::string want = std::string("naa.") + (kPathsWwn + 2);
    for (auto& d : fs::directory_iterator("/sys/class/scsi_device", ec)) {
        const auto hctl = core::split(d.path().filename().string(), ':');
        if (hctl.size() != 4 || hctl[2] != std::to_string(k) || hctl[3] != "0") continue;
        auto w = core::read_attr(d.path() / "device/wwid");
        if (!w || core::trim(*w) != want) continue;
        for (auto& b : fs::directory_iterator(d.path() / "device/block", ec)) return b.path().filename().string();
    }
    return "";
}

// A virtio console device (id 3) on the bus: the relay port's, before any module is loaded for it.
bool has_virtio_console()
{
    std::error_code ec;
    for (auto& d : fs::directory_iterator("/sys/bus/virtio/devices", ec))
        if (auto id = core::read_attr(d.path() / "device"); id && core::trim(*id) == "0x0003") return true;
    return false;
}

core::Result<fs::path> relay_port()
{
    std::error_code ec;
    for (auto& p : fs::directory_iterator("/sys/class/virtio-ports", ec))
        if (auto n = core::read_attr(p.path() / "name"); n && core::trim(*n) == kPathsPort) return fs::path("/dev") / p.path().filename();
    return core::fail(Errc::invalid_input, "this machine has no QEMU paths to cut (no virtio port " + std::string(kPathsPort) + ")", "/sys/class/virtio-ports",
                      "run it inside devemu vm run --mpath-disk FILE --host-root -- devemu failover --qemu-paths");
}

}  // namespace

core::Result<lio::FailoverReport> qemu_failover(const fs::path& state_dir, const lio::FailoverOptions& o)
{
    if (!has_virtio_console())   // not a vm run --mpath-disk guest: nothing to load or touch here
        return core::fail(Errc::invalid_input, "this machine has no QEMU paths to cut (no virtio console device)", "/sys/bus/virtio/devices",
                          "run it inside devemu vm run --mpath-disk FILE --host-root -- devemu failover --qemu-paths");
    DEVEMU_CHECK(core::ensure_modules({{"virtio_console"}, {"virtio_scsi"}, {"sd_mod"}}));
    fs::path port;
    for (int i = 0; i < 100; ++i) {   // the port's device appears once the driver has probed it
        auto p = relay_port();
        if (p && fs::exists(*p)) {
            port = *p;
            break;
        }
        if (i == 99) return std::unexpected(p ? core::Error{Errc::missing, "no device node", p->string(), ""} : p.error());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::vector<std::string> names;
    for (int k = 1; k <= 2; ++k) {
        std::string d;
        for (int i = 0; i < 200 && (d = disk_of(k)).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (d.empty()) return core::fail(Errc::missing, fmt::format("path {}'s disk is not there", k), "/sys/class/scsi_device", "see dmesg");
        names.push_back(d);
    }
    core::UniqueFd relay(::open(port.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
    if (!relay) return core::fail_errno("cannot open", port.string());
    std::string buf;
    auto request = [&](const std::string& req) -> core::Status {
        DEVEMU_CHECK(write_line(relay.get(), req));
        DEVEMU_TRY(answer, read_line(relay.get(), buf, std::chrono::seconds(60)));
        if (answer != "ok") return core::fail(Errc::kernel, "the host could not " + req + ": " + answer.substr(std::min<std::size_t>(answer.size(), 6)), "qemu", "");
        return {};
    };
    // The map over the two disks, journaled: removed at the end (also when the run fails).
    DEVEMU_TRY(sd, core::StateDir::open(state_dir));
    const std::string unit = "qemu-paths";
    if (sd.load(unit) || fs::exists(sd.journal(unit)))
        if (auto s = core::replay_journal(sd.journal(unit)); !s) return std::unexpected(s.error());
    core::Transaction tx(sd.journal(unit));
    lio::mpath::Want w{unit, "10", {{0, {"/dev/" + names[0], "/dev/" + names[1]}}}, 1, 0, true};
    auto up = lio::mpath::up(w, tx);
    if (!up) {
        (void)tx.rollback();
        return std::unexpected(up.error());
    }
    lio::PathSet ps{(*up)["maps"]["0"].value("alias", ""), names, [&](std::size_t k, bool down, std::vector<std::string>& now) -> core::Status {
                        const std::string old = now[k - 1];
                        DEVEMU_CHECK(request(fmt::format("{} {}", down ? "cut" : "restore", k)));
                        if (down) return {};
                        // the old disk goes first (its name may come back for the new one), then the new one appears
                        for (int i = 0; i < 600 && fs::exists("/sys/block/" + old); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
                        for (int i = 0; i < 600; ++i) {
                            const auto d = disk_of(static_cast<int>(k));
                            if (!d.empty() && fs::exists("/dev/" + d)) {
                                now[k - 1] = d;
                                return {};
                            }
                            std::this_thread::sleep_for(std::chrono::milliseconds(50));
                        }
                        return core::fail(Errc::timeout, fmt::format("path {}'s new disk did not appear in 30 s (it was {})", k, old), "qemu", "see dmesg");
                    }};
    auto rep = lio::run_failover(ps, o);
    if (!rep)   // a run that stopped between a cut and its restore: give the VM its paths back (the host ignores an uncut one)
        for (int k = 1; k <= 2; ++k) (void)request(fmt::format("restore {}", k));
    if (auto s = tx.rollback(); !s) spdlog::warn("removing the multipath map: {}", s.error().message());
    (void)sd.forget(unit);
    return rep;
}

}  // namespace devemu::vm
