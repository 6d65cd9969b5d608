#pragma once
// The userspace TCMU backstore: LIO's target_core_user hands SCSI commands to this process through a shared
// ring (UIO device: mailbox + command ring + data area); we serve them with io_uring straight between the
// backing fd and the ring's data-area iovecs (no bounce copy), many in flight, and complete each as it finishes
// (out of order); a handler killed at any point is followed by one that resets the ring (BUSY: the initiator resends).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/error.hpp"

namespace devemu::uring {

struct TcmuConfig {
    std::string uio_prefix;        // "tcm-user/HBA/NAME/": the UIO device's name starts with it
    std::string backing;           // file or block device
    std::uint64_t size = 0;
    std::uint32_t block_size = 512;
    std::string serial;
    bool readonly = false;
    bool write_cache = false;
    unsigned depth = 128;          // io_uring entries
    std::filesystem::path stats;   // JSON written about once a second (pid, in flight, counts, faults)
    std::filesystem::path faults;  // the fault chain's keys (JSON array): read at start, rewritten when it changes
    std::filesystem::path control; // a unix socket `devemu fault` talks to (one JSON request a line); empty: none
    std::chrono::seconds wait_for_device{10};
    // Reads try the page cache first (preadv2 RWF_NOWAIT) before io_uring; unset: when io_uring would hand every
    // read to its workers (Handler::reads_go_to_workers). Set by tests.
    std::optional<bool> cache_first;
    // Writes of up to 64 KiB are done on the handler's own thread (pwritev) rather than through io_uring, which on
    // Linux 6.1 hands every buffered write to a file (and every write to a device that takes no non-blocking I/O)
    // to its workers; unset: when the backing lives in RAM (Geometry::ram), where a write is a copy (and zram's
    // compression), not a wait for a device, and the hand-off to a worker and back costs more than the write. A
    // real disk keeps io_uring: a write the handler waited for would hold every command behind it. Measured
    // 2026-12-07 (VM, ext4 on zram, `bench --paths fileio,user --baseline fileio`, four alternating rounds):
    // `user` against LIO fileio at 4k random writes QD32 0.79-0.98x through io_uring, 1.17-1.39x inline; 4k
    // random 50/50 read-write 0.85-0.96x against 1.33-1.58x; 128k writes (larger than 64 KiB: io_uring either way)
    // 1.08-1.22x and 1.15-1.22x. Set by tests.
    std::optional<bool> inline_writes;
    // The LUN's OPTIMAL TRANSFER LENGTH (Block Limits VPD), in bytes; Linux's sd makes it the disk's request size
    // (max_sectors_kb). The handler copies each command twice on its one thread (backing -> data area, then the
    // kernel's copy out at the kick), so one large command leaves LIO and the initiator waiting, where several
    // smaller ones keep all three busy. Measured (VM, ext4 on zram, alternating with LIO fileio): sequential 128k
    // reads at QD8, merged by the block layer into ~1 MiB commands, 2,394-2,426 IOPS; at 128 KiB 5,824-6,683; at
    // 256 KiB 6,809-6,850 (128k writes 663-747 / 868-1,174 / 1,122-1,142). MAXIMUM TRANSFER LENGTH stays what the
    // data area holds: an initiator that raises max_sectors_kb still has its large commands served.
    std::uint32_t optimal_transfer = 256 * 1024;
    // Within one pass over the ring, the responses finished so far are published and the kernel kicked after every
    // `kick_every` commands (0: only once the pass is over). At 4k random reads QD32 a pass holds ~18 commands (206,637
    // commands in 11,298 passes), most served from the page cache as they are read: kicked only at the end, the first
    // waited for the last. Measured 2026-12-07 (VM, `bench --paths fileio,user --baseline fileio ext4:512M --runtime
    // 4 --repeat 1`, alternated with a build without it, three boots): `user` against LIO fileio at 4k random reads QD32
    // 0.63-0.85x (median 0.77x, 4 runs) without, 0.81-1.21x (median 1.02x, 20 runs) with 8; 4 and 16 were no better
    // than 8; 4k random writes (0.70-1.19x against 0.78-1.10x) and 128k reads (0.69-0.79x against 0.68-0.78x) within
    // the noise. Also publishing the io_uring submissions queued so far at each kick: no different.
    unsigned kick_every = 8;
};

// Serves one TCMU device until SIGTERM/SIGINT. Returns an exit code.
[[nodiscard]] int tcmu_serve(const TcmuConfig& cfg);
// Runs tcmu_serve in a child and restarts it whenever it dies (kill -9 included) until SIGTERM.
[[nodiscard]] int tcmu_supervise(const TcmuConfig& cfg);

}  // namespace devemu::uring
