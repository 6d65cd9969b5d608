#pragma once
// Operation codes (SPC-4, SBC-3) that devemu emulates or sends: one list for the target side (emulation.hpp) and
// the initiator side (cdb.hpp, the USB checker).
#include <cstddef>
#include <cstdint>

namespace devemu::scsi::op {

inline constexpr std::uint8_t test_unit_ready = 0x00, request_sense = 0x03, read6 = 0x08, write6 = 0x0a, inquiry = 0x12,
                              mode_select6 = 0x15, mode_sense6 = 0x1a, start_stop = 0x1b, prevent_allow = 0x1e,
                              read_format_capacities = 0x23, read_capacity10 = 0x25, read10 = 0x28, write10 = 0x2a,
                              write_verify10 = 0x2e, verify10 = 0x2f, sync_cache10 = 0x35, write_same10 = 0x41, unmap = 0x42,
                              mode_select10 = 0x55, mode_sense10 = 0x5a, read16 = 0x88, compare_and_write = 0x89, write16 = 0x8a,
                              write_verify16 = 0x8e, verify16 = 0x8f, sync_cache16 = 0x91, write_same16 = 0x93,
                              service_action_in16 = 0x9e, maintenance_in = 0xa3, read12 = 0xa8, write12 = 0xaa;
// SERVICE ACTION IN(16) service actions.
inline constexpr std::uint8_t read_capacity16_sa = 0x10, get_lba_status_sa = 0x12;
// MAINTENANCE IN service actions.
inline constexpr std::uint8_t report_supported_opcodes_sa = 0x0c;

// A CDB's length from its opcode's group code (SPC-4 4.2.5.1): 6, 10, 12 or 16 bytes; the reserved and vendor
// groups (3, 6, 7) are read as 16, the longest, so nothing past the CDB is ever taken as part of it.
inline constexpr std::size_t cdb_length(std::uint8_t opcode)
{
    switch (opcode >> 5) {
    case 0: return 6;
    case 1:
    case 2: return 10;
    case 5: return 12;
    default: return 16;
    }
}

}  // namespace devemu::scsi::op
