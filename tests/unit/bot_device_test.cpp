// The device side of Bulk-Only Transport (devemu's own mass-storage function): the thirteen host/device cases of
// BOT 1.0 §6.7 as the spec's table gives them, what each SCSI plan moves, READ FORMAT CAPACITIES, and the
// FunctionFS descriptors' bytes; and the profile's engine key.
#include <catch2/catch.hpp>

#include <linux/usb/functionfs.h>

#include <cstring>

#include "profile/profile.hpp"
#include "scsi/cdb.hpp"
#include "usb/bot_device.hpp"

using namespace devemu;
using namespace devemu::usb::bot;

namespace {
Cbw cbw(Dir d, std::uint32_t len) { return Cbw{7, len, len ? d : Dir::none, 0, {0x00}}; }
}  // namespace

TEST_CASE("the thirteen cases: transfer, halts, residue and phase errors as BOT 6.7 asks")
{
    struct Row {
        int n;
        Dir host;
        std::uint32_t h;
        Dir dev;
        std::uint32_t d;
        std::uint32_t transfer, residue;
        bool halt_in, halt_out, phase, execute;
    };
    const Row rows[] = {
        {1, Dir::none, 0, Dir::none, 0, 0, 0, false, false, false, true},
        {2, Dir::none, 0, Dir::in, 36, 0, 0, false, false, true, false},
        {3, Dir::none, 0, Dir::out, 512, 0, 0, false, false, true, false},
        {4, Dir::in, 512, Dir::none, 0, 0, 512, true, false, false, true},
        {5, Dir::in, 1024, Dir::in, 512, 512, 512, true, false, false, true},
        {6, Dir::in, 512, Dir::in, 512, 512, 0, false, false, false, true},
        {7, Dir::in, 256, Dir::in, 512, 256, 0, false, false, true, true},
        {8, Dir::in, 512, Dir::out, 512, 0, 0, true, false, true, false},
        {9, Dir::out, 512, Dir::none, 0, 0, 512, false, true, false, true},
        {10, Dir::out, 512, Dir::in, 512, 0, 0, false, true, true, false},
        {11, Dir::out, 1024, Dir::out, 512, 512, 512, false, true, false, true},
        {12, Dir::out, 512, Dir::out, 512, 512, 0, false, false, false, true},
        {13, Dir::out, 256, Dir::out, 512, 256, 0, false, false, true, false},
    };
    for (auto& r : rows) {
        INFO("case " << r.n);
        const auto a = plan_transfer(cbw(r.host, r.h), Intent{r.dev, r.d}, true);
        CHECK(a.transfer == r.transfer);
        CHECK(a.residue == r.residue);
        CHECK(a.halt_in == r.halt_in);
        CHECK(a.halt_out == r.halt_out);
        CHECK(a.phase_error == r.phase);
        CHECK(a.execute == r.execute);
        CHECK(a.pad == 0);
        CHECK(a.discard == 0);
    }
}

TEST_CASE("stall = false pads data-in and swallows surplus data-out instead of halting")
{
    auto a = plan_transfer(cbw(Dir::in, 1024), Intent{Dir::in, 512}, false);
    CHECK_FALSE(a.halt_in);
    CHECK(a.pad == 512);
    CHECK(a.residue == 512);
    a = plan_transfer(cbw(Dir::out, 1024), Intent{Dir::none, 0}, false);
    CHECK_FALSE(a.halt_out);
    CHECK(a.discard == 1024);
    CHECK(a.residue == 1024);
}

