#pragma once
// Sense data: the keys and ASC/ASCQ pairs devemu reports or checks for, one builder (fixed format, what the TCMU
// handler returns) and one parser (fixed or descriptor format, what the USB checker reads).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace devemu::scsi {

namespace key {
inline constexpr std::uint8_t no_sense = 0x00, recovered_error = 0x01, not_ready = 0x02, medium_error = 0x03, hardware_error = 0x04,
                              illegal_request = 0x05, unit_attention = 0x06, data_protect = 0x07, aborted_command = 0x0b,
                              miscompare = 0x0e;
}

struct Sense {
    std::uint8_t key = 0, asc = 0, ascq = 0;
    std::uint8_t response_code = 0x70;   // when parsed: 0x70/0x71 fixed, 0x72/0x73 descriptor

    [[nodiscard]] bool is(const Sense& s) const { return key == s.key && asc == s.asc && ascq == s.ascq; }
    [[nodiscard]] std::string str() const;   // "ILLEGAL REQUEST 24/00 (invalid field in CDB)"
};

inline constexpr Sense invalid_opcode{key::illegal_request, 0x20, 0x00}, invalid_field{key::illegal_request, 0x24, 0x00},
    lba_out_of_range{key::illegal_request, 0x21, 0x00}, lun_not_supported{key::illegal_request, 0x25, 0x00},
    invalid_param_list{key::illegal_request, 0x26, 0x00}, param_list_length{key::illegal_request, 0x1a, 0x00},
    write_protected{key::data_protect, 0x27, 0x00}, medium_not_present{key::not_ready, 0x3a, 0x00},
    miscompare{key::miscompare, 0x1d, 0x00}, medium_error_read{key::medium_error, 0x11, 0x00},
    medium_error_write{key::medium_error, 0x0c, 0x00};

inline constexpr std::uint8_t good = 0x00, check_condition = 0x02, task_aborted = 0x40;

// Fixed-format sense data (18 bytes) for a CHECK CONDITION; `information` (the failing LBA, or the offset of a
// miscompare) goes in INFORMATION with VALID set when not 0.
[[nodiscard]] std::vector<std::uint8_t> sense_bytes(const Sense& s, std::uint32_t information = 0);
// Fixed or descriptor format; nullopt when too short or not a sense response code.
[[nodiscard]] std::optional<Sense> parse_sense(std::span<const std::uint8_t> b);
[[nodiscard]] const char* sense_key_name(std::uint8_t key);

}  // namespace devemu::scsi
