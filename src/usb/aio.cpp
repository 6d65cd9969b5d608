#include "usb/aio.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace devemu::usb {

Aio::~Aio()
{
    if (ctx_) {
        cancel_all();
        ::syscall(SYS_io_destroy, ctx_);
    }
}

core::Status Aio::init(unsigned depth)
{
    if (::syscall(SYS_io_setup, depth, &ctx_) != 0) return core::fail_errno("io_setup", "aio", "raise /proc/sys/fs/aio-max-nr");
    return {};
}

void Aio::stage(int fd, bool write, void* buf, std::size_t len, std::uint64_t tag)
{
    auto cb = std::make_unique<iocb>();
    std::memset(cb.get(), 0, sizeof(iocb));
    cb->aio_data = tag;
    cb->aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
    cb->aio_fildes = static_cast<std::uint32_t>(fd);
    cb->aio_buf = reinterpret_cast<std::uint64_t>(buf);
    cb->aio_nbytes = len;
    staged_.push_back(std::move(cb));
}

bool Aio::append_to_staged(int fd, void* buf, std::size_t len, std::size_t multiple)
{
    if (staged_.empty()) return false;
    iocb& cb = *staged_.back();
    if (cb.aio_lio_opcode != IOCB_CMD_PWRITE || cb.aio_fildes != static_cast<std::uint32_t>(fd) || cb.aio_nbytes == 0 || cb.aio_nbytes % multiple != 0)
        return false;
    auto v = std::make_unique<iovec[]>(2);
    v[0] = {reinterpret_cast<void*>(cb.aio_buf), cb.aio_nbytes};
    v[1] = {buf, len};
    cb.aio_lio_opcode = IOCB_CMD_PWRITEV;
    cb.aio_buf = reinterpret_cast<std::uint64_t>(v.get());
    cb.aio_nbytes = 2;
    vecs_.push_back(std::move(v));
    return true;
}

bool Aio::flush()
{
    while (!staged_.empty()) {
        std::vector<iocb*> list;
        for (auto& c : staged_) list.push_back(c.get());
        const long n = ::syscall(SYS_io_submit, ctx_, static_cast<long>(list.size()), list.data());
        if (n <= 0) return false;   // errno set; what is staged stays staged
        for (long i = 0; i < n; ++i) {
            const auto tag = staged_[static_cast<std::size_t>(i)]->aio_data;
            live_[tag] = std::move(staged_[static_cast<std::size_t>(i)]);
        }
        staged_.erase(staged_.begin(), staged_.begin() + n);
    }
    vecs_.clear();
    return true;
}

bool Aio::submit(int fd, bool write, void* buf, std::size_t len, std::uint64_t tag)
{
    stage(fd, write, buf, len, tag);
    if (flush()) return true;
    const int e = errno;
    staged_.pop_back();   // not queued: the caller decides (EINTR: again; else give up)
    errno = e;
    return false;
}

bool Aio::reap(bool block)
{
    io_event ev[16];
    timespec zero{0, 0};
    const long n = ::syscall(SYS_io_getevents, ctx_, block ? 1 : 0, 16, ev, block ? nullptr : &zero);
    last_reaped_ = n < 0 ? 0 : n;
    if (n < 0) return false;
    for (long i = 0; i < n; ++i) {
        done_[ev[i].data] = ev[i].res;
        live_.erase(ev[i].data);
    }
    return true;
}

std::optional<long long> Aio::take(std::uint64_t tag)
{
    auto it = done_.find(tag);
    if (it == done_.end()) return std::nullopt;
    const auto r = it->second;
    done_.erase(it);
    return r;
}

std::vector<iovec> Aio::take_staged()
{
    std::vector<iovec> v;
    if (staged_.size() != 1) return v;
    const iocb& cb = *staged_.front();
    if (cb.aio_lio_opcode == IOCB_CMD_PWRITEV) {
        const auto* p = reinterpret_cast<const iovec*>(cb.aio_buf);
        v.assign(p, p + cb.aio_nbytes);
    } else {
        v.push_back({reinterpret_cast<void*>(cb.aio_buf), cb.aio_nbytes});
    }
    drop_staged();
    return v;
}

void Aio::cancel_all()
{
    staged_.clear();
    for (auto& [tag, cb] : live_) {
        io_event ev{};
        ::syscall(SYS_io_cancel, ctx_, cb.get(), &ev);
    }
    // A cancelled request still completes (with -ECONNRESET or so): reap until none is left, uninterrupted.
    for (int i = 0; i < 500 && !live_.empty(); ++i) {
        io_event ev[16];
        timespec ten_ms{0, 10'000'000};
        const long n = ::syscall(SYS_io_getevents, ctx_, 1, 16, ev, &ten_ms);
        for (long k = 0; k < n; ++k) live_.erase(ev[k].data);
    }
    done_.clear();
}

}  // namespace devemu::usb
