#pragma once
// devemu bench: resolve the target, run the jobs (one thread and ring each), report like fio, and with
// --compare-fio run fio's io_uring engine on the same target, alternating, and report medians side by side.
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "uring/options.hpp"

namespace devemu::uring {

struct Summary {
    double iops = 0, bw_bytes = 0, seconds = 0, cpu_seconds = 0;
    std::uint64_t ios = 0, lat_min = 0, lat_max = 0, p50 = 0, p99 = 0, p999 = 0;
    double lat_mean = 0;
    bool fixedbufs = false, registerfiles = false;   // what the rings took
    [[nodiscard]] double ios_per_cpu_second() const { return cpu_seconds > 0 ? static_cast<double>(ios) / cpu_seconds : 0; }
};

struct BenchOutcome {
    nlohmann::json json;        // fio-shaped result, or the comparison
    std::string text;           // what a person reads
    bool verify_failed = false;
};

[[nodiscard]] core::Result<BenchOutcome> run_bench(const BenchOptions& o);
// Writes the whole target once with random data (1 MiB writes, no two MiB alike), synced: what --fill does. A file
// that does not exist is made `size` bytes long first. With O_DIRECT, or with `cached` through the page cache, whose
// pages then stay there (clean).
[[nodiscard]] core::Status fill_device(const std::string& path, std::uint64_t size = 0, bool cached = false);
// SIGINT/SIGTERM set a flag every run checks (a run in progress ends with a partial result) instead of killing
// devemu: so whoever runs several (a sweep, --paths) can stop between them and tear down.
void install_stop_handler();
[[nodiscard]] bool interrupted();

}  // namespace devemu::uring
