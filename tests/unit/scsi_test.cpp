// The TCMU handler's SCSI emulation: what each CDB decodes to, the pages it builds, and every refusal.
#include <catch2/catch.hpp>

#include <vector>

#include "scsi/bytes.hpp"
#include "scsi/emulation.hpp"
#include "scsi/lba_status.hpp"
#include "scsi/opcodes.hpp"
#include "scsi/supported.hpp"

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
    CHECK(refused(decode(Bytes{0x04, 0, 0, 0, 0, 0}, dev()), invalid_opcode));   // FORMAT UNIT
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

namespace {
// REPORT SUPPORTED OPERATION CODES: RCTD, REPORTING OPTIONS, requested opcode and service action, allocation length.
Bytes rsoc(std::uint8_t options, std::uint8_t code = 0, std::uint16_t sa = 0, bool rctd = false, std::uint32_t alloc = 65535)
{
    Bytes c(12, 0);
    c[0] = 0xa3;
    c[1] = 0x0c;
    c[2] = static_cast<std::uint8_t>((rctd ? 0x80 : 0) | options);
    c[3] = code;
    put16(&c[4], sa);
    put32(&c[6], alloc);
    return c;
}
// A CDB of the command's length: the opcode, its service action if it has one, zeros elsewhere.
Bytes bare(const SupportedCommand& s)
{
    Bytes c(s.usage.size(), 0);
    c[0] = s.opcode;
    if (s.service_action) c[1] = *s.service_action;
    return c;
}
}  // namespace

