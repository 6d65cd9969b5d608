#pragma once
// The io_uring handler of one mapped TCMU device: it reads commands from the ring, decodes them with the SCSI core,
// passes reads and writes through the device's fault chain, serves the I/O with io_uring straight between the
// backing fd and the data area (many in flight), and completes each command as soon as it is done (TCMU's
// out-of-order completion: the response goes into the slot at the tail with the command's id), so one slow or held
// command holds nothing else. A handler killed mid-way leaves the ring for its successor, which resets it: what was
// unfinished is completed BUSY and the initiator sends it again. (Internal to src/uring: tcmu_handler.cpp has the
// ring and the fast path, tcmu_ops.cpp the rare commands, tcmu_serve.cpp the event loop and the control socket.)
#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "fault/chain.hpp"
#include "scsi/emulation.hpp"
#include "uring/discard.hpp"
#include "uring/tcmu.hpp"
#include "uring/tcmu_ring.hpp"

namespace devemu::uring {

struct Pending {
    bool done = false;
    int ops = 0;                       // io_uring operations still in flight
    std::uint16_t cmd_id = 0;
    std::uint8_t status = scsi::good;
    std::vector<std::uint8_t> sense;
    std::vector<iovec> iov;            // data area, as our addresses
    std::uint64_t expect = 0;          // bytes the operation must move
    std::uint64_t moved = 0;
    bool is_read = false;
    bool has_read_len = false;         // a reply shorter than the data-in buffer
    std::uint32_t read_len = 0;
    // Deferred by a fault (delay, rate, stall): what to do once it is due, and when that is.
    scsi::Plan plan;
    fault::Io io;
    fault::Clock::time_point due{};
    bool held = false;                 // until the stall that holds it is cleared
};

class Handler {
public:
    Handler(const TcmuConfig& cfg, Device& dev, int backing, const Geometry& geom);

    core::Status init();
    ~Handler();

    int efd() const { return efd_.get(); }

    // New entries between our cursor and the kernel's head. Fails only when an early kick cannot be written.
    core::Status consume();

    void submit();

    void reap();

    // Writes each finished command's response into the command slot at the tail (with its id) and advances the
    // tail past it: out of order when the kernel offers it (TCMU_MAILBOX_FLAG_CAP_OOOC), else in ring order.
    // True when any command was completed.
    bool complete();

    // Tells the kernel to reap what complete() wrote (uring::kick); a failure ends the handler (the supervisor's next
    // one resets the ring).
    core::Status kick();

    // Everything in flight finished (before a synchronous operation that must be ordered after it).
    void drain();

    bool idle() const { return queue_.empty(); }

    nlohmann::json stats() const;

    // Faults (src/fault): the chain every read and write passes through. Changed between commands, so a change is
    // atomic for them; `faults_changed` releases what a cleared stall held, and saves the chain to cfg.faults.
    [[nodiscard]] fault::Chain& faults() { return chain_; }
    [[nodiscard]] std::uint64_t last_lba() const { return sd_.blocks - 1; }
    void faults_changed();
    // Starts the deferred commands that are due (or no longer held); the next time one will be, if any.
    std::optional<fault::Clock::time_point> release_due();
    void note_queue() { max_queue_ = std::max<std::uint64_t>(max_queue_, queue_.size()); }

private:
    void fail(Pending& pe, scsi::Sense s, int err = 0, std::uint32_t info = 0);

    std::uint64_t data_len(const Pending& pe) const;

    // Reply data into the data-in buffer; the rest is zeroed (never a previous command's bytes) and, when the
    // kernel can take it, the real length is reported so the initiator sees the residual.
    void copy_out(Pending& pe, const std::vector<std::uint8_t>& data);

    std::vector<std::uint8_t> copy_in(const Pending& pe, std::size_t max) const;

    // The iovecs covering the first `bytes` of the data area.
    std::vector<iovec> trimmed(const Pending& pe, std::uint64_t bytes) const;

    io_uring_sqe* sqe();

