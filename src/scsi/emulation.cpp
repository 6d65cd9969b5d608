#include "scsi/emulation.hpp"

#include <algorithm>
#include <cstring>

#include "scsi/bytes.hpp"
#include "scsi/opcodes.hpp"
#include "scsi/supported.hpp"

namespace devemu::scsi {

namespace {

void pad(std::uint8_t* p, const std::string& s, std::size_t n)
{
    std::memset(p, ' ', n);
    std::memcpy(p, s.data(), std::min(n, s.size()));
}

Plan fail(Sense s)
{
    Plan p;
    p.status = check_condition;
    p.sense = s;
    return p;
}

Plan reply(std::vector<std::uint8_t> data, std::size_t alloc)
{
    Plan p;
    if (data.size() > alloc) data.resize(alloc);
    p.data = std::move(data);
    return p;
}

// NAA 6 (IEEE registered extended) from the serial: stable per backstore, unique enough for a dev box.
std::uint64_t naa_of(const std::string& serial)
{
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : serial) h = (h ^ c) * 1099511628211ull;
    return (0x6ull << 60) | (0x001405ull << 36) | (h & 0xfffffffffull);   // 0x001405: the OUI LIO uses
}

Plan inquiry(std::span<const std::uint8_t> c, const Device& d)
{
    const std::size_t alloc = be16(&c[3]);
    if (!(c[1] & 1)) {
        if (c[2] != 0) return fail(invalid_field);
        std::vector<std::uint8_t> r(96, 0);
        r[2] = 0x06;                 // SPC-4
        r[3] = 0x12;                 // HiSup, response data format 2
        r[4] = 96 - 5;
        r[7] = 0x02;                 // CmdQue
        pad(&r[8], d.vendor, 8);
        pad(&r[16], d.product, 16);
        pad(&r[32], d.revision, 4);
        put16(&r[58], 0x00a0);       // SAM-5
        put16(&r[60], 0x0460);       // SPC-4
        put16(&r[62], 0x04c0);       // SBC-3
        return reply(std::move(r), alloc);
    }
    std::vector<std::uint8_t> r(4, 0);
    r[1] = c[2];
    auto body = [&](std::vector<std::uint8_t> b) {
        put16(&r[2], static_cast<std::uint32_t>(b.size()));
        r.insert(r.end(), b.begin(), b.end());
        return reply(std::move(r), alloc);
    };
    switch (c[2]) {
    case 0x00:
        return body({0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2});
    case 0x80:
        return body(std::vector<std::uint8_t>(d.serial.begin(), d.serial.end()));
    case 0x83: {
        std::vector<std::uint8_t> b;
        // NAA designator (binary, LU association).
        b.insert(b.end(), {0x01, 0x03, 0x00, 0x08});
        for (int i = 7; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(naa_of(d.serial) >> (8 * i)));
        // T10 vendor ID designator (ASCII): vendor + serial.
        std::string t = d.vendor.substr(0, 8);
        t.resize(8, ' ');
        t += d.serial;
        b.insert(b.end(), {0x02, 0x01, 0x00, static_cast<std::uint8_t>(t.size())});
        b.insert(b.end(), t.begin(), t.end());
        return body(b);
    }
    case 0xb0: {   // Block Limits
        std::vector<std::uint8_t> b(0x3c, 0);
        b[0] = 0x01;                                 // WSNZ: WRITE SAME with 0 blocks is refused
        b[1] = 0x01;                                 // maximum COMPARE AND WRITE length: 1 block
        put16(&b[2], static_cast<std::uint16_t>(1u << d.lbppb_exponent));   // optimal transfer length granularity
        put32(&b[4], d.max_transfer_blocks);         // maximum transfer length
        put32(&b[8], d.optimal_transfer_blocks ? std::min(d.optimal_transfer_blocks, d.max_transfer_blocks) : d.max_transfer_blocks);   // optimal transfer length
        if (d.can_unmap) {
            put32(&b[16], 0x100000);                 // maximum UNMAP LBA count (libiscsi: at most 1 Mi blocks)
            put32(&b[20], 256);                      // maximum UNMAP block descriptor count
            put32(&b[24], d.unmap_granularity);      // optimal UNMAP granularity (alignment 0: UGAVALID clear)
        }
        put64(&b[32], 0x400000);                     // maximum WRITE SAME length
        return body(b);
    }
    case 0xb1: {   // Block Device Characteristics
        std::vector<std::uint8_t> b(0x3c, 0);
        put16(&b[0], 1);   // non-rotating medium
        return body(b);
    }
    case 0xb2: {   // Logical Block Provisioning
        std::vector<std::uint8_t> b(4, 0);
        if (d.can_unmap) {
            b[1] = 0x80 | 0x40 | 0x20 | 0x04;   // LBPU, LBPWS, LBPWS10, LBPRZ (a punched range reads zeros)
            b[2] = 0x02;                        // thin provisioned
        }
        return body(b);
    }
    default:
        return fail(invalid_field);
    }
}

std::vector<std::uint8_t> mode_pages(std::uint8_t page, std::uint8_t pc, const Device& d, bool& ok)
{
    std::vector<std::uint8_t> out;
    ok = true;
    auto caching = [&] {
        std::vector<std::uint8_t> p(20, 0);
        p[0] = 0x08;
        p[1] = 0x12;
        if (pc != 1 && d.write_cache) p[2] = 0x04;   // WCE (changeable page: all zero, nothing may change)
        out.insert(out.end(), p.begin(), p.end());
    };
    auto control = [&] {
        std::vector<std::uint8_t> p(12, 0);
        p[0] = 0x0a;
        p[1] = 0x0a;
        if (pc != 1) p[2] = 0x02;   // GLTSD
        out.insert(out.end(), p.begin(), p.end());
    };
    if (page == 0x08) caching();
    else if (page == 0x0a) control();
    else if (page == 0x3f) caching(), control();
    else ok = false;
    return out;
}

Plan mode_sense(std::span<const std::uint8_t> c, const Device& d, bool ten)
{
    const std::uint8_t page = c[2] & 0x3f, pc = c[2] >> 6, subpage = c[3];
    const bool dbd = c[1] & 0x08;
    const std::size_t alloc = ten ? be16(&c[7]) : c[4];
    if (pc == 3) return fail({0x05, 0x39, 0x00});   // saving parameters not supported
    if (subpage != 0 && subpage != 0xff) return fail(invalid_field);
    bool ok = false;
    auto pages = mode_pages(page, pc, d, ok);
    if (!ok) return fail(invalid_field);
    std::vector<std::uint8_t> blockdesc;
    if (!dbd) {
        blockdesc.assign(8, 0);
        put32(&blockdesc[0], static_cast<std::uint32_t>(std::min<std::uint64_t>(d.blocks, 0xffffffff)));
        put32(&blockdesc[4], d.block_size & 0xffffff);
    }
    std::vector<std::uint8_t> r(ten ? 8 : 4, 0);
    const std::uint8_t dsp = static_cast<std::uint8_t>((d.readonly ? 0x80 : 0) | 0x10);   // WP, DPOFUA
    if (ten) {
        r[3] = dsp;
        put16(&r[6], static_cast<std::uint32_t>(blockdesc.size()));
    } else {
        r[2] = dsp;
        r[3] = static_cast<std::uint8_t>(blockdesc.size());
    }
    r.insert(r.end(), blockdesc.begin(), blockdesc.end());
    r.insert(r.end(), pages.begin(), pages.end());
    if (ten) put16(&r[0], static_cast<std::uint32_t>(r.size() - 2));
    else r[0] = static_cast<std::uint8_t>(r.size() - 1);
    return reply(std::move(r), alloc);
}

Plan rw(std::uint64_t lba, std::uint64_t blocks, Op op, const Device& d, bool fua = false)
{
    if (lba > d.blocks || blocks > d.blocks - lba) return fail(lba_out_of_range);
    if (blocks > d.max_transfer_blocks && (op == Op::read || op == Op::write)) return fail(invalid_field);
    if (d.readonly && (op == Op::write || op == Op::write_same || op == Op::unmap || op == Op::compare_and_write)) return fail(write_protected);
    Plan p;
    p.op = op;
    p.lba = lba;
    p.blocks = blocks;
    p.fua = fua;
    return p;
}

// GET LBA STATUS: checked here, answered by the front-end from its backing (lba_status.hpp).
Plan get_lba_status(std::span<const std::uint8_t> c, const Device& d)
{
    const std::uint64_t lba = be64(&c[2]);
    if (lba >= d.blocks) return fail(lba_out_of_range);
    if (c[14] > 4) return fail(invalid_field);   // REPORT TYPE: all, non-zero status, mapped, deallocated, anchored
    Plan p;
    p.op = Op::get_lba_status;
    p.lba = lba;
    p.blocks = d.blocks - lba;
    p.alloc = be32(&c[10]);
    p.report_type = c[14];
    return p;
}

}  // namespace

