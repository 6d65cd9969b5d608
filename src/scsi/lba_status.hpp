#pragma once
// GET LBA STATUS (SBC-3 5.7, SERVICE ACTION IN(16) 0x12): which logical blocks are mapped and which are deallocated.
// The backing answers in bytes (a file's data and holes, SEEK_DATA/SEEK_HOLE); this turns that into whole logical
// blocks, as the initiator reads them back. Pure code: the backing is asked through a callback, unit-tested.
#include <cstdint>
#include <functional>
#include <optional>

#include "scsi/emulation.hpp"

namespace devemu::scsi {

// One stretch of the backing from a given offset: data (mapped) or a hole (deallocated), `len` bytes long.
struct Run {
    bool data = true;
    std::uint64_t len = 0;
};

// What the backing has at byte `off` (never past `end`); nullopt when it cannot tell (then: mapped).
using RunProbe = std::function<std::optional<Run>(std::uint64_t off, std::uint64_t end)>;

// The descriptors GET LBA STATUS returns at most: each costs the backing a probe or two.
inline constexpr std::size_t max_lba_status_descriptors = 512;

// The reply to decode()'s Op::get_lba_status: descriptors from the starting LBA on, in ascending order, adjacent
// runs of one state merged, each at most 2^32-1 blocks; a block that holds any data is mapped. Report types (SBC-4):
// 0 all, 1 and 3 deallocated only, 2 mapped only, 4 anchored (none here). As many as the allocation length holds.
[[nodiscard]] Plan lba_status(const Plan& plan, const Device& d, const RunProbe& probe);

}  // namespace devemu::scsi
