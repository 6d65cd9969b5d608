#pragma once
// `devemu failover NAME`: fio with crc32c verify on a target's multipath device while devemu cuts and restores its
// paths (one at a time, round robin; at the end, when asked, all of them), and what each event did to the I/O: the
// time from the cut to the next completion, the longest stretch without one, the slowest I/O, how long multipathd
// took to reinstate the path; the errors the application saw and the verify mismatches fio found; each path's state
// over time (dmsetup status, every 100 ms), also as an SVG timeline.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "lio/record.hpp"

namespace devemu::lio {

struct FailoverOptions {
    std::size_t flaps = 10;
    std::chrono::milliseconds down_for{1000};   // each cut lasts this long
    std::chrono::milliseconds between{500};     // after the path is active in the map again, before the next cut
    std::chrono::milliseconds all_down{0};      // at the end, every path down this long (0: not done)
    std::chrono::seconds duration{0};           // no new cut after this long from the start (0: --flaps decides alone)
    std::string rw = "randwrite";
    std::string bs = "4k";
    unsigned iodepth = 8;
    std::filesystem::path scratch;              // fio's logs
    std::function<void(const std::string&)> progress;

    [[nodiscard]] static core::Result<FailoverOptions> from_json(const nlohmann::json& j);
    [[nodiscard]] nlohmann::json to_json() const;
};

struct FailoverEvent {
    std::size_t path = 0;        // 1-based; 0: every path
    double cut_s = 0, restored_s = 0, back_s = -1;   // seconds from the start; back: active in the map again (-1: never)
    double next_completion_ms = -1;   // from the cut to the next I/O completion (-1: none before the run ended)
    double longest_stall_ms = 0;      // the longest stretch without a completion, from the cut until the path is back
    double max_latency_ms = 0;        // the slowest I/O that completed in that window
    // The map failed the cut path (dmsetup status showed it F) before it was back. A cut shorter than it takes an
    // I/O to reach the path and fail (nothing was sent to it: a stalled guest, an idle path) fails over nothing.
    bool failed_in_map = false;
};

struct FailoverReport {
    std::string device;
    std::vector<std::string> paths;   // each path's disk in the map
    std::vector<FailoverEvent> events;
    std::vector<std::pair<double, std::vector<bool>>> timeline;   // (seconds, active per path)
    std::vector<std::pair<double, std::uint64_t>> completions;    // (seconds, completions in the 100 ms from then)
    std::uint64_t ios = 0, io_errors = 0, verify_mismatches = 0, total_err = 0;
    int fio_exit = 0;            // after devemu's SIGINT: not a verdict
    bool report_read = false;    // fio's JSON report was there
    double runtime_s = 0;

    [[nodiscard]] bool ok() const { return report_read && io_errors == 0 && verify_mismatches == 0 && total_err == 0; }

    [[nodiscard]] nlohmann::json to_json() const;
    // What `devemu failover` prints or relays: to_json() with the SVG, the verdict ("ok") and the lines.
    [[nodiscard]] nlohmann::json result_json() const;
    [[nodiscard]] std::vector<std::string> lines() const;
    [[nodiscard]] std::string svg() const;
};

// What a run cuts: the map, each path's disk (sdX, path order), and how path K (1-based) goes down and comes back.
// A restore may bring a new disk (a hot-plugged QEMU disk): `set` then updates `names`.
struct PathSet {
    std::string alias;
    std::vector<std::string> names;
    std::function<core::Status(std::size_t k, bool down, std::vector<std::string>& names)> set;
};

[[nodiscard]] core::Result<FailoverReport> run_failover(const TargetRecord& r, const FailoverOptions& o);
[[nodiscard]] core::Result<FailoverReport> run_failover(PathSet& paths, const FailoverOptions& o);

// fio's completion log (--write_lat_log with --log_unix_epoch: "epoch_ms, latency_ns, dir, bs, offset" per I/O)
// -> (completion ms, latency ms), sorted; and each event's numbers from it (pure: unit tests use them).
[[nodiscard]] std::vector<std::pair<double, double>> parse_lat_log(const std::string& text);
void measure_event(FailoverEvent& e, const std::vector<std::pair<double, double>>& done, double start_ms, double end_ms);
// Whether the timeline shows the event's path (every path: any path) failed from its cut until it was back.
[[nodiscard]] bool failed_in_map(const FailoverEvent& e, const std::vector<std::pair<double, std::vector<bool>>>& timeline);

}  // namespace devemu::lio
