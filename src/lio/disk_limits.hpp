// The initiator side of a loopback LUN on this kernel: request-size limits the disk got from the target's hints.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "lio/model.hpp"

namespace devemu::lio {

// sd sizes a disk's requests by the LUN's OPTIMAL TRANSFER LENGTH (Block Limits VPD) when it is at least a page.
// LIO's iblock reports its device's optimal_io_size there, and zram's is one page: every request of a loopback LUN
// on zram became 4 KiB (a 128k read, 32 SCSI commands; 15x slower than fileio on the same device). For each disk
// in `devices` (LUN -> "/dev/sdX") whose max_sectors_kb equals its optimal_io_size and is under 128 KiB, raises
// max_sectors_kb to what sd picks without the hint (max_hw_sectors_kb, at most 1280). Says (and returns) one line
// per disk changed; a disk that refuses is a warning, not a failure (the LUN works, only slower).
std::vector<std::string> lift_transfer_cap(const nlohmann::json& devices, const Roots& roots);

}  // namespace devemu::lio
