#include "usb/msc_serve.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <linux/usb/functionfs.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/unix_socket.hpp"
#include "fault/chain.hpp"
#include "scsi/opcodes.hpp"
#include "usb/bot_device.hpp"
#include "usb/msc_server.hpp"

namespace devemu::usb {

namespace {

using nlohmann::json;

std::atomic<bool> g_waiting{false};
void on_term(int)
{
    g_msc_stop = true;
    if (g_waiting) ::_exit(0);   // between commands: nothing of ours is in flight
}
void on_interrupt(int) {}

}  // namespace

MscServer::MscServer(const MscConfig& cfg, int ep0) : cfg_(cfg), ep0_(ep0) {}

MscServer::~MscServer()
{
    for (auto& l : luns_)
        if (l.map) ::munmap(l.map, l.map_len);
    if (ring_ok_) io_uring_queue_exit(&ring_);
    for (auto* b : bufs_) std::free(b);
    std::free(wbuf_);
}

core::Status MscServer::open()
{
    json kept_faults = json::object();
    if (!cfg_.faults_state.empty() && ::access(cfg_.faults_state.c_str(), F_OK) == 0) {
        DEVEMU_TRY(text, core::read_file(cfg_.faults_state));
        kept_faults = json::parse(text, nullptr, false);
        if (!kept_faults.is_object()) return core::fail(core::Errc::invalid_input, "not the faults devemu kept (JSON object)", cfg_.faults_state, "remove it");
    }
    for (auto& l : cfg_.luns) {
        auto& lun = luns_.emplace_back();
        lun.cfg = l;
        lun.fd.reset(::open(l.backing.c_str(), (l.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
        struct stat st {};
        if (!lun.fd || ::fstat(lun.fd.get(), &st) != 0) return core::fail_errno("cannot open the backing", l.backing);
        lun.geom = uring::probe_geometry(lun.fd.get(), st);
        auto& d = lun.dev;
        d.blocks = l.size / l.block_size;
        d.block_size = l.block_size;
        for (std::uint32_t per = lun.geom.logical / l.block_size; per > 1; per >>= 1) ++d.lbppb_exponent;
        d.unmap_granularity = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, lun.geom.align / l.block_size));
        d.serial = l.serial.empty() ? "devemu" : l.serial;
        d.product = "USB user disk";
        if (l.inquiry.size() >= 8) d.vendor = l.inquiry.substr(0, 8);
        if (l.inquiry.size() >= 24) d.product = l.inquiry.substr(8, 16);
        if (l.inquiry.size() >= 28) d.revision = l.inquiry.substr(24, 4);
        d.readonly = l.readonly;
        d.write_cache = true;   // the page cache, as the kernel's function: WCE set, SYNCHRONIZE CACHE and FUA flush it
        d.max_transfer_blocks = static_cast<std::uint32_t>(std::min<std::uint64_t>(32u << 20, l.size) / l.block_size);
        // Mapped, the backing's page cache is the data buffer: FunctionFS copies a read's bytes from it and a write's
        // into it, one copy each way, as the kernel's function does (a bounce buffer would add one). An I/O error
        // under the mapping comes back as EFAULT from that copy, reported as a medium error. Without a mapping
        // (mmap refused), io_uring reads and writes a bounce buffer.
        if (void* m = ::mmap(nullptr, l.size, PROT_READ | (l.readonly ? 0 : PROT_WRITE), MAP_SHARED, lun.fd.get(), 0); m != MAP_FAILED) {
            lun.map = static_cast<std::uint8_t*>(m);
            lun.map_len = l.size;
        }
        // A restarted server: the chain as `devemu fault` last left it; else the profile's.
        const json kept = kept_faults.value("luns", json::object());
        const bool restored = kept.contains(l.name) && kept[l.name].is_array();
        const json specs = restored ? kept[l.name] : l.faults;
        for (auto& f : specs) {
            DEVEMU_TRY(spec, fault::parse(fault::keys_of(f), restored ? cfg_.faults_state : l.backing, d.blocks - 1));
            DEVEMU_CHECK(lun.chain.add(spec, fault::Clock::now()));
        }
    }
    if (const json usb = kept_faults.value("usb", json::object()); !usb.value("fault", std::string()).empty()) {
        usb_fault_ = usb.value("fault", "");
        usb_fault_count_ = std::max(1u, usb.value("count", 1u));
    }
    // Endpoint files in the order of the descriptors: ep1 bulk OUT, ep2 bulk IN.
    out_.reset(::open((cfg_.mount + "/ep1").c_str(), O_RDWR | O_CLOEXEC));
    if (!out_) return core::fail_errno("cannot open the bulk OUT endpoint", cfg_.mount + "/ep1", "were the descriptors written?");
    in_.reset(::open((cfg_.mount + "/ep2").c_str(), O_RDWR | O_CLOEXEC));
    if (!in_) return core::fail_errno("cannot open the bulk IN endpoint", cfg_.mount + "/ep2", "");
    if (int rc = io_uring_queue_init(std::max(8u, 2 * cfg_.buffers), &ring_, 0); rc < 0) {
        errno = -rc;
        return core::fail_errno("io_uring_queue_init", "io_uring", "is io_uring disabled (sysctl kernel.io_uring_disabled)?");
    }
    ring_ok_ = true;
    DEVEMU_CHECK(aio_.init(64));
    for (unsigned i = 0; i < std::max(2u, cfg_.buffers); ++i) {
        void* p = nullptr;
        if (::posix_memalign(&p, 4096, cfg_.chunk) != 0) return core::fail(core::Errc::kernel, "out of memory", "buffers", "");
        bufs_.push_back(static_cast<std::uint8_t*>(p));
    }
    if (void* p = nullptr; ::posix_memalign(&p, 4096, std::max(cfg_.write_chunk, cfg_.chunk)) == 0) wbuf_ = static_cast<std::uint8_t*>(p);
    else return core::fail(core::Errc::kernel, "out of memory", "buffers", "");
    return {};
}

json MscServer::stats() const
{
    std::lock_guard lk(faults_mu_);
    return {{"pid", ::getpid()},           {"commands", commands_.load()},   {"reads", reads_.load()},
            {"writes", writes_.load()},    {"bytes_read", bytes_read_.load()}, {"bytes_written", bytes_written_.load()},
            {"errors", errors_.load()},    {"phase_errors", phase_errors_.load()}, {"resets", resets_.load()},
            {"invalid_cbws", invalid_.load()}, {"luns", luns_.size()},   {"faults", faults_json_},
            {"usb_fault", usb_fault_.empty() ? json(nullptr) : json{{"fault", usb_fault_}, {"count", usb_fault_count_}}},
            {"usb_faults_done", usb_faults_done_.load()}};
}

void MscServer::publish_faults()
{
    auto all = json::object();
    for (auto& l : luns_) all[l.cfg.name.empty() ? l.cfg.backing : l.cfg.name] = l.chain.to_json();
    faults_json_ = all;
}

// A STALL on ep0: FunctionFS halts it on I/O in the wrong direction, which then fails with EBADMSG, as asked;
// any other result means the request was not stalled.
void MscServer::stall_ep0(bool in_request)
{
    const ssize_t r = in_request ? ::read(ep0_, nullptr, 0) : ::write(ep0_, nullptr, 0);
    if (r >= 0 || errno != EBADMSG) spdlog::warn("usb: an unknown control request was not stalled: {}", r >= 0 ? "accepted" : std::strerror(errno));
}

// ep0: the function's events and the two class requests of BOT.
void MscServer::ep0_loop()
{
    usb_functionfs_event ev[4];
    for (;;) {
        const ssize_t n = ::read(ep0_, ev, sizeof ev);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof ev[0]; ++i) {
            if (ev[i].type == FUNCTIONFS_DISABLE || ev[i].type == FUNCTIONFS_UNBIND) {
                reset_ = true;   // whatever was in flight is gone with the configuration
                ::pthread_kill(data_thread_, SIGUSR1);
            }
            if (ev[i].type != FUNCTIONFS_SETUP) continue;
            const auto& s = ev[i].u.setup;
            if (s.bRequestType == 0xA1 && s.bRequest == bot::req_get_max_lun && s.wValue == 0 && le16toh(s.wLength) >= 1) {
                const std::uint8_t max = static_cast<std::uint8_t>(luns_.size() - 1);
                if (::write(ep0_, &max, 1) != 1) spdlog::warn("usb: Get Max LUN not answered: {}", std::strerror(errno));   // the host left
            } else if (s.bRequestType == 0x21 && s.bRequest == bot::req_reset && s.wValue == 0 && s.wLength == 0) {
                ++resets_;
                wedged_ = false;
                reset_ = true;   // abandon the command in progress, wait for the next CBW
                ::pthread_kill(data_thread_, SIGUSR1);
                if (::read(ep0_, nullptr, 0) != 0) spdlog::warn("usb: Bulk-Only Reset not acknowledged: {}", std::strerror(errno));
            } else {
                stall_ep0(s.bRequestType & USB_DIR_IN);   // no other class or vendor request
            }
        }
    }
}

int MscServer::run()
{
    data_thread_ = ::pthread_self();
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;   // no SA_RESTART: a blocked endpoint read/write returns EINTR
    ::sigaction(SIGUSR1, &sa, nullptr);
    sa.sa_handler = on_term;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGUSR1, SIGTERM, SIGINT}) sigaddset(&set, sig);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);   // the helper threads inherit this: signals come to this thread
    std::thread ep0([this] { ep0_loop(); });
    std::thread st([this] {
        while (!g_msc_stop) {
            if (!cfg_.stats.empty())
                if (auto s = core::write_file_atomic(cfg_.stats, stats().dump() + "\n"); !s) spdlog::warn("{}", s.error().message());
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    });
    ep0.detach();
    st.detach();
    if (!cfg_.control.empty()) {   // `devemu fault`: block faults on the LUNs, USB faults on the function
        auto l = core::listen_unix(cfg_.control, 8);
        if (!l) spdlog::warn("{}", l.error().message());
        else std::thread([this, fd = l->release()] { control_loop(fd); }).detach();
    }
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    {
        std::lock_guard lk(faults_mu_);
        publish_faults();
    }
    // The next CBW is read with a plain read (its completion wakes this thread directly, where an AIO read goes
    // through a kernel worker first): once the CSW of a large read is queued, or once the host has taken a CSW
    // written with a plain write (see command()).
    auto* cbw_buf = bufs_.back();
    while (!g_msc_stop) {
        g_waiting = true;   // SIGTERM now: exit at once (every acknowledged write is on the backing)
        const ssize_t n = g_msc_stop ? -1 : ::read(out_.get(), cbw_buf, 1024);
        g_waiting = false;
        if (n < 0) {   // EINTR: a reset between commands (or SIGTERM); else disabled: wait for the host
            if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            reset_ = false;
            continue;
        }
        reset_ = false;
        auto cbw = bot::decode_cbw(std::span<const std::uint8_t>(cbw_buf, static_cast<std::size_t>(n)));
        if (!cbw || wedged_) {   // BOT 6.6.1: not a valid CBW: halt both endpoints until a Bulk-Only Reset
            ++invalid_;
            wedged_ = true;
            if (!settle_in()) abort_bus();
            halt(true);
            halt(false);
            continue;
        }
        ++commands_;
        command(*cbw);
        if (reset_) reset_ = false;   // the command was abandoned for it
    }
    if (!cfg_.stats.empty()) (void)core::write_file_atomic(cfg_.stats, stats().dump() + "\n");
    return 0;
}

void MscServer::halt(bool in)
{
    // FunctionFS halts an endpoint when it is asked for I/O in the wrong direction, and says so with EBADMSG.
    std::uint8_t b = 0;
    ssize_t r = 0;
    // dummy_hcd refuses to halt an IN endpoint with a request still queued (EAGAIN): a moment later it has none.
    for (int i = 0; i < 100; ++i) {
        r = in ? ::read(in_.get(), &b, 0) : ::write(out_.get(), &b, 0);
        if (r >= 0 || errno != EAGAIN) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (r >= 0 || errno != EBADMSG) spdlog::warn("usb: bulk-{} was not halted: {}", in ? "in" : "out", r >= 0 ? "I/O accepted" : std::strerror(errno));
}

int msc_serve(const MscConfig& cfg, int ep0)
{
    MscServer s(cfg, ep0);
    if (auto st = s.open(); !st) {
        spdlog::error("{}", st.error().message());
        return 2;
    }
    return s.run();
}

}  // namespace devemu::usb
