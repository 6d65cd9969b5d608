#include "uring/tcmu_handler.hpp"

#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <deque>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "scsi/emulation.hpp"
#include "scsi/opcodes.hpp"

namespace devemu::uring {

namespace {

struct Pending {
    std::uint32_t slot = 0;            // ring offset of its entry: the completion goes there, in ring order
    bool skip = false;                 // PAD / TMR slot: only advances the tail
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
};

class Handler {
public:
    Handler(const TcmuConfig& cfg, Device& dev, int backing, const Geometry& geom) : cfg_(cfg), dev_(dev), fd_(backing), geom_(geom)
    {
        sd_.blocks = cfg.size / cfg.block_size;
        sd_.block_size = cfg.block_size;
        // What the backing is made of shapes what the LUN says: a 4 KiB device under 512-byte blocks is 512e.
        for (std::uint32_t per = geom.logical / cfg.block_size; per > 1; per >>= 1) ++sd_.lbppb_exponent;
        sd_.unmap_granularity = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, geom.align / cfg.block_size));
        sd_.serial = cfg.serial.empty() ? "devemu" : cfg.serial;
        sd_.readonly = cfg.readonly;
        sd_.write_cache = cfg.write_cache;
        const std::size_t data_area = dev.map_size - dev.mb->cmdr_off - dev.cmdr_size;
        sd_.max_transfer_blocks = static_cast<std::uint32_t>(std::min<std::size_t>(data_area / 2 / cfg.block_size, 0x7fffffff));
        read_len_ = dev.mb->flags & 2;   // TCMU_MAILBOX_FLAG_CAP_READ_LEN: a reply may say how much data it has
        last_ = dev.mb->cmd_tail;   // what a dead predecessor did not complete is served again
    }

