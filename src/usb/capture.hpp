#pragma once
// What went over a gadget's bus, as Wireshark and tshark read it: usbmon's binary interface (/dev/usbmonB, the
// 64-byte headers of Linux's "mmapped" format) written as pcapng with link type LINKTYPE_USB_LINUX_MMAPPED (220),
// only the packets of one device on that bus. The pcapng blocks are pure and unit-tested.
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace devemu::usb {

inline constexpr std::uint16_t linktype_usb_linux_mmapped = 220;
inline constexpr std::size_t usbmon_header_len = 64;

// pcapng: the section header, one interface (link type 220, microsecond timestamps), and an enhanced packet.
[[nodiscard]] std::vector<std::uint8_t> pcapng_header(std::uint32_t snaplen);
[[nodiscard]] std::vector<std::uint8_t> pcapng_packet(std::uint64_t ts_usec, std::span<const std::uint8_t> packet, std::uint32_t original_len);

struct CaptureOptions {
    int bus = 0, device = 0;                      // the gadget's host side (devemu ls)
    std::string file;                             // written as FILE.part, renamed at the end
    std::chrono::seconds duration{0};             // 0: until SIGINT/SIGTERM
    std::function<void(std::uint64_t packets)> progress;
};
struct CaptureResult {
    std::uint64_t packets = 0, bytes = 0;
};
// Loads usbmon if needed, captures until the duration is over or SIGINT/SIGTERM, and leaves a complete file.
[[nodiscard]] core::Result<CaptureResult> capture(const CaptureOptions& opt);

}  // namespace devemu::usb