    // io_uring does a page-cache read at submission only when the backing's block device takes non-blocking I/O
    // (Linux 6.1: blk-mq devices, not zram); otherwise it hands every read to an io-wq worker, a thread hop
    // and a wake-up per read. Asked the direct way at start: one read of a block already in the page cache, and
    // whether a worker appeared for it.
    bool reads_go_to_workers();
    // Then a read tries the page cache first (preadv2 RWF_NOWAIT, on this thread): true when it was all there.
    bool read_from_cache(Pending& pe, std::uint64_t off, std::uint64_t bytes);
    // TcmuConfig::inline_writes: a small write done here (pwritev). True when it is done (or failed: the command's
    // sense says so); false when io_uring is to write it (too large, not inline, a short write).
    bool write_inline(Pending& pe, std::uint64_t off, std::uint64_t bytes, bool fua);

    void use_file(io_uring_sqe* s);

    void rw(Pending& pe, bool write, std::uint64_t off, std::uint64_t bytes, bool fua);

    bool punch(std::uint64_t off, std::uint64_t len) { return unmap_range(fd_, geom_, off, len); }

    bool pread_all(std::uint8_t* buf, std::uint64_t len, std::uint64_t off);
    bool pwrite_all(const std::uint8_t* buf, std::uint64_t len, std::uint64_t off);

    // WRITE SAME: exactly one block of data-out, or none with NDOB (then the block is zeros); with UNMAP, a hole.
    void write_same(Pending& pe, const scsi::Plan& plan);

    // UNMAP: the parameter list's ranges, all checked before any is punched.
    void unmap(Pending& pe, const scsi::Plan& plan);

    // VERIFY with BYTCHK (compare the data-out with the medium) and COMPARE AND WRITE (then write the second half).
    void compare(Pending& pe, const scsi::Plan& plan);

    void start(Pending& pe, std::span<const std::uint8_t> cdb);
    // Through the fault chain: false when the command was failed, dropped or deferred (nothing more to do now).
    bool pass_faults(Pending& pe, const scsi::Plan& plan);
    void execute(Pending& pe, const scsi::Plan& plan);
    // TCMU_OP_TMR (with tmr_notification on): the commands an ABORT TASK or LUN RESET names.
    void task_management(const tcmu_tmr_entry& tmr);

    const TcmuConfig& cfg_;
    Device& dev_;
    int fd_;
    Geometry geom_;
    scsi::Device sd_;
    io_uring ring_{};
    bool ring_ok_ = false;
    bool files_registered_ = false;
    bool read_len_ = false;
    bool cache_first_ = false;    // cfg.cache_first, or what reads_go_to_workers() found
    bool inline_writes_ = false;  // cfg.inline_writes, or geom.ram
    core::UniqueFd efd_;
    std::uint32_t last_ = 0;      // the next entry to consume
    std::uint32_t tail_ = 0;      // the next slot a completion goes into (mb->cmd_tail is only ever ours)
    bool out_of_order_ = false;
    std::list<Pending> queue_;    // consumed, not yet completed; a list: pointers stay valid while others go
    unsigned sqes_ = 0;
    std::uint64_t inflight_ = 0, commands_ = 0, reads_ = 0, writes_ = 0, bytes_read_ = 0, bytes_written_ = 0, errors_ = 0, max_queue_ = 0;
    fault::Chain chain_;
    std::vector<Pending*> deferred_;   // into queue_ (a list: stable)
    std::uint64_t dropped_writes_ = 0, tmrs_ = 0, aborted_ = 0, cached_reads_ = 0, inline_written_ = 0;
    std::uint64_t batches_ = 0, early_kicks_ = 0;   // passes over the ring that found commands; kicks within one
};

// Serves `dev` from `backing` until SIGTERM/SIGINT (then finishes what is in flight). Returns an exit code.
[[nodiscard]] int serve_ring(const TcmuConfig& cfg, Device& dev, const std::string& uio, int backing, const Geometry& geom);

}  // namespace devemu::uring
