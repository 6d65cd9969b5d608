#pragma once
// devemu bench options, with fio's names. One table (name, kind, default, help, allowed values) drives parsing,
// --help, the JSON echo of what ran, and the equivalent fio command line for --compare-fio.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace devemu::uring {

enum class Rw { read, write, randread, randwrite, randrw };

struct BenchOptions {
    std::string target;
    Rw rw = Rw::randread;
    unsigned rwmixread = 50;
    std::uint32_t bs = 4096;
    unsigned iodepth = 32;
    unsigned numjobs = 1;
    std::uint64_t size = 0;          // per job; 0: the whole target
    double runtime = 0;              // seconds; 0: until `size` is done
    bool time_based = false;
    bool direct = true;
    double ramp_time = 0;
    bool fixedbufs = true;           // on by default, like t/io_uring: they help
    bool registerfiles = true;
    bool sqpoll = false;
    bool hipri = false;
    std::string engine = "uring";    // uring | psync
    std::string async = "auto";      // auto | on | off: IOSQE_ASYNC on every I/O (auto: probed, on a target without nowait)
    bool verify = false;
    bool fill = false;               // write the whole target once with random data before measuring
    bool force = false;
    bool json = false;
    bool compare_fio = false;
    unsigned repeat = 3;             // alternating runs per side with --compare-fio
    std::uint64_t batch = 0;         // submissions per io_uring_enter; 0: iodepth/4 (at least 1)
    std::vector<std::string> sweep;  // "bs=4k,64k", "iodepth=1,8,32"
    std::string svg;                 // with --sweep: write the plot here
};

struct OptionSpec {
    const char* name;
    const char* kind;      // "size", "uint", "bool", "seconds", "choice", "string"
    const char* dflt;
    const char* help;
    const char* allowed;   // for choices, comma-separated
};

[[nodiscard]] const std::vector<OptionSpec>& option_table();
// Parses "--name=value" / "--name value" / "--flag" words (after the TARGET) into options.
[[nodiscard]] core::Result<BenchOptions> parse_options(const std::vector<std::string>& args);
[[nodiscard]] std::string help_text();
[[nodiscard]] const char* to_string(Rw rw);
[[nodiscard]] bool is_random(Rw rw);
[[nodiscard]] bool writes(Rw rw);
// The equivalent fio job (io_uring engine), for running the anchor on the same target.
[[nodiscard]] std::vector<std::string> fio_argv(const BenchOptions& o, const std::string& filename);

}  // namespace devemu::uring