    core::Status init()
    {
        io_uring_params p{};
        if (int rc = io_uring_queue_init_params(cfg_.depth, &ring_, &p); rc < 0) {
            errno = -rc;
            return core::fail_errno("io_uring_queue_init", "io_uring", "is io_uring disabled (sysctl kernel.io_uring_disabled)?");
        }
        ring_ok_ = true;
        efd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!efd_) return core::fail_errno("eventfd", "io_uring");
        if (int rc = io_uring_register_eventfd(&ring_, efd_.get()); rc < 0) {
            errno = -rc;
            return core::fail_errno("io_uring_register_eventfd", "io_uring");
        }
        // The data area cannot be a registered buffer (its pages exist only while a command uses them), but the
        // backing file can be a registered file.
        files_registered_ = io_uring_register_files(&ring_, &fd_, 1) == 0;
        return {};
    }
    ~Handler()
    {
        if (ring_ok_) io_uring_queue_exit(&ring_);
    }

    int efd() const { return efd_.get(); }

    // New entries between our cursor and the kernel's head.
    void consume()
    {
        const std::uint32_t head = __atomic_load_n(&dev_.mb->cmd_head, __ATOMIC_ACQUIRE);
        while (last_ != head) {
            auto* ent = reinterpret_cast<tcmu_cmd_entry*>(dev_.cmdr + last_);
            const std::uint32_t len = tcmu_hdr_get_len(ent->hdr.len_op);
            Pending pe;
            pe.slot = last_;
            if (tcmu_hdr_get_op(ent->hdr.len_op) != TCMU_OP_CMD) {
                pe.skip = pe.done = true;
                queue_.push_back(std::move(pe));
            } else {
                pe.cmd_id = ent->hdr.cmd_id;
                const auto* iov = reinterpret_cast<const tcmu_iovec*>(reinterpret_cast<const std::uint8_t*>(ent) + offsetof(tcmu_cmd_entry, req.iov));
                for (std::uint32_t i = 0; i < ent->req.iov_cnt; ++i) pe.iov.push_back({dev_.base + iov[i].iov_base, iov[i].iov_len});
                const auto* cdb = dev_.base + ent->req.cdb_off;
                queue_.push_back(std::move(pe));
                start(queue_.back(), std::span<const std::uint8_t>(cdb, scsi::op::cdb_length(cdb[0])));
                ++commands_;
            }
            last_ = (last_ + len) % dev_.cmdr_size;
        }
    }

    void submit()
    {
        if (sqes_ > 0) io_uring_submit(&ring_);
        sqes_ = 0;
    }

    void reap()
    {
        io_uring_cqe* cqe = nullptr;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring_, head, cqe)
        {
            ++n;
            auto* pe = reinterpret_cast<Pending*>(io_uring_cqe_get_data(cqe));
            --inflight_;
            if (!pe) continue;
            --pe->ops;
            if (cqe->res < 0) fail(*pe, pe->is_read ? scsi::medium_error_read : scsi::medium_error_write, -cqe->res);
            else pe->moved += static_cast<std::uint64_t>(cqe->res);
            if (pe->ops == 0 && !pe->done) {
                if (pe->status == scsi::good && pe->expect && pe->moved < pe->expect)
                    fail(*pe, pe->is_read ? scsi::medium_error_read : scsi::medium_error_write, EIO);
                pe->done = true;
            }
        }
        io_uring_cq_advance(&ring_, n);
    }

    // Writes finished commands into their own ring slots, in order, and advances the tail. True when any was.
    bool complete()
    {
        bool any = false;
        while (!queue_.empty() && queue_.front().done) {
            auto& pe = queue_.front();
            auto* ent = reinterpret_cast<tcmu_cmd_entry*>(dev_.cmdr + pe.slot);
            if (!pe.skip) {
                ent->hdr.uflags = pe.has_read_len ? 0x2 : 0;   // TCMU_UFLAG_READ_LEN
                ent->rsp.read_len = pe.read_len;
                ent->rsp.scsi_status = pe.status;
                if (!pe.sense.empty()) std::memcpy(ent->rsp.sense_buffer, pe.sense.data(), std::min<std::size_t>(pe.sense.size(), TCMU_SENSE_BUFFERSIZE));
            }
            const std::uint32_t next = (pe.slot + tcmu_hdr_get_len(ent->hdr.len_op)) % dev_.cmdr_size;
            __atomic_store_n(&dev_.mb->cmd_tail, next, __ATOMIC_RELEASE);
            queue_.pop_front();
            any = true;
        }
        return any;
    }

    // Everything in flight finished (before a synchronous operation that must be ordered after it).
    void drain()
    {
        submit();
        while (inflight_ > 0) {
            io_uring_cqe* cqe = nullptr;
            if (io_uring_wait_cqe(&ring_, &cqe) == 0) reap();
        }
    }

    bool idle() const { return queue_.empty(); }

    nlohmann::json stats() const
    {
        return {{"pid", ::getpid()},   {"in_flight", queue_.size()},       {"max_in_flight", max_queue_}, {"commands", commands_},
                {"reads", reads_},     {"writes", writes_},                {"bytes_read", bytes_read_},   {"bytes_written", bytes_written_},
                {"errors", errors_},   {"depth", cfg_.depth},              {"registered_file", files_registered_}};
    }
    void note_queue() { max_queue_ = std::max<std::uint64_t>(max_queue_, queue_.size()); }

