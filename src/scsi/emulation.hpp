#pragma once
// The SCSI core: block-device emulation (SBC-3/SPC-4 subset) for every userspace front-end (the TCMU handler and
// devemu's USB mass storage): decodes a CDB into either an immediate reply (INQUIRY, READ CAPACITY, MODE SENSE, REPORT
// SUPPORTED OPERATION CODES, …: data + status), a question for the backing (GET LBA STATUS) or an I/O the data path performs (read, write, flush, discard,
// compare). Pure code: no I/O, unit-tested.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "scsi/sense.hpp"

namespace devemu::scsi {

struct Device {
    std::uint64_t blocks = 0;
    std::uint32_t block_size = 512;
    std::string serial;            // VPD 0x80, and the NAA in 0x83
    std::string vendor = "DEVEMU", product = "uring backstore", revision = "0001";
    bool write_cache = false;      // WCE in the caching mode page
    bool readonly = false;
    bool can_unmap = true;         // backing supports punching holes / discard
    // The backing's geometry, as a real disk reports it: 2^exponent logical blocks per physical block (READ
    // CAPACITY(16); a 512-byte LUN on a 4 KiB zram device is "512e"), and the optimal UNMAP granularity in blocks.
    std::uint8_t lbppb_exponent = 0;
    std::uint32_t unmap_granularity = 1;
    std::uint32_t max_transfer_blocks = 8192;   // VPD 0xb0, also the largest data area the ring gives us
    // VPD 0xb0's OPTIMAL TRANSFER LENGTH (0: the maximum). Linux's sd makes it the disk's request size
    // (max_sectors_kb), so it decides how large the commands are that the initiator sends.
    std::uint32_t optimal_transfer_blocks = 0;
};

// get_lba_status: the front-end asks its backing (lba_status.hpp) and replies; every other op is data or a reply.
enum class Op { reply, read, write, flush, write_same, unmap, compare_and_write, verify, get_lba_status };

struct Plan {
    Op op = Op::reply;
    std::uint8_t status = good;
    Sense sense;
    std::vector<std::uint8_t> data;   // reply data (copied to the initiator, truncated to the allocation length)
    std::uint64_t lba = 0, blocks = 0;
    bool fua = false;
    bool unmap = false;        // write_same: UNMAP bit (punch the range instead of writing)
    bool ndob = false;         // write_same(16): no data-out buffer, the block is zeros (libiscsi unmaps this way)
    bool bytchk = false;       // verify / write-and-verify: compare with the data-out buffer
    std::uint32_t alloc = 0;   // get_lba_status: the allocation length (lba..lba+blocks is what is left of the LUN)
    std::uint8_t report_type = 0;   // get_lba_status: SBC-4's REPORT TYPE
};

[[nodiscard]] Plan decode(std::span<const std::uint8_t> cdb, const Device& dev);

// UNMAP parameter list -> (lba, blocks) descriptors; empty + false when malformed.
[[nodiscard]] bool parse_unmap(std::span<const std::uint8_t> param, std::vector<std::pair<std::uint64_t, std::uint32_t>>& out);

}  // namespace devemu::scsi
