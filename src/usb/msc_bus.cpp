// The bus side of devemu's mass-storage function: its requests on the bulk endpoints (Linux AIO on FunctionFS, staged
// so that a reply's data and its CSW go in one io_submit), the plain reads of a write's data that fits one request and
// the plain writes of a reply that is one request (one loop; the CBW has its own read in the serve loop), and
// collecting, settling and cancelling what is queued.
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "usb/msc_server.hpp"

namespace devemu::usb {

bool MscServer::bus_write(const std::uint8_t* p, std::size_t n, bool stage)
{
    const auto t = ++tag_;
    aio_.stage(in_.get(), true, const_cast<std::uint8_t*>(p), n, t);
    in_pending_.push_back(t);
    return stage || flush_in();
}

bool MscServer::flush_in()
{
    for (;;) {
        if (reset_ || g_msc_stop) return false;
        if (aio_.flush()) return true;
        if (errno == EAGAIN) {   // the context is full: what is done makes room
            collect_in();
            if (aio_.outstanding() == 0 || !aio_.reap(true)) return false;
            continue;
        }
        if (errno != EINTR) return false;   // the host went away (disabled, unbound)
    }
}

// A reset seen before a plain read or write is begun ends it unstarted: blocked on bulk-in while the host, reset,
// sends its next CBW on bulk-out, the server would hold that CBW until the host timed out and reset again.
bool MscServer::plain_io(int fd, bool write, const iovec* v, int count)
{
    if (count == 0) return false;
    std::size_t n = 0;
    for (int i = 0; i < count; ++i) n += v[i].iov_len;
    for (;;) {
        if (reset_ || g_msc_stop) return false;
        const ssize_t r = write ? ::writev(fd, v, count) : ::readv(fd, v, count);
        if (r < 0 && errno == EINTR) continue;
        return r == static_cast<ssize_t>(n);   // a short read: the host ended its transfer early (see bus_read)
    }
}

bool MscServer::write_staged_now()
{
    in_pending_.pop_back();   // its tag: written here, never queued
    const auto v = aio_.take_staged();
    return plain_io(in_.get(), true, v.data(), static_cast<int>(v.size()));
}

std::optional<long long> MscServer::await(std::uint64_t tag)
{
    for (;;) {
        if (auto r = aio_.take(tag)) return r;
        if (reset_ || g_msc_stop) return std::nullopt;
        (void)aio_.reap(true);   // EINTR: a reset or SIGTERM, seen above
    }
}

bool MscServer::bus_read(std::uint8_t* p, std::size_t n)
{
    const auto t = ++tag_;
    while (!aio_.submit(out_.get(), false, p, n, t))
        if (errno != EINTR || reset_ || g_msc_stop) return false;
    auto r = await(t);
    // A short packet ends the host's transfer early (a host that does not follow its own CBW): what it sent is
    // all there is; reading on would eat the next CBW.
    return r && *r == static_cast<long long>(n);
}

void MscServer::collect_in()
{
    while (aio_.outstanding() > 0 && aio_.reap(false) && aio_.ready() > 0) {}
    std::erase_if(in_pending_, [&](std::uint64_t t) { return aio_.take(t).has_value(); });
}

bool MscServer::settle_in()
{
    if (!aio_.flush()) return false;
    bool ok = true;
    for (auto t : in_pending_) {
        auto r = await(t);
        if (!r) return false;
        ok = ok && *r >= 0;
    }
    in_pending_.clear();
    return ok;
}

void MscServer::abort_bus()
{
    aio_.drop_staged();
    aio_.cancel_all();
    in_pending_.clear();
}

}  // namespace devemu::usb
