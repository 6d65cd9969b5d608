#include "usb/bot.hpp"

#include <fmt/format.h>

namespace devemu::usb::bot {

namespace {

void put_le32(std::uint8_t* p, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t le32(const std::uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<std::uint32_t>(p[3]) << 24; }
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

}  // namespace devemu::usb::bot
