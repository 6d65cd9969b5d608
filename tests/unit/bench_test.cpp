#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "backing/blockdev.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "uring/bench.hpp"
#include "uring/histogram.hpp"
#include "uring/options.hpp"
#include "uring/verify.hpp"
#include "temp_dir.hpp"

using namespace devemu;

TEST_CASE("bench options take fio's names and reject what fio would")
{
    auto o = uring::parse_options({"zram:1G", "--rw=randwrite", "--bs", "64k", "--iodepth=8", "--numjobs=2", "--runtime=5", "--time_based",
                                   "--direct=0", "--rwmixread=70", "--engine=psync", "--sqpoll"});
    REQUIRE(o);
    CHECK(o->target == "zram:1G");
    CHECK(o->rw == uring::Rw::randwrite);
    CHECK(o->bs == 65536);
    CHECK(o->iodepth == 8);
    CHECK(o->numjobs == 2);
    CHECK(o->runtime == 5);
    CHECK(o->time_based);
    CHECK_FALSE(o->direct);
    CHECK(o->rwmixread == 70);
    CHECK(o->engine == "psync");
    CHECK(o->sqpoll);
    CHECK(o->batch == 2);   // iodepth/4
    auto d = uring::parse_options({"/tmp/x"});
    REQUIRE(d);
    CHECK(d->rw == uring::Rw::randread);
    CHECK(d->fixedbufs);
    CHECK(d->registerfiles);

    for (auto bad : std::vector<std::vector<std::string>>{{"x", "--rw=sideways"}, {"x", "--bs=1000"}, {"x", "--iodepth=0"}, {"x", "--nope"},
                                                          {"x", "--time_based"}, {"x", "y"}, {"--rw=read"}, {"x", "--engine=aio"},
                                                          {"x", "--rwmixread=101"}, {"x", "--verify", "--rw=randrw"}}) {
        INFO(bad.back());
        auto r = uring::parse_options(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().exit_code() == 2);
    }
    auto fio = uring::fio_argv(*o, "/dev/zram9");
    auto has = [&](const std::string& a) { return std::find(fio.begin(), fio.end(), a) != fio.end(); };
    CHECK(has("--rw=randwrite"));
    CHECK(has("--bs=65536"));
    CHECK(has("--iodepth=8"));
    CHECK(has("--numjobs=2"));
    CHECK(has("--filename=/dev/zram9"));
    CHECK(has("--ioengine=io_uring"));
    CHECK(has("--time_based"));
    CHECK(has("--direct=0"));
    CHECK(has("--sqthread_poll"));
    // --async=auto is devemu's choice per target (fio has none): fio keeps its default; --async=on is fio's force_async
    CHECK(o->async == "auto");
    CHECK_FALSE(has("--force_async=1"));
    auto on = uring::parse_options({"/dev/zram9", "--async=on"});
    REQUIRE(on);
    auto fio_on = uring::fio_argv(*on, "/dev/zram9");
    CHECK(std::find(fio_on.begin(), fio_on.end(), "--force_async=1") != fio_on.end());
    CHECK_FALSE(uring::parse_options({"/dev/zram9", "--async=sometimes"}));
}

TEST_CASE("histogram buckets are monotonic and within ~3% of their value")
{
    std::uint64_t prev = 0;
    for (unsigned b = 1; b < uring::Histogram::kSub * uring::Histogram::kPowers; ++b) {
        auto e = uring::Histogram::upper_edge(b);
        REQUIRE(e > prev);
        prev = e;
    }
    for (std::uint64_t v : {0ull, 1ull, 31ull, 32ull, 33ull, 1000ull, 123456ull, 987654321ull, 1ull << 39}) {
        auto e = uring::Histogram::upper_edge(uring::Histogram::bucket_of(v));
        CHECK(e >= v);
        CHECK(static_cast<double>(e - v) <= 0.032 * static_cast<double>(v) + 1);
    }
}

TEST_CASE("histogram percentiles match known distributions")
{
    uring::Histogram u;
    for (std::uint64_t v = 1; v <= 100000; ++v) u.record(v);   // uniform 1..100000 ns
    CHECK(u.count() == 100000);
    CHECK(u.min() == 1);
    CHECK(u.max() == 100000);
    CHECK(u.mean() == Approx(50000.5));
    CHECK(u.percentile(50) == Approx(50000).epsilon(0.035));
    CHECK(u.percentile(99) == Approx(99000).epsilon(0.035));
    CHECK(u.percentile(99.9) == Approx(99900).epsilon(0.035));
    CHECK(u.percentile(100) == 100000);

    uring::Histogram e;   // exponential, mean 10 us: p50 = ln 2 * mean, p99 = ln 100 * mean
    std::mt19937_64 rng(42);
    std::exponential_distribution<double> dist(1.0 / 10000.0);
    for (int i = 0; i < 200000; ++i) e.record(static_cast<std::uint64_t>(dist(rng)));
    CHECK(static_cast<double>(e.percentile(50)) == Approx(6931).epsilon(0.05));
    CHECK(static_cast<double>(e.percentile(99)) == Approx(46052).epsilon(0.05));

    uring::Histogram a, b, both;
    for (std::uint64_t v = 0; v < 1000; ++v) (v % 2 ? a : b).record(v * 7), both.record(v * 7);
    a.merge(b);
    CHECK(a.count() == both.count());
    CHECK(a.percentile(90) == both.percentile(90));
}

