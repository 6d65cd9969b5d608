#include "uring/tcmu_handler.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/fs.hpp"
#include "fault/fault.hpp"
#include "scsi/opcodes.hpp"

namespace devemu::uring {

Handler::Handler(const TcmuConfig& cfg, Device& dev, int backing, const Geometry& geom) : cfg_(cfg), dev_(dev), fd_(backing), geom_(geom)
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
    sd_.optimal_transfer_blocks = std::max<std::uint32_t>(1, cfg.optimal_transfer / cfg.block_size);
    read_len_ = dev.mb->flags & 2;   // TCMU_MAILBOX_FLAG_CAP_READ_LEN: a reply may say how much data it has
    // A predecessor's leftovers were completed or reset before this handler was made (tcmu.cpp): the ring is ours.
    last_ = tail_ = dev.mb->cmd_tail;
    out_of_order_ = dev.mb->flags & 1;   // TCMU_MAILBOX_FLAG_CAP_OOOC
}

core::Status Handler::init()
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
    cache_first_ = cfg_.cache_first ? *cfg_.cache_first : reads_go_to_workers();
    if (cache_first_) spdlog::info("tcmu: io_uring hands reads of {} to its workers (its device takes no non-blocking I/O): reads try the page cache first", cfg_.backing);
    inline_writes_ = !cfg_.readonly && (cfg_.inline_writes ? *cfg_.inline_writes : geom_.ram);
    if (inline_writes_) spdlog::info("tcmu: {} lives in RAM: writes of up to 64 KiB are done on the handler's thread", cfg_.backing);
    return {};
}

namespace {

int io_workers()
{
    int n = 0;
    std::error_code ec;
    for (auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        std::ifstream in(t.path() / "comm");
        std::string comm;
        if (std::getline(in, comm) && comm.starts_with("iou-wrk")) ++n;
    }
    return n;
}

}  // namespace

bool Handler::reads_go_to_workers()
{
    std::vector<std::uint8_t> block(sd_.block_size);
    if (sd_.blocks == 0 || ::pread(fd_, block.data(), block.size(), 0) != static_cast<ssize_t>(block.size())) return false;
    const int before = io_workers();
    auto* s = io_uring_get_sqe(&ring_);
    io_uring_prep_read(s, fd_, block.data(), static_cast<unsigned>(block.size()), 0);
    io_uring_sqe_set_data(s, nullptr);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(&ring_, 1) < 1 || io_uring_peek_cqe(&ring_, &cqe) != 0) return false;
    io_uring_cqe_seen(&ring_, cqe);
    return io_workers() > before;
}

bool Handler::read_from_cache(Pending& pe, std::uint64_t off, std::uint64_t bytes)
{
    const auto n = ::preadv2(fd_, pe.iov.data(), static_cast<int>(pe.iov.size()), static_cast<off_t>(off), RWF_NOWAIT);
    if (n < 0 && errno == EOPNOTSUPP) cache_first_ = false;   // no non-blocking reads on this file at all
    if (n != static_cast<ssize_t>(bytes)) return false;       // not all in the page cache: io_uring reads it all
    pe.moved = bytes;
    if (pe.ops == 0) pe.done = true;
    ++cached_reads_;
    return true;
}

bool Handler::write_inline(Pending& pe, std::uint64_t off, std::uint64_t bytes, bool fua)
{
    if (!inline_writes_ || bytes > 64 * 1024 || (fua && cfg_.write_cache)) return false;   // FUA with a cache: io_uring links the flush
    ssize_t n;
    do n = ::pwritev(fd_, pe.iov.data(), static_cast<int>(pe.iov.size()), static_cast<off_t>(off));
    while (n < 0 && errno == EINTR);
    if (n >= 0 && static_cast<std::uint64_t>(n) < bytes) return false;   // short (the disk filled up?): io_uring writes it all
    if (n < 0) fail(pe, scsi::medium_error_write, errno);
    else pe.moved = bytes, ++inline_written_;
    if (pe.ops == 0) pe.done = true;
    return true;
}

Handler::~Handler()
{
    if (ring_ok_) io_uring_queue_exit(&ring_);
}

core::Status Handler::kick() { return uring::kick(dev_, cfg_.uio_prefix); }