TEST_CASE("REPORT SUPPORTED OPERATION CODES lists exactly the commands the core decodes")
{
    for (bool can_unmap : {true, false}) {
        auto d = dev();
        d.can_unmap = can_unmap;
        const auto cmds = supported_commands(d);
        std::vector<bool> listed(256, false);
        for (const auto& s : cmds) {
            INFO("opcode " << int(s.opcode));
            CHECK(s.usage.size() == op::cdb_length(s.opcode));
            CHECK(s.usage[0] == s.opcode);
            CHECK_FALSE(refused(decode(bare(s), d), invalid_opcode));   // decoded (a zero length may be refused as a field)
            if (!s.service_action) listed[s.opcode] = true;
        }
        for (int code = 0; code < 256; ++code) {
            if (listed[code] || code == op::service_action_in16 || code == op::maintenance_in) continue;
            INFO("opcode " << code);
            Bytes c(16, 0);
            c[0] = static_cast<std::uint8_t>(code);
            CHECK(refused(decode(c, d), invalid_opcode));
        }
        const bool unmap_listed = std::any_of(cmds.begin(), cmds.end(), [](const auto& s) { return s.opcode == op::unmap; });
        CHECK(unmap_listed == can_unmap);
    }

    // All commands: a 4-byte header, then 8-byte descriptors (20 with RCTD: a timeouts descriptor each).
    const auto d = dev();
    const auto n = supported_commands(d).size();
    auto all = decode(rsoc(0), d);
    REQUIRE(all.status == good);
    REQUIRE(all.data.size() == 4 + 8 * n);
    CHECK(be32(&all.data[0]) == 8 * n);
    bool saw_rc16 = false, saw_glbas = false;
    for (std::size_t i = 4; i < all.data.size(); i += 8) {
        const bool servactv = all.data[i + 5] & 0x01;
        CHECK((all.data[i + 5] & 0x02) == 0);   // CTDP clear without RCTD
        CHECK(be16(&all.data[i + 6]) == op::cdb_length(all.data[i]));
        if (!servactv) CHECK(be16(&all.data[i + 2]) == 0);
        if (all.data[i] == op::service_action_in16 && servactv) {
            saw_rc16 = saw_rc16 || be16(&all.data[i + 2]) == op::read_capacity16_sa;
            saw_glbas = saw_glbas || be16(&all.data[i + 2]) == op::get_lba_status_sa;
        }
    }
    CHECK(saw_rc16);
    CHECK(saw_glbas);
    auto timed = decode(rsoc(0, 0, 0, true), d);
    REQUIRE(timed.data.size() == 4 + 20 * n);
    for (std::size_t i = 4; i < timed.data.size(); i += 20) {
        CHECK((timed.data[i + 5] & 0x02) != 0);
        CHECK(be16(&timed.data[i + 8]) == 0x0a);
    }
    CHECK(decode(rsoc(0, 0, 0, false, 20), d).data.size() == 20);   // the allocation length cuts it

    // One command (001b), one service action (010b), either (011b).
    auto read10 = decode(rsoc(1, op::read10), d);
    REQUIRE(read10.status == good);
    CHECK((read10.data[1] & 0x07) == 0x03);   // supported
    REQUIRE(be16(&read10.data[2]) == 10);
    REQUIRE(read10.data.size() == 14);
    CHECK(read10.data[4] == op::read10);
    CHECK(read10.data[5] == 0xf8);            // RDPROTECT, DPO, FUA
    CHECK(read10.data[11] == 0xff);           // the transfer length's low byte
    CHECK(decode(rsoc(3, op::read10, 7), d).data[1] == 0x03);   // 011b: the service action is ignored
    CHECK((decode(rsoc(1, 0x04), d).data[1] & 0x07) == 0x01);   // FORMAT UNIT: not supported
    CHECK(refused(decode(rsoc(1, op::service_action_in16), d), invalid_field));   // it has service actions
    CHECK(refused(decode(rsoc(2, op::read10), d), invalid_field));               // it has none
    auto rc16 = decode(rsoc(2, op::service_action_in16, op::read_capacity16_sa), d);
    CHECK((rc16.data[1] & 0x07) == 0x03);
    CHECK(rc16.data[5] == op::read_capacity16_sa);   // the usage data carries the service action
    CHECK((decode(rsoc(2, op::service_action_in16, op::get_lba_status_sa), d).data[1] & 0x07) == 0x03);
    CHECK((decode(rsoc(2, op::service_action_in16, 0x13), d).data[1] & 0x07) == 0x01);   // an unknown one: not supported
    auto self = decode(rsoc(3, op::maintenance_in, op::report_supported_opcodes_sa, true), d);
    CHECK(self.data[1] == (0x80 | 0x03));
    CHECK(self.data.size() == 4 + 12 + 12);
    CHECK(refused(decode(rsoc(5), d), invalid_field));   // reserved reporting options
    // MODE SENSE sets DPOFUA: then DPO (and FUA where the command has it) must be in the usage data (libiscsi checks).
    REQUIRE((decode(Bytes{op::mode_sense6, 0, 0x3f, 0, 255, 0}, d).data[2] & 0x10) != 0);
    for (auto code : {op::read10, op::write10, op::read12, op::write12, op::read16, op::write16, op::compare_and_write})
        CHECK((decode(rsoc(1, code), d).data[5] & 0x18) == 0x18);
    for (auto code : {op::verify10, op::verify16, op::write_verify10, op::write_verify16}) CHECK((decode(rsoc(1, code), d).data[5] & 0x10) == 0x10);
    CHECK(refused(decode(Bytes{0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, d), invalid_field));   // REPORT TARGET PORT GROUPS: not ours
}

namespace {
Bytes glbas(std::uint64_t lba, std::uint32_t alloc, std::uint8_t report_type = 0)
{
    auto c = cdb16(op::service_action_in16, lba, alloc, op::get_lba_status_sa);
    c[14] = report_type;
    return c;
}
struct Desc {
    std::uint64_t lba;
    std::uint32_t blocks;
    std::uint8_t status;
};
std::vector<Desc> descriptors(const Plan& p)
{
    std::vector<Desc> v;
    for (std::size_t i = 8; i + 16 <= p.data.size(); i += 16) v.push_back({be64(&p.data[i]), be32(&p.data[i + 8]), p.data[i + 12]});
    return v;
}
// A backing of 512-byte blocks laid out in bytes: data in [4096, 12288) and [20000, 20100), holes elsewhere.
std::optional<Run> layout(std::uint64_t off, std::uint64_t end)
{
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> data = {{4096, 12288}, {20000, 20100}};
    std::uint64_t next = end;
    for (auto [a, b] : data) {
        if (off >= a && off < b) return Run{true, b - off};
        if (a > off) next = std::min(next, a);
    }
    return Run{false, next - off};
}
}  // namespace

TEST_CASE("GET LBA STATUS: the range is checked, and the backing's holes become deallocated blocks")
{
    auto d = dev();
    auto p = decode(glbas(100, 24), d);
    REQUIRE(p.op == Op::get_lba_status);
    CHECK(p.lba == 100);
    CHECK(p.blocks == d.blocks - 100);
    CHECK(p.alloc == 24);
    CHECK(refused(decode(glbas(d.blocks, 24), d), lba_out_of_range));
    CHECK(refused(decode(glbas(~0ull, 24), d), lba_out_of_range));
    CHECK(refused(decode(glbas(0, 24, 5), d), invalid_field));              // reserved report type
    CHECK(refused(decode(cdb16(op::service_action_in16, 0, 32, 0x13), d), invalid_field));   // unknown service action

    // From LBA 0: 8 deallocated, 16 mapped, then a hole up to 20000 (blocks 24..38: 20000 is inside block 39), the
    // block holding [20000, 20100) mapped, and the rest deallocated.
    auto r = lba_status(decode(glbas(0, 1024), d), d, layout);
    REQUIRE(r.status == good);
    auto v = descriptors(r);
    REQUIRE(v.size() == 5);
    CHECK(be32(&r.data[0]) == 4 + 16 * 5);
    CHECK((v[0].lba == 0 && v[0].blocks == 8 && v[0].status == 1));
    CHECK((v[1].lba == 8 && v[1].blocks == 16 && v[1].status == 0));
    CHECK((v[2].lba == 24 && v[2].blocks == 15 && v[2].status == 1));
    CHECK((v[3].lba == 39 && v[3].blocks == 1 && v[3].status == 0));
    CHECK((v[4].lba == 40 && v[4].blocks == d.blocks - 40 && v[4].status == 1));

    // The first descriptor starts at the starting LBA, also inside a run.
    v = descriptors(lba_status(decode(glbas(10, 1024), d), d, layout));
    REQUIRE_FALSE(v.empty());
    CHECK((v[0].lba == 10 && v[0].blocks == 14 && v[0].status == 0));
    // The allocation length decides how many descriptors come back (24 bytes: one).
    r = lba_status(decode(glbas(0, 24), d), d, layout);
    CHECK(r.data.size() == 24);
    CHECK(descriptors(r).size() == 1);
    CHECK(lba_status(decode(glbas(0, 0), d), d, layout).data.empty());
    // Report types: mapped only, deallocated only, anchored (none).
    v = descriptors(lba_status(decode(glbas(0, 1024, 2), d), d, layout));
    REQUIRE(v.size() == 2);
    CHECK((v[0].lba == 8 && v[1].lba == 39 && v[0].status == 0 && v[1].status == 0));
    v = descriptors(lba_status(decode(glbas(0, 1024, 3), d), d, layout));
    CHECK(v.size() == 3);
    for (auto& e : v) CHECK(e.status == 1);
    CHECK(descriptors(lba_status(decode(glbas(0, 1024, 4), d), d, layout)).empty());
    // A backing that cannot tell (a block device without holes, a probe that fails): all mapped, in one descriptor.
    v = descriptors(lba_status(decode(glbas(5, 1024), d), d, [](std::uint64_t, std::uint64_t) { return std::optional<Run>{}; }));
    REQUIRE(v.size() == 1);
    CHECK((v[0].lba == 5 && v[0].blocks == d.blocks - 5 && v[0].status == 0));
    // 4 KiB logical blocks: a block with any data in it is mapped.
    d.block_size = 4096;
    d.blocks = 16;
    v = descriptors(lba_status(decode(glbas(0, 1024), d), d, layout));
    REQUIRE(v.size() == 5);
    CHECK((v[0].blocks == 1 && v[0].status == 1));   // [0, 4096)
    CHECK((v[1].blocks == 2 && v[1].status == 0));   // [4096, 12288)
    CHECK((v[2].blocks == 1 && v[2].status == 1));   // [12288, 16384)
    CHECK((v[3].lba == 4 && v[3].blocks == 1 && v[3].status == 0));   // [16384, 20480) holds [20000, 20100)
    CHECK((v[4].lba == 5 && v[4].blocks == 11 && v[4].status == 1));
}

TEST_CASE("GET LBA STATUS splits a run longer than 2^32-1 blocks")
{
    Device d;
    d.blocks = 0x1'8000'0000ull;   // 6 Gi blocks of 512
    auto v = descriptors(lba_status(decode(glbas(0, 1024), d), d, [](std::uint64_t off, std::uint64_t end) { return std::optional<Run>{Run{false, end - off}}; }));
    REQUIRE(v.size() == 2);
    CHECK((v[0].lba == 0 && v[0].blocks == 0xffffffffu));
    CHECK((v[1].lba == 0xffffffffull && v[1].blocks == d.blocks - 0xffffffffull));
}
