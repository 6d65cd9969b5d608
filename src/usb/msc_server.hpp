#pragma once
// Internal to devemu's mass-storage function (msc_serve.cpp: setup, ep0 and the CBW loop; msc_command.cpp: one
// command's data and status phases; msc_supervise.cpp: the supervisor).
#include <liburing.h>
#include <pthread.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "fault/chain.hpp"
#include "scsi/emulation.hpp"
#include "usb/aio.hpp"
#include "usb/bot.hpp"
#include "usb/msc_serve.hpp"
#include "uring/discard.hpp"

namespace devemu::usb {

// Set by SIGTERM/SIGINT: the server finishes (or abandons) the command in progress and exits.
inline std::atomic<bool> g_msc_stop{false};

class MscServer {
public:
    MscServer(const MscConfig& cfg, int ep0);
    ~MscServer();
    MscServer(const MscServer&) = delete;
    MscServer& operator=(const MscServer&) = delete;

    core::Status open();
    int run();

private:
    struct Lun {
        MscLun cfg;
        core::UniqueFd fd;
        uring::Geometry geom;
        scsi::Device dev;
        std::vector<std::uint8_t> sense;   // of the last CHECK CONDITION, for REQUEST SENSE
        fault::Chain chain;
        std::uint8_t* map = nullptr;   // the backing, mapped shared: the bus copies straight from / into its pages
        std::uint64_t map_len = 0;
    };
    // How a data phase ended: `moved` bytes crossed the bus; `transport`: the host reset or went away (no CSW);
    // `medium`: the backing failed (the command fails with a medium error).
    struct Moved {
        std::uint64_t moved = 0;
        bool transport = false, medium = false;
    };

    void ep0_loop();
    void stall_ep0(bool in_request);
    void control_loop(int listener);
    nlohmann::json control_request(const std::string& line);
    // The USB fault armed for the next command(s) (`devemu fault NAME usb …`), taken by the data thread.
    std::string take_usb_fault();
    nlohmann::json stats() const;
    void publish_faults();
    void keep_faults() const;   // with faults_mu_ held
    void halt(bool in);
    void command(const bot::Cbw& cbw);
    scsi::Plan plan_for(const bot::Cbw& cbw, Lun* lun);
    // Fault chain: false when the command must not touch the medium (failed into `plan`, or a dropped write)
    bool pass_faults(Lun& lun, scsi::Plan& plan, bool& dropped, std::uint32_t& info);
    // The bus (native AIO, usb/aio.hpp). bus_write queues (the data is copied: the buffer is free at once);
    // bus_read queues and waits; await: a request's result, nullopt when a reset or SIGTERM ends the wait.
    bool bus_write(const std::uint8_t* p, std::size_t n, bool stage = false);   // stage: queued with the next unstaged write
    bool bus_read(std::uint8_t* p, std::size_t n);
    bool flush_in();   // what is staged on bulk-in, queued (false: reset, SIGTERM or the host gone)
    // Plain (blocking) reads and writes: a write's data that fits one request, and a reply that is one USB request
    // (see command()). write_staged_now writes the one staged request. False: a reset, SIGTERM, the host gone, or short.
    bool write_staged_now();
    bool write_now(const std::uint8_t* p, std::size_t n)
    {
        const iovec v{const_cast<std::uint8_t*>(p), n};
        return plain_io(in_.get(), true, &v, 1);
    }
    bool read_sync(std::uint8_t* p, std::size_t n)
    {
        const iovec v{p, n};
        return plain_io(out_.get(), false, &v, 1);
    }
    bool plain_io(int fd, bool write, const iovec* v, int count);
    std::optional<long long> await(std::uint64_t tag);
    // Waits for every queued bulk-in write (before a halt, which the UDC refuses with requests queued); false
    // when one failed or the wait was ended.
    bool settle_in();
    void collect_in();
    // A reset or a vanished host in the middle of a command: every queued request cancelled.
    void abort_bus();
    Moved send_from_backing(Lun& lun, std::uint64_t off, std::uint64_t len);
    Moved receive_to_backing(Lun& lun, std::uint64_t off, std::uint64_t len, bool store);
    void wait_cqes(unsigned n, std::vector<int>& results);
    // The rare commands, synchronous on the backing: false + sense when they fail.
    bool execute_other(Lun& lun, const scsi::Plan& plan, const std::vector<std::uint8_t>& data, scsi::Sense& sense, std::uint32_t& info);

    const MscConfig& cfg_;
    int ep0_;
    core::UniqueFd in_, out_;
    std::vector<Lun> luns_;
    io_uring ring_{};
    bool ring_ok_ = false;
    std::vector<std::uint8_t*> bufs_;
    std::uint8_t* wbuf_ = nullptr;   // one request's write (max(write_chunk, chunk) bytes)
    Aio aio_;
    std::uint64_t tag_ = 0;
    std::vector<std::uint64_t> in_pending_;   // bulk-in writes queued and not yet collected
    std::array<std::uint8_t, bot::csw_len> csw_{};
    pthread_t data_thread_{};
    std::atomic<bool> reset_{false}, wedged_{false};
    std::atomic<std::uint64_t> commands_{0}, reads_{0}, writes_{0}, bytes_read_{0}, bytes_written_{0}, errors_{0}, phase_errors_{0},
        resets_{0}, invalid_{0}, dropped_{0};
    mutable std::mutex faults_mu_;   // the LUNs' chains (the data thread and the control thread) and what follows
    std::string usb_fault_;
    unsigned usb_fault_count_ = 0;
    std::atomic<std::uint64_t> usb_faults_done_{0};
    nlohmann::json faults_json_ = nlohmann::json::array();
};

}  // namespace devemu::usb
