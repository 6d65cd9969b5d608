#pragma once
// UNMAP and WRITE SAME(UNMAP) on a backing, so that what was unmapped reads back zeros (we report LBPRZ): a file
// punches a hole (the filesystem zeroes partial blocks itself); a block device deallocates only whole units of its
// discard alignment (zram skips a partial page without zeroing it), so the unaligned head and tail are written
// with zeros and the aligned middle is zeroed by the device (fallocate PUNCH_HOLE = write-zeroes without fallback,
// which zram and loop do by freeing; else BLKZEROOUT). And GET LBA STATUS, which asks what is deallocated.
#include <sys/stat.h>

#include <cstdint>
#include <optional>

#include "scsi/lba_status.hpp"

namespace devemu::uring {

struct Geometry {
    bool blockdev = false;
    std::uint32_t logical = 512;   // the backing's logical block size (BLKSSZGET); 512 for a file
    std::uint64_t align = 1;       // bytes: a discard acts on whole units of this (max of logical and discard_granularity)
    bool ram = false;              // the data lives in RAM (zram, brd, tmpfs, or a file on a filesystem on zram or brd)
};

// From the kernel: BLKSSZGET and /sys/dev/block/MAJ:MIN/queue/discard_granularity; a file: its st_blksize. `ram`: the
// device (the file's filesystem's, or the block device itself) is zram or brd by its /sys/dev/block name, or the
// file is on tmpfs/ramfs.
[[nodiscard]] Geometry probe_geometry(int fd, const struct stat& st);

// [off, off+len) cut at `align`: an unaligned head, an aligned middle, an unaligned tail (any may be empty).
struct Split {
    std::uint64_t head_off = 0, head_len = 0, mid_off = 0, mid_len = 0, tail_off = 0, tail_len = 0;
};
[[nodiscard]] Split split_range(std::uint64_t off, std::uint64_t len, std::uint64_t align);

// Makes the range read back zeros, deallocating what the backing can. False with errno on failure.
[[nodiscard]] bool unmap_range(int fd, const Geometry& g, std::uint64_t off, std::uint64_t len);

// What the backing holds at byte `off` (GET LBA STATUS): a file's data or hole up to `end` (SEEK_DATA/SEEK_HOLE;
// past its last data or its end, a hole); a block device is all data. nullopt when the backing cannot tell.
[[nodiscard]] std::optional<scsi::Run> run_at(int fd, std::uint64_t off, std::uint64_t end);

// GET LBA STATUS answered from the backing behind `fd` (run_at): the reply to decode()'s Op::get_lba_status, which
// every front-end asks at once (a metadata lookup, not I/O), so it never reaches their data paths.
[[nodiscard]] scsi::Plan lba_status(int fd, const scsi::Plan& plan, const scsi::Device& d);

}  // namespace devemu::uring