TEST_CASE("verify blocks: header + crc32c catch changed, misplaced and foreign blocks")
{
    CHECK(uring::crc32c("123456789", 9) == 0xE3069283u);   // the standard check value for CRC-32C
    std::string blk(4096, '\0');
    uring::verify_fill(blk.data(), blk.size(), 8192, 7);
    CHECK_FALSE(uring::verify_check(blk.data(), blk.size(), 8192, 7));
    auto misplaced = uring::verify_check(blk.data(), blk.size(), 4096, 7);
    REQUIRE(misplaced);
    CHECK(misplaced->find("belongs at offset 8192") != std::string::npos);
    CHECK(uring::verify_check(blk.data(), blk.size(), 8192, 8));
    blk[1000] ^= 1;
    auto flipped = uring::verify_check(blk.data(), blk.size(), 8192, 7);
    REQUIRE(flipped);
    CHECK(flipped->find("crc32c") != std::string::npos);
    std::string zeros(4096, '\0');
    CHECK(uring::verify_check(zeros.data(), zeros.size(), 0, 7)->find("no verify header") != std::string::npos);
}

TEST_CASE("block-device safety on a real loop device, with and without a filesystem")
{
    const std::string img = "/tmp/devemu-safety-test.img";
    REQUIRE(core::run({"truncate", "-s", "16M", img}));
    auto lo = core::run({"losetup", "-f", "--show", img});
    REQUIRE(lo);
    REQUIRE(lo->exit_code == 0);
    const std::string dev(core::trim(lo->out));
    CHECK(backing::check_block_device_free(dev, false));
    CHECK(*backing::block_device_size(dev) == 16u << 20);
    auto mk = core::run({"mkfs.ext4", "-q", "-F", dev});
    REQUIRE(mk);
    REQUIRE(mk->exit_code == 0);
    auto refused = backing::check_block_device_free(dev, false);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().what.find("ext4") != std::string::npos);
    CHECK(refused.error().fix.find("--force") != std::string::npos);
    CHECK(backing::check_block_device_free(dev, true));
    (void)core::run({"losetup", "-d", dev});
    std::filesystem::remove(img);
    CHECK_FALSE(backing::check_block_device_free("/etc/hostname", false));
}

#include "uring/sweep.hpp"

TEST_CASE("sweep: axes make a matrix, the plot has a line per block size in each panel")
{
    auto base = uring::parse_options({"zram:1G", "--sweep", "bs=4k,64k", "iodepth=1,8,32"});
    REQUIRE(base);
    CHECK(base->sweep == std::vector<std::string>{"bs=4k,64k", "iodepth=1,8,32"});
    auto pts = uring::parse_sweep(base->sweep, *base);
    REQUIRE(pts);
    REQUIRE(pts->size() == 6);
    CHECK((*pts)[0].bs == 4096);
    CHECK((*pts)[5].bs == 65536);
    CHECK((*pts)[5].iodepth == 32);
    CHECK_FALSE(uring::parse_sweep({"numjobs=1,2"}, *base));
    CHECK_FALSE(uring::parse_sweep({"bs=1000"}, *base));
    CHECK_FALSE(uring::parse_options({"x", "--svg", "a.svg"}));   // --svg needs --sweep
    double iops = 1000;
    for (auto& p : *pts) p.iops = iops *= 2, p.p99 = static_cast<std::uint64_t>(iops);
    auto svg = uring::sweep_svg(*pts, "t");
    auto count = [&](const std::string& needle) {
        size_t n = 0;
        for (size_t pos = svg.find(needle); pos != std::string::npos; pos = svg.find(needle, pos + 1)) ++n;
        return n;
    };
    CHECK(svg.starts_with("<svg"));
    CHECK(count("<polyline") == 4);   // 2 block sizes x 2 panels
    CHECK(count("<circle") == 12);    // every point in both panels
    CHECK(svg.find("bs 64 KiB") != std::string::npos);
    CHECK(uring::sweep_table(*pts).find("64 KiB") != std::string::npos);
}

namespace {
std::uint64_t written_by_me()   // bytes this process has passed to write(2) and its kin (/proc/self/io wchar)
{
    std::ifstream in("/proc/self/io");
    std::string key;
    std::uint64_t v = 0;
    while (in >> key >> v)
        if (key == "wchar:") return v;
    return 0;
}
}  // namespace

TEST_CASE("fill_device writes a new file once, with random data, and through the page cache when asked")
{
    TempDir t;
    const auto f = t.root / "disk.img";
    constexpr std::uint64_t size = 4u << 20;
    const auto before = written_by_me();
    REQUIRE(uring::fill_device(f.string(), size, /*cached=*/true));
    const auto wrote = written_by_me() - before;
    CHECK(wrote >= size);
    CHECK(wrote < size + size / 2);   // once: not laid out with zeros first, not filled twice
    CHECK(std::filesystem::file_size(f) == size);
    CHECK(core::page_cache_resident(f) == 1.0);
    std::ifstream in(f, std::ios::binary);
    std::vector<char> mib(1 << 20);
    for (std::uint64_t off = 0; off < size; off += mib.size()) {
        in.read(mib.data(), static_cast<std::streamsize>(mib.size()));
        std::uint64_t first = 0;
        std::memcpy(&first, mib.data(), 8);
        CHECK(first == off);   // each MiB starts with its offset: no two alike
        CHECK(std::count(mib.begin(), mib.end(), '\0') < 64 * 1024);   // random, not zeros
    }
}
