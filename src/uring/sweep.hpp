#pragma once
// devemu bench --sweep bs=4k,64k,1M iodepth=1,8,32 TARGET --svg out.svg: the matrix, a table, and a plot a user
// can open in a browser (IOPS and p99 latency against queue depth, one line per block size).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "uring/options.hpp"

namespace devemu::uring {

struct SweepPoint {
    std::uint32_t bs;
    unsigned iodepth;
    double iops = 0, mbps = 0;
    std::uint64_t p50 = 0, p99 = 0;
};

// Axes from words like "bs=4k,64k" and "iodepth=1,8,32"; the rest of the options apply to every point.
[[nodiscard]] core::Result<std::vector<SweepPoint>> parse_sweep(const std::vector<std::string>& axes, const BenchOptions& base);
[[nodiscard]] core::Status run_sweep(const BenchOptions& base, std::vector<SweepPoint>& points);
[[nodiscard]] std::string sweep_svg(const std::vector<SweepPoint>& points, const std::string& title);
[[nodiscard]] std::string sweep_table(const std::vector<SweepPoint>& points);

}  // namespace devemu::uring
