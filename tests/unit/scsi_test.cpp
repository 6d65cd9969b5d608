// The TCMU handler's SCSI emulation: what each CDB decodes to, the pages it builds, and every refusal.
#include <catch2/catch.hpp>

#include <vector>

#include "scsi/bytes.hpp"
#include "scsi/emulation.hpp"
#include "scsi/opcodes.hpp"

using namespace devemu::scsi;
using Bytes = std::vector<std::uint8_t>;

namespace {
Device dev()
{
    Device d;
    d.blocks = 131072;   // 64 MiB of 512
    d.serial = "u0";
    return d;
}
Bytes cdb16(std::uint8_t op, std::uint64_t lba, std::uint32_t n, std::uint8_t b1 = 0)
{
    Bytes c(16, 0);
    c[0] = op;
    c[1] = b1;
    for (int i = 0; i < 8; ++i) c[2 + i] = static_cast<std::uint8_t>(lba >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) c[10 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
    return c;
}
Bytes cdb10(std::uint8_t op, std::uint32_t lba, std::uint16_t n, std::uint8_t b1 = 0)
{
    return {op, b1, static_cast<std::uint8_t>(lba >> 24), static_cast<std::uint8_t>(lba >> 16), static_cast<std::uint8_t>(lba >> 8),
            static_cast<std::uint8_t>(lba), 0, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n), 0};
}
bool refused(const Plan& p, Sense s) { return p.status == check_condition && p.sense.key == s.key && p.sense.asc == s.asc; }
}  // namespace

TEST_CASE("reads and writes of every size decode to their range, and the range is checked")
{
    auto d = dev();
    auto p = decode(cdb10(0x28, 100, 8), d);
    CHECK(p.op == Op::read);
    CHECK(p.lba == 100);
    CHECK(p.blocks == 8);
    p = decode(cdb16(0x8a, 131064, 8, 0x08), d);
    CHECK(p.op == Op::write);
    CHECK(p.fua);
    CHECK(refused(decode(cdb16(0x88, 131065, 8), d), lba_out_of_range));
    CHECK(refused(decode(cdb16(0x88, ~0ull - 2, 8), d), lba_out_of_range));   // no wrap-around
    CHECK(refused(decode(cdb10(0x28, 0, 1, 0x20), d), invalid_field));         // RDPROTECT without protection
    p = decode(Bytes{0x08, 0x01, 0x00, 0x10, 0x00, 0x00}, d);                  // READ(6): 0 blocks means 256
    CHECK(p.lba == 0x10010);
    CHECK(p.blocks == 256);
    Bytes r12 = {0xa8, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0};
    CHECK(decode(r12, d).blocks == 4);
    d.readonly = true;
    CHECK(refused(decode(cdb10(0x2a, 0, 1), d), write_protected));
    CHECK(decode(cdb10(0x28, 0, 1), d).status == good);
}

TEST_CASE("INQUIRY: standard data and every VPD page the handler lists")
{
    auto d = dev();
    auto p = decode(Bytes{0x12, 0, 0, 0, 96, 0}, d);
    REQUIRE(p.data.size() == 96);
    CHECK(p.data[2] == 0x06);
    CHECK(std::string(p.data.begin() + 8, p.data.begin() + 16) == "DEVEMU  ");
    CHECK(decode(Bytes{0x12, 0, 0, 0, 36, 0}, d).data.size() == 36);   // truncated to the allocation length
    CHECK(refused(decode(Bytes{0x12, 0, 0x80, 0, 36, 0}, d), invalid_field));   // page code without EVPD
    auto list = decode(Bytes{0x12, 1, 0x00, 0, 255, 0}, d).data;
    REQUIRE(list.size() >= 4);
    for (std::size_t i = 4; i < list.size(); ++i) {
        auto page = decode(Bytes{0x12, 1, list[i], 0, 255, 0}, d);
        INFO("page " << int(list[i]));
        CHECK(page.status == good);
        REQUIRE(page.data.size() >= 4);
        CHECK(page.data[1] == list[i]);
        CHECK(static_cast<std::size_t>(page.data[2] << 8 | page.data[3]) + 4 == page.data.size());
    }
    auto bl = decode(Bytes{0x12, 1, 0xb0, 0, 255, 0}, d).data;
    CHECK(bl[5] == 1);                                                     // COMPARE AND WRITE: 1 block
    CHECK((bl[20] << 24 | bl[21] << 16 | bl[22] << 8 | bl[23]) <= 1024 * 1024);   // max UNMAP LBA count
    CHECK(refused(decode(Bytes{0x12, 1, 0x99, 0, 255, 0}, d), invalid_field));
    auto sn = decode(Bytes{0x12, 1, 0x80, 0, 255, 0}, d).data;
    CHECK(std::string(sn.begin() + 4, sn.end()) == "u0");
}

