#include "uring/job.hpp"

#include <liburing.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <vector>

#include "uring/verify.hpp"

namespace devemu::uring {

namespace {

constexpr std::uint64_t kVerifySeed = 0x5eed'de7e'3b1e'0001ULL;

std::uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

double thread_cpu(bool user)
{
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    const auto& tv = user ? ru.ru_utime : ru.ru_stime;
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// Where the next I/O goes and whether it writes: the one place that knows the access pattern.
struct Pattern {
    const JobSpec& s;
    std::uint64_t blocks, next_seq = 0, issued = 0, rng;
    explicit Pattern(const JobSpec& spec)
        : s(spec), blocks(spec.region_len / spec.opt->bs), rng(0x9e3779b97f4a7c15ULL * (spec.index + 1) ^ now_ns()) {}
    std::uint64_t xorshift()
    {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    }
    bool one_pass() const { return !(s.opt->time_based) || s.phase != Phase::normal; }
    bool exhausted() const { return one_pass() && issued >= blocks; }
    std::pair<std::uint64_t, bool> next()
    {
        ++issued;
        const auto& o = *s.opt;
        std::uint64_t blk;
        if (s.phase != Phase::normal || !is_random(o.rw)) blk = next_seq++ % blocks;
        else blk = xorshift() % blocks;
        bool write = s.phase == Phase::verify_write || o.rw == Rw::write || o.rw == Rw::randwrite ||
                     (o.rw == Rw::randrw && xorshift() % 100 >= o.rwmixread);
        if (s.phase == Phase::verify_read) write = false;
        return {s.region_off + blk * o.bs, write};
    }
};

struct Slot {
    char* buf;
    std::uint64_t offset, start;
    bool write;
};

}  // namespace

JobResult run_job(const JobSpec& s)
{
    const auto& o = *s.opt;
    JobResult res;
    Pattern pat(s);
    if (pat.blocks == 0) {
        res.error = "the region is smaller than one block";
        return res;
    }
    const bool uring = o.engine == "uring";
    const unsigned depth = uring ? o.iodepth : 1;
    std::unique_ptr<char, decltype(&std::free)> mem(static_cast<char*>(std::aligned_alloc(4096, std::size_t{depth} * o.bs)), &std::free);
    if (!mem) {
        res.error = "cannot allocate " + std::to_string(depth) + " buffers of " + std::to_string(o.bs) + " bytes (lower --iodepth or --bs)";
        return res;
    }
    std::vector<Slot> slots(depth);
    std::vector<unsigned> free_slots;
    for (unsigned i = 0; i < depth; ++i) {
        slots[i].buf = mem.get() + std::size_t{i} * o.bs;
        // Random, incompressible contents, like fio's buffers: a constant pattern would let zram (or any
        // compressing/deduplicating store) skip the work and flatter the numbers.
        std::uint64_t x = 0x243f6a8885a308d3ULL ^ (std::uint64_t{s.index} << 32) ^ i ^ now_ns();
        for (std::uint32_t k = 0; k + 8 <= o.bs; k += 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            std::memcpy(slots[i].buf + k, &x, 8);
        }
        free_slots.push_back(depth - 1 - i);
    }

    const std::uint64_t t_start = now_ns();
    const std::uint64_t ramp_end = t_start + static_cast<std::uint64_t>(o.ramp_time * 1e9);
    const std::uint64_t deadline = o.runtime > 0 ? ramp_end + static_cast<std::uint64_t>(o.runtime * 1e9) : UINT64_MAX;
    bool measuring = o.ramp_time <= 0;
    std::uint64_t t_measure = t_start;
    double usr0 = thread_cpu(true), sys0 = thread_cpu(false);
    auto start_measuring = [&](std::uint64_t t) {
        measuring = true;
        t_measure = t;
        res.read_lat = {};
        res.write_lat = {};
        res.read_ios = res.write_ios = 0;
        usr0 = thread_cpu(true);
        sys0 = thread_cpu(false);
    };
    auto complete = [&](Slot& sl, long ret, std::uint64_t t) -> bool {
        if (ret != static_cast<long>(o.bs)) {
            res.error = fmt::format("{} at offset {}: {}", sl.write ? "write" : "read", sl.offset,
                                    ret < 0 ? std::strerror(static_cast<int>(-ret)) : fmt::format("short ({} bytes)", ret));
            return false;
        }
        if (s.phase == Phase::verify_read && !res.verify_error)
            if (auto bad = verify_check(sl.buf, o.bs, sl.offset, kVerifySeed)) res.verify_error = *bad;
        if (!measuring && t >= ramp_end) start_measuring(t);
        if (measuring) {
            (sl.write ? res.write_lat : res.read_lat).record(t - sl.start);
            ++(sl.write ? res.write_ios : res.read_ios);
        }
        if (s.done_ios) s.done_ios->fetch_add(1, std::memory_order_relaxed);
        return true;
    };
    auto prepare = [&](Slot& sl) {
        auto [off, write] = pat.next();
        sl.offset = off;
        sl.write = write;
        if (write && s.phase == Phase::verify_write) verify_fill(sl.buf, o.bs, off, kVerifySeed);
        sl.start = now_ns();
    };
    auto should_stop = [&](std::uint64_t t) { return t >= deadline || s.stop->load(std::memory_order_relaxed) || pat.exhausted(); };

    if (!uring) {
        for (;;) {
            const auto t = now_ns();
            if (should_stop(t)) break;
            Slot& sl = slots[0];
            prepare(sl);
            long r = sl.write ? ::pwrite(s.fd, sl.buf, o.bs, static_cast<off_t>(sl.offset)) : ::pread(s.fd, sl.buf, o.bs, static_cast<off_t>(sl.offset));
            if (r < 0) r = -errno;
            if (!complete(sl, r, now_ns())) break;
        }
    } else {
        io_uring ring{};
        io_uring_params p{};
        if (o.sqpoll) p.flags |= IORING_SETUP_SQPOLL, p.sq_thread_idle = 2000;
        if (o.hipri) p.flags |= IORING_SETUP_IOPOLL;
        // One thread submits and reaps: let completions run at our next io_uring_enter instead of interrupting us
        // (no IPIs, no task_work signals). Newer kernels only: probe, newest first, fall back on EINVAL.
        const unsigned base = p.flags;
        const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_COOP_TASKRUN, 0};
        int init = -EINVAL;
        for (unsigned extra : tries) {
            if (o.sqpoll && (extra & IORING_SETUP_DEFER_TASKRUN)) continue;   // DEFER_TASKRUN excludes SQPOLL
            p = {};
            p.flags = base | extra;
            if (o.sqpoll) p.sq_thread_idle = 2000;
            init = io_uring_queue_init_params(depth, &ring, &p);
            if (init != -EINVAL) {
                res.ring_flags = p.flags;
                break;
            }
        }
        if (init < 0) {
            res.error = fmt::format("io_uring_queue_init: {}", std::strerror(-init));
            return res;
        }
        struct RingGuard {
            io_uring* r;
            ~RingGuard() { io_uring_queue_exit(r); }
        } guard{&ring};
        std::vector<iovec> iov(depth);
        for (unsigned i = 0; i < depth; ++i) iov[i] = {slots[i].buf, o.bs};
        const bool fixed_bufs = o.fixedbufs && io_uring_register_buffers(&ring, iov.data(), depth) == 0;
        const bool fixed_file = o.registerfiles && io_uring_register_files(&ring, &s.fd, 1) == 0;
        const int fd = fixed_file ? 0 : s.fd;
        unsigned inflight = 0;
        std::vector<io_uring_cqe*> cqes(depth);
        bool failed = false;
        for (;;) {
            const auto t = now_ns();
            const bool stopping = failed || should_stop(t);
            while (!stopping && !free_slots.empty() && !pat.exhausted()) {
                io_uring_sqe* sqe = io_uring_get_sqe(&ring);
                if (!sqe) break;
                unsigned idx = free_slots.back();
                free_slots.pop_back();
                Slot& sl = slots[idx];
                prepare(sl);
                if (fixed_bufs) {
                    if (sl.write) io_uring_prep_write_fixed(sqe, fd, sl.buf, o.bs, sl.offset, static_cast<int>(idx));
                    else io_uring_prep_read_fixed(sqe, fd, sl.buf, o.bs, sl.offset, static_cast<int>(idx));
                } else {
                    if (sl.write) io_uring_prep_write(sqe, fd, sl.buf, o.bs, sl.offset);
                    else io_uring_prep_read(sqe, fd, sl.buf, o.bs, sl.offset);
                }
                if (fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
                io_uring_sqe_set_data64(sqe, idx);
                ++inflight;
            }
            if (inflight == 0) break;
            int r = io_uring_submit_and_wait(&ring, 1);
            if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
                res.error = fmt::format("io_uring_submit: {}", std::strerror(-r));
                break;
            }
            unsigned n = io_uring_peek_batch_cqe(&ring, cqes.data(), depth);
            const auto tc = now_ns();
            for (unsigned i = 0; i < n; ++i) {
                auto idx = static_cast<unsigned>(io_uring_cqe_get_data64(cqes[i]));
                if (!complete(slots[idx], cqes[i]->res, tc)) failed = true;
                free_slots.push_back(idx);
            }
            io_uring_cq_advance(&ring, n);
            inflight -= n;
        }
    }
    const std::uint64_t t_end = now_ns();
    res.seconds = measuring ? static_cast<double>(t_end - t_measure) / 1e9 : 0;
    res.usr = thread_cpu(true) - usr0;
    res.sys = thread_cpu(false) - sys0;
    return res;
}

}  // namespace devemu::uring
