#pragma once
// The host-side checker: opens a USB device with libusb (detaching the kernel driver for the duration and
// re-attaching it after) and tests it from the wire up. Mass storage: BOT class requests, the SCSI commands
// hosts send, CBW/CSW conformance, the BOT thirteen cases, a write->read-verify that restores what it touched,
// and sequential throughput. A vendor-class interface with a bulk pair (the FunctionFS example app): a loopback
// round trip of random data.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace devemu::usb {

struct DeviceMatch {
    std::uint16_t vid = 0, pid = 0;
    std::string serial;   // empty: any
    int bus = 0, device = 0;   // 0: any
};
// "1d6b:0104" -> vid/pid; nullopt when it is not VID:PID.
[[nodiscard]] std::optional<DeviceMatch> parse_vid_pid(const std::string& s);

struct CheckOptions {
    bool bench = false;
    std::uint64_t bench_bytes = 32ull << 20;   // per direction
    bool write = true;                         // write->read-verify and write throughput (restoring the data)
    int expect_luns = -1;                      // from the unit record, when known
    std::vector<std::uint64_t> expect_sizes;   // bytes per LUN, when known
    std::vector<bool> expect_readonly;
    // LUNs per mass-storage function in profile order (= interface order), when known: a gadget with several
    // functions has one BOT interface each, and the expectations above are split between them in that order.
    std::vector<int> luns_per_interface;
};

struct CheckItem {
    std::string lun;      // "" for device-wide checks
    std::string name;
    std::string result;   // pass | fail | info
    std::string detail;
};

struct CheckReport {
    std::string kind;     // mass_storage | loopback
    nlohmann::json device;
    std::vector<CheckItem> items;
    nlohmann::json bench = nlohmann::json::object();
    [[nodiscard]] bool ok() const;
    [[nodiscard]] nlohmann::json to_json() const;
};

// Checks every mass-storage interface if the device has one, else its first vendor-class bulk pair. Errors: no such device,
// no permission, no usable interface.
[[nodiscard]] core::Result<CheckReport> check_device(const DeviceMatch& m, const CheckOptions& opt);

}  // namespace devemu::usb
