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

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

double thread_cpu(bool user)
{
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    return seconds(user ? ru.ru_utime : ru.ru_stime);
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

// One job's run: its buffers, the pattern, the clock (ramp, deadline) and the counts; the synchronous engine
// (pread/pwrite) and the io_uring one share prepare/complete.
class Job {
public:
    explicit Job(const JobSpec& s) : s_(s), o_(*s.opt), pat_(s) {}

    JobResult run()
    {
        if (pat_.blocks == 0) return failed("the region is smaller than one block");
        const bool uring = o_.engine == "uring";
        depth_ = uring ? o_.iodepth : 1;
        if (!allocate()) return failed(fmt::format("cannot allocate {} buffers of {} bytes (lower --iodepth or --bs)", depth_, o_.bs));
        t_start_ = t_measure_ = now_ns();
        ramp_end_ = t_start_ + static_cast<std::uint64_t>(o_.ramp_time * 1e9);
        deadline_ = o_.runtime > 0 ? ramp_end_ + static_cast<std::uint64_t>(o_.runtime * 1e9) : UINT64_MAX;
        measuring_ = o_.ramp_time <= 0;
        usr0_ = thread_cpu(true), sys0_ = thread_cpu(false);
        res_.proc0 = cpu_seconds(RUSAGE_SELF);
        if (uring) run_uring();
        else run_sync();
        res_.seconds = measuring_ ? static_cast<double>(now_ns() - t_measure_) / 1e9 : 0;
        res_.usr = thread_cpu(true) - usr0_;
        res_.sys = thread_cpu(false) - sys0_;
        res_.proc1 = cpu_seconds(RUSAGE_SELF);
        return res_;
    }

private:
    JobResult failed(std::string why)
    {
        res_.error = std::move(why);
        return res_;
    }

    bool allocate()
    {
        void* mem = nullptr;
        if (::posix_memalign(&mem, 4096, std::size_t{depth_} * o_.bs) != 0) return false;
        mem_.reset(static_cast<char*>(mem));
        slots_.resize(depth_);
        for (unsigned i = 0; i < depth_; ++i) {
            slots_[i].buf = mem_.get() + std::size_t{i} * o_.bs;
            // Random, incompressible contents, like fio's buffers: a constant pattern would let zram (or any
            // compressing/deduplicating store) skip the work and flatter the numbers.
            std::uint64_t x = 0x243f6a8885a308d3ULL ^ (std::uint64_t{s_.index} << 32) ^ i ^ now_ns();
            for (std::uint32_t k = 0; k + 8 <= o_.bs; k += 8) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                std::memcpy(slots_[i].buf + k, &x, 8);
            }
            free_slots_.push_back(depth_ - 1 - i);
        }
        return true;
    }

    void start_measuring(std::uint64_t t)
    {
        measuring_ = true;
        t_measure_ = t;
        res_.read_lat = {};
        res_.write_lat = {};
        res_.read_ios = res_.write_ios = 0;
        usr0_ = thread_cpu(true);
        sys0_ = thread_cpu(false);
        res_.proc0 = cpu_seconds(RUSAGE_SELF);
    }

    bool complete(Slot& sl, long ret, std::uint64_t t)
    {
        if (ret != static_cast<long>(o_.bs)) {
            res_.error = fmt::format("{} at offset {}: {}", sl.write ? "write" : "read", sl.offset,
                                     ret < 0 ? std::strerror(static_cast<int>(-ret)) : fmt::format("short ({} bytes)", ret));
            return false;
        }
        if (s_.phase == Phase::verify_read && !res_.verify_error)
            if (auto bad = verify_check(sl.buf, o_.bs, sl.offset, kVerifySeed)) res_.verify_error = *bad;
        if (!measuring_ && t >= ramp_end_) start_measuring(t);
        if (measuring_) {
            (sl.write ? res_.write_lat : res_.read_lat).record(t - sl.start);
            ++(sl.write ? res_.write_ios : res_.read_ios);
        }
        if (s_.done_ios) s_.done_ios->fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    void prepare(Slot& sl)
    {
        auto [off, write] = pat_.next();
        sl.offset = off;
        sl.write = write;
        if (write && s_.phase == Phase::verify_write) verify_fill(sl.buf, o_.bs, off, kVerifySeed);
        sl.start = now_ns();
    }

    bool should_stop(std::uint64_t t) { return t >= deadline_ || s_.stop->load(std::memory_order_relaxed) || pat_.exhausted(); }

    void run_sync()
    {
        while (!should_stop(now_ns())) {
            Slot& sl = slots_[0];
            prepare(sl);
            long r = sl.write ? ::pwrite(s_.fd, sl.buf, o_.bs, static_cast<off_t>(sl.offset)) : ::pread(s_.fd, sl.buf, o_.bs, static_cast<off_t>(sl.offset));
            if (r < 0) r = -errno;
            if (!complete(sl, r, now_ns())) break;
        }
    }

    // One thread submits and reaps: let completions run at our next io_uring_enter instead of interrupting us (no
    // IPIs, no task_work signals). Newer kernels only: probe, newest first, fall back on EINVAL.
    int init_ring(io_uring& ring)
    {
        io_uring_params p{};
        unsigned base = 0;
        if (o_.sqpoll) base |= IORING_SETUP_SQPOLL;
        if (o_.hipri) base |= IORING_SETUP_IOPOLL;
        const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_COOP_TASKRUN, 0};
        int init = -EINVAL;
        for (unsigned extra : tries) {
            if (o_.sqpoll && (extra & IORING_SETUP_DEFER_TASKRUN)) continue;   // DEFER_TASKRUN excludes SQPOLL
            p = {};
            p.flags = base | extra;
            if (o_.sqpoll) p.sq_thread_idle = 2000;
            init = io_uring_queue_init_params(depth_, &ring, &p);
            if (init != -EINVAL) {
                res_.ring_flags = p.flags;
                break;
            }
        }
        return init;
    }

    void submit(io_uring_sqe* sqe, unsigned idx, int fd)
    {
        Slot& sl = slots_[idx];
        prepare(sl);
        if (fixed_bufs_) {
            if (sl.write) io_uring_prep_write_fixed(sqe, fd, sl.buf, o_.bs, sl.offset, static_cast<int>(idx));
            else io_uring_prep_read_fixed(sqe, fd, sl.buf, o_.bs, sl.offset, static_cast<int>(idx));
        } else {
            if (sl.write) io_uring_prep_write(sqe, fd, sl.buf, o_.bs, sl.offset);
            else io_uring_prep_read(sqe, fd, sl.buf, o_.bs, sl.offset);
        }
        if (fixed_file_) sqe->flags |= IOSQE_FIXED_FILE;
        // The target takes no non-blocking I/O (or --async=on): io_uring hands every I/O to its workers anyway, and
        // adds a worker for a queued one only when it is marked async; unmarked, one worker does them all in turn.
        if (s_.async) sqe->flags |= IOSQE_ASYNC;
        io_uring_sqe_set_data64(sqe, idx);
    }

    void run_uring()
    {
        io_uring ring{};
        if (int init = init_ring(ring); init < 0) {
            res_.error = fmt::format("io_uring_queue_init: {}", std::strerror(-init));
            return;
        }
        struct RingGuard {
            io_uring* r;
            ~RingGuard() { io_uring_queue_exit(r); }
        } guard{&ring};
        std::vector<iovec> iov(depth_);
        for (unsigned i = 0; i < depth_; ++i) iov[i] = {slots_[i].buf, o_.bs};
        // Fixed buffers and files are optimisations: a kernel that refuses them runs the plain path.
        fixed_bufs_ = s_.fixedbufs && io_uring_register_buffers(&ring, iov.data(), depth_) == 0;
        fixed_file_ = s_.registerfiles && io_uring_register_files(&ring, &s_.fd, 1) == 0;
        res_.fixedbufs = fixed_bufs_, res_.registerfiles = fixed_file_;
        const int fd = fixed_file_ ? 0 : s_.fd;
        unsigned inflight = 0;
        std::vector<io_uring_cqe*> cqes(depth_);
        bool failed = false;
        for (;;) {
            const bool stopping = failed || should_stop(now_ns());
            while (!stopping && !free_slots_.empty() && !pat_.exhausted()) {
                io_uring_sqe* sqe = io_uring_get_sqe(&ring);
                if (!sqe) break;
                const unsigned idx = free_slots_.back();
                free_slots_.pop_back();
                submit(sqe, idx, fd);
                ++inflight;
            }
            if (inflight == 0) break;
            int r = io_uring_submit_and_wait(&ring, 1);
            if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
                res_.error = fmt::format("io_uring_submit: {}", std::strerror(-r));
                break;
            }
            unsigned n = io_uring_peek_batch_cqe(&ring, cqes.data(), depth_);
            const auto tc = now_ns();
            for (unsigned i = 0; i < n; ++i) {
                auto idx = static_cast<unsigned>(io_uring_cqe_get_data64(cqes[i]));
                if (!complete(slots_[idx], cqes[i]->res, tc)) failed = true;
                free_slots_.push_back(idx);
            }
            io_uring_cq_advance(&ring, n);
            inflight -= n;
        }
    }

    const JobSpec& s_;
    const BenchOptions& o_;
    Pattern pat_;
    JobResult res_;
    unsigned depth_ = 1;
    std::unique_ptr<char, decltype(&std::free)> mem_{nullptr, &std::free};
    std::vector<Slot> slots_;
    std::vector<unsigned> free_slots_;
    std::uint64_t t_start_ = 0, t_measure_ = 0, ramp_end_ = 0, deadline_ = 0;
    bool measuring_ = false;
    double usr0_ = 0, sys0_ = 0;
    bool fixed_bufs_ = false, fixed_file_ = false;
};

}  // namespace

double cpu_seconds(int who)
{
    rusage ru{};
    getrusage(who, &ru);
    return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

JobResult run_job(const JobSpec& s)
{
    return Job(s).run();
}

}  // namespace devemu::uring
