// The loopback LUN's request-size cap that iblock on zram hands to sd (lio::lift_transfer_cap), on a fake /sys.
#include <catch2/catch.hpp>

#include "core/fs.hpp"
#include "lio/disk_limits.hpp"
#include "temp_dir.hpp"

using namespace devemu;

namespace {
void disk(const TempDir& d, const std::string& sd, const std::string& cur, const std::string& hw, const std::string& opt)
{
    d.write("block/" + sd + "/queue/max_sectors_kb", cur + "\n");
    d.write("block/" + sd + "/queue/max_hw_sectors_kb", hw + "\n");
    d.write("block/" + sd + "/queue/optimal_io_size", opt + "\n");
}
std::string cap(const TempDir& d, const std::string& sd) { return core::read_attr(d.root / "block" / sd / "queue/max_sectors_kb").value_or("?"); }
}  // namespace

TEST_CASE("lift_transfer_cap raises only a cap that is the target's small optimal-size hint")
{
    TempDir d;
    lio::Roots roots;
    roots.sys = d.root;
    disk(d, "sda", "4", "32764", "4096");        // iblock on zram: one page
    disk(d, "sdb", "1024", "32764", "1048576");  // fileio's 1 MiB hint: fine as it is
    disk(d, "sdc", "4", "32764", "0");           // no hint: the cap is someone else's choice
    disk(d, "sdd", "64", "120", "65536");         // a small controller limit: no more than max_hw_sectors_kb
    auto lines = lio::lift_transfer_cap({{"0", "/dev/sda"}, {"1", "/dev/sdb"}, {"2", "/dev/sdc"}, {"3", "/dev/sdd"}, {"4", "/dev/sdz"}}, roots);
    CHECK(cap(d, "sda") == "1280");
    CHECK(cap(d, "sdb") == "1024");
    CHECK(cap(d, "sdc") == "4");
    CHECK(cap(d, "sdd") == "120");
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "LUN 0 /dev/sda: max_sectors_kb 4 -> 1280 (the target hinted 4 KiB as optimal)");
    CHECK(lines[1].starts_with("LUN 3 /dev/sdd: max_sectors_kb 64 -> 120"));
}
