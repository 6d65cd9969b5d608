#include "vm/capture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/text.hpp"
#include "vm/unit.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// SIGINT/SIGTERM set g_stop while it lives (the capture ends cleanly instead of the process).
struct StopOnSignal {
    struct sigaction old_int {}, old_term {};
    StopOnSignal()
    {
        g_stop = false;
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        ::sigaction(SIGINT, &sa, &old_int);
        ::sigaction(SIGTERM, &sa, &old_term);
    }
    ~StopOnSignal()
    {
        ::sigaction(SIGINT, &old_int, nullptr);
        ::sigaction(SIGTERM, &old_term, nullptr);
    }
};

std::string sh_quote(const std::string& s)
{
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::uintmax_t size_of(const fs::path& p)
{
    std::error_code ec;
    auto n = fs::file_size(p, ec);
    return ec ? 0 : n;
}

// The finished guest file into place on the host: a rename when it can, else a copy (fsynced) and a rename.
core::Status move_into_place(const fs::path& from, const fs::path& to)
{
    std::error_code ec;
    fs::rename(from, to, ec);
    if (!ec) return {};
    const fs::path part = to.string() + ".part";
    if (!fs::copy_file(from, part, fs::copy_options::overwrite_existing, ec))
        return core::fail(core::Errc::kernel, "cannot write the capture: " + ec.message(), part.string(), "is the directory writable, with room?");
    core::UniqueFd fd(::open(part.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) return core::fail_errno("cannot sync the capture", part.string());
    fs::rename(part, to, ec);
    if (ec) return core::fail(core::Errc::kernel, "cannot rename the capture into place: " + ec.message(), to.string(), "");
    fs::remove(from, ec);
    return {};
}

}  // namespace

core::Result<VmCaptureResult> capture_in_vm(const VmRecord& rec, const VmCaptureOptions& opt)
{
    VmCaptureResult out;
    std::vector<std::string> gadgets;
    for (auto& u : rec.units)
        if (u.kind == "gadget") gadgets.push_back(u.unit);
    if (!opt.gadget.empty()) {
        if (std::find(gadgets.begin(), gadgets.end(), opt.gadget) == gadgets.end())
            return core::fail(core::Errc::invalid_input, "the VM has no gadget '" + opt.gadget + "'", rec.name, "its gadgets: " + core::join(gadgets, ", "));
        out.gadget = opt.gadget;
    } else if (gadgets.size() == 1) {
        out.gadget = gadgets[0];
    } else {
        return core::fail(core::Errc::invalid_input, gadgets.empty() ? "the VM has no gadget to capture" : "the VM has several gadgets", rec.name,
                          gadgets.empty() ? "capture a unit with a [[gadget]]" : "name one: devemu capture " + rec.name + " --gadget " + core::join(gadgets, "|"));
    }
    const fs::path dir = capture_dir(rec.run_dir);
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return core::fail(core::Errc::missing, "this VM shares no capture directory with the host", dir.string(),
                          "it was started by an older devemu: devemu down " + rec.name + " and up --vm again");
    const std::string base = fmt::format("cap-{}", ::getpid());
    const fs::path pcap = dir / (base + ".pcapng"), result = dir / (base + ".json"), err = dir / (base + ".err"), part = dir / (base + ".pcapng.part");
    struct Cleanup {
        std::vector<fs::path> files;
        ~Cleanup()
        {
            std::error_code e;
            for (auto& f : files) fs::remove(f, e);
        }
    } cleanup{{pcap, result, err, part, dir / (base + ".pid")}};
    const std::string g = kGuestCaptureDir + std::string("/") + base;
    std::string cmd;
    for (auto& a : guest_devemu({"-q", "capture", out.gadget, "-o", g + ".pcapng", "--duration", std::to_string(opt.duration.count()), "--json"}, rec.devemu))
        cmd += sh_quote(a) + " ";
    // In the background, its pid kept: a Ctrl-C here stops it with SIGINT there (a closed exec would kill it), so
    // that it completes its file.
    cmd += "> " + g + ".json 2> " + g + ".err < /dev/null & echo $! > " + g + ".pid";
    const StopOnSignal stop;
    // The share is mounted at the first capture (9p is not loaded at boot: see plan_launch).
    const std::string mount = fmt::format("grep -q ' {0} 9p ' /proc/mounts || {{ modprobe 9pnet_virtio && modprobe 9p && mkdir -p {0} && "
                                          "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 {1} {0}; }}",
                                          kGuestCaptureDir, kCaptureTag);
    DEVEMU_TRY(mounted, vm_exec(rec, {"sh", "-c", mount}));
    if (mounted.rc != 0)
        return core::fail(core::Errc::kernel, "cannot mount the capture share in the VM: " + std::string(core::trim(core::last_line(mounted.err))), rec.name,
                          "devemu vm exec " + rec.name + " -- dmesg");
    DEVEMU_TRY(started, vm_exec(rec, {"sh", "-c", cmd}));
    if (started.rc != 0) return core::fail(core::Errc::kernel, "could not start the capture in the VM: " + std::string(core::trim(started.err)), rec.name, "");
    // The guest's capture writes its file's header once usbmon is open; an error ends it before that. Its answer
    // (--json) or its error line, once it has ended.
    auto finished = [&] { return size_of(result) > 0 || core::read_file(err).value_or("").find("error") != std::string::npos; };
    for (int i = 0; i < 300 && !finished() && size_of(part) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto t0 = std::chrono::steady_clock::now();
    auto stopped_at = t0;
    bool interrupted = false;
    for (int tick = 0; !finished(); ++tick) {
        if (g_stop && !interrupted) {
            // Ctrl-C here: the guest's capture stops the same way and completes its file.
            interrupted = true;
            stopped_at = std::chrono::steady_clock::now();
            if (opt.progress) opt.progress("stopping the capture in the VM");
            auto k = vm_exec(rec, {"sh", "-c", "kill -INT $(cat " + g + ".pid)"});
            if (!k) return std::unexpected(k.error());
        }
        // Never wait on a capture that is gone without an answer (killed in the VM), nor on one that does not stop.
        const bool overdue = interrupted && std::chrono::steady_clock::now() - stopped_at > std::chrono::seconds(60);
        if (overdue || tick % 25 == 24) {
            auto alive = vm_exec(rec, {"sh", "-c", "kill -0 $(cat " + g + ".pid)"});
            if (!alive) return std::unexpected(alive.error());
            if (finished()) break;
            if (alive->rc != 0 || overdue) {
                const std::string why(core::trim(core::last_line(core::read_file(err).value_or(""))));
                return core::fail(core::Errc::kernel, std::string(overdue ? "the capture in the VM did not stop within 60 s" : "the capture in the VM ended without a result") +
                                      (why.empty() ? std::string() : ": " + why), rec.name, "the guest kernel's side: devemu vm exec " + rec.name + " -- dmesg");
            }
        }
        if (opt.progress && !interrupted)
            opt.progress(fmt::format("{} s, {:.1f} MiB", std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count(),
                                     static_cast<double>(size_of(part)) / (1 << 20)));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const auto answer = json::parse(core::read_file(result).value_or(""), nullptr, false);
    if (!answer.is_object() || !fs::exists(pcap, ec)) {
        const std::string why(core::trim(core::last_line(core::read_file(err).value_or(""))));
        return core::fail(core::Errc::kernel, "the capture in the VM failed" + (why.empty() ? std::string() : ": " + why), rec.name, "");
    }
    out.packets = answer.value("packets", std::uint64_t{0});
    out.bytes = answer.value("bytes", std::uint64_t{0});
    DEVEMU_CHECK(move_into_place(pcap, opt.file));
    return out;
}

}  // namespace devemu::vm
