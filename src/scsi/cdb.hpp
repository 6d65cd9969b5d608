#pragma once
// The initiator's side of SCSI, for devemu's own checkers (the USB one today): CDBs built, replies parsed. Pure
// code; every parser takes a byte span of any length and refuses what it cannot read.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "scsi/opcodes.hpp"
#include "scsi/sense.hpp"

namespace devemu::scsi {

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

}  // namespace devemu::scsi
