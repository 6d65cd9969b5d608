#pragma once
// devemu bench --paths: one backing, every way to reach it, measured in one run. The backing (a zram device devemu
// makes and fills with random data, or a device or file the user names) is brought up behind each path at once —
// the device itself (raw), LIO fileio / iblock / devemu's `user` handler through tcm_loop, a LIO iSCSI LUN through
// this kernel's own initiator (open-iscsi to 127.0.0.1), the kernel's USB mass storage and devemu's userspace one on
// dummy_hcd, Debian's tgtd (bs_rdwr and bs_aio) through the same initiator — and every workload runs on every path in
// alternating rounds (devemu's io_uring engine on each disk), so the machine's drift hits all paths alike. Everything
// is made through the unit kinds in a private state dir and its journals, so it is removed on success, on error and on
// Ctrl-C (and a crash leaves journals `devemu down --all` replays in that dir).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "uring/options.hpp"

namespace devemu::bench {

// The path names, in the order the table shows them.
[[nodiscard]] const std::vector<std::string>& all_paths();

struct Case {
    uring::Rw rw = uring::Rw::randread;
    std::uint32_t bs = 4096;
    unsigned iodepth = 32;
};
// "randread:4k:32" (RW:BS:QD).
[[nodiscard]] core::Result<Case> parse_case(const std::string& s);
[[nodiscard]] std::string case_name(const Case& c);
// What runs when none is named: 4k random reads and writes at QD32, 128k sequential reads at QD8.
[[nodiscard]] std::vector<Case> default_cases();

struct PathsRequest {
    std::vector<std::string> paths;   // from all_paths()
    std::string backing;              // zram:SIZE, a block device, or a file
    std::vector<Case> cases;
    uring::BenchOptions base;         // runtime, numjobs, direct, …: the same on every path
    unsigned rounds = 3;
    std::string baseline;             // the path the ratios are to; empty: raw when measured, else the first
    bool verify = false;              // after measuring: a crc32c write/read-back pass on every path
    bool split_cpus = false;          // the engine on CPU 0, the device's side on the others (bench/placement.hpp)
    std::filesystem::path state_dir;  // private: the units of the run (removed at the end)
};

struct PathsOutcome {
    nlohmann::json json;   // {"backing", "cases": [{"case", "paths": [{"path", "iops", …}]}], …}
    std::string text;      // the table
    bool failed = false;   // a verify pass failed (named in text and json)
};

// What can be refused before anything is made or a VM booted: unknown paths, no case, a baseline not measured, a
// malformed zram:SIZE / ext4:SIZE, iblock on a file.
[[nodiscard]] core::Status check_request(const PathsRequest& r);
// zram:SIZE and ext4:SIZE: a backing the run makes (and fills), also in a VM; anything else is the user's.
[[nodiscard]] bool made_here(const std::string& backing);

// In a VM of the distribution kernel (the host's root as an overlay): the same command with `argv` (devemu bench's
// own arguments), the plot written through a share into `svg`'s directory. The command's exit status.
struct VmPlace {
    std::string kernel;
    std::filesystem::path cache_dir, state_dir;
    bool verbose = false;
};
[[nodiscard]] core::Result<int> run_paths_in_vm(const PathsRequest& r, const std::vector<std::string>& argv, const std::string& svg, const VmPlace& where);

// Why this kernel cannot serve `paths` (a module or tool that is missing), or "" when it can.
[[nodiscard]] std::string missing_here(const std::vector<std::string>& paths);
[[nodiscard]] core::Result<PathsOutcome> run_paths(const PathsRequest& r);
// From a run's JSON: the table (one block per case, a row per path), and bars per case (IOPS, one bar per path,
// ratio to the baseline above each) for a browser.
[[nodiscard]] std::string paths_table(const nlohmann::json& result);
[[nodiscard]] std::string paths_svg(const nlohmann::json& result);

}  // namespace devemu::bench