private:
    void fail(Pending& pe, scsi::Sense s, int err = 0, std::uint32_t info = 0)
    {
        if (pe.status != scsi::good) return;
        pe.status = scsi::check_condition;
        pe.sense = scsi::sense_bytes(s, info);
        ++errors_;
        if (err) spdlog::warn("tcmu: I/O error {} on command {}", std::strerror(err), pe.cmd_id);
    }

    std::uint64_t data_len(const Pending& pe) const
    {
        std::uint64_t n = 0;
        for (auto& v : pe.iov) n += v.iov_len;
        return n;
    }

    // Reply data into the data-in buffer; the rest is zeroed (never a previous command's bytes) and, when the
    // kernel can take it, the real length is reported so the initiator sees the residual.
    void copy_out(Pending& pe, const std::vector<std::uint8_t>& data)
    {
        std::size_t off = 0;
        for (auto& v : pe.iov) {
            const auto n = off < data.size() ? std::min(v.iov_len, data.size() - off) : 0;
            if (n) std::memcpy(v.iov_base, data.data() + off, n);
            if (n < v.iov_len) std::memset(static_cast<std::uint8_t*>(v.iov_base) + n, 0, v.iov_len - n);
            off += n;
        }
        pe.read_len = static_cast<std::uint32_t>(std::min<std::uint64_t>(data.size(), data_len(pe)));
        pe.has_read_len = read_len_;
    }

    std::vector<std::uint8_t> copy_in(const Pending& pe, std::size_t max) const
    {
        std::vector<std::uint8_t> out;
        for (auto& v : pe.iov) {
            if (out.size() >= max) break;
            const auto n = std::min(v.iov_len, max - out.size());
            auto* p = static_cast<std::uint8_t*>(v.iov_base);
            out.insert(out.end(), p, p + n);
        }
        return out;
    }

    // The iovecs covering the first `bytes` of the data area.
    std::vector<iovec> trimmed(const Pending& pe, std::uint64_t bytes) const
    {
        std::vector<iovec> out;
        for (auto& v : pe.iov) {
            if (bytes == 0) break;
            const auto n = std::min<std::uint64_t>(v.iov_len, bytes);
            out.push_back({v.iov_base, n});
            bytes -= n;
        }
        return out;
    }

    io_uring_sqe* sqe()
    {
        auto* s = io_uring_get_sqe(&ring_);
        if (!s) {   // ring full: push what is queued and make room
            io_uring_submit(&ring_);
            sqes_ = 0;
            io_uring_cqe* cqe = nullptr;
            if (inflight_ > 0 && io_uring_wait_cqe(&ring_, &cqe) == 0) reap();
            s = io_uring_get_sqe(&ring_);
        }
        ++sqes_;
        ++inflight_;
        return s;
    }

    void use_file(io_uring_sqe* s)
    {
        if (files_registered_) {
            s->fd = 0;
            s->flags |= IOSQE_FIXED_FILE;
        }
    }

    void rw(Pending& pe, bool write, std::uint64_t off, std::uint64_t bytes, bool fua)
    {
        // Keep the iovec array alive with the command (the kernel reads it at submission, but be safe).
        pe.iov = trimmed(pe, bytes);
        pe.expect = bytes;
        pe.is_read = !write;
        auto* s = sqe();
        if (write) io_uring_prep_writev(s, fd_, pe.iov.data(), static_cast<unsigned>(pe.iov.size()), off);
        else io_uring_prep_readv(s, fd_, pe.iov.data(), static_cast<unsigned>(pe.iov.size()), off);
        use_file(s);
        io_uring_sqe_set_data(s, &pe);
        ++pe.ops;
        if (write && fua && cfg_.write_cache) {   // FUA with a volatile cache: the write, then its flush
            s->flags |= IOSQE_IO_LINK;
            auto* f = sqe();
            io_uring_prep_fsync(f, fd_, IORING_FSYNC_DATASYNC);
            use_file(f);
            io_uring_sqe_set_data(f, nullptr);
        }
        if (write) ++writes_, bytes_written_ += bytes;
        else ++reads_, bytes_read_ += bytes;
    }

    bool punch(std::uint64_t off, std::uint64_t len) { return unmap_range(fd_, geom_, off, len); }

    bool pread_all(std::uint8_t* buf, std::uint64_t len, std::uint64_t off)
    {
        while (len) {
            auto n = ::pread(fd_, buf, len, static_cast<off_t>(off));
            if (n <= 0) return false;
            buf += n, len -= static_cast<std::uint64_t>(n), off += static_cast<std::uint64_t>(n);
        }
        return true;
    }
    bool pwrite_all(const std::uint8_t* buf, std::uint64_t len, std::uint64_t off)
    {
        while (len) {
            auto n = ::pwrite(fd_, buf, len, static_cast<off_t>(off));
            if (n <= 0) return false;
            buf += n, len -= static_cast<std::uint64_t>(n), off += static_cast<std::uint64_t>(n);
        }
        return cfg_.write_cache || ::fdatasync(fd_) == 0 || errno == EINVAL;
    }

    // WRITE SAME: exactly one block of data-out, or none with NDOB (then the block is zeros); with UNMAP, a hole.
    void write_same(Pending& pe, const scsi::Plan& plan)
    {
        const std::uint64_t bs = sd_.block_size, off = plan.lba * bs, bytes = plan.blocks * bs;
        if (data_len(pe) != (plan.ndob ? 0 : bs)) {
            fail(pe, scsi::invalid_field);
            return;
        }
        if (plan.unmap) {
            if (!punch(off, bytes)) fail(pe, scsi::medium_error_write, errno);
            return;
        }
        auto block = plan.ndob ? std::vector<std::uint8_t>(bs, 0) : copy_in(pe, bs);
        if (block.size() < bs) {
            fail(pe, scsi::invalid_field);
            return;
        }
        std::vector<std::uint8_t> chunk;
        for (std::uint64_t i = 0; i < std::min<std::uint64_t>(plan.blocks, 256); ++i) chunk.insert(chunk.end(), block.begin(), block.end());
        for (std::uint64_t done = 0; done < bytes && pe.status == scsi::good;) {
            auto n = std::min<std::uint64_t>(chunk.size(), bytes - done);
            if (!pwrite_all(chunk.data(), n, off + done)) fail(pe, scsi::medium_error_write, errno);
            done += n;
        }
        ++writes_, bytes_written_ += bytes;
    }

    // UNMAP: the parameter list's ranges, all checked before any is punched.
    void unmap(Pending& pe, const scsi::Plan& plan)
    {
        const std::uint64_t bs = sd_.block_size;
        auto param = copy_in(pe, plan.blocks);
        std::vector<std::pair<std::uint64_t, std::uint32_t>> ranges;
        if (!scsi::parse_unmap(param, ranges)) {
            fail(pe, scsi::invalid_param_list);
            return;
        }
        for (auto& [lba, n] : ranges)
            if (lba > sd_.blocks || n > sd_.blocks - lba) {
                fail(pe, scsi::lba_out_of_range);
                return;
            }
        for (auto& [lba, n] : ranges)
            if (pe.status == scsi::good && n && !punch(lba * bs, std::uint64_t{n} * bs)) fail(pe, scsi::medium_error_write, errno);
    }

    // VERIFY with BYTCHK (compare the data-out with the medium) and COMPARE AND WRITE (then write the second half).
    void compare(Pending& pe, const scsi::Plan& plan)
    {
        const std::uint64_t bs = sd_.block_size, off = plan.lba * bs, bytes = plan.blocks * bs;
        const bool caw = plan.op == scsi::Op::compare_and_write;
        auto out = copy_in(pe, caw ? 2 * bytes : bytes);
        if (out.size() < bytes || data_len(pe) != (caw ? 2 * bytes : bytes)) {   // the data-out must match the CDB
            fail(pe, scsi::invalid_field);
            return;
        }
        if (bytes == 0) return;
        std::vector<std::uint8_t> medium(bytes);
        if (!pread_all(medium.data(), bytes, off)) {
            fail(pe, scsi::medium_error_read, errno);
            return;
        }
        auto mis = std::mismatch(medium.begin(), medium.end(), out.begin());
        if (mis.first != medium.end()) {
            fail(pe, scsi::miscompare, 0, static_cast<std::uint32_t>(mis.first - medium.begin()));
            return;
        }
        if (caw) {
            if (out.size() < 2 * bytes) fail(pe, scsi::invalid_field);
            else if (!pwrite_all(out.data() + bytes, bytes, off)) fail(pe, scsi::medium_error_write, errno);
            else ++writes_, bytes_written_ += bytes;
        }
    }

    void start(Pending& pe, std::span<const std::uint8_t> cdb)
    {
        auto plan = scsi::decode(cdb, sd_);
        const std::uint64_t bs = sd_.block_size, off = plan.lba * bs, bytes = plan.blocks * bs;
        if (plan.status != scsi::good) {
            fail(pe, plan.sense);
            pe.done = true;
            return;
        }
        switch (plan.op) {
        case scsi::Op::reply:
            copy_out(pe, plan.data);
            pe.done = true;
            return;
        case scsi::Op::read:
        case scsi::Op::write:
            if (bytes == 0 || data_len(pe) < bytes) {
                if (bytes != 0) fail(pe, scsi::invalid_field);
                pe.done = true;
                return;
            }
            rw(pe, plan.op == scsi::Op::write, off, bytes, plan.fua);
            return;
        case scsi::Op::flush: {
            auto* s = sqe();
            io_uring_prep_fsync(s, fd_, IORING_FSYNC_DATASYNC);
            use_file(s);
            s->flags |= IOSQE_IO_DRAIN;   // after every write submitted before it
            io_uring_sqe_set_data(s, &pe);
            ++pe.ops;
            return;
        }
        default:
            break;
        }
        // The rest are rare and must be ordered against writes in flight: drain, then do them here.
        drain();
        if (plan.op == scsi::Op::write_same) write_same(pe, plan);
        else if (plan.op == scsi::Op::unmap) unmap(pe, plan);
        else if (plan.op == scsi::Op::compare_and_write || plan.op == scsi::Op::verify) compare(pe, plan);
        else fail(pe, scsi::invalid_opcode);
        pe.done = true;
    }

    const TcmuConfig& cfg_;
    Device& dev_;
    int fd_;
    Geometry geom_;
    scsi::Device sd_;
    io_uring ring_{};
    bool ring_ok_ = false;
    bool files_registered_ = false;
    bool read_len_ = false;
    core::UniqueFd efd_;
    std::uint32_t last_ = 0;
    std::deque<Pending> queue_;   // deque: pointers to elements stay valid while we push at the back
    unsigned sqes_ = 0;
    std::uint64_t inflight_ = 0, commands_ = 0, reads_ = 0, writes_ = 0, bytes_read_ = 0, bytes_written_ = 0, errors_ = 0, max_queue_ = 0;
};