TEST_CASE("capacity and mode pages agree with the device")
{
    auto d = dev();
    auto rc = decode(cdb10(0x25, 0, 0), d).data;
    CHECK((rc[0] << 24 | rc[1] << 16 | rc[2] << 8 | rc[3]) == 131071);
    Bytes rc16 = cdb16(0x9e, 0, 32);
    rc16[1] = 0x10;
    auto r16 = decode(rc16, d).data;
    REQUIRE(r16.size() == 32);
    CHECK(r16[7] == 0xff);
    CHECK((r16[14] & 0x80) != 0);   // LBPME
    auto ms = decode(Bytes{0x1a, 0, 0x3f, 0, 255, 0}, d).data;
    CHECK(ms[0] + 1u == ms.size());
    CHECK(ms[3] == 8);              // one block descriptor
    CHECK((ms[2] & 0x80) == 0);     // not write protected
    d.readonly = true;
    CHECK((decode(Bytes{0x1a, 0x08, 0x3f, 0, 255, 0}, d).data[2] & 0x80) != 0);
    CHECK(decode(Bytes{0x1a, 0x08, 0x3f, 0, 255, 0}, d).data[3] == 0);   // DBD
    CHECK(refused(decode(Bytes{0x1a, 0, 0x3f | 0xc0, 0, 255, 0}, d), {0x05, 0x39, 0}));   // saved values
    CHECK(refused(decode(Bytes{0x1a, 0, 0x19, 0, 255, 0}, d), invalid_field));
    auto ms10 = decode(Bytes{0x5a, 0, 0x08, 0, 0, 0, 0, 0, 255, 0}, d).data;
    CHECK((ms10[0] << 8 | ms10[1]) + 2u == ms10.size());
}

TEST_CASE("write same, unmap, verify and compare-and-write follow SBC-3")
{
    auto d = dev();
    auto ws = decode(cdb10(0x41, 10, 4, 0x08), d);
    CHECK(ws.op == Op::write_same);
    CHECK(ws.unmap);
    CHECK(refused(decode(cdb10(0x41, 10, 0), d), invalid_field));          // WSNZ
    CHECK(refused(decode(cdb10(0x41, 10, 1, 0x10), d), invalid_field));    // ANCHOR
    CHECK(refused(decode(cdb16(0x93, 131071, 2), d), lba_out_of_range));
    auto ndob = decode(cdb16(0x93, 1, 7, 0x09), d);                          // UNMAP + NDOB: libiscsi's unaligned unmap
    CHECK(ndob.status == good);
    CHECK((ndob.unmap && ndob.ndob));
    CHECK(!decode(cdb16(0x93, 1, 7, 0x08), d).ndob);
    CHECK(!decode(cdb10(0x41, 1, 7, 0x09), d).ndob);                          // WRITE SAME(10) has no NDOB bit
    auto v = decode(cdb10(0x2f, 0, 8, 0x02), d);
    CHECK(v.op == Op::verify);
    CHECK(v.bytchk);
    CHECK(decode(cdb10(0x2f, 0, 8), d).op == Op::reply);                     // BYTCHK 0: a range check
    CHECK(refused(decode(cdb10(0x2f, 0, 8, 0x20), d), invalid_field));     // VRPROTECT
    auto caw = cdb16(0x89, 5, 0);
    caw[13] = 1;
    CHECK(decode(caw, d).op == Op::compare_and_write);
    caw[13] = 2;
    CHECK(refused(decode(caw, d), invalid_field));
    CHECK(decode(cdb10(0x42, 0, 24), d).op == Op::unmap);
    d.can_unmap = false;
    CHECK(refused(decode(cdb10(0x41, 10, 4, 0x08), d), invalid_field));
    CHECK(refused(decode(cdb10(0x42, 0, 24), d), invalid_opcode));
}

