#pragma once
// devemu's own USB mass-storage function: a FunctionFS app that speaks Bulk-Only Transport on one interface, runs
// every command through the shared SCSI core (src/scsi, as the TCMU handler does) and the LUN's fault chain, and
// moves data between the bulk endpoints and the backing with io_uring, the next chunk read from (or written to) the
// backing while the current one crosses the bus. A supervisor holds ep0 (so the function, and the host's device,
// outlive a crashed server) and restarts the server, which carries on from the next CBW.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace devemu::usb {

struct MscLun {
    std::string name;               // its backstore (what `devemu fault UNIT:NAME` names)
    std::string backing;            // file or block device
    std::uint64_t size = 0;
    std::uint32_t block_size = 512;
    bool readonly = false, removable = false, nofua = false;
    std::string serial;             // VPD 0x80
    std::string inquiry;            // "VENDOR  PRODUCT         REV " (8 + 16 + 4), empty: devemu's
    nlohmann::json faults = nlohmann::json::array();   // [[backstore.fault]] keys, as `devemu fault` takes them
};

struct MscConfig {
    std::string mount;              // the function's FunctionFS mount
    std::vector<MscLun> luns;
    bool stall = true;              // may halt bulk endpoints (BOT); false pads / discards instead
    // Bytes per USB request: small enough that the first is on the bus while the next is being copied (measured in
    // the TCG VM, 16 KiB beat 8, 32 and 128 KiB for 1 MiB reads: tools/bench-gadget), the kernel function's size.
    std::uint32_t chunk = 16 * 1024;
    std::uint32_t write_chunk = 128 * 1024;   // data-out: one plain read up to this size, AIO chunks of it above
    unsigned buffers = 8;           // bounce buffers (a backing that cannot be mapped), chunks in flight
    std::string stats;              // JSON, about once a second and at exit
    std::string control;            // unix socket `devemu fault` talks to (one JSON request a line); empty: none
    // The faults as the last `devemu fault` left them ({"luns": {NAME: [keys…]}, "usb": {fault, count}}): a server
    // the supervisor restarts starts from these instead of the profile's. Empty: not kept.
    std::string faults_state;
    std::string interface_name = "devemu mass storage";
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MscLun, name, backing, size, block_size, readonly, removable, nofua, serial, inquiry, faults)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MscConfig, mount, luns, stall, chunk, write_chunk, buffers, stats, control, faults_state, interface_name)

// Serves on an ep0 whose descriptors are written (by msc_supervise) until SIGTERM. Returns an exit code.
[[nodiscard]] int msc_serve(const MscConfig& cfg, int ep0);
// Opens ep0, writes the descriptors and strings, and runs msc_serve in a child, restarted whenever it dies, until
// SIGTERM (then the child is stopped and ep0 closed: the function leaves the bus).
[[nodiscard]] int msc_supervise(const MscConfig& cfg);

}  // namespace devemu::usb
