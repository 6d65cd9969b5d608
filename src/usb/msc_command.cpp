// One BOT command of devemu's mass-storage function: the SCSI core's plan, the fault chain, the data phase
// (pipelined between the backing and the bus), the halts the thirteen cases ask for, and the CSW.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <thread>

#include "fault/fault.hpp"
#include "scsi/opcodes.hpp"
#include "usb/bot_device.hpp"
#include "usb/msc_server.hpp"

namespace devemu::usb {

bool MscServer::send(const std::uint8_t* p, std::size_t n)
{
    for (std::size_t done = 0; done < n;) {
        if (reset_ || g_msc_stop) return false;
        const ssize_t w = ::write(in_.get(), p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;   // the host went away (disabled, unbound)
        done += static_cast<std::size_t>(w);
    }
    return true;
}

bool MscServer::receive(std::uint8_t* p, std::size_t n)
{
    for (std::size_t done = 0; done < n;) {
        if (reset_ || g_msc_stop) return false;
        const ssize_t r = ::read(out_.get(), p + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        done += static_cast<std::size_t>(r);
        // A short packet ends the host's transfer: what it sent is all there is (a host that does not follow
        // its own CBW); the rest of this phase would eat the next CBW.
        if (done < n && r % 512 != 0) return false;
    }
    return true;
}

void MscServer::wait_cqes(unsigned n, std::vector<int>& results)
{
    for (unsigned i = 0; i < n; ++i) {
        io_uring_cqe* cqe = nullptr;
        while (io_uring_wait_cqe(&ring_, &cqe) == -EINTR) {}
        if (!cqe) return;
        results[io_uring_cqe_get_data64(cqe) % results.size()] = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
    }
}

// Reads run ahead of the bus: while chunk K is written to bulk-in, chunks K+1.. are read from the backing.
MscServer::Moved MscServer::send_from_backing(Lun& lun, std::uint64_t off, std::uint64_t len)
{
    Moved m;
    const std::uint64_t chunk = cfg_.chunk, nb = bufs_.size(), chunks = (len + chunk - 1) / chunk;
    std::vector<int> res(nb, INT_MIN);
    auto size_of = [&](std::uint64_t k) { return std::min(chunk, len - k * chunk); };
    unsigned inflight = 0;
    std::uint64_t next = 0;
    auto submit = [&] {
        auto* s = io_uring_get_sqe(&ring_);
        io_uring_prep_read(s, lun.fd.get(), bufs_[next % nb], static_cast<unsigned>(size_of(next)), off + next * chunk);
        io_uring_sqe_set_data64(s, next);
        res[next % nb] = INT_MIN;
        ++next, ++inflight;
    };
    while (next < std::min(nb, chunks)) submit();
    io_uring_submit(&ring_);
    for (std::uint64_t k = 0; k < chunks; ++k) {
        while (res[k % nb] == INT_MIN && inflight > 0) {
            wait_cqes(1, res);
            --inflight;
        }
        const int r = res[k % nb];
        if (r < 0 || static_cast<std::uint64_t>(r) != size_of(k)) {
            spdlog::warn("usb: backing read at {} failed: {}", off + k * chunk, r < 0 ? std::strerror(-r) : "short read");
            m.medium = true;
            break;
        }
        if (!send(bufs_[k % nb], static_cast<std::size_t>(r))) {
            m.transport = true;
            break;
        }
        m.moved += static_cast<std::uint64_t>(r);
        if (next < chunks) {
            submit();
            io_uring_submit(&ring_);
        }
    }
    wait_cqes(inflight, res);
    return m;
}

// Writes trail the bus: chunk K goes to the backing while chunk K+1 is received; all are on the backing before
// the CSW says GOOD. `store` false (a dropped write): received and thrown away.
MscServer::Moved MscServer::receive_to_backing(Lun& lun, std::uint64_t off, std::uint64_t len, bool store)
{
    Moved m;
    const std::uint64_t chunk = cfg_.chunk, nb = bufs_.size(), chunks = (len + chunk - 1) / chunk;
    std::vector<int> res(nb, 0);
    std::vector<bool> busy(nb, false);
    std::vector<std::uint64_t> want(nb, 0);
    unsigned inflight = 0;
    auto settle = [&](std::uint64_t slot) {   // wait until the write in this slot is done
        while (busy[slot]) {
            std::vector<int> got(nb, INT_MIN);
            wait_cqes(1, got);
            --inflight;
            for (std::uint64_t i = 0; i < nb; ++i)
                if (got[i] != INT_MIN) {
                    busy[i] = false;
                    if (got[i] < 0 || static_cast<std::uint64_t>(got[i]) != want[i]) m.medium = true;
                }
        }
    };
    for (std::uint64_t k = 0; k < chunks; ++k) {
        const auto slot = k % nb;
        settle(slot);
        const auto n = std::min(chunk, len - k * chunk);
        if (!receive(bufs_[slot], static_cast<std::size_t>(n))) {
            m.transport = true;
            break;
        }
        m.moved += n;
        if (!store || m.medium) continue;   // a failed write still takes the host's data: the phase must end
        auto* s = io_uring_get_sqe(&ring_);
        io_uring_prep_write(s, lun.fd.get(), bufs_[slot], static_cast<unsigned>(n), off + k * chunk);
        io_uring_sqe_set_data64(s, slot);
        busy[slot] = true, want[slot] = n, ++inflight;
        io_uring_submit(&ring_);
    }
    for (std::uint64_t i = 0; i < nb; ++i) settle(i);
    (void)res;
    return m;
}

scsi::Plan MscServer::plan_for(const bot::Cbw& cbw, Lun* lun)
{
    auto failed = [](scsi::Sense s) {
        scsi::Plan p;
        p.status = scsi::check_condition;
        p.sense = s;
        return p;
    };
    const auto& c = cbw.cdb;
    if (c[0] == scsi::op::request_sense) {   // what the last command left, then cleared
        if (c.size() < 6) return failed(scsi::invalid_field);
        scsi::Plan p;
        p.data = !lun ? scsi::sense_bytes(scsi::lun_not_supported) : lun->sense.empty() ? scsi::sense_bytes({0, 0, 0}) : lun->sense;
        if (lun) lun->sense.clear();
        if (p.data.size() > c[4]) p.data.resize(c[4]);
        return p;
    }
    if (!lun) return failed(scsi::lun_not_supported);
    lun->sense.clear();
    if (c[0] == 0x23) return bot::read_format_capacities(c, lun->dev);
    return scsi::decode(c, lun->dev);
}

bool MscServer::pass_faults(Lun& lun, scsi::Plan& plan, bool& dropped, std::uint32_t& info)
{
    if (lun.chain.empty() || plan.status != scsi::good || plan.op == scsi::Op::reply || plan.op == scsi::Op::unmap) return true;
    const bool write = plan.op == scsi::Op::write || plan.op == scsi::Op::write_same || plan.op == scsi::Op::compare_and_write ||
                       plan.op == scsi::Op::flush;
    const fault::Io io{write, plan.lba, plan.op == scsi::Op::flush ? 0 : plan.blocks, plan.blocks * lun.dev.block_size};
    const auto v = lun.chain.decide(io, fault::Clock::now());
    publish_faults();
    if (v.error) {   // as a disk fails it: before any data moves, the first bad LBA in INFORMATION
        plan = scsi::Plan{};
        plan.status = scsi::check_condition;
        plan.sense = *v.error;
        info = static_cast<std::uint32_t>(std::min<std::uint64_t>(v.error_lba, 0xffffffff));
        return false;
    }
    if (v.drop) {   // GOOD, and the medium keeps what it had
        dropped = true;
        ++dropped_;
        return true;
    }
    // Delayed or stalled: BOT has one command at a time, so the wait is here; a reset (the host timing out) ends it.
    while (!reset_ && !g_msc_stop && ((v.held && lun.chain.stalled(io)) || (!v.held && fault::Clock::now() < v.not_before)))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return true;
}

void MscServer::command(const bot::Cbw& cbw)
{
    Lun* lun = cbw.lun < luns_.size() ? &luns_[cbw.lun] : nullptr;
    auto plan = plan_for(cbw, lun);
    bool dropped = false;
    std::uint32_t info = 0;
    if (lun) pass_faults(*lun, plan, dropped, info);
    if (reset_ || g_msc_stop) return;
    const std::uint32_t bs = lun ? lun->dev.block_size : 512;
    const auto a = bot::plan_transfer(cbw, bot::intent_of(plan, cbw.cdb, bs), cfg_.stall);
    const std::uint64_t h = cbw.dir == bot::Dir::none ? 0 : cbw.length, off = plan.lba * bs;
    std::uint8_t status = plan.status;
    scsi::Sense sense = plan.sense;
    Moved m;
    std::vector<std::uint8_t> data;
    if (cbw.dir == bot::Dir::in) {
        if (a.execute && plan.op == scsi::Op::read && a.transfer) {
            m = send_from_backing(*lun, off, a.transfer);
            ++reads_, bytes_read_ += m.moved;
        } else if (a.transfer) {
            plan.data.resize(a.transfer);
            m.transport = !send(plan.data.data(), a.transfer);
            m.moved = a.transfer;
        }
        if (m.transport) return;   // reset or gone: no CSW
        if (m.medium) status = scsi::check_condition, sense = scsi::medium_error_read, info = static_cast<std::uint32_t>(plan.lba + m.moved / bs);
        const std::uint64_t left = h - m.moved;
        if (left && (a.pad || !cfg_.stall)) {
            std::vector<std::uint8_t> zeros(std::min<std::uint64_t>(left, cfg_.chunk));
            for (std::uint64_t sent = 0; sent < left; sent += zeros.size())
                if (!send(zeros.data(), std::min<std::uint64_t>(zeros.size(), left - sent))) return;
        } else if (left && (a.halt_in || m.medium)) {
            halt(true);
        }
    } else if (cbw.dir == bot::Dir::out) {
        if (a.execute && plan.op == scsi::Op::write && a.transfer) {
            m = receive_to_backing(*lun, off, a.transfer, !dropped);
            ++writes_, bytes_written_ += dropped ? 0 : m.moved;
        } else if (a.transfer) {
            data.resize(a.transfer);
            m.transport = !receive(data.data(), a.transfer);
            m.moved = a.transfer;
        }
        if (m.transport) return;
        if (m.medium) status = scsi::check_condition, sense = scsi::medium_error_write, info = static_cast<std::uint32_t>(plan.lba);
        if (a.discard) {
            std::vector<std::uint8_t> sink(std::min<std::uint64_t>(a.discard, cfg_.chunk));
            for (std::uint64_t got = 0; got < a.discard; got += sink.size())
                if (!receive(sink.data(), std::min<std::uint64_t>(sink.size(), a.discard - got))) return;
        } else if (a.halt_out) {
            halt(false);
        }
    }
    if (a.execute && status == scsi::good && lun) {
        const bool fua_flush = plan.op == scsi::Op::write && plan.fua && !lun->cfg.nofua && !dropped;
        if (plan.op == scsi::Op::flush || fua_flush) {
            if (::fdatasync(lun->fd.get()) != 0) status = scsi::check_condition, sense = scsi::medium_error_write;
        } else if (plan.op != scsi::Op::reply && plan.op != scsi::Op::read && plan.op != scsi::Op::write) {
            if (!execute_other(*lun, plan, data, sense, info)) status = scsi::check_condition;
        }
    }
    if (status != scsi::good) {
        if (lun) lun->sense = scsi::sense_bytes(sense, info);
        ++errors_;
    }
    if (a.phase_error) ++phase_errors_;
    const auto csw = bot::encode(bot::Csw{cbw.tag, static_cast<std::uint32_t>(h - std::min(h, m.moved)),
                                          static_cast<std::uint8_t>(a.phase_error ? 2 : status == scsi::good ? 0 : 1)});
    (void)send(csw.data(), csw.size());
}

bool MscServer::execute_other(Lun& lun, const scsi::Plan& plan, const std::vector<std::uint8_t>& data, scsi::Sense& sense, std::uint32_t& info)
{
    const std::uint64_t bs = lun.dev.block_size, off = plan.lba * bs, len = plan.blocks * bs;
    const int fd = lun.fd.get();
    auto medium = [&](scsi::Sense s) {
        sense = s;
        info = static_cast<std::uint32_t>(plan.lba);
        return false;
    };
    switch (plan.op) {
    case scsi::Op::write_same: {
        if (plan.unmap) return uring::unmap_range(fd, lun.geom, off, len) || medium(scsi::medium_error_write);
        std::vector<std::uint8_t> block(bs, 0);
        if (!plan.ndob) std::copy_n(data.begin(), std::min<std::size_t>(bs, data.size()), block.begin());
        std::vector<std::uint8_t> run;
        for (std::uint64_t i = 0; i < std::min<std::uint64_t>(plan.blocks, cfg_.chunk / bs); ++i) run.insert(run.end(), block.begin(), block.end());
        for (std::uint64_t done = 0; done < len;) {
            const auto n = std::min<std::uint64_t>(run.size(), len - done);
            if (::pwrite(fd, run.data(), n, static_cast<off_t>(off + done)) != static_cast<ssize_t>(n)) return medium(scsi::medium_error_write);
            done += n;
        }
        return true;
    }
    case scsi::Op::unmap: {
        std::vector<std::pair<std::uint64_t, std::uint32_t>> ranges;
        if (!scsi::parse_unmap(data, ranges)) return sense = scsi::invalid_param_list, false;
        for (auto& [lba, n] : ranges)
            if (lba + n > lun.dev.blocks) return sense = scsi::lba_out_of_range, false;
        for (auto& [lba, n] : ranges)
            if (!uring::unmap_range(fd, lun.geom, lba * bs, std::uint64_t{n} * bs)) return medium(scsi::medium_error_write);
        return true;
    }
    case scsi::Op::compare_and_write:
    case scsi::Op::verify: {
        if (plan.op == scsi::Op::verify && !plan.bytchk) return true;   // the medium is readable: nothing to compare
        std::vector<std::uint8_t> have(len);
        if (::pread(fd, have.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) return medium(scsi::medium_error_read);
        if (data.size() < len) return sense = scsi::invalid_field, false;
        const auto diff = std::mismatch(have.begin(), have.end(), data.begin());
        if (diff.first != have.end()) {
            sense = scsi::miscompare;
            info = static_cast<std::uint32_t>(diff.first - have.begin());
            return false;
        }
        if (plan.op == scsi::Op::compare_and_write &&
            (data.size() < 2 * len || ::pwrite(fd, data.data() + len, len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)))
            return medium(scsi::medium_error_write);
        return true;
    }
    default:
        sense = scsi::invalid_opcode;
        return false;
    }
}

}  // namespace devemu::usb
