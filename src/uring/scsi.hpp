#pragma once
// SCSI block-device emulation for the TCMU handler (SBC-3/SPC-4 subset): decodes a CDB into either an immediate
// reply (INQUIRY, READ CAPACITY, MODE SENSE, …: data + status) or an I/O the data path performs (read, write,
// flush, discard, compare). Pure code: no I/O, unit-tested.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace devemu::uring::scsi {

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
};

enum class Op { reply, read, write, flush, write_same, unmap, compare_and_write, verify };

struct Sense {
    std::uint8_t key = 0, asc = 0, ascq = 0;
};
inline constexpr std::uint8_t good = 0x00, check_condition = 0x02;

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
};

[[nodiscard]] Plan decode(std::span<const std::uint8_t> cdb, const Device& dev);

// Fixed-format sense data (18 bytes) for a CHECK CONDITION.
[[nodiscard]] std::vector<std::uint8_t> sense_bytes(const Sense& s);
// For a MISCOMPARE: the offset of the first differing byte goes in INFORMATION.
[[nodiscard]] std::vector<std::uint8_t> sense_bytes(const Sense& s, std::uint32_t information);

// UNMAP parameter list -> (lba, blocks) descriptors; empty + false when malformed.
[[nodiscard]] bool parse_unmap(std::span<const std::uint8_t> param, std::vector<std::pair<std::uint64_t, std::uint32_t>>& out);

inline constexpr Sense invalid_opcode{0x05, 0x20, 0x00}, invalid_field{0x05, 0x24, 0x00}, lba_out_of_range{0x05, 0x21, 0x00},
    write_protected{0x07, 0x27, 0x00}, miscompare{0x0e, 0x1d, 0x00}, medium_error_read{0x03, 0x11, 0x00},
    medium_error_write{0x03, 0x0c, 0x00}, invalid_param_list{0x05, 0x26, 0x00}, param_list_length{0x05, 0x1a, 0x00};

}  // namespace devemu::uring::scsi
