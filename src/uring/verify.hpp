#pragma once
// --verify's block format: every block starts with a header naming where it belongs and a crc32c of the rest,
// so a block read back from the wrong place, torn, or changed behind our back is caught, with its offset.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace devemu::uring {

inline constexpr std::uint64_t kVerifyMagic = 0x64657665'6d755631ULL;   // "devemuV1"

struct VerifyHeader {
    std::uint64_t magic;
    std::uint64_t offset;   // byte offset of this block in the target
    std::uint64_t seed;
    std::uint32_t length;
    std::uint32_t crc;      // crc32c of the block with this field zero
};
static_assert(sizeof(VerifyHeader) == 32);

[[nodiscard]] std::uint32_t crc32c(const void* data, std::size_t len, std::uint32_t crc = 0);
// Fills `buf` (len >= 64) for `offset`: header + deterministic pattern from seed and offset.
void verify_fill(void* buf, std::size_t len, std::uint64_t offset, std::uint64_t seed);
// nullopt when the block is what verify_fill wrote for this offset and seed; else what is wrong.
[[nodiscard]] std::optional<std::string> verify_check(const void* buf, std::size_t len, std::uint64_t offset, std::uint64_t seed);

}  // namespace devemu::uring
