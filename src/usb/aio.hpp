#pragma once
// Linux native AIO on FunctionFS endpoint files: the interface FunctionFS documents for queueing several USB
// requests on an endpoint at once (tools/usb/ffs-aio-example in the kernel tree). io_uring on these files needs
// fixes newer than Debian 12's 6.1 (FIELD-NOTES §4), so the bus side uses this and the backing side io_uring.
// Raw syscalls (no libaio: nothing here needs more than four calls).
#include <linux/aio_abi.h>
#include <sys/uio.h>

#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "core/error.hpp"

namespace devemu::usb {

class Aio {
public:
    Aio() = default;
    ~Aio();
    Aio(const Aio&) = delete;
    Aio& operator=(const Aio&) = delete;

    [[nodiscard]] core::Status init(unsigned depth);
    // Queues a read or write of `len` bytes; `tag` names it in results. A write's data is copied at submission
    // (FunctionFS bounces it), so the buffer is free when this returns. False with errno (EINTR: a signal).
    bool submit(int fd, bool write, void* buf, std::size_t len, std::uint64_t tag);
    // Held back until flush(), which queues everything staged with one io_submit (a reply's data and its CSW:
    // one system call, not two). The buffer must stay valid until then. flush: false with errno, nothing queued.
    void stage(int fd, bool write, void* buf, std::size_t len, std::uint64_t tag);
    bool flush();
    // Appends `len` bytes at `buf` to the last staged write on `fd` (one USB request carrying both: a reply's last
    // data chunk and its CSW). False when the last staged iocb is not a plain write on `fd` of a multiple of
    // `multiple` bytes (whole packets: else the data would end in a short packet the CSW's bytes join).
    bool append_to_staged(int fd, void* buf, std::size_t len, std::size_t multiple);
    // Takes the one staged request off the stage and hands it out as iovecs (its data, and the CSW when one was
    // appended), for the caller to write itself (see MscServer::command). Empty unless exactly one is staged.
    [[nodiscard]] std::vector<iovec> take_staged();
    [[nodiscard]] std::size_t staged() const { return staged_.size(); }
    void drop_staged()
    {
        staged_.clear();
        vecs_.clear();
    }
    // Waits for at least one completion (false on EINTR) and files every one reaped under its tag.
    bool reap(bool block);
    // The result of `tag` (bytes or -errno) once done, and forgets it; nullopt while it is in flight.
    [[nodiscard]] std::optional<long long> take(std::uint64_t tag);
    [[nodiscard]] bool in_flight(std::uint64_t tag) const { return live_.count(tag) != 0; }
    [[nodiscard]] std::size_t outstanding() const { return live_.size(); }
    // How many the last reap() filed.
    [[nodiscard]] long ready() const { return last_reaped_; }
    // Cancels everything queued (FunctionFS dequeues the USB requests) and waits until all have completed.
    void cancel_all();

private:
    aio_context_t ctx_ = 0;
    std::map<std::uint64_t, std::unique_ptr<iocb>> live_;
    std::map<std::uint64_t, long long> done_;
    std::vector<std::unique_ptr<iocb>> staged_;
    std::vector<std::unique_ptr<iovec[]>> vecs_;   // of staged PWRITEVs, until flushed (FunctionFS copies at submission)
    long last_reaped_ = 0;
};

}  // namespace devemu::usb
