#include "uring/options.hpp"

#include <fmt/format.h>

#include <cstdlib>

#include "core/text.hpp"

namespace devemu::uring {

using core::Errc;

const std::vector<OptionSpec>& option_table()
{
    static const std::vector<OptionSpec> t = {
        {"rw", "choice", "randread", "I/O pattern", "read,write,randread,randwrite,randrw"},
        {"rwmixread", "uint", "50", "percentage of reads with --rw=randrw", ""},
        {"bs", "size", "4k", "block size", ""},
        {"iodepth", "uint", "32", "I/Os in flight per job", ""},
        {"numjobs", "uint", "1", "threads, each with its own ring", ""},
        {"size", "size", "0", "bytes per job (0: the whole target)", ""},
        {"runtime", "seconds", "0", "seconds to run (0: until size is done)", ""},
        {"time_based", "bool", "false", "keep going until runtime, wrapping around", ""},
        {"direct", "bool", "true", "O_DIRECT", ""},
        {"ramp_time", "seconds", "0", "seconds of I/O before statistics count", ""},
        {"fixedbufs", "bool", "true", "registered buffers (io_uring)", ""},
        {"registerfiles", "bool", "true", "registered file (io_uring)", ""},
        {"sqpoll", "bool", "false", "kernel submission-queue polling thread", ""},
        {"hipri", "bool", "false", "polled completions (devices with poll queues)", ""},
        {"engine", "choice", "uring", "I/O engine", "uring,psync"},
        {"async", "choice", "auto",
         "mark every I/O async (IOSQE_ASYNC, fio's force_async=1). auto: on a target that takes no non-blocking I/O "
         "(zram and other bio-based devices: io_uring hands every I/O to its workers, and only marked ones run on "
         "several at once), probe both ways first (2 x 150 ms each) and run the faster", "auto,on,off"},
        {"verify", "bool", "false", "write blocks with a header + crc32c and check them on read", ""},
        {"fill", "bool", "false",
         "first write the whole target once with random data, so reads return data that is really there (an unwritten zram "
         "or a sparse hole reads zeros without touching memory)", ""},
        {"force", "bool", "false", "write to a block device that holds data", ""},
        {"json", "bool", "false", "machine-readable result, fio's field names", ""},
        {"compare-fio", "bool", "false", "run fio's io_uring engine on the same job, alternating, and print ratios", ""},
        {"repeat", "uint", "3", "runs per side with --compare-fio, rounds with --paths (medians)", ""},
        {"batch", "uint", "0", "submissions per io_uring_enter (0: iodepth/4)", ""},
        {"sweep", "string", "", "a matrix: --sweep bs=4k,64k,1M iodepth=1,8,32 (3 s per point unless --runtime)", ""},
        {"svg", "string", "", "with --sweep: IOPS and p99 latency vs queue depth; with --paths: IOPS per path; an SVG plot", ""},
    };
    return t;
}

std::string help_text()
{
    std::string out =
        "devemu bench TARGET [options]\n\n"
        "TARGET: a file (created at --size if absent), a block device (refused when it holds data unless --force),\n"
        "zram:SIZE[:ALGO] (devemu creates the device and removes it afterwards).\n\nOptions (fio's names):\n";
    for (auto& o : option_table()) {
        out += fmt::format("  --{:<14} {}", o.name, o.help);
        if (*o.allowed) out += fmt::format(" [{}]", o.allowed);
        out += fmt::format(" (default {})\n", o.dflt);
    }
    out += "\nEvery path to one backing (devemu bench --paths LIST BACKING [options]):\n"
           "  --paths LIST       raw,fileio,iblock,user,iscsi,iscsi-user,tgt-rdwr,tgt-aio,usb,usb-user, or all:\n"
           "                     the backing is brought up behind each at once and every case runs on every path,\n"
           "                     alternating (--repeat rounds)\n"
           "  --case RW:BS:QD    a workload (repeat it for several; default randread:4k:32 randwrite:4k:32 read:128k:8,\n"
           "                     or the one --rw/--bs/--iodepth name)\n"
           "  --baseline PATH    the path the ratio column is to (default raw when measured, else the first)\n"
           "  --verify           afterwards, write 8 MiB with crc32c headers through each path and read it back\n"
           "  --split-cpus       the initiator's side on CPU 0, the device's side on the others, as two machines would\n"
           "                     have them: the engine there; devemu's handlers and USB servers, tgtd, f_mass_storage's\n"
           "                     and LIO iSCSI's threads here (softirqs and kworkers stay where the kernel puts them)\n"
           "  --vm / --in-vm     run it in a VM of the distribution kernel (taken by itself when this kernel lacks LIO,\n"
           "                     dummy_hcd or the initiator); BACKING is then zram:SIZE or ext4:SIZE\n"
           "  BACKING            zram:SIZE (a zram device), ext4:SIZE (a file on ext4 on zram: buffered paths then read the\n"
           "                     page cache without sleeping), a block device or a file; the first two are filled with random\n"
           "                     data before measuring and removed afterwards\n"
           "  Runtime 5 s per run unless --runtime. Everything it brought up is removed at the end, also on Ctrl-C.\n"
           "\nExamples:\n  devemu bench zram:1G --rw=randread --bs=4k --iodepth=32 --runtime=10 --compare-fio\n"
           "  devemu bench /tmp/f --size=256M --rw=write --verify\n"
           "  devemu bench --paths all zram:512M --repeat 3 --svg paths.svg\n";
    return out;
}

const char* to_string(Rw rw)
{
    switch (rw) {
    case Rw::read: return "read";
    case Rw::write: return "write";
    case Rw::randread: return "randread";
    case Rw::randwrite: return "randwrite";
    case Rw::randrw: return "randrw";
    }
    return "?";
}
bool is_random(Rw rw) { return rw == Rw::randread || rw == Rw::randwrite || rw == Rw::randrw; }
bool writes(Rw rw) { return rw == Rw::write || rw == Rw::randwrite || rw == Rw::randrw; }

namespace {

std::unexpected<core::Error> bad(const std::string& what, const std::string& fix = {})
{
    return core::fail(Errc::invalid_input, what, "devemu bench", fix);
}

// Sets option `a` (its table entry `spec`) from `value` in `o`.
core::Status set_option(BenchOptions& o, const std::string& a, const std::string& value, const OptionSpec* spec)
{
    auto as_bool = [&](bool& dst) -> core::Status {
        if (value == "1" || value == "true") dst = true;
        else if (value == "0" || value == "false") dst = false;
        else return bad(fmt::format("--{}={} is not 0/1", a, value));
        return {};
    };
    auto as_uint = [&](auto& dst, unsigned long min, unsigned long max) -> core::Status {
        char* end = nullptr;
        unsigned long v = std::strtoul(value.c_str(), &end, 10);
        if (value.empty() || *end || v < min || v > max) return bad(fmt::format("--{}={} is not a whole number in {}..{}", a, value, min, max));
        dst = static_cast<std::remove_reference_t<decltype(dst)>>(v);
        return {};
    };
    auto as_seconds = [&](double& dst) -> core::Status {
        std::string v = value;
        if (v.ends_with("s")) v.pop_back();
        char* end = nullptr;
        dst = std::strtod(v.c_str(), &end);
        if (v.empty() || *end || dst < 0) return bad(fmt::format("--{}={} is not a number of seconds", a, value));
        return {};
    };
    if (a == "rw") {
        bool ok = false;
        for (Rw r : {Rw::read, Rw::write, Rw::randread, Rw::randwrite, Rw::randrw})
            if (value == to_string(r)) o.rw = r, ok = true;
        if (!ok) return bad("--rw=" + value + " is not one of " + spec->allowed);
    } else if (a == "engine") {
        if (value != "uring" && value != "psync") return bad("--engine=" + value + " is not uring or psync");
        o.engine = value;
    } else if (a == "async") {
        if (value != "auto" && value != "on" && value != "off") return bad("--async=" + value + " is not one of " + spec->allowed);
        o.async = value;
    } else if (a == "bs" || a == "size") {
        auto n = core::parse_size(value);
        if (!n || (a == "bs" && (*n < 512 || *n % 512 || *n > (16u << 20)))) return bad(fmt::format("--{}={} is not a valid size", a, value), "e.g. --bs=4k");
        if (a == "bs") o.bs = static_cast<std::uint32_t>(*n);
        else o.size = *n;
    } else if (a == "rwmixread") DEVEMU_CHECK(as_uint(o.rwmixread, 0, 100));
    else if (a == "iodepth") DEVEMU_CHECK(as_uint(o.iodepth, 1, 4096));
    else if (a == "numjobs") DEVEMU_CHECK(as_uint(o.numjobs, 1, 256));
    else if (a == "repeat") DEVEMU_CHECK(as_uint(o.repeat, 1, 50));
    else if (a == "batch") DEVEMU_CHECK(as_uint(o.batch, 0, 4096));
    else if (a == "runtime") DEVEMU_CHECK(as_seconds(o.runtime));
    else if (a == "ramp_time") DEVEMU_CHECK(as_seconds(o.ramp_time));
    else if (a == "time_based") DEVEMU_CHECK(as_bool(o.time_based));
    else if (a == "direct") DEVEMU_CHECK(as_bool(o.direct));
    else if (a == "fixedbufs") DEVEMU_CHECK(as_bool(o.fixedbufs));
    else if (a == "registerfiles") DEVEMU_CHECK(as_bool(o.registerfiles));
    else if (a == "sqpoll") DEVEMU_CHECK(as_bool(o.sqpoll));
    else if (a == "hipri") DEVEMU_CHECK(as_bool(o.hipri));
    else if (a == "verify") DEVEMU_CHECK(as_bool(o.verify));
    else if (a == "fill") DEVEMU_CHECK(as_bool(o.fill));
    else if (a == "force") DEVEMU_CHECK(as_bool(o.force));
    else if (a == "json") DEVEMU_CHECK(as_bool(o.json));
    else if (a == "compare-fio") DEVEMU_CHECK(as_bool(o.compare_fio));
    else if (a == "sweep") {
        if (value.find('=') == std::string::npos) return bad("--sweep " + value + " is not bs=LIST or iodepth=LIST", "e.g. --sweep bs=4k,64k iodepth=1,8,32");
        o.sweep.push_back(value);
    } else if (a == "svg") o.svg = value;
    return {};
}

}  // namespace

core::Result<BenchOptions> parse_options(const std::vector<std::string>& args)
{
    BenchOptions o;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string a = args[i];
        if (!a.starts_with("--")) {
            if (a.find('=') != std::string::npos && !o.sweep.empty()) {   // further sweep axes
                o.sweep.push_back(a);
                continue;
            }
            if (!o.target.empty()) return bad("two targets given: " + o.target + " and " + a, "bench one target at a time");
            o.target = a;
            continue;
        }
        a = a.substr(2);
        std::string value;
        bool has_value = false;
        if (auto eq = a.find('='); eq != std::string::npos) value = a.substr(eq + 1), a = a.substr(0, eq), has_value = true;
        const OptionSpec* spec = nullptr;
        for (auto& s : option_table())
            if (a == s.name) spec = &s;
        if (!spec) return bad("unknown option --" + a, "see devemu bench --help");
        const std::string kind = spec->kind;
        if (!has_value) {
            if (kind == "bool") value = "1";
            else if (a == "sweep" && i + 1 < args.size()) value = args[++i];
            else if (i + 1 < args.size()) value = args[++i];
            else return bad("--" + a + " needs a value");
        }
        DEVEMU_CHECK(set_option(o, a, value, spec));
    }
    if (o.target.empty()) return bad("no target given", "devemu bench zram:1G, a file, or a block device");
    if (o.time_based && o.runtime <= 0) return bad("--time_based needs --runtime", "e.g. --runtime=10");
    if (o.verify && o.rw == Rw::randrw) return bad("--verify with --rw=randrw is not supported", "verify with --rw=write (writes then checks) or --rw=read (checks)");
    if (!o.svg.empty() && o.sweep.empty()) return bad("--svg goes with --sweep");
    if (!o.sweep.empty() && (o.compare_fio || o.verify)) return bad("--sweep runs a matrix of plain runs", "drop --compare-fio/--verify");
    if (o.batch == 0) o.batch = std::max(1u, o.iodepth / 4);
    return o;
}