core::Status Handler::consume()
{
    const std::uint32_t head = __atomic_load_n(&dev_.mb->cmd_head, __ATOMIC_ACQUIRE);
    if (last_ != head) ++batches_;
    unsigned since_kick = 0;
    while (last_ != head) {
        auto* ent = reinterpret_cast<tcmu_cmd_entry*>(dev_.cmdr + last_);
        const std::uint32_t len = tcmu_hdr_get_len(ent->hdr.len_op);
        if (tcmu_hdr_get_op(ent->hdr.len_op) == TCMU_OP_TMR) task_management(*reinterpret_cast<const tcmu_tmr_entry*>(ent));
        if (tcmu_hdr_get_op(ent->hdr.len_op) == TCMU_OP_CMD) {
            Pending pe;
            pe.cmd_id = ent->hdr.cmd_id;
            const auto* iov = reinterpret_cast<const tcmu_iovec*>(reinterpret_cast<const std::uint8_t*>(ent) + offsetof(tcmu_cmd_entry, req.iov));
            for (std::uint32_t i = 0; i < ent->req.iov_cnt; ++i) pe.iov.push_back({dev_.base + iov[i].iov_base, iov[i].iov_len});
            const auto* cdb = dev_.base + ent->req.cdb_off;
            queue_.push_back(std::move(pe));
            start(queue_.back(), std::span<const std::uint8_t>(cdb, scsi::op::cdb_length(cdb[0])));
            ++commands_;
        }
        last_ = (last_ + len) % dev_.cmdr_size;
        // TcmuConfig::kick_every: what is done so far goes back now, not after the last command of the pass.
        if (cfg_.kick_every && ++since_kick >= cfg_.kick_every && last_ != head) {
            since_kick = 0;
            if (complete()) {
                ++early_kicks_;
                DEVEMU_CHECK(kick());
            }
        }
    }
    return {};
}

void Handler::submit()
{
    if (sqes_ > 0) io_uring_submit(&ring_);
    sqes_ = 0;
}

void Handler::reap()
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

bool Handler::complete()
{
    // Slots at the tail that are not commands (PAD, TMR: consumed already) are passed over; every command slot
    // between the tail and last_ stands for one consumed command not yet completed, so there is always one here.
    const auto skip_non_commands = [&] {
        while (tail_ != last_) {
            const auto* ent = reinterpret_cast<const tcmu_cmd_entry*>(dev_.cmdr + tail_);
            if (tcmu_hdr_get_op(ent->hdr.len_op) == TCMU_OP_CMD) break;
            tail_ = (tail_ + tcmu_hdr_get_len(ent->hdr.len_op)) % dev_.cmdr_size;
        }
    };
    const std::uint32_t was = tail_;
    bool any = false;
    for (auto it = queue_.begin(); it != queue_.end();) {
        if (!it->done) {
            if (!out_of_order_) break;
            ++it;
            continue;
        }
        skip_non_commands();
        auto* ent = reinterpret_cast<tcmu_cmd_entry*>(dev_.cmdr + tail_);
        ent->hdr.cmd_id = it->cmd_id;
        ent->hdr.uflags = it->has_read_len ? 0x2 : 0;   // TCMU_UFLAG_READ_LEN
        ent->rsp.scsi_status = it->status;
        ent->rsp.read_len = it->read_len;
        if (!it->sense.empty()) std::memcpy(ent->rsp.sense_buffer, it->sense.data(), std::min<std::size_t>(it->sense.size(), TCMU_SENSE_BUFFERSIZE));
        tail_ = (tail_ + tcmu_hdr_get_len(ent->hdr.len_op)) % dev_.cmdr_size;
        it = queue_.erase(it);
        any = true;
    }
    skip_non_commands();
    if (tail_ != was) __atomic_store_n(&dev_.mb->cmd_tail, tail_, __ATOMIC_RELEASE);   // the kernel reads that line: write it only on a change
    return any;
}

void Handler::drain()
{
    submit();
    while (inflight_ > 0) {
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring_, &cqe) == 0) reap();
    }
}

nlohmann::json Handler::stats() const
{
    return {{"pid", ::getpid()},   {"in_flight", queue_.size()},       {"max_in_flight", max_queue_}, {"commands", commands_},
            {"reads", reads_},     {"writes", writes_},                {"bytes_read", bytes_read_},   {"bytes_written", bytes_written_},
            {"errors", errors_},   {"depth", cfg_.depth},              {"registered_file", files_registered_},
            {"faults", chain_.to_json()}, {"deferred", deferred_.size()}, {"dropped_writes", dropped_writes_},
            {"tmrs", tmrs_}, {"aborted", aborted_}, {"cache_first", cache_first_}, {"reads_from_cache", cached_reads_},
            {"inline_writes", inline_writes_}, {"writes_inline", inline_written_},
            {"batches", batches_}, {"early_kicks", early_kicks_}};
}

void Handler::fail(Pending& pe, scsi::Sense s, int err, std::uint32_t info)
{
    if (pe.status != scsi::good) return;
    pe.status = scsi::check_condition;
    pe.sense = scsi::sense_bytes(s, info);
    ++errors_;
    if (err) spdlog::warn("tcmu: I/O error {} on command {}", std::strerror(err), pe.cmd_id);
}

std::uint64_t Handler::data_len(const Pending& pe) const
{
    std::uint64_t n = 0;
    for (auto& v : pe.iov) n += v.iov_len;
    return n;
}

void Handler::copy_out(Pending& pe, const std::vector<std::uint8_t>& data)
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

std::vector<std::uint8_t> Handler::copy_in(const Pending& pe, std::size_t max) const
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

std::vector<iovec> Handler::trimmed(const Pending& pe, std::uint64_t bytes) const
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

