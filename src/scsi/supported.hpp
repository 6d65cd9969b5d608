#pragma once
// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): which commands decode() serves on a device, each with the bits of
// its CDB that decode() reads. One table, so that what the device says it does and what it does cannot drift apart
// (a unit test decodes every listed command and refuses every other opcode).
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "scsi/emulation.hpp"

namespace devemu::scsi {

struct SupportedCommand {
    std::uint8_t opcode = 0;
    std::optional<std::uint8_t> service_action;   // set for the commands that have service actions
    std::vector<std::uint8_t> usage;              // CDB USAGE DATA: the CDB's length, byte 0 the opcode
};

[[nodiscard]] std::vector<SupportedCommand> supported_commands(const Device& d);

// The parameter data for a REPORT SUPPORTED OPERATION CODES CDB (12 bytes, checked by the caller), before the
// allocation length is applied; nullopt when its REPORTING OPTIONS do not fit the requested command (INVALID FIELD
// IN CDB): one command (001b) of a command with service actions, or a service action (010b) of one without.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> report_supported_opcodes(std::span<const std::uint8_t> cdb, const Device& d);

}  // namespace devemu::scsi