std::vector<std::string> fio_argv(const BenchOptions& o, const std::string& filename)
{
    std::vector<std::string> a = {"fio", "--name=devemu-anchor", "--filename=" + filename, "--ioengine=io_uring",
                                  std::string("--rw=") + to_string(o.rw), fmt::format("--bs={}", o.bs),
                                  fmt::format("--iodepth={}", o.iodepth), fmt::format("--numjobs={}", o.numjobs),
                                  fmt::format("--direct={}", o.direct ? 1 : 0), "--group_reporting", "--output-format=json",
                                  fmt::format("--iodepth_batch_submit={}", o.batch), fmt::format("--iodepth_batch_complete_min={}", 1),
                                  "--norandommap", "--randrepeat=0"};
    if (o.rw == Rw::randrw) a.push_back(fmt::format("--rwmixread={}", o.rwmixread));
    if (o.size) a.push_back(fmt::format("--size={}", o.size));
    if (o.runtime > 0) a.push_back(fmt::format("--runtime={}", o.runtime));
    if (o.time_based) a.push_back("--time_based");
    if (o.ramp_time > 0) a.push_back(fmt::format("--ramp_time={}", o.ramp_time));
    if (o.fixedbufs) a.push_back("--fixedbufs");
    if (o.registerfiles) a.push_back("--registerfiles");
    if (o.sqpoll) a.push_back("--sqthread_poll");
    if (o.hipri) a.push_back("--hipri");
    if (o.async == "on") a.push_back("--force_async=1");   // auto is devemu's choice per target; fio has none
    return a;
}

}  // namespace devemu::uring