bool parse_unmap(std::span<const std::uint8_t> p, std::vector<std::pair<std::uint64_t, std::uint32_t>>& out)
{
    out.clear();
    if (p.size() < 8) return p.empty();
    const std::size_t data_len = be16(&p[0]), desc_len = be16(&p[2]);
    if (data_len + 2 > p.size() || desc_len + 8 > p.size() || desc_len % 16 != 0) return false;
    for (std::size_t off = 8; off + 16 <= 8 + desc_len; off += 16) out.push_back({be64(&p[off]), be32(&p[off + 8])});
    return true;
}

namespace {

// WRITE SAME(10)/(16): one block (or none with NDOB) written over the range, or with UNMAP a hole.
Plan decode_write_same(std::span<const std::uint8_t> c, const Device& d)
{
    auto need = [&](std::size_t n) { return c.size() >= n; };
    const bool is16 = c[0] == op::write_same16;
    if (!need(is16 ? 16 : 10) || (c[1] & 0xe0)) return fail(invalid_field);
    const std::uint64_t n = is16 ? be32(&c[10]) : be16(&c[7]);
    if (n == 0) return fail(invalid_field);   // WSNZ
    if (c[1] & 0x10) return fail(invalid_field);   // ANCHOR: no ANC_SUP
    const bool unmap = c[1] & 0x08;
    if (unmap && !d.can_unmap) return fail(invalid_field);
    auto p = rw(is16 ? be64(&c[2]) : be32(&c[2]), n, Op::write_same, d);
    if (n > 0x400000 && p.status == good) return fail(invalid_field);
    p.unmap = unmap;
    p.ndob = is16 && (c[1] & 0x01);   // NDOB: the block is zeros and no data-out comes with it
    return p;
}

// The commands that move or check data: READ/WRITE in every size, the verifying and flushing ones, WRITE SAME,
// UNMAP, COMPARE AND WRITE.
Plan decode_io(std::span<const std::uint8_t> c, const Device& d)
{
    auto need = [&](std::size_t n) { return c.size() >= n; };
    const std::uint8_t code = c[0];
    switch (code) {
    case op::read6:
    case op::write6: {
        if (!need(6)) return fail(invalid_field);
        const std::uint64_t lba = (static_cast<std::uint64_t>(c[1] & 0x1f) << 16) | be16(&c[2]);
        const std::uint64_t n = c[4] ? c[4] : 256;
        return rw(lba, n, code == op::read6 ? Op::read : Op::write, d);
    }
    case op::read10:   // READ/WRITE(10), (12), (16): RDPROTECT/WRPROTECT need protection information, which we do not have
    case op::write10:
    case op::read12:
    case op::write12:
    case op::read16:
    case op::write16: {
        const bool is16 = code == op::read16 || code == op::write16, is12 = code == op::read12 || code == op::write12;
        if (!need(is16 ? 16 : is12 ? 12 : 10)) return fail(invalid_field);
        if (c[1] & 0xe0) return fail(invalid_field);
        const std::uint64_t lba = is16 ? be64(&c[2]) : be32(&c[2]);
        const std::uint64_t n = is16 ? be32(&c[10]) : is12 ? be32(&c[6]) : be16(&c[7]);
        const bool write = code == op::write10 || code == op::write12 || code == op::write16;
        return rw(lba, n, write ? Op::write : Op::read, d, (c[1] & 0x08) != 0);
    }
    case op::write_verify10:   // WRITE AND VERIFY(10)/(16): the write is durable before GOOD (it is verified by construction)
    case op::write_verify16: {
        const bool is16 = code == op::write_verify16;
        if (!need(is16 ? 16 : 10) || (c[1] & 0xe0)) return fail(invalid_field);
        auto p = rw(is16 ? be64(&c[2]) : be32(&c[2]), is16 ? be32(&c[10]) : be16(&c[7]), Op::write, d, true);
        return p;
    }
    case op::verify10:   // VERIFY(10)/(16): BYTCHK 0 = the medium is readable (range check); 1 = compare with data-out
    case op::verify16: {
        const bool is16 = code == op::verify16;
        if (!need(is16 ? 16 : 10) || (c[1] & 0xe0)) return fail(invalid_field);
        const int bytchk = (c[1] >> 1) & 3;
        if (bytchk == 2 || bytchk == 3) return fail(invalid_field);
        auto p = rw(is16 ? be64(&c[2]) : be32(&c[2]), is16 ? be32(&c[10]) : be16(&c[7]), Op::verify, d);
        p.bytchk = bytchk == 1;
        if (p.status == good && !p.bytchk) p.op = Op::reply;
        return p;
    }
    case op::sync_cache10:
    case op::sync_cache16: {
        const bool is16 = code == op::sync_cache16;
        if (!need(is16 ? 16 : 10)) return fail(invalid_field);
        auto p = rw(is16 ? be64(&c[2]) : be32(&c[2]), is16 ? be32(&c[10]) : be16(&c[7]), Op::flush, d);
        return p;
    }
    case op::write_same10:
    case op::write_same16:
        return decode_write_same(c, d);
    case op::unmap: {   // UNMAP: the parameter list arrives as data-out
        if (!need(10)) return fail(invalid_field);
        if (!d.can_unmap) return fail(invalid_opcode);
        if (d.readonly) return fail(write_protected);
        Plan p;
        p.op = Op::unmap;
        p.blocks = be16(&c[7]);   // parameter list length
        return p;
    }
    case op::compare_and_write: {
        if (!need(16) || (c[1] & 0xe0)) return fail(invalid_field);
        const std::uint64_t n = c[13];   // 0: nothing to compare or write (the data-out must then be empty too)
        if (n > 1) return fail(invalid_field);
        return rw(be64(&c[2]), n, Op::compare_and_write, d, (c[1] & 0x08) != 0);
    }
    default:
        return fail(invalid_opcode);
    }
}

}  // namespace

