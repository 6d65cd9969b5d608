#pragma once
// Internal to devemu's mass-storage function (msc_serve.cpp: setup, ep0 and the CBW loop; msc_command.cpp: one
// command's data and status phases; msc_supervise.cpp: the supervisor).
#include <liburing.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "fault/chain.hpp"
#include "scsi/emulation.hpp"
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
    };
    // How a data phase ended: `moved` bytes crossed the bus; `transport`: the host reset or went away (no CSW);
    // `medium`: the backing failed (the command fails with a medium error).
    struct Moved {
        std::uint64_t moved = 0;
        bool transport = false, medium = false;
    };

    void ep0_loop();
    nlohmann::json stats() const;
    void publish_faults();
    void halt(bool in);
    void command(const bot::Cbw& cbw);
    scsi::Plan plan_for(const bot::Cbw& cbw, Lun* lun);
    // Fault chain: false when the command must not touch the medium (failed into `plan`, or a dropped write)
    bool pass_faults(Lun& lun, scsi::Plan& plan, bool& dropped, std::uint32_t& info);
    // Bulk I/O, whole lengths, interrupted by a reset (EINTR) or the host going away.
    bool send(const std::uint8_t* p, std::size_t n);
    bool receive(std::uint8_t* p, std::size_t n);
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
    pthread_t data_thread_{};
    std::atomic<bool> reset_{false}, wedged_{false};
    std::atomic<std::uint64_t> commands_{0}, reads_{0}, writes_{0}, bytes_read_{0}, bytes_written_{0}, errors_{0}, phase_errors_{0},
        resets_{0}, invalid_{0}, dropped_{0};
    mutable std::mutex faults_mu_;
    nlohmann::json faults_json_ = nlohmann::json::array();
};

}  // namespace devemu::usb