io_uring_sqe* Handler::sqe()
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

void Handler::use_file(io_uring_sqe* s)
{
    if (files_registered_) {
        s->fd = 0;
        s->flags |= IOSQE_FIXED_FILE;
    }
}

void Handler::rw(Pending& pe, bool write, std::uint64_t off, std::uint64_t bytes, bool fua)
{
    // Keep the iovec array alive with the command (the kernel reads it at submission, but be safe).
    pe.iov = trimmed(pe, bytes);
    pe.expect = bytes;
    pe.is_read = !write;
    if (write) ++writes_, bytes_written_ += bytes;
    else ++reads_, bytes_read_ += bytes;
    if (!write && cache_first_ && read_from_cache(pe, off, bytes)) return;
    if (write && write_inline(pe, off, bytes, fua)) return;
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
}

void Handler::start(Pending& pe, std::span<const std::uint8_t> cdb)
{
    auto plan = scsi::decode(cdb, sd_);
    if (plan.op == scsi::Op::get_lba_status) plan = lba_status(fd_, plan, sd_);   // the backing's holes: a reply
    if (plan.status != scsi::good) {
        fail(pe, plan.sense);
        pe.done = true;
        return;
    }
    if (pass_faults(pe, plan)) execute(pe, plan);
}

bool Handler::pass_faults(Pending& pe, const scsi::Plan& plan)
{
    if (chain_.empty() || plan.op == scsi::Op::reply || plan.op == scsi::Op::unmap) return true;
    const bool write = plan.op == scsi::Op::write || plan.op == scsi::Op::write_same || plan.op == scsi::Op::compare_and_write ||
                       plan.op == scsi::Op::flush;
    const fault::Io io{write, plan.lba, plan.op == scsi::Op::flush ? 0 : plan.blocks, plan.blocks * sd_.block_size};
    const auto now = fault::Clock::now();
    const auto v = chain_.decide(io, now);
    if (v.error) {   // as a disk reports it: the sense, and the first bad LBA in INFORMATION
        fail(pe, *v.error, 0, static_cast<std::uint32_t>(std::min<std::uint64_t>(v.error_lba, 0xffffffff)));
        pe.done = true;
        return false;
    }
    if (v.drop) {   // the initiator hears GOOD; the medium keeps what it had
        ++dropped_writes_;
        pe.done = true;
        return false;
    }
    if (!v.held && v.not_before <= now) return true;
    pe.plan = plan;
    pe.io = io;
    pe.held = v.held;
    pe.due = v.not_before;
    deferred_.push_back(&pe);
    return false;
}

void Handler::execute(Pending& pe, const scsi::Plan& plan)
{
    const std::uint64_t bs = sd_.block_size, off = plan.lba * bs, bytes = plan.blocks * bs;
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

std::optional<fault::Clock::time_point> Handler::release_due()
{
    const auto now = fault::Clock::now();
    std::optional<fault::Clock::time_point> next;
    std::vector<Pending*> keep;
    for (auto* pe : deferred_) {
        if (pe->held && !chain_.stalled(pe->io)) pe->held = false;   // its stall was cleared
        if (!pe->held && pe->due <= now) {
            execute(*pe, pe->plan);
            continue;
        }
        if (!pe->held) next = next ? std::min(*next, pe->due) : pe->due;
        keep.push_back(pe);
    }
    deferred_.swap(keep);
    return next;
}

void Handler::task_management(const tcmu_tmr_entry& tmr)
{
    // The kernel lists the commands the TMR aborts (ABORT TASK: one; LUN RESET: all on the LUN) and waits for each
    // to complete before it answers the initiator. One a fault holds (a stall, a delay) is given up here: completed
    // with TASK ABORTED and never executed, so a write the initiator aborted cannot reach the medium later.
    ++tmrs_;
    std::vector<std::uint16_t> ids(tmr.cmd_cnt);
    std::memcpy(ids.data(), reinterpret_cast<const std::uint8_t*>(&tmr) + tcmu_tmr_cmd_ids_offset, ids.size() * sizeof(std::uint16_t));
    std::erase_if(deferred_, [&](Pending* pe) {
        if (std::find(ids.begin(), ids.end(), pe->cmd_id) == ids.end()) return false;
        pe->status = scsi::task_aborted;
        pe->done = true;
        ++aborted_;
        return true;
    });
    spdlog::info("tcmu: task management {} for {} command(s); {} given up so far", tmr.tmr_type, ids.size(), aborted_);
}

void Handler::faults_changed()
{
    if (cfg_.faults.empty()) return;
    // A handler the supervisor restarts starts with the chain as it was (its counts start again).
    auto specs = nlohmann::json::array();
    for (auto& f : chain_.to_json()) {
        fault::Chain::strip_counts(f);
        specs.push_back(f);
    }
    if (auto s = core::write_file_atomic(cfg_.faults, specs.dump() + "\n", 0600); !s) spdlog::warn("{}", s.error().message());
}

}  // namespace devemu::uring
