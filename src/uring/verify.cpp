#include "uring/verify.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>

namespace devemu::uring {

namespace {
constexpr std::array<std::uint32_t, 256> make_table()
{
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;   // Castagnoli, reflected
        t[i] = c;
    }
    return t;
}
constexpr auto kTable = make_table();

std::uint64_t splitmix(std::uint64_t& x)
{
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
}  // namespace

std::uint32_t crc32c(const void* data, std::size_t len, std::uint32_t crc)
{
    auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < len; ++i) crc = kTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void verify_fill(void* buf, std::size_t len, std::uint64_t offset, std::uint64_t seed)
{
    auto* b = static_cast<unsigned char*>(buf);
    std::uint64_t state = seed ^ (offset * 0x9e3779b97f4a7c15ULL);
    for (std::size_t i = sizeof(VerifyHeader); i + 8 <= len; i += 8) {
        std::uint64_t v = splitmix(state);
        std::memcpy(b + i, &v, 8);
    }
    VerifyHeader h{kVerifyMagic, offset, seed, static_cast<std::uint32_t>(len), 0};
    std::memcpy(b, &h, sizeof h);
    h.crc = crc32c(b, len);
    std::memcpy(b, &h, sizeof h);
}

std::optional<std::string> verify_check(const void* buf, std::size_t len, std::uint64_t offset, std::uint64_t seed)
{
    VerifyHeader h;
    std::memcpy(&h, buf, sizeof h);
    if (h.magic != kVerifyMagic) return fmt::format("offset {}: no verify header (not written by devemu bench --verify?)", offset);
    if (h.offset != offset) return fmt::format("offset {}: block belongs at offset {} (misplaced write)", offset, h.offset);
    if (h.seed != seed || h.length != len) return fmt::format("offset {}: written by another run (seed/length differ)", offset);
    const std::uint32_t want = h.crc;
    VerifyHeader z = h;
    z.crc = 0;
    std::uint32_t crc = crc32c(&z, sizeof z);
    crc = crc32c(static_cast<const unsigned char*>(buf) + sizeof z, len - sizeof z, crc);
    if (crc != want) return fmt::format("offset {}: crc32c {:08x}, header says {:08x} (data changed)", offset, crc, want);
    return std::nullopt;
}

}  // namespace devemu::uring
