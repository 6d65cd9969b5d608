#include "uring/bench.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>

#include "backing/blockdev.hpp"
#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "uring/job.hpp"

namespace devemu::uring {

using core::Errc;
using nlohmann::json;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// A zram device made for the run and removed afterwards, whatever happens.
struct Zram {
    int id = -1;
    ~Zram()
    {
        if (id < 0) return;
        // A closed ring drops its registered files asynchronously: EBUSY for a moment after the last close.
        for (int i = 0; i < 200; ++i) {
            auto s = core::write_attr("/sys/class/zram-control/hot_remove", std::to_string(id));
            if (s || s.error().sys_errno != EBUSY) return;
            ::usleep(10000);
        }
        spdlog::warn("could not remove /dev/zram{} (busy); remove it with: echo {} > /sys/class/zram-control/hot_remove", id, id);
    }
};

struct Target {
    Zram zram;   // first: destroyed last, after the fd is closed (an open device cannot be removed)
    std::string path;
    core::UniqueFd fd;
    std::uint64_t size = 0;
    bool nowait = true;   // the kernel takes non-blocking I/O on it (else io_uring hands every I/O to its workers)
    bool async_won = false;                  // --async=auto without nowait: the probe found async I/O faster
    std::uint64_t probe_plain = 0, probe_async = 0;   // the probe's I/Os on each ring
};

// A preadv2(RWF_NOWAIT) is refused with EOPNOTSUPP exactly when the open file lacks FMODE_NOWAIT, which is what
// io_uring checks before it tries an I/O inline: without it every I/O goes to io_uring's workers (bio-based devices
// such as zram). A file opened for writing only, or a read that fails otherwise, says nothing: assumed capable.
bool takes_nowait(int fd)
{
    void* mem = nullptr;
    if (::posix_memalign(&mem, 4096, 4096) != 0) return true;
    std::unique_ptr<void, void (*)(void*)> buf(mem, std::free);
    iovec iov{mem, 4096};
    return !(::preadv2(fd, &iov, 1, 0, RWF_NOWAIT) < 0 && errno == EOPNOTSUPP);
}

// --fill: the whole target once, 1 MiB writes of random bytes (xorshift; each MiB made distinct by its offset), synced.
core::Status fill_target(const Target& t)
{
    constexpr std::size_t chunk = 1 << 20;
    void* mem = nullptr;
    if (::posix_memalign(&mem, 4096, chunk) != 0) return core::fail(Errc::kernel, "out of memory", "--fill");
    std::unique_ptr<void, void (*)(void*)> buf(mem, std::free);
    auto* w = static_cast<std::uint64_t*>(mem);
    std::uint64_t x = 0x9e3779b97f4a7c15ull ^ static_cast<std::uint64_t>(::getpid());
    for (std::size_t i = 0; i < chunk / 8; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w[i] = x;
    }
    spdlog::info("filling {} ({} MiB) with random data first", t.path, t.size >> 20);
    for (std::uint64_t off = 0; off < t.size && !g_stop; off += chunk) {
        w[0] = off;   // no two MiB alike
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, t.size - off));
        if (::pwrite(t.fd.get(), mem, n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
            return core::fail_errno("cannot fill", t.path, "--fill writes the whole target");
    }
    if (::fsync(t.fd.get()) != 0) return core::fail_errno("cannot sync after filling", t.path);
    return {};
}

core::Status open_target(const BenchOptions& o, Target& t)
{
    const bool write = writes(o.rw) || o.verify || o.fill;
    if (o.target.starts_with("zram:")) {
        auto parts = core::split(o.target.substr(5), ':');
        auto size = core::parse_size(parts[0]);
        if (!size) return core::fail(Errc::invalid_input, "not zram:SIZE[:ALGO]", o.target, "e.g. zram:1G or zram:1G:lz4");
        auto n = core::read_number("/sys/class/zram-control/hot_add");
        if (!n && n.error().code == Errc::kernel) return std::unexpected(n.error());
        if (!n) return core::fail(Errc::missing, "cannot add a zram device", "/sys/class/zram-control/hot_add", "modprobe zram");
        t.zram.id = static_cast<int>(*n);
        const auto dir = fmt::format("/sys/block/zram{}", t.zram.id);
        if (parts.size() > 1) DEVEMU_CHECK(core::write_attr(dir + "/comp_algorithm", parts[1]));
        DEVEMU_CHECK(core::write_attr(dir + "/disksize", std::to_string(*size)));
        t.path = fmt::format("/dev/zram{}", t.zram.id);
        for (int i = 0; i < 200 && ::access(t.path.c_str(), F_OK) != 0; ++i) ::usleep(5000);
    } else {
        t.path = o.target;
        struct stat st {};
        const bool exists = ::stat(t.path.c_str(), &st) == 0;
        if (exists && S_ISBLK(st.st_mode) && write) DEVEMU_CHECK(backing::check_block_device_free(t.path, o.force));
        if (!exists) {
            if (!o.size) return core::fail(Errc::invalid_input, "does not exist and no --size given", t.path, "add --size=1G to create it");
            core::UniqueFd f(::open(t.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
            if (!f) return core::fail_errno("cannot create", t.path);
            // Lay it out with real blocks (a sparse file would read holes, which is not what one benchmarks); --fill
            // writes every block below anyway, so then only its length is set here.
            if (o.fill) {
                if (::ftruncate(f.get(), static_cast<off_t>(o.size)) != 0) return core::fail_errno("cannot size", t.path);
            } else {
                std::string zeros(1 << 20, '\0');
                for (std::uint64_t off = 0; off < o.size; off += zeros.size())
                    if (::pwrite(f.get(), zeros.data(), std::min<std::uint64_t>(zeros.size(), o.size - off), static_cast<off_t>(off)) < 0)
                        return core::fail_errno("cannot lay out", t.path);
                ::fsync(f.get());
            }
        } else if (S_ISREG(st.st_mode) && o.size > static_cast<std::uint64_t>(st.st_size) && write) {
            return core::fail(Errc::invalid_input, fmt::format("is {} bytes, --size asks for {}; devemu does not grow existing files", st.st_size, o.size),
                              t.path, "give a smaller --size or a new file");
        }
    }
    t.fd.reset(::open(t.path.c_str(), (write ? O_RDWR : O_RDONLY) | (o.direct ? O_DIRECT : 0) | O_CLOEXEC));
    if (!t.fd) return core::fail_errno("cannot open", t.path, o.direct ? "the filesystem may not support O_DIRECT: --direct=0" : "");
    struct stat st {};
    ::fstat(t.fd.get(), &st);
    if (S_ISBLK(st.st_mode)) {
        DEVEMU_TRY(size, backing::block_device_size(t.path));
        t.size = size;
    } else {
        t.size = static_cast<std::uint64_t>(st.st_size);
    }
    t.nowait = takes_nowait(t.fd.get());
    if (t.size < o.bs) return core::fail(Errc::invalid_input, "smaller than one block", t.path);
    if (o.fill) DEVEMU_CHECK(fill_target(t));
    return {};
}

// --async=auto on a target without non-blocking I/O, where the probe found it faster: every I/O marked async and
// nothing registered with the ring. A worker that issues an I/O on a registered file or buffer takes the ring's
// lock to look it up, so the workers would run one at a time again (filled zram: 340-390k IOPS registered,
// 405-430k not).
bool auto_async(const BenchOptions& o, const Target& t)
{
    return o.engine == "uring" && o.async == "auto" && !t.nowait && t.async_won;
}

bool async_io(const BenchOptions& o, const Target& t)
{
    return auto_async(o, t) || (o.engine == "uring" && o.async == "on");
}

// A job on the target's first `region_len` bytes with one ring strategy: async I/O or not, and whether the buffers
// and file the options ask to register are registered.
JobSpec job_spec(const BenchOptions& o, const Target& t, std::uint64_t region_len, bool async, bool registered)
{
    JobSpec js;
    js.fd = t.fd.get();
    js.region_len = region_len;
    js.opt = &o;
    js.async = async;
    js.fixedbufs = registered && o.fixedbufs;
    js.registerfiles = registered && o.registerfiles;
    js.stop = &g_stop;
    return js;
}

// Which ring is faster on a target without non-blocking I/O: the plain one (one io_uring worker does every I/O in
// turn; registered buffers and file) or async I/O (several workers at once, nothing registered)? It depends on what
// an I/O costs: on filled zram async won by ~13 %, on never-written zram (zeros, no copy) the plain ring by 20-30 %.
// Two alternating 150 ms runs of the job on each decide, before anything is measured.
void probe_async(const BenchOptions& o, Target& t)
{
    if (o.engine != "uring" || o.async != "auto" || t.nowait) return;
    BenchOptions p = o;
    p.runtime = 0.15, p.time_based = true, p.ramp_time = 0;
    const std::uint64_t want = o.size ? std::min(o.size, t.size) : t.size;
    std::uint64_t ios[2] = {0, 0};
    for (int round = 0; round < 2 && !g_stop; ++round)
        for (int async = 0; async < 2; ++async) {
            auto r = run_job(job_spec(p, t, want / o.bs * o.bs, async == 1, async == 0));
            if (!r.error.empty()) return;   // the run proper reports it
            ios[async] += r.read_ios + r.write_ios;
        }
    t.probe_plain = ios[0], t.probe_async = ios[1];
    t.async_won = ios[1] > ios[0];
}

Summary summarize(const std::vector<JobResult>& jobs, const BenchOptions& o, json& fio_shaped)
{
    Histogram all, rd, wr;
    Summary s;
    double usr = 0, sys = 0, proc0 = jobs.empty() ? 0 : jobs[0].proc0, proc1 = 0;
    for (auto& j : jobs) {
        proc0 = std::min(proc0, j.proc0);
        proc1 = std::max(proc1, j.proc1);
        rd.merge(j.read_lat);
        wr.merge(j.write_lat);
        s.seconds = std::max(s.seconds, j.seconds);
        usr += j.usr;
        sys += j.sys;
    }
    all.merge(rd);
    all.merge(wr);
    s.ios = all.count();
    s.iops = s.seconds > 0 ? static_cast<double>(s.ios) / s.seconds : 0;
    s.bw_bytes = s.iops * o.bs;
    // The process over the jobs' measured time: their threads and io_uring's workers (where async I/O runs).
    s.cpu_seconds = proc1 > proc0 ? proc1 - proc0 : usr + sys;
    s.fixedbufs = !jobs.empty() && jobs[0].fixedbufs;
    s.registerfiles = !jobs.empty() && jobs[0].registerfiles;
    s.lat_min = all.min(), s.lat_max = all.max(), s.lat_mean = all.mean();
    s.p50 = all.percentile(50), s.p99 = all.percentile(99), s.p999 = all.percentile(99.9);
    auto side = [&](const Histogram& h) {
        const double iops = s.seconds > 0 ? static_cast<double>(h.count()) / s.seconds : 0;
        return json{{"io_bytes", h.count() * o.bs}, {"total_ios", h.count()}, {"iops", iops}, {"bw", iops * o.bs / 1024},
                    {"lat_ns", {{"min", h.min()}, {"max", h.max()}, {"mean", h.mean()},
                                {"percentile", {{"50.000000", h.percentile(50)}, {"99.000000", h.percentile(99)}, {"99.900000", h.percentile(99.9)}}}}}};
    };
    const double wall = s.seconds > 0 ? s.seconds * o.numjobs : 1;
    fio_shaped = {{"jobs", json::array({{{"jobname", "devemu"}, {"read", side(rd)}, {"write", side(wr)}, {"job_runtime", static_cast<std::uint64_t>(s.seconds * 1000)},
                                         {"usr_cpu", 100 * usr / wall}, {"sys_cpu", 100 * sys / wall}}})},
                  {"devemu", {{"ios_per_cpu_second", s.ios_per_cpu_second()}, {"filled", o.fill}, {"engine", o.engine}, {"fixedbufs", s.fixedbufs},
                              {"registerfiles", s.registerfiles}, {"sqpoll", o.sqpoll}, {"hipri", o.hipri}, {"batch", o.batch},
                              {"ring_flags", jobs.empty() ? 0u : jobs[0].ring_flags}}}};
    return s;
}

core::Result<std::vector<JobResult>> run_phase(const BenchOptions& o, Target& t, Phase phase, bool progress)
{
    const std::uint64_t want = o.size ? std::min(o.size, t.size) : t.size;
    std::atomic<std::uint64_t> done{0};
    std::atomic<unsigned> finished{0};
    std::vector<JobResult> results(o.numjobs);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < o.numjobs; ++i) {
        // Verify splits the target so jobs never overwrite each other's blocks; otherwise every job spans it.
        const std::uint64_t region = phase == Phase::normal ? want / o.bs * o.bs : want / o.numjobs / o.bs * o.bs;
        JobSpec js = job_spec(o, t, region, async_io(o, t), !auto_async(o, t));
        js.region_off = phase == Phase::normal ? 0 : region * i;
        js.phase = phase;
        js.index = i;
        js.done_ios = &done;
        threads.emplace_back([js, &results, &finished, i] {
            results[i] = run_job(js);
            finished.fetch_add(1);
        });
    }
    // Live progress once a second on a terminal: IOPS and MB/s of the last second, elapsed and remaining.
    const auto start = std::chrono::steady_clock::now();
    auto last_print = start;
    std::uint64_t last = 0;
    while (finished.load() < o.numjobs) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const auto now = std::chrono::steady_clock::now();
        if (!progress || now - last_print < std::chrono::seconds(1)) continue;
        const double el = std::chrono::duration<double>(now - start).count();
        const auto d = done.load();
        std::string left = o.runtime > 0 ? fmt::format(", {:.0f}s left", std::max(0.0, o.ramp_time + o.runtime - el)) : "";
        core::progress(fmt::format("bench: {} {:.0f}s{}  {:.0f} IOPS  {:.1f} MB/s", phase == Phase::verify_read ? "verifying" : "running", el, left,
                                   static_cast<double>(d - last), static_cast<double>(d - last) * o.bs / 1e6));
        last = d;
        last_print = now;
    }
    for (auto& th : threads) th.join();
    if (progress) core::progress_clear();
    for (auto& r : results)
        if (!r.error.empty()) return core::fail(Errc::io, r.error, t.path);
    return results;
}

std::string human(const Summary& s, const BenchOptions& o, const std::string& path)
{
    return fmt::format("{} {} bs={} iodepth={} numjobs={} engine={}{}{}{}\n  IOPS {:.0f}, {:.1f} MB/s, {:.2f} s\n"
                       "  latency us: min {:.1f} mean {:.1f} p50 {:.1f} p99 {:.1f} p99.9 {:.1f} max {:.1f}\n"
                       "  CPU {:.2f} s (the process, io_uring's workers included), {:.0f} I/Os per CPU-second\n",
                       path, to_string(o.rw), o.bs, o.iodepth, o.numjobs, o.engine, s.fixedbufs ? " fixedbufs" : "",
                       s.registerfiles ? " registerfiles" : "", o.fill ? " (filled with random data first)" : "", s.iops, s.bw_bytes / 1e6, s.seconds, s.lat_min / 1e3,
                       s.lat_mean / 1e3, s.p50 / 1e3, s.p99 / 1e3, s.p999 / 1e3, s.lat_max / 1e3, s.cpu_seconds, s.ios_per_cpu_second());
}

// What --async decided and why: a user comparing with another tool needs to know.
std::string async_note(const BenchOptions& o, const Target& t)
{
    if (o.engine == "uring" && o.async == "on") return "  async: every I/O marked IOSQE_ASYNC (--async=on; fio's --force_async=1)\n";
    if (o.engine != "uring" || o.async != "auto" || t.nowait || !t.probe_plain) return "";
    return fmt::format("  async: this target takes no non-blocking I/O, so io_uring hands every I/O to its workers. Probed (2 x 150 ms\n"
                       "  each): {:.2f}x the plain ring's I/Os with every I/O async and nothing registered (several workers at once),\n"
                       "  so {}. --async=on/off chooses; fio's defaults are the plain ring.\n",
                       static_cast<double>(t.probe_async) / static_cast<double>(t.probe_plain),
                       t.async_won ? "devemu ran it async" : "devemu ran the plain ring (one worker takes them in turn)");
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// fio's CPU: the whole fio process tree (its job process, io_uring's workers), from what wait collects, less
// `fixed`: what the same command costs for one block (fio's start-up and exit, measured in the same run).
core::Result<Summary> run_fio(const BenchOptions& o, const std::string& path, double fixed = 0)
{
    if (core::which("fio").empty()) return core::fail(Errc::missing, "fio not found", "PATH", "apt-get install fio");
    const double c0 = cpu_seconds(RUSAGE_CHILDREN);
    auto r = core::run(fio_argv(o, path), std::chrono::seconds(static_cast<long>(o.runtime + o.ramp_time + 120)));
    const double whole = cpu_seconds(RUSAGE_CHILDREN) - c0;
    if (!r || r->exit_code != 0) return core::fail(Errc::io, "fio failed: " + (r ? std::string(core::trim(r->err)) : r.error().message()), path);
    auto j = json::parse(r->out.substr(r->out.find('{')), nullptr, false);
    if (j.is_discarded()) return core::fail(Errc::io, "unreadable fio output", path);
    auto& job = j["jobs"][0];
    Summary s;
    s.seconds = job["job_runtime"].get<double>() / 1000.0;
    for (auto side : {"read", "write"}) {
        s.iops += job[side]["iops"].get<double>();
        s.ios += job[side]["total_ios"].get<std::uint64_t>();
        auto& pct = job[side]["clat_ns"]["percentile"];
        if (job[side]["total_ios"].get<std::uint64_t>() > 0 && pct.contains("99.000000")) s.p99 = std::max<std::uint64_t>(s.p99, pct["99.000000"]);
    }
    s.cpu_seconds = std::max(whole - fixed, 0.0);
    return s;
}

// What fio costs outside its measured time: the same job for one block.
core::Result<double> fio_fixed_cpu(const BenchOptions& o, const std::string& path)
{
    BenchOptions one = o;
    one.size = o.bs;
    one.runtime = one.ramp_time = 0;
    one.time_based = false;
    DEVEMU_TRY(s, run_fio(one, path));
    return s.cpu_seconds;
}

}  // namespace

void install_stop_handler()
{
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_stop.load(); }

core::Status fill_device(const std::string& path, std::uint64_t size, bool cached)
{
    install_stop_handler();
    Target t;
    BenchOptions o;
    o.target = path;
    o.size = size;
    o.direct = !cached;
    o.fill = true;
    DEVEMU_CHECK(open_target(o, t));   // which fills it (o.fill)
    if (g_stop) return core::fail(Errc::io, "interrupted while filling", path);
    return {};
}

core::Result<BenchOutcome> run_bench(const BenchOptions& o)
{
    // A stop asked before (Ctrl-C between the runs of a sweep or a --paths matrix) is kept: every later run ends at once.
    install_stop_handler();
    Target t;
    DEVEMU_CHECK(open_target(o, t));
    const bool progress = !o.json;   // shown only where the CLI renders progress (a terminal)
    BenchOutcome out;

    if (o.verify) {
        if (writes(o.rw))
            if (auto w = run_phase(o, t, Phase::verify_write, progress); !w) return std::unexpected(w.error());
        DEVEMU_TRY(r, run_phase(o, t, Phase::verify_read, progress));
        std::optional<std::string> bad;
        for (auto& j : r)
            if (j.verify_error && !bad) bad = j.verify_error;
        json fio_shaped;
        auto s = summarize(r, o, fio_shaped);
        out.verify_failed = bad.has_value();
        fio_shaped["devemu"]["verify"] = bad ? json{{"ok", false}, {"error", *bad}} : json{{"ok", true}, {"blocks", s.ios}};
        out.json = fio_shaped;
        out.text = bad ? "verify FAILED: " + *bad + "\n" : fmt::format("verify ok: {} blocks of {} bytes checked (header + crc32c)\n", s.ios, o.bs);
        return out;
    }
    probe_async(o, t);
    if (!o.compare_fio) {
        DEVEMU_TRY(r, run_phase(o, t, Phase::normal, progress));
        json fio_shaped;
        auto s = summarize(r, o, fio_shaped);
        fio_shaped["devemu"]["async"] = async_io(o, t);
        fio_shaped["devemu"]["target_nowait"] = t.nowait;
        if (t.probe_plain) fio_shaped["devemu"]["async_probe"] = {{"plain_ios", t.probe_plain}, {"async_ios", t.probe_async}};
        out.json = fio_shaped;
        out.text = human(s, o, t.path) + async_note(o, t) + (g_stop ? "  (interrupted: partial result)\n" : "");
        return out;
    }
    // Alternating runs, medians: the machine's drift hits both sides alike.
    std::vector<double> d_iops, f_iops, d_cpu, f_cpu, d_p99, f_p99;
    const bool async = async_io(o, t);
    DEVEMU_TRY(fixed, fio_fixed_cpu(o, t.path));
    t.fd.reset();
    for (unsigned i = 0; i < o.repeat && !g_stop; ++i) {
        Target mine;
        BenchOptions oo = o;
        oo.target = t.path;
        oo.fill = false;   // filled once, before the first run
        DEVEMU_CHECK(open_target(oo, mine));
        mine.async_won = t.async_won, mine.probe_plain = t.probe_plain, mine.probe_async = t.probe_async;
        DEVEMU_TRY(r, run_phase(oo, mine, Phase::normal, progress));
        json ignored;
        auto s = summarize(r, o, ignored);
        d_iops.push_back(s.iops), d_cpu.push_back(s.ios ? s.cpu_seconds / static_cast<double>(s.ios) * 1e6 : 0), d_p99.push_back(static_cast<double>(s.p99));
        mine.fd.reset();
        DEVEMU_TRY(f, run_fio(o, t.path, fixed));
        f_iops.push_back(f.iops), f_cpu.push_back(f.ios ? f.cpu_seconds / static_cast<double>(f.ios) * 1e6 : 0), f_p99.push_back(static_cast<double>(f.p99));
    }
    const double di = median(d_iops), fi = median(f_iops), dc = median(d_cpu), fc = median(f_cpu), dp = median(d_p99), fp = median(f_p99);
    out.json = {{"target", t.path}, {"filled", o.fill}, {"rw", to_string(o.rw)}, {"bs", o.bs}, {"iodepth", o.iodepth}, {"numjobs", o.numjobs}, {"runs", d_iops.size()},
                {"cpu", "the whole process (io_uring's workers included) per I/O; fio's less its start-up (the same job for one block)"},
                {"devemu", {{"iops", di}, {"cpu_us_per_io", dc}, {"p99_ns", dp}, {"runs_iops", d_iops}, {"async", async}, {"target_nowait", t.nowait},
                            {"async_probe", {{"plain_ios", t.probe_plain}, {"async_ios", t.probe_async}}}}},
                {"fio", {{"iops", fi}, {"cpu_us_per_io", fc}, {"p99_ns", fp}, {"runs_iops", f_iops}, {"startup_cpu_seconds", fixed},
                         {"command", fmt::format("{}", fmt::join(fio_argv(o, t.path), " "))}}},
                {"ratio", {{"iops", fi > 0 ? di / fi : 0}, {"cpu_per_io", fc > 0 ? dc / fc : 0}, {"p99", fp > 0 ? dp / fp : 0}}}};
    out.text = fmt::format("{} {} bs={} iodepth={} numjobs={}{}: {} alternating runs each, medians\n"
                           "  {:<16} {:>12} {:>12} {:>8}\n  {:<16} {:>12.0f} {:>12.0f} {:>7.2f}x\n  {:<16} {:>12.2f} {:>12.2f} {:>7.2f}x\n"
                           "  {:<16} {:>12.1f} {:>12.1f} {:>7.2f}x\n  CPU: the whole process, io_uring's workers included (fio's less its start-up, {:.2f} s)\n{}  fio: {}\n",
                           t.path, to_string(o.rw), o.bs, o.iodepth, o.numjobs, o.fill ? " (filled with random data first)" : "", d_iops.size(), "", "devemu", "fio io_uring", "ratio", "IOPS", di, fi,
                           fi > 0 ? di / fi : 0, "CPU us per I/O", dc, fc, fc > 0 ? dc / fc : 0, "p99 latency us", dp / 1e3, fp / 1e3,
                           fp > 0 ? dp / fp : 0, fixed, async_note(o, t), fmt::join(fio_argv(o, t.path), " "));
    return out;
}

}  // namespace devemu::uring
