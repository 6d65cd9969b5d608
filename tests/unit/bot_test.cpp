// USB mass-storage Bulk-Only Transport and SCSI encoding/decoding: exact bytes from the specs, every boundary,
// and a seeded random run of every parser over arbitrary bytes.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "scsi/cdb.hpp"
#include "usb/bot.hpp"

using namespace devemu::usb::bot;
using namespace devemu::scsi;
using Bytes = std::vector<std::uint8_t>;

namespace {
Bytes bytes(std::initializer_list<int> l)
{
    Bytes b;
    for (int x : l) b.push_back(static_cast<std::uint8_t>(x));
    return b;
}
template <std::size_t N>
Bytes vec(const std::array<std::uint8_t, N>& a) { return Bytes(a.begin(), a.end()); }
}  // namespace

TEST_CASE("a CBW is laid out as BOT 5.1 says")
{
    Cbw c{0x11223344, 36, Dir::in, 2, cdb_inquiry(36)};
    const Bytes want = bytes({'U', 'S', 'B', 'C', 0x44, 0x33, 0x22, 0x11, 36, 0, 0, 0, 0x80, 2, 6, 0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK(vec(encode(c)) == want);
    Cbw out{0x1, 512, Dir::out, 0, cdb_write10(0x01020304, 1)};
    auto o = vec(encode(out));
    CHECK(o[12] == 0x00);
    CHECK(o[14] == 10);
    CHECK(Bytes(o.begin() + 15, o.begin() + 25) == bytes({0x2A, 0, 1, 2, 3, 4, 0, 0, 1, 0}));
}

TEST_CASE("CBW round trip over every direction, LUN and CDB length")
{
    std::mt19937 rng(1);
    for (Dir d : {Dir::none, Dir::in, Dir::out})
        for (std::uint8_t lun = 0; lun < 16; ++lun)
            for (std::size_t len = 1; len <= 16; ++len) {
                Cbw c;
                c.tag = rng();
                c.length = d == Dir::none ? 0 : (rng() | 1);
                c.dir = d;
                c.lun = lun;
                for (std::size_t i = 0; i < len; ++i) c.cdb.push_back(static_cast<std::uint8_t>(rng()));
                auto raw = encode(c);
                auto back = decode_cbw(raw);
                REQUIRE(back);
                CHECK(back->tag == c.tag);
                CHECK(back->length == c.length);
                CHECK(back->dir == c.dir);
                CHECK(back->lun == lun);
                CHECK(back->cdb == c.cdb);
            }
}

TEST_CASE("CBWs that are not valid or not meaningful are refused")
{
    auto good = vec(encode(Cbw{7, 0, Dir::none, 0, cdb_test_unit_ready()}));
    REQUIRE(decode_cbw(good));
    for (std::size_t len = 0; len < 64; ++len) {
        Bytes b(len, 0);
        std::copy_n(good.begin(), std::min(len, good.size()), b.begin());
        if (len != cbw_len) CHECK_FALSE(decode_cbw(b));
    }
    for (std::size_t i = 0; i < 4; ++i) {   // signature
        auto b = good;
        b[i] ^= 0x20;
        CHECK_FALSE(decode_cbw(b));
    }
    auto b = good;
    b[14] = 0;   // no CDB
    CHECK_FALSE(decode_cbw(b));
    b[14] = 17;   // longer than 16
    CHECK_FALSE(decode_cbw(b));
    b = good;
    b[12] = 0x40;   // reserved flag bits
    CHECK_FALSE(decode_cbw(b));
    b = good;
    b[13] = 0x10;   // reserved LUN bits
    CHECK_FALSE(decode_cbw(b));
}

TEST_CASE("a CSW decodes, and only a 13-byte 'USBS' is one")
{
    const Bytes raw = bytes({'U', 'S', 'B', 'S', 0x78, 0x56, 0x34, 0x12, 0x00, 0x02, 0, 0, 1});
    auto c = decode_csw(raw);
    REQUIRE(c);
    CHECK(c->tag == 0x12345678);
    CHECK(c->residue == 0x200);
    CHECK(c->status == 1);
    CHECK(vec(encode(*c)) == raw);
    for (std::size_t len = 0; len < 600; ++len) {   // a whole packet of data where the CSW should be, a short one…
        Bytes b(len, 0);
        std::copy_n(raw.begin(), std::min(len, raw.size()), b.begin());
        CHECK(decode_csw(b).has_value() == (len == csw_len));
    }
    for (std::size_t i = 0; i < 4; ++i)
        for (int bit = 0; bit < 8; ++bit) {
            auto b = raw;
            b[i] ^= static_cast<std::uint8_t>(1 << bit);
            CHECK_FALSE(decode_csw(b));
        }
}

TEST_CASE("a CSW is meaningful only for its own CBW (BOT 6.3)")
{
    Cbw sent{42, 512, Dir::in, 0, cdb_read10(0, 1)};
    CHECK(csw_problem(sent, {42, 0, 0}).empty());
    CHECK(csw_problem(sent, {42, 512, 1}).empty());
    CHECK(csw_problem(sent, {42, 0, 2}).empty());
    CHECK(csw_problem(sent, {43, 0, 0}).find("does not echo") != std::string::npos);
    CHECK(csw_problem(sent, {42, 513, 0}).find("exceeds") != std::string::npos);
    for (int st = 3; st < 256; ++st) CHECK_FALSE(csw_problem(sent, {42, 0, static_cast<std::uint8_t>(st)}).empty());
}

TEST_CASE("CDBs carry their fields big-endian where SCSI says")
{
    CHECK(cdb_test_unit_ready() == Bytes(6, 0));
    CHECK(cdb_request_sense(18) == bytes({0x03, 0, 0, 0, 18, 0}));
    CHECK(cdb_inquiry(36) == bytes({0x12, 0, 0, 0, 36, 0}));
    CHECK(cdb_inquiry(252, 0x83) == bytes({0x12, 1, 0x83, 0, 252, 0}));
    CHECK(cdb_read_capacity10() == bytes({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(cdb_read_capacity16(32) == bytes({0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}));
    CHECK(cdb_mode_sense6(0x3f, 192) == bytes({0x1A, 0, 0x3f, 0, 192, 0}));
    CHECK(cdb_mode_sense10(0x3f, 0x1234) == bytes({0x5A, 0, 0x3f, 0, 0, 0, 0, 0x12, 0x34, 0}));
    CHECK(cdb_read_format_capacities(252) == bytes({0x23, 0, 0, 0, 0, 0, 0, 0, 252, 0}));
    CHECK(cdb_read10(0xdeadbeef, 0x0102) == bytes({0x28, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0x01, 0x02, 0}));
    CHECK(cdb_write10(7, 8) == bytes({0x2A, 0, 0, 0, 0, 7, 0, 0, 8, 0}));
}

TEST_CASE("sense data: fixed and descriptor formats")
{
    Bytes fixed(18, 0);
    fixed[0] = 0xF0;   // valid bit + current, fixed
    fixed[2] = 0x05;
    fixed[7] = 10;
    fixed[12] = 0x24;
    auto s = parse_sense(fixed);
    REQUIRE(s);
    CHECK(s->key == 5);
    CHECK(s->asc == 0x24);
    CHECK(s->str() == "ILLEGAL REQUEST 24/00 (invalid field in CDB)");
    auto desc = bytes({0x72, 0x07, 0x27, 0x00, 0, 0, 0, 0});
    s = parse_sense(desc);
    REQUIRE(s);
    CHECK(s->str() == "DATA PROTECT 27/00 (write protected)");
    CHECK(parse_sense(bytes({0x71, 0, 0x02}))->key == 2);   // short deferred fixed sense: key only
    CHECK_FALSE(parse_sense(bytes({0x70, 0})));
    CHECK_FALSE(parse_sense(bytes({0x72, 0, 0})));
    CHECK_FALSE(parse_sense({}));
    // Only response codes 70h-73h (with or without the valid bit) are sense data.
    for (int rc = 0; rc < 256; ++rc) {
        Bytes b(18, 0);
        b[0] = static_cast<std::uint8_t>(rc);
        const int code = rc & 0x7f;
        CHECK(parse_sense(b).has_value() == (code >= 0x70 && code <= 0x73));
    }
    for (int k = 0; k < 16; ++k) CHECK(std::string(sense_key_name(static_cast<std::uint8_t>(k))).size() > 0);
}

TEST_CASE("replies parse, and short replies are refused at every length")
{
    Bytes inq(36, ' ');
    inq[0] = 0;
    inq[1] = 0x80;
    inq[2] = 2;
    inq[3] = 2;
    inq[4] = 31;
    std::copy_n("Linux   ", 8, inq.begin() + 8);
    std::copy_n("File-Stor Gadget", 16, inq.begin() + 16);
    std::copy_n("0601", 4, inq.begin() + 32);
    auto q = parse_inquiry(inq);
    REQUIRE(q);
    CHECK(q->vendor == "Linux");
    CHECK(q->product == "File-Stor Gadget");
    CHECK(q->revision == "0601");
    CHECK(q->removable);
    for (std::size_t n = 0; n < 36; ++n) CHECK_FALSE(parse_inquiry(std::span<const std::uint8_t>(inq.data(), n)));

    auto rc10 = bytes({0, 1, 0xff, 0xff, 0, 0, 2, 0});
    auto c = parse_read_capacity10(rc10);
    REQUIRE(c);
    CHECK(c->blocks() == 0x20000);
    CHECK(c->block_size == 512);
    for (std::size_t n = 0; n < 8; ++n) CHECK_FALSE(parse_read_capacity10(std::span<const std::uint8_t>(rc10.data(), n)));
    Bytes rc16(32, 0);
    rc16[3] = 1;   // last LBA 2^32 + ...
    rc16[7] = 5;
    rc16[10] = 0x10;   // 4096-byte blocks
    auto c16 = parse_read_capacity16(rc16);
    REQUIRE(c16);
    CHECK(c16->last_lba == (1ull << 32) + 5);
    CHECK(c16->block_size == 4096);
    for (std::size_t n = 0; n < 12; ++n) CHECK_FALSE(parse_read_capacity16(std::span<const std::uint8_t>(rc16.data(), n)));

    auto m6 = parse_mode_sense6(bytes({15, 0, 0x80, 8}));
    REQUIRE(m6);
    CHECK(m6->data_length == 16);
    CHECK(m6->write_protect);
    CHECK(m6->block_descriptor_length == 8);
    auto m10 = parse_mode_sense10(bytes({0, 18, 0, 0x00, 0, 0, 0, 0}));
    REQUIRE(m10);
    CHECK(m10->data_length == 20);
    CHECK_FALSE(m10->write_protect);
    CHECK_FALSE(parse_mode_sense6(bytes({15, 0, 0})));
    CHECK_FALSE(parse_mode_sense10(bytes({0, 18, 0, 0, 0, 0, 0})));

    auto f = parse_read_format_capacities(bytes({0, 0, 0, 8, 0, 2, 0, 0, 2, 0, 2, 0}));
    REQUIRE(f);
    CHECK(f->blocks == 0x20000);
    CHECK(f->block_size == 512);
    CHECK(f->descriptor_type == 2);
    CHECK_FALSE(parse_read_format_capacities(bytes({0, 0, 0, 7, 0, 2, 0, 0, 2, 0, 2, 0})));   // list length not a multiple of 8
}

TEST_CASE("seeded random bytes through every parser: no crash, and what parses round-trips")
{
    std::mt19937_64 rng(0xdeu);
    int csw_ok = 0, cbw_ok = 0, sense_ok = 0;
    for (int i = 0; i < 200000; ++i) {
        const std::size_t len = rng() % 40;
        Bytes b(len);
        for (auto& x : b) x = static_cast<std::uint8_t>(rng());
        // Bias a quarter of the inputs towards the interesting shapes: real signatures, sense response codes.
        if (len == csw_len && i % 4 == 0) std::copy_n("USBS", 4, b.begin());
        if (len == cbw_len && i % 4 == 1) std::copy_n("USBC", 4, b.begin()), b[12] &= 0x80, b[13] &= 0x0f, b[14] = static_cast<std::uint8_t>(1 + b[14] % 16);
        if (len > 0 && i % 4 == 2) b[0] = static_cast<std::uint8_t>(0x70 + rng() % 4);
        if (auto c = decode_csw(b)) {
            ++csw_ok;
            REQUIRE(vec(encode(*c)) == b);
        }
        if (auto c = decode_cbw(b)) {
            ++cbw_ok;
            auto again = vec(encode(*c));
            // A zero-length CBW's direction bit is not kept (it means nothing); everything else round-trips.
            again[12] = b[12];
            REQUIRE(Bytes(again.begin(), again.begin() + 15 + c->cdb.size()) == Bytes(b.begin(), b.begin() + 15 + static_cast<long>(c->cdb.size())));
        }
        if (auto s = parse_sense(b)) {
            ++sense_ok;
            REQUIRE(s->response_code >= 0x70);
            REQUIRE(s->response_code <= 0x73);
            REQUIRE(s->key < 16);
            REQUIRE_FALSE(s->str().empty());
        }
        (void)parse_inquiry(b);
        (void)parse_read_capacity10(b);
        (void)parse_read_capacity16(b);
        (void)parse_mode_sense6(b);
        (void)parse_mode_sense10(b);
        (void)parse_read_format_capacities(b);
    }
    // The run must have reached the accepting paths, or it proves nothing.
    CHECK(csw_ok > 1000);
    CHECK(cbw_ok > 1000);
    CHECK(sense_ok > 10000);
}