TEST_CASE("what a SCSI plan moves, as the device sees it")
{
    scsi::Device dev;
    dev.blocks = 2048;
    auto read = scsi::decode(scsi::cdb_read10(0, 8), dev);
    CHECK(intent_of(read, scsi::cdb_read10(0, 8), 512).dir == Dir::in);
    CHECK(intent_of(read, scsi::cdb_read10(0, 8), 512).length == 4096);
    auto write = scsi::decode(scsi::cdb_write10(0, 2), dev);
    CHECK(intent_of(write, scsi::cdb_write10(0, 2), 512).dir == Dir::out);
    CHECK(intent_of(write, scsi::cdb_write10(0, 2), 512).length == 1024);
    auto tur = scsi::decode(scsi::cdb_test_unit_ready(), dev);
    CHECK(intent_of(tur, scsi::cdb_test_unit_ready(), 512).dir == Dir::none);
    auto inq = scsi::decode(scsi::cdb_inquiry(36), dev);
    CHECK(intent_of(inq, scsi::cdb_inquiry(36), 512).length == 36);
    auto past = scsi::decode(scsi::cdb_read10(4096, 1), dev);   // fails: nothing moves
    CHECK(intent_of(past, scsi::cdb_read10(4096, 1), 512).dir == Dir::none);
}

TEST_CASE("READ FORMAT CAPACITIES: one formatted-media descriptor, cut to the allocation length")
{
    scsi::Device dev;
    dev.blocks = 0x12345;
    dev.block_size = 512;
    auto p = read_format_capacities(scsi::cdb_read_format_capacities(252), dev);
    auto fc = scsi::parse_read_format_capacities(p.data);
    REQUIRE(fc);
    CHECK(fc->blocks == 0x12345);
    CHECK(fc->block_size == 512);
    CHECK(fc->descriptor_type == 2);
    CHECK(read_format_capacities(scsi::cdb_read_format_capacities(4), dev).data.size() == 4);
    CHECK(read_format_capacities(std::vector<std::uint8_t>{0x23}, dev).status == scsi::check_condition);
}

TEST_CASE("FunctionFS descriptors: v2 head, three speeds, a Bulk-Only mass-storage interface")
{
    const auto d = ffs_descriptors();
    usb_functionfs_descs_head_v2 h{};
    REQUIRE(d.size() > sizeof h + 12);
    std::memcpy(&h, d.data(), sizeof h);
    CHECK(h.magic == FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
    CHECK(h.length == d.size());
    const std::uint8_t* intf = d.data() + sizeof h + 12;   // after the three counts: the full-speed interface
    CHECK(intf[0] == 9);
    CHECK(intf[1] == 4);        // INTERFACE
    CHECK(intf[4] == 2);        // two endpoints
    CHECK(intf[5] == 0x08);     // mass storage
    CHECK(intf[6] == 0x06);     // SCSI transparent
    CHECK(intf[7] == 0x50);     // Bulk-Only
    const auto s = ffs_strings("x");
    usb_functionfs_strings_head sh{};
    std::memcpy(&sh, s.data(), sizeof sh);
    CHECK(sh.magic == FUNCTIONFS_STRINGS_MAGIC);
    CHECK(sh.length == s.size());
    CHECK(s.back() == 0);
}

TEST_CASE("engine: a user backstore makes the function devemu's, kernel with a user backstore is refused")
{
    const std::string base = R"([[backstore]]
name = "u"
type = "user"
handler = "uring"
backing = "zram:64M"
[[gadget]]
name = "g"
[[gadget.function]]
type = "mass_storage"
name = "ms"
)";
    auto p = profile::parse(base + "[[gadget.function.lun]]\nbackstore = \"u\"\n", "g.toml");
    REQUIRE(p);
    CHECK(p->gadgets[0].functions[0].user_engine);
    auto k = profile::parse(base + "engine = \"kernel\"\n[[gadget.function.lun]]\nbackstore = \"u\"\n", "g.toml");
    REQUIRE_FALSE(k);
    CHECK(k.error().where.find("g.toml:") == 0);
    auto bad = profile::parse(base + "engine = \"usr\"\n[[gadget.function.lun]]\nbackstore = \"u\"\n", "g.toml");
    REQUIRE_FALSE(bad);
    auto nomedia = profile::parse(base + "[[gadget.function.lun]]\nbackstore = \"u\"\n[[gadget.function.lun]]\nremovable = true\n", "g.toml");
    REQUIRE_FALSE(nomedia);
    CHECK(nomedia.error().what.find("media change") != std::string::npos);
}