TEST_CASE("UNMAP parameter lists, and what is not a command")
{
    std::vector<std::pair<std::uint64_t, std::uint32_t>> out;
    Bytes list = {0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 0};
    REQUIRE(parse_unmap(list, out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].first == 9);
    CHECK(out[0].second == 3);
    list[3] = 15;   // descriptor length not a multiple of 16
    CHECK_FALSE(parse_unmap(list, out));
    CHECK_FALSE(parse_unmap(Bytes{0, 1, 0}, out));
    CHECK(parse_unmap({}, out));
    CHECK(refused(decode(Bytes{0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, dev()), invalid_opcode));
    CHECK(refused(decode(Bytes{}, dev()), invalid_opcode));
    CHECK(refused(decode(Bytes{0x28, 0}, dev()), invalid_field));   // too short for its opcode
    auto s = sense_bytes(miscompare, 17);
    CHECK(s[0] == 0xf0);
    CHECK(s[2] == 0x0e);
    CHECK(s[6] == 17);
    CHECK(s[12] == 0x1d);
}

TEST_CASE("the backing's geometry shapes READ CAPACITY(16) and the Block Limits page")
{
    auto d = dev();
    d.lbppb_exponent = 3;        // 512-byte blocks on a 4 KiB device: 512e
    d.unmap_granularity = 8;
    Bytes rc16 = cdb16(0x9e, 0, 32);
    rc16[1] = 0x10;
    auto r16 = decode(rc16, d).data;
    CHECK((r16[13] & 0x0f) == 3);
    CHECK((r16[14] & 0x40) != 0);   // LBPRZ: what is unmapped reads zeros (the handler zeroes unaligned edges)
    auto bl = decode(Bytes{0x12, 1, 0xb0, 0, 255, 0}, d).data;
    CHECK((bl[6] << 8 | bl[7]) == 8);                                       // optimal transfer length granularity
    CHECK((bl[28] << 24 | bl[29] << 16 | bl[30] << 8 | bl[31]) == 8);       // optimal UNMAP granularity
    CHECK((bl[32] & 0x80) == 0);                                            // UGAVALID clear: no alignment claimed
    using devemu::scsi::be32;
    d.max_transfer_blocks = 2048;
    CHECK(be32(decode(Bytes{0x12, 1, 0xb0, 0, 255, 0}, d).data.data() + 12) == 2048);   // optimal unset: the maximum
    d.optimal_transfer_blocks = 256;
    bl = decode(Bytes{0x12, 1, 0xb0, 0, 255, 0}, d).data;
    CHECK(be32(bl.data() + 8) == 2048);    // maximum transfer length
    CHECK(be32(bl.data() + 12) == 256);    // optimal transfer length
    d.optimal_transfer_blocks = 4096;   // never above the maximum
    CHECK(be32(decode(Bytes{0x12, 1, 0xb0, 0, 255, 0}, d).data.data() + 12) == 2048);
}

TEST_CASE("a CDB's length follows its opcode's group code")
{
    using devemu::scsi::op::cdb_length;
    CHECK(cdb_length(devemu::scsi::op::test_unit_ready) == 6);
    CHECK(cdb_length(devemu::scsi::op::inquiry) == 6);
    CHECK(cdb_length(devemu::scsi::op::read10) == 10);
    CHECK(cdb_length(devemu::scsi::op::mode_sense10) == 10);   // group 2
    CHECK(cdb_length(devemu::scsi::op::read16) == 16);
    CHECK(cdb_length(devemu::scsi::op::service_action_in16) == 16);
    CHECK(cdb_length(devemu::scsi::op::read12) == 12);
    CHECK(cdb_length(0x7f) == 16);   // group 3 (variable length): never shorter than what follows
    CHECK(cdb_length(0xc0) == 16);   // vendor group 6
}
