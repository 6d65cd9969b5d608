#pragma once
// USB Mass Storage Bulk-Only Transport: pure encoding and decoding, no I/O. CBW (31 bytes, "USBC") out, CSW
// (13 bytes, "USBS") in. The SCSI inside (CDBs, replies, sense) is scsi/cdb.hpp and scsi/sense.hpp. Every parser
// takes a byte span of any length and refuses what it cannot read: never reads past the end.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace devemu::usb::bot {

inline constexpr std::uint32_t cbw_signature = 0x43425355;   // "USBC" little-endian
inline constexpr std::uint32_t csw_signature = 0x53425355;   // "USBS"
inline constexpr std::size_t cbw_len = 31, csw_len = 13;
inline constexpr std::uint8_t req_get_max_lun = 0xFE, req_reset = 0xFF;

enum class Dir : std::uint8_t { none, in, out };

struct Cbw {
    std::uint32_t tag = 0;
    std::uint32_t length = 0;   // dCBWDataTransferLength
    Dir dir = Dir::none;        // bmCBWFlags bit 7 (none encodes as out with length 0)
    std::uint8_t lun = 0;
    std::vector<std::uint8_t> cdb;   // 1..16 bytes
};
[[nodiscard]] std::array<std::uint8_t, cbw_len> encode(const Cbw& c);
[[nodiscard]] std::optional<Cbw> decode_cbw(std::span<const std::uint8_t> b);

enum class CswStatus : std::uint8_t { passed = 0, failed = 1, phase_error = 2 };
struct Csw {
    std::uint32_t tag = 0;
    std::uint32_t residue = 0;
    std::uint8_t status = 0;   // raw: a value above 2 is a protocol error the checker reports
};
// nullopt: not 13 bytes or not "USBS" (a CSW the host must treat as invalid: reset recovery).
[[nodiscard]] std::optional<Csw> decode_csw(std::span<const std::uint8_t> b);
[[nodiscard]] std::array<std::uint8_t, csw_len> encode(const Csw& c);
// Is the CSW "meaningful" for this CBW (BOT 6.3): signature, tag echoed, status 0..2, residue not above the
// requested length? Returns an empty string when it is, else why not.
[[nodiscard]] std::string csw_problem(const Cbw& sent, const Csw& got);

}  // namespace devemu::usb::bot
