#pragma once
// The device side of Bulk-Only Transport, pure: what devemu's own mass-storage function does with a CBW once it
// knows what the command wants (BOT 1.0 §6.7, the thirteen host/device cases), the FunctionFS descriptors of a
// mass-storage interface, and READ FORMAT CAPACITIES (which the SCSI core leaves to USB front-ends). No I/O.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "scsi/emulation.hpp"
#include "usb/bot.hpp"

namespace devemu::usb::bot {

// What the device would move for a command: its direction and length (Dn/Di/Do of the spec).
struct Intent {
    Dir dir = Dir::none;
    std::uint32_t length = 0;
};

// What the device does with one CBW (the host's Hn/Hi/Ho against the device's Dn/Di/Do).
struct Action {
    std::uint32_t transfer = 0;   // bytes moved in the host's direction (in: sent; out: received)
    std::uint32_t pad = 0;        // data-in only, a device that may not stall: zero bytes sent after `transfer`
    std::uint32_t discard = 0;    // data-out only, a device that may not stall: bytes received and thrown away
    bool halt_in = false;         // after the data, before the CSW: STALL bulk-in (the host clears it, reads the CSW)
    bool halt_out = false;        // STALL bulk-out (the host clears it)
    bool execute = true;          // false: the command is not run (a phase error before any effect)
    bool phase_error = false;     // CSW status 2: the host does reset recovery
    std::uint32_t residue = 0;    // dCSWDataResidue
};

// `can_stall`: the profile's `stall` (the kernel function's attribute of that name): false pads data-in with zeros
// and accepts surplus data-out instead of halting, for hosts that mishandle a STALL.
[[nodiscard]] Action plan_transfer(const Cbw& cbw, Intent dev, bool can_stall);

// Which way a SCSI plan moves data and how much, as the device sees it (REQUEST SENSE and READ FORMAT CAPACITIES
// are replies like any other). `param_len`: for UNMAP, its parameter list length.
[[nodiscard]] Intent intent_of(const scsi::Plan& plan, std::span<const std::uint8_t> cdb, std::uint32_t block_size);

// READ FORMAT CAPACITIES (0x23): one current/maximum descriptor, "formatted media" (Windows asks for it).
[[nodiscard]] scsi::Plan read_format_capacities(std::span<const std::uint8_t> cdb, const scsi::Device& dev);

// FunctionFS: the v2 descriptors (full, high and super speed) of one mass-storage interface (class 8, SCSI
// transparent, Bulk-Only) with a bulk OUT (ep1) and a bulk IN (ep2) endpoint, and its strings.
[[nodiscard]] std::vector<std::uint8_t> ffs_descriptors();
[[nodiscard]] std::vector<std::uint8_t> ffs_strings(const std::string& interface_name);

}  // namespace devemu::usb::bot