Plan decode(std::span<const std::uint8_t> c, const Device& d)
{
    if (c.empty()) return fail(invalid_opcode);
    auto need = [&](std::size_t n) { return c.size() >= n; };
    const std::uint8_t code = c[0];
    switch (code) {
    case op::test_unit_ready:
    case op::start_stop:
    case op::prevent_allow:
        return {};
    case op::request_sense: {   // REQUEST SENSE: nothing pending (errors are reported with their command)
        if (!need(6)) return fail(invalid_field);
        auto s = sense_bytes({0, 0, 0});
        return reply(s, c[4]);
    }
    case op::inquiry:
        if (!need(6)) return fail(invalid_field);
        return inquiry(c, d);
    case op::mode_sense6:
        if (!need(6)) return fail(invalid_field);
        return mode_sense(c, d, false);
    case op::mode_sense10:
        if (!need(10)) return fail(invalid_field);
        return mode_sense(c, d, true);
    case op::mode_select6:   // MODE SELECT(6)/(10): nothing is changeable; an empty list is fine
    case op::mode_select10: {
        const std::size_t len = code == op::mode_select6 ? c[4] : (need(9) ? be16(&c[7]) : 0);
        if (len == 0) return {};
        return fail(invalid_field);
    }
    case op::read_capacity10: {
        std::vector<std::uint8_t> r(8);
        put32(&r[0], static_cast<std::uint32_t>(std::min<std::uint64_t>(d.blocks - 1, 0xffffffff)));
        put32(&r[4], d.block_size);
        return reply(r, 8);
    }
    case op::service_action_in16: {   // SERVICE ACTION IN(16): READ CAPACITY(16), GET LBA STATUS
        if (!need(16)) return fail(invalid_field);
        if ((c[1] & 0x1f) == op::get_lba_status_sa) return get_lba_status(c, d);
        if ((c[1] & 0x1f) != op::read_capacity16_sa) return fail(invalid_field);   // SPC-4: an unsupported service action
        std::vector<std::uint8_t> r(32, 0);
        put64(&r[0], d.blocks - 1);
        put32(&r[8], d.block_size);
        r[13] = d.lbppb_exponent & 0x0f;          // logical blocks per physical block exponent
        if (d.can_unmap) r[14] = 0x80 | 0x40;   // LBPME, LBPRZ
        return reply(r, be32(&c[10]));
    }
    case op::maintenance_in: {   // MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES only
        if (!need(12) || (c[1] & 0x1f) != op::report_supported_opcodes_sa) return fail(invalid_field);
        auto r = report_supported_opcodes(c, d);
        if (!r) return fail(invalid_field);
        return reply(std::move(*r), be32(&c[6]));
    }
    default:   // the data path
        return decode_io(c, d);
    }
}

}  // namespace devemu::scsi
