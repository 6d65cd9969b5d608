// The handler's event loop: the UIO device (new commands), io_uring completions, the due times of commands a fault
// deferred, signals, and the control socket through which `devemu fault` changes the fault chain.
#include "uring/tcmu_handler.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "core/fs.hpp"
#include "core/unix_socket.hpp"
#include "fault/fault.hpp"

namespace devemu::uring {

namespace {

using nlohmann::json;

// What `ls` shows of the handler (pid, commands in flight, counts, faults); a failed write costs only that.
void write_stats(const std::string& file, const Handler& h)
{
    if (auto s = core::write_file_atomic(file, h.stats().dump() + "\n"); !s) spdlog::warn("{}", s.error().message());
}

json error_json(const core::Error& e) { return {{"ok", false}, {"error", {{"what", e.what}, {"where", e.where}, {"fix", e.fix}}}}; }

// The chain as the profile (or the last `devemu fault` change) left it.
core::Status load_faults(Handler& h, const std::filesystem::path& file)
{
    if (file.empty() || !std::filesystem::exists(file)) return {};
    DEVEMU_TRY(text, core::read_file(file));
    auto specs = json::parse(text, nullptr, false);
    if (!specs.is_array()) return core::fail(core::Errc::invalid_input, "not a JSON array of faults", file.string(), "");
    for (auto& f : specs) {
        DEVEMU_TRY(spec, fault::parse(fault::keys_of(f), file.string(), h.last_lba()));
        DEVEMU_CHECK(h.faults().add(spec, fault::Clock::now()));
    }
    return {};
}

// One request: {"op": "add", "keys": {...}} | {"op": "clear", "id": ID (absent: all)} | {"op": "ls"}. Answers
// {"ok": true, "faults": [...]} or {"ok": false, "error": {...}}; the chain is unchanged by a refused request.
json control_request(Handler& h, const std::string& line)
{
    auto req = json::parse(line, nullptr, false);
    const std::string op = req.is_object() ? req.value("op", "") : "";
    if (op == "add") {
        auto spec = fault::parse(fault::keys_of(req.value("keys", json::object())), req.value("where", std::string("devemu fault add")), h.last_lba());
        if (!spec) return error_json(spec.error());
        if (auto s = h.faults().add(*spec, fault::Clock::now()); !s) return error_json(s.error());
        h.faults_changed();
    } else if (op == "clear") {
        if (req.contains("id")) {
            const std::string id = req.value("id", "");
            if (!h.faults().clear(id))
                return error_json({core::Errc::invalid_input, "no fault \"" + id + "\" on this backstore", id, "devemu fault NAME ls shows them"});
        } else {
            h.faults().clear_all();
        }
        h.faults_changed();
    } else if (op == "set") {   // `up` again: the profile's chain replaces what is there, all or nothing
        fault::Chain next;
        for (auto& f : req.value("faults", json::array())) {
            auto spec = fault::parse(fault::keys_of(f), req.value("where", std::string("the profile")), h.last_lba());
            if (!spec) return error_json(spec.error());
            if (auto s = next.add(*spec, fault::Clock::now()); !s) return error_json(s.error());
        }
        h.faults() = std::move(next);
        h.faults_changed();
    } else if (op != "ls") {
        return error_json({core::Errc::invalid_input, "unknown request", line, "add, clear, set or ls"});
    }
    return {{"ok", true}, {"faults", h.faults().to_json()}};
}

// A client of the control socket: one request line, one answer line (core::serve_one_request).
void serve_control(Handler& h, int listener)
{
    (void)core::serve_one_request(listener, [&](const std::string& line) { return control_request(h, line).dump(); });
}

// Until the earliest due time of a deferred command (ms resolution is enough for what faults delay), or a second.
int poll_timeout(const std::optional<fault::Clock::time_point>& next)
{
    if (!next) return 1000;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*next - fault::Clock::now()).count() + 1;
    return static_cast<int>(std::clamp<long>(ms, 0, 1000));
}

void drain_wakeups(const pollfd* fds, Device& dev, Handler& h, int sfd, bool& stopping)
{
    // Only the wake-ups matter, not the counts: each drain read may come back EAGAIN/EINTR without harm.
    if (fds[0].revents & POLLIN) {
        std::uint32_t count = 0;
        if (::read(dev.uio.get(), &count, sizeof count) < 0 && errno != EAGAIN && errno != EINTR) spdlog::debug("uio read: {}", std::strerror(errno));
    }
    if (fds[1].revents & POLLIN) {
        std::uint64_t v = 0;
        if (::read(h.efd(), &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR) spdlog::debug("eventfd read: {}", std::strerror(errno));
    }
    if (fds[2].revents & POLLIN) {
        signalfd_siginfo si{};
        if (::read(sfd, &si, sizeof si) == sizeof si && !stopping) {
            stopping = true;   // finish what is in flight, then go; nothing stays stalled
            h.faults().clear_all();
        }
    }
}

}  // namespace

int serve_ring(const TcmuConfig& cfg, Device& dev, const std::string& uio, int backing, const Geometry& geom)
{
    Handler h(cfg, dev, backing, geom);
    if (auto s = h.init(); !s) {
        spdlog::error("{}", s.error().message());
        return 2;
    }
    if (auto s = load_faults(h, cfg.faults); !s) {
        spdlog::error("{}", s.error().message());
        return 2;
    }
    core::UniqueFd control;
    if (!cfg.control.empty()) {
        auto l = core::listen_unix(cfg.control, 8);
        if (!l) {
            spdlog::error("{}", l.error().message());
            return 2;
        }
        control = std::move(*l);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    core::UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd) {
        spdlog::error("signalfd: {}", std::strerror(errno));
        return 2;
    }
    auto last_stats = std::chrono::steady_clock::time_point{};
    bool stopping = false;
    spdlog::debug("tcmu: serving {} ({} bytes mapped) from {}", uio, dev.map_size, cfg.backing);
    // Commands that came before the first wait are there now: serve them before waiting.
    for (;;) {
        if (auto s = h.consume(); !s) {
            spdlog::error("{}: {}", uio, s.error().message());
            return 1;   // the supervisor starts a new handler, which resets the ring (the initiator resends)
        }
        const auto next = h.release_due();
        h.note_queue();
        h.submit();
        h.reap();
        if (h.complete())
            if (auto s = h.kick(); !s) {
                spdlog::error("{}: {}", uio, s.error().message());
                return 1;
            }
        if (!cfg.stats.empty() && std::chrono::steady_clock::now() - last_stats > std::chrono::seconds(1)) {
            write_stats(cfg.stats, h);
            last_stats = std::chrono::steady_clock::now();
        }
        if (stopping && h.idle()) break;
        pollfd fds[4] = {{dev.uio.get(), POLLIN, 0}, {h.efd(), POLLIN, 0}, {sfd.get(), POLLIN, 0}, {control.get(), POLLIN, 0}};
        if (::poll(fds, control ? 4 : 3, poll_timeout(next)) < 0 && errno != EINTR) break;
        drain_wakeups(fds, dev, h, sfd.get(), stopping);
        if (control && (fds[3].revents & POLLIN)) {
            serve_control(h, control.get());
            if (!cfg.stats.empty()) write_stats(cfg.stats, h);   // `ls` sees the change at once
        }
    }
    if (!cfg.stats.empty()) write_stats(cfg.stats, h);
    return 0;
}

}  // namespace devemu::uring
