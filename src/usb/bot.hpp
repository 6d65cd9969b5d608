#pragma once
// USB Mass Storage Bulk-Only Transport and the SCSI commands the checker sends: pure encoding and decoding, no
// I/O. CBW (31 bytes, "USBC") out, CSW (13 bytes, "USBS") in; CDBs built here; replies and sense parsed here.
// Every parser takes a byte span of any length and refuses what it cannot read: never reads past the end.
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

// ---- SCSI ----
namespace op {
inline constexpr std::uint8_t test_unit_ready = 0x00, request_sense = 0x03, inquiry = 0x12, mode_sense6 = 0x1A,
                              start_stop = 0x1B, read_format_capacities = 0x23, read_capacity10 = 0x25, read10 = 0x28,
                              write10 = 0x2A, verify10 = 0x2F, sync_cache10 = 0x35, mode_sense10 = 0x5A,
                              service_action_in16 = 0x9E, read_capacity16_sa = 0x10;
}

[[nodiscard]] std::vector<std::uint8_t> cdb_test_unit_ready();
[[nodiscard]] std::vector<std::uint8_t> cdb_request_sense(std::uint8_t alloc);
[[nodiscard]] std::vector<std::uint8_t> cdb_inquiry(std::uint8_t alloc, std::optional<std::uint8_t> vpd_page = {});
[[nodiscard]] std::vector<std::uint8_t> cdb_read_capacity10();
[[nodiscard]] std::vector<std::uint8_t> cdb_read_capacity16(std::uint32_t alloc);
[[nodiscard]] std::vector<std::uint8_t> cdb_mode_sense6(std::uint8_t page, std::uint8_t alloc);
[[nodiscard]] std::vector<std::uint8_t> cdb_mode_sense10(std::uint8_t page, std::uint16_t alloc);
[[nodiscard]] std::vector<std::uint8_t> cdb_read_format_capacities(std::uint16_t alloc);
[[nodiscard]] std::vector<std::uint8_t> cdb_read10(std::uint32_t lba, std::uint16_t blocks);
[[nodiscard]] std::vector<std::uint8_t> cdb_write10(std::uint32_t lba, std::uint16_t blocks);

struct Sense {
    std::uint8_t response_code = 0;   // 0x70/0x71 fixed, 0x72/0x73 descriptor
    std::uint8_t key = 0, asc = 0, ascq = 0;
    [[nodiscard]] std::string str() const;   // "ILLEGAL REQUEST 24/00 (invalid field in CDB)"
};
// Fixed or descriptor format; nullopt when too short or not a sense response code.
[[nodiscard]] std::optional<Sense> parse_sense(std::span<const std::uint8_t> b);
[[nodiscard]] const char* sense_key_name(std::uint8_t key);

struct Inquiry {
    std::uint8_t peripheral = 0;   // device type, low 5 bits
    bool removable = false;
    std::uint8_t version = 0, response_format = 0, additional_length = 0;
    std::string vendor, product, revision;   // trailing spaces trimmed
};
[[nodiscard]] std::optional<Inquiry> parse_inquiry(std::span<const std::uint8_t> b);

struct Capacity {
    std::uint64_t last_lba = 0;
    std::uint32_t block_size = 0;
    [[nodiscard]] std::uint64_t blocks() const { return last_lba + 1; }
};
[[nodiscard]] std::optional<Capacity> parse_read_capacity10(std::span<const std::uint8_t> b);
[[nodiscard]] std::optional<Capacity> parse_read_capacity16(std::span<const std::uint8_t> b);

struct ModeHeader {
    std::uint32_t data_length = 0;   // the mode data length field + its own size: bytes the device has
    bool write_protect = false;
    std::uint32_t block_descriptor_length = 0;
};
[[nodiscard]] std::optional<ModeHeader> parse_mode_sense6(std::span<const std::uint8_t> b);
[[nodiscard]] std::optional<ModeHeader> parse_mode_sense10(std::span<const std::uint8_t> b);

struct FormatCapacity {
    std::uint32_t blocks = 0, block_size = 0;
    std::uint8_t descriptor_type = 0;   // 1 unformatted, 2 formatted, 3 no media
};
[[nodiscard]] std::optional<FormatCapacity> parse_read_format_capacities(std::span<const std::uint8_t> b);

}  // namespace devemu::usb::bot
