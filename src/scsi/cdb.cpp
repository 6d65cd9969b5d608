#include "scsi/cdb.hpp"

#include "scsi/bytes.hpp"

namespace devemu::scsi {

namespace {
std::string ascii(std::span<const std::uint8_t> b)
{
    std::string s;
    for (auto c : b) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}
}  // namespace

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
    put32(&c[10], alloc);
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
    put32(&c[2], lba);
    c[7] = static_cast<std::uint8_t>(blocks >> 8);
    c[8] = static_cast<std::uint8_t>(blocks);
    return c;
}
std::vector<std::uint8_t> cdb_read10(std::uint32_t lba, std::uint16_t blocks) { return rw10(op::read10, lba, blocks); }
std::vector<std::uint8_t> cdb_write10(std::uint32_t lba, std::uint16_t blocks) { return rw10(op::write10, lba, blocks); }


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

}  // namespace devemu::scsi
