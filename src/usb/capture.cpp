#include "usb/capture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cstring>
#include <filesystem>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"

namespace devemu::usb {

namespace {

void put16(std::vector<std::uint8_t>& b, std::uint16_t v) { b.insert(b.end(), {std::uint8_t(v), std::uint8_t(v >> 8)}); }
void put32(std::vector<std::uint8_t>& b, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void set32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
// A block: type, total length, body, total length again (little-endian: the byte-order magic says so).
std::vector<std::uint8_t> block(std::uint32_t type, const std::vector<std::uint8_t>& body)
{
    std::vector<std::uint8_t> b;
    put32(b, type);
    put32(b, 0);
    b.insert(b.end(), body.begin(), body.end());
    while (b.size() % 4) b.push_back(0);
    put32(b, 0);
    set32(b, 4, static_cast<std::uint32_t>(b.size()));
    set32(b, b.size() - 4, static_cast<std::uint32_t>(b.size()));
    return b;
}

// <linux/usb/mon.h> is not exported to user space: the binary API's two structures and ioctls, as usbmon.rst gives them.
struct MonGetArg {
    void* hdr;
    void* data;
    std::size_t alloc;
};
constexpr unsigned long mon_iocx_getx = _IOW(0x92, 10, MonGetArg);
constexpr unsigned long mon_ioct_ring_size = _IO(0x92, 4);

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

}  // namespace

std::vector<std::uint8_t> pcapng_header(std::uint32_t snaplen)
{
    std::vector<std::uint8_t> shb;
    put32(shb, 0x1A2B3C4D);   // byte-order magic
    put16(shb, 1);
    put16(shb, 0);
    put32(shb, 0xffffffff);   // section length: not given
    put32(shb, 0xffffffff);
    std::vector<std::uint8_t> idb;
    put16(idb, linktype_usb_linux_mmapped);
    put16(idb, 0);
    put32(idb, snaplen);
    auto out = block(0x0A0D0D0A, shb);
    auto i = block(1, idb);
    out.insert(out.end(), i.begin(), i.end());
    return out;
}

std::vector<std::uint8_t> pcapng_packet(std::uint64_t ts_usec, std::span<const std::uint8_t> packet, std::uint32_t original_len)
{
    std::vector<std::uint8_t> body;
    put32(body, 0);   // interface 0
    put32(body, static_cast<std::uint32_t>(ts_usec >> 32));
    put32(body, static_cast<std::uint32_t>(ts_usec));
    put32(body, static_cast<std::uint32_t>(packet.size()));
    put32(body, original_len);
    body.insert(body.end(), packet.begin(), packet.end());
    return block(6, body);
}

core::Result<CaptureResult> capture(const CaptureOptions& opt)
{
    const std::string dev = fmt::format("/dev/usbmon{}", opt.bus);
    if (::access(dev.c_str(), F_OK) != 0) DEVEMU_CHECK(core::ensure_modules({{"usbmon"}}));
    core::UniqueFd mon(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
    if (!mon) return core::fail_errno("cannot open usbmon", dev, "modprobe usbmon; devemu capture needs root");
    (void)::ioctl(mon.get(), mon_ioct_ring_size, 4u << 20);   // room for bursts (the default is 300 KiB)
    const std::string part = opt.file + ".part";
    core::UniqueFd out(::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!out) return core::fail_errno("cannot create the capture file", part, "check the directory");
    constexpr std::uint32_t snaplen = 256 * 1024;
    auto write_all = [&](const std::vector<std::uint8_t>& b) -> core::Status {
        if (::write(out.get(), b.data(), b.size()) != static_cast<ssize_t>(b.size())) return core::fail_errno("cannot write the capture", part, "");
        return {};
    };
    auto cleanup = [&](core::Error e) -> core::Result<CaptureResult> {
        std::error_code ec;
        std::filesystem::remove(part, ec);
        return std::unexpected(e);
    };
    if (auto s = write_all(pcapng_header(snaplen)); !s) return cleanup(s.error());
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    struct sigaction old_int {}, old_term {};
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
    g_stop = false;
    CaptureResult r;
    std::vector<std::uint8_t> buf(usbmon_header_len + snaplen);
    const auto end = std::chrono::steady_clock::now() + opt.duration;
    while (!g_stop) {
        if (opt.duration.count() && std::chrono::steady_clock::now() >= end) break;
        pollfd p{mon.get(), POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        MonGetArg a{buf.data(), buf.data() + usbmon_header_len, snaplen};
        if (::ioctl(mon.get(), mon_iocx_getx, &a) != 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            break;
        }
        // The header: busnum at 12 (u16), devnum at 11; ts_sec at 16 (s64), ts_usec at 24; length 32, len_cap 36.
        const std::uint8_t devnum = buf[11];
        std::uint32_t length = 0, len_cap = 0;
        std::int64_t sec = 0;
        std::int32_t usec = 0;
        std::memcpy(&sec, &buf[16], 8);
        std::memcpy(&usec, &buf[24], 4);
        std::memcpy(&length, &buf[32], 4);
        std::memcpy(&len_cap, &buf[36], 4);
        if (devnum != opt.device) continue;
        len_cap = std::min(len_cap, snaplen);
        const auto pkt = std::span<const std::uint8_t>(buf.data(), usbmon_header_len + len_cap);
        if (auto s = write_all(pcapng_packet(static_cast<std::uint64_t>(sec) * 1000000 + static_cast<std::uint64_t>(usec), pkt,
                                             static_cast<std::uint32_t>(usbmon_header_len + std::max(length, len_cap))));
            !s) {
            ::sigaction(SIGINT, &old_int, nullptr);
            ::sigaction(SIGTERM, &old_term, nullptr);
            return cleanup(s.error());
        }
        ++r.packets;
        r.bytes += len_cap;
        if (opt.progress && r.packets % 64 == 0) opt.progress(r.packets);
    }
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    if (::fsync(out.get()) != 0 || ::rename(part.c_str(), opt.file.c_str()) != 0)
        return cleanup({core::Errc::kernel, std::string("cannot finish the capture: ") + std::strerror(errno), opt.file, ""});
    return r;
}

}  // namespace devemu::usb
