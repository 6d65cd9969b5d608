#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "bench/paths.hpp"
#include "core/fs.hpp"
#include "temp_dir.hpp"
#include "lio/model.hpp"

using namespace devemu;

TEST_CASE("bench --paths: cases are RW:BS:QD, with fio's pattern names")
{
    auto c = bench::parse_case("randwrite:64k:8");
    REQUIRE(c);
    CHECK(c->rw == uring::Rw::randwrite);
    CHECK(c->bs == 65536);
    CHECK(c->iodepth == 8);
    CHECK(bench::case_name(*c) == "64 KiB randwrite QD8");
    for (auto bad : {"randread:4k", "sideways:4k:8", "read:1000:8", "read:4k:0", "read:4k:x", "read:4k:8:1", ""}) {
        INFO(bad);
        auto r = bench::parse_case(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().exit_code() == 2);
    }
    CHECK(bench::default_cases().size() == 3);
    CHECK(bench::all_paths().front() == "raw");
}

TEST_CASE("bench --paths refuses unknown paths and an empty list before making anything")
{
    bench::PathsRequest r;
    r.backing = "zram:64M";
    r.cases = bench::default_cases();
    r.paths = {"raw", "floppy"};
    auto out = bench::run_paths(r);
    REQUIRE_FALSE(out);
    CHECK(out.error().message().find("floppy") != std::string::npos);
    r.paths = {};
    CHECK_FALSE(bench::run_paths(r));
    r.paths = {"raw"};
    r.backing = "zram:1";
    CHECK_FALSE(bench::run_paths(r));   // too small to be a disk
    CHECK(bench::missing_here({"raw"}).empty());   // the device itself needs nothing of the kernel
}

TEST_CASE("the --paths plot has a bar per path and case, labelled with the ratio to raw")
{
    nlohmann::json j = {{"backing", "zram:1G"}, {"filled", true}, {"rounds", 3}, {"runtime", 5.0}};
    j["paths"] = {{{"path", "raw"}}, {{"path", "fileio"}}};
    j["cases"] = nlohmann::json::array();
    for (auto name : {"4 KiB randread QD32", "128 KiB read QD8"})
        j["cases"].push_back({{"case", name}, {"paths", {{{"path", "raw"}, {"iops", 1000.0}, {"ratio", 1.0}}, {{"path", "fileio"}, {"iops", 250.0}, {"ratio", 0.25}}}}});
    const auto svg = bench::paths_svg(j);
    std::size_t bars = 0;
    for (auto pos = svg.find("<title>"); pos != std::string::npos; pos = svg.find("<title>", pos + 1)) ++bars;
    CHECK(bars == 4);
    CHECK(svg.find("0.25x") != std::string::npos);
    CHECK(svg.find("128 KiB read QD8") != std::string::npos);
}

TEST_CASE("page_cache_resident counts a file's cached pages: all after a buffered write, none after they are dropped")
{
    TempDir t;
    const auto f = t.write("backing.img", std::string(64 << 10, 'x'));   // 16 pages, written through the page cache
    auto before = core::page_cache_resident(f);
    REQUIRE(before);
    CHECK(*before == 1.0);
    const int fd = ::open(f.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::fdatasync(fd) == 0);   // clean pages can be dropped
    REQUIRE(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
    ::close(fd);
    auto after = core::page_cache_resident(f);
    REQUIRE(after);
    CHECK(*after < 0.5);
    CHECK_FALSE(core::page_cache_resident(t.root));              // a directory
    CHECK_FALSE(core::page_cache_resident(t.root / "absent"));   // gone
    CHECK(core::page_cache_resident(t.write("empty", "")) == 1.0);
}

TEST_CASE("page_cache_resident counts past its first 1 GiB window, one page at a time")
{
    TempDir t;
    const auto f = t.root / "sparse.img";
    const int fd = ::open(f.c_str(), O_RDWR | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    constexpr off_t gib = 1 << 30;
    REQUIRE(::ftruncate(fd, gib + 8192) == 0);   // holes: nothing cached
    const std::string page(4096, 'p');
    REQUIRE(::pwrite(fd, page.data(), page.size(), 0) == 4096);     // one page in the first window
    REQUIRE(::pwrite(fd, page.data(), page.size(), gib) == 4096);   // one in the second
    ::close(fd);
    auto r = core::page_cache_resident(f);
    REQUIRE(r);
    CHECK(*r == Approx(2.0 / (262144 + 2)).epsilon(1e-9));
}

TEST_CASE("the --paths table says how much of a file backing was in the page cache, before and after the runs")
{
    nlohmann::json j = {{"backing", "ext4:512M"}, {"filled", true}, {"rounds", 3}, {"runtime", 5.0}, {"direct", true}, {"baseline", "fileio"}};
    j["paths"] = nlohmann::json::array();
    j["cases"] = nlohmann::json::array();
    j["page_cache"] = {{"file", "/m/disk.img"}, {"before", 1.0}, {"after", 0.875}};
    CHECK(bench::paths_table(j).find("page cache: 100% of /m/disk.img resident before the runs, 88% after\n") != std::string::npos);
    j["page_cache"] = nullptr;   // a block device: no such line
    CHECK(bench::paths_table(j).find("page cache") == std::string::npos);
}

TEST_CASE("a fileio backstore stays fileio on a block device (LIO's buffered path), block is iblock")
{
    profile::Backstore spec;
    spec.type = profile::BackstoreType::fileio;
    backing::Backing dev{backing::Kind::block, "/dev/zram0", 1 << 20, -1};
    CHECK(lio::plugin_for(spec, dev) == "fileio");
    spec.type = profile::BackstoreType::block;
    CHECK(lio::plugin_for(spec, dev) == "iblock");
    spec.type = profile::BackstoreType::zram;
    CHECK(lio::plugin_for(spec, dev) == "iblock");
}
