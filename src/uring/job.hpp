#pragma once
// One benchmark job: a thread with its own ring (or plain pread/pwrite), a fixed set of slots prepared up front
// (buffers, offsets, timestamps: nothing is allocated on the I/O path), and its own histogram.
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "uring/histogram.hpp"
#include "uring/options.hpp"

namespace devemu::uring {

enum class Phase { normal, verify_write, verify_read };

struct JobSpec {
    int fd = -1;
    std::uint64_t region_off = 0, region_len = 0;
    const BenchOptions* opt = nullptr;
    Phase phase = Phase::normal;
    unsigned index = 0;
    bool async = false;   // IOSQE_ASYNC on every I/O
    bool fixedbufs = true, registerfiles = true;   // register the buffers / the file with the ring
    std::atomic<bool>* stop = nullptr;
    std::atomic<std::uint64_t>* done_ios = nullptr;   // for the progress line
};

struct JobResult {
    Histogram read_lat, write_lat;
    std::uint64_t read_ios = 0, write_ios = 0;
    double seconds = 0, usr = 0, sys = 0;   // this thread, measured period only (after ramp_time)
    double proc0 = 0, proc1 = 0;            // the process's CPU seconds (every thread, io_uring's workers too) then
    unsigned ring_flags = 0;   // what io_uring_setup accepted
    bool fixedbufs = false, registerfiles = false;   // what the ring took
    std::optional<std::string> verify_error;
    std::string error;
};

[[nodiscard]] JobResult run_job(const JobSpec& spec);
// User + system CPU seconds of getrusage(who): RUSAGE_SELF is every thread of the process, io_uring's workers (the
// iou-wrk threads that do the I/O the ring hands them) too; RUSAGE_CHILDREN what wait has collected from children.
[[nodiscard]] double cpu_seconds(int who);

}  // namespace devemu::uring