// What `ls` shows of the handler (pid, commands in flight, counts); a failed write costs only that.
void write_stats(const std::string& file, const Handler& h)
{
    if (auto s = core::write_file_atomic(file, h.stats().dump() + "\n"); !s) spdlog::warn("{}", s.error().message());
}

}  // namespace

int serve_ring(const TcmuConfig& cfg, Device& dev, const std::string& uio, int backing, const Geometry& geom)
{
    Handler h(cfg, dev, backing, geom);
    if (auto s = h.init(); !s) {
        spdlog::error("{}", s.error().message());
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    core::UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    auto last_stats = std::chrono::steady_clock::time_point{};
    const std::uint32_t one = 1;
    bool stopping = false;
    spdlog::debug("tcmu: serving {} ({} bytes mapped) from {}", uio, dev.map_size, cfg.backing);
    // Commands a dead predecessor left in the ring are there now: serve them before waiting.
    for (;;) {
        h.consume();
        h.note_queue();
        h.submit();
        h.reap();
        // The kick tells the kernel to reap our completions; one lost (EINTR) is made up by the next.
        if (h.complete() && ::write(dev.uio.get(), &one, sizeof one) < 0 && errno != EINTR && errno != EAGAIN) {
            spdlog::error("cannot kick {}: {}", uio, std::strerror(errno));
            return 1;   // the supervisor starts a new handler, which serves what is left in the ring
        }
        if (!cfg.stats.empty() && std::chrono::steady_clock::now() - last_stats > std::chrono::seconds(1)) {
            write_stats(cfg.stats, h);
            last_stats = std::chrono::steady_clock::now();
        }
        if (stopping && h.idle()) break;
        pollfd fds[3] = {{dev.uio.get(), POLLIN, 0}, {h.efd(), POLLIN, 0}, {sfd.get(), POLLIN, 0}};
        if (::poll(fds, 3, 1000) < 0 && errno != EINTR) break;
        // Only the wake-ups matter, not the counts: each drain read may come back EAGAIN/EINTR without harm.
        if (fds[0].revents & POLLIN) {
            std::uint32_t count = 0;
            if (::read(dev.uio.get(), &count, sizeof count) < 0 && errno != EAGAIN && errno != EINTR) spdlog::debug("uio read: {}", std::strerror(errno));
        }
        if (fds[1].revents & POLLIN) {
            std::uint64_t v = 0;
            if (::read(h.efd(), &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR) spdlog::debug("eventfd read: {}", std::strerror(errno));
        }
        if (fds[2].revents & POLLIN) {
            signalfd_siginfo si{};
            if (::read(sfd.get(), &si, sizeof si) == sizeof si) stopping = true;   // finish what is in flight, then go
        }
    }
    if (!cfg.stats.empty()) write_stats(cfg.stats, h);
    return 0;
}


}  // namespace devemu::uring
