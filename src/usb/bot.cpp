#include "usb/bot.hpp"

#include <fmt/format.h>

namespace devemu::usb::bot {

namespace {

void put_le32(std::uint8_t* p, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t le32(const std::uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<std::uint32_t>(p[3]) << 24; }
std::uint32_t be32(const std::uint8_t* p) { return static_cast<std::uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint64_t be64(const std::uint8_t* p) { return static_cast<std::uint64_t>(be32(p)) << 32 | be32(p + 4); }
void put_be32(std::uint8_t* p, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

std::string ascii(std::span<const std::uint8_t> b)
{
    std::string s;
    for (auto c : b) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

}  // namespace

std::array<std::uint8_t, cbw_len> encode(const Cbw& c)
{
    std::array<std::uint8_t, cbw_len> b{};
    put_le32(&b[0], cbw_signature);
    put_le32(&b[4], c.tag);
    put_le32(&b[8], c.length);
    b[12] = c.dir == Dir::in ? 0x80 : 0x00;
    b[13] = c.lun & 0x0f;
    const auto n = std::min<std::size_t>(c.cdb.size(), 16);
    b[14] = static_cast<std::uint8_t>(n);
    for (std::size_t i = 0; i < n; ++i) b[15 + i] = c.cdb[i];
    return b;
}

std::optional<Cbw> decode_cbw(std::span<const std::uint8_t> b)
{
    if (b.size() != cbw_len || le32(&b[0]) != cbw_signature) return std::nullopt;
    if (b[14] < 1 || b[14] > 16 || (b[12] & 0x7f) != 0 || (b[13] & 0xf0) != 0) return std::nullopt;
    Cbw c;
    c.tag = le32(&b[4]);
    c.length = le32(&b[8]);
    c.dir = c.length == 0 ? Dir::none : (b[12] & 0x80 ? Dir::in : Dir::out);
    c.lun = b[13];
    c.cdb.assign(b.begin() + 15, b.begin() + 15 + b[14]);
    return c;
}

std::optional<Csw> decode_csw(std::span<const std::uint8_t> b)
{
    if (b.size() != csw_len || le32(&b[0]) != csw_signature) return std::nullopt;
    return Csw{le32(&b[4]), le32(&b[8]), b[12]};
}

std::array<std::uint8_t, csw_len> encode(const Csw& c)
{
    std::array<std::uint8_t, csw_len> b{};
    put_le32(&b[0], csw_signature);
    put_le32(&b[4], c.tag);
    put_le32(&b[8], c.residue);
    b[12] = c.status;
    return b;
}

std::string csw_problem(const Cbw& sent, const Csw& got)
{
    if (got.tag != sent.tag) return fmt::format("CSW tag {:#010x} does not echo the CBW's {:#010x}", got.tag, sent.tag);
    if (got.status > 2) return fmt::format("CSW status {} is not 0, 1 or 2", got.status);
    if (got.residue > sent.length) return fmt::format("CSW residue {} exceeds the CBW's length {}", got.residue, sent.length);
    return {};
}

std::vector<std::uint8_t> cdb_test_unit_ready() { return std::vector<std::uint8_t>(6, 0); }
std::vector<std::uint8_t> cdb_request_sense(std::uint8_t alloc) { return {op::request_sense, 0, 0, 0, alloc, 0}; }
std::vector<std::uint8_t> cdb_inquiry(std::uint8_t alloc, std::optional<std::uint8_t> vpd_page)
{
    return {op::inquiry, static_cast<std::uint8_t>(vpd_page ? 1 : 0), vpd_page.value_or(0), 0, alloc, 0};
}
std::vector<std::uint8_t> cdb_read_capacity10() { return std::vector<std::uint8_t>{op::read_capacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}; }
std::vector<std::uint8_t> cdb_read_capacity16(std::uint32_t alloc)
{
    std::vector<std::uint8_t> c(16, 0);
    c[0] = op::service_action_in16;
    c[1] = op::read_capacity16_sa;
    put_be32(&c[10], alloc);
    return c;
}
std::vector<std::uint8_t> cdb_mode_sense6(std::uint8_t page, std::uint8_t alloc) { return {op::mode_sense6, 0, page, 0, alloc, 0}; }
std::vector<std::uint8_t> cdb_mode_sense10(std::uint8_t page, std::uint16_t alloc)
{
    return {op::mode_sense10, 0, page, 0, 0, 0, 0, static_cast<std::uint8_t>(alloc >> 8), static_cast<std::uint8_t>(alloc), 0};
}
std::vector<std::uint8_t> cdb_read_format_capacities(std::uint16_t alloc)
{
    return {op::read_format_capacities, 0, 0, 0, 0, 0, 0, static_cast<std::uint8_t>(alloc >> 8), static_cast<std::uint8_t>(alloc), 0};
}
static std::vector<std::uint8_t> rw10(std::uint8_t opcode, std::uint32_t lba, std::uint16_t blocks)
{
    std::vector<std::uint8_t> c(10, 0);
    c[0] = opcode;
    put_be32(&c[2], lba);
    c[7] = static_cast<std::uint8_t>(blocks >> 8);
    c[8] = static_cast<std::uint8_t>(blocks);
    return c;
}
std::vector<std::uint8_t> cdb_read10(std::uint32_t lba, std::uint16_t blocks) { return rw10(op::read10, lba, blocks); }
std::vector<std::uint8_t> cdb_write10(std::uint32_t lba, std::uint16_t blocks) { return rw10(op::write10, lba, blocks); }

const char* sense_key_name(std::uint8_t key)
{
    static const char* names[] = {"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
                                  "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
                                  "COPY ABORTED", "ABORTED COMMAND", "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED"};
    return names[key & 0x0f];
}

std::string Sense::str() const
{
    const char* what = "";
    if (asc == 0x20 && ascq == 0) what = " (invalid command operation code)";
    else if (asc == 0x24 && ascq == 0) what = " (invalid field in CDB)";
    else if (asc == 0x21 && ascq == 0) what = " (LBA out of range)";
    else if (asc == 0x27 && ascq == 0) what = " (write protected)";
    else if (asc == 0x3a) what = " (medium not present)";
    else if (asc == 0x29) what = " (power on, reset or bus device reset occurred)";
    else if (asc == 0x28) what = " (medium may have changed)";
    else if (asc == 0x25 && ascq == 0) what = " (logical unit not supported)";
    return fmt::format("{} {:02x}/{:02x}{}", sense_key_name(key), asc, ascq, what);
}

std::optional<Sense> parse_sense(std::span<const std::uint8_t> b)
{
    if (b.empty()) return std::nullopt;
    Sense s;
    s.response_code = b[0] & 0x7f;
    if (s.response_code == 0x70 || s.response_code == 0x71) {
        if (b.size() < 14) {
            if (b.size() < 3) return std::nullopt;
            s.key = b[2] & 0x0f;   // short fixed sense: the key is there, ASC/ASCQ are not
            return s;
        }
        s.key = b[2] & 0x0f;
        s.asc = b[12];
        s.ascq = b[13];
        return s;
    }
    if (s.response_code == 0x72 || s.response_code == 0x73) {
        if (b.size() < 4) return std::nullopt;
        s.key = b[1] & 0x0f;
        s.asc = b[2];
        s.ascq = b[3];
        return s;
    }
    return std::nullopt;
}

std::optional<Inquiry> parse_inquiry(std::span<const std::uint8_t> b)
{
    if (b.size() < 36) return std::nullopt;
    Inquiry q;
    q.peripheral = b[0] & 0x1f;
    q.removable = b[1] & 0x80;
    q.version = b[2];
    q.response_format = b[3] & 0x0f;
    q.additional_length = b[4];
    q.vendor = ascii(b.subspan(8, 8));
    q.product = ascii(b.subspan(16, 16));
    q.revision = ascii(b.subspan(32, 4));
    return q;
}

std::optional<Capacity> parse_read_capacity10(std::span<const std::uint8_t> b)
{
    if (b.size() < 8) return std::nullopt;
    return Capacity{be32(&b[0]), be32(&b[4])};
}

std::optional<Capacity> parse_read_capacity16(std::span<const std::uint8_t> b)
{
    if (b.size() < 12) return std::nullopt;
    return Capacity{be64(&b[0]), be32(&b[8])};
}

std::optional<ModeHeader> parse_mode_sense6(std::span<const std::uint8_t> b)
{
    if (b.size() < 4) return std::nullopt;
    return ModeHeader{static_cast<std::uint32_t>(b[0]) + 1, (b[2] & 0x80) != 0, b[3]};
}

std::optional<ModeHeader> parse_mode_sense10(std::span<const std::uint8_t> b)
{
    if (b.size() < 8) return std::nullopt;
    return ModeHeader{static_cast<std::uint32_t>(be16(&b[0])) + 2, (b[3] & 0x80) != 0, be16(&b[6])};
}

std::optional<FormatCapacity> parse_read_format_capacities(std::span<const std::uint8_t> b)
{
    // Capacity list header (4 bytes, length at byte 3) then the current/maximum descriptor (8 bytes).
    if (b.size() < 12 || b[3] < 8 || b[3] % 8 != 0) return std::nullopt;
    FormatCapacity f;
    f.blocks = be32(&b[4]);
    f.descriptor_type = b[8] & 0x03;
    f.block_size = static_cast<std::uint32_t>(b[9]) << 16 | b[10] << 8 | b[11];
    return f;
}

}  // namespace devemu::usb::bot
