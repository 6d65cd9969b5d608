#pragma once
// USB/IP export of a gadget (`udc = "usbip"`): the gadget binds to usbip-vudc and usbipd runs in device mode, so
// another machine (or VM, or this one through vhci-hcd) attaches it with `usbip attach -r HOST -d usbip-vudc.N`.
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"

namespace devemu::usb {

inline constexpr int usbip_port = 3240;

[[nodiscard]] inline bool is_usbip_udc(const std::string& udc) { return udc.starts_with("usbip-vudc."); }

// Starts usbipd --device unless one is running (journaled: `down` stops the one this unit started), waits until
// it listens; returns {"busid", "port", "usbipd", "attach"} for the record.
[[nodiscard]] core::Result<nlohmann::json> start_usbipd(core::Transaction& tx, const core::StateDir& sd, const std::string& unit,
                                                        const std::string& udc);

// Is a process listening on TCP `port` (IPv4 or IPv6)?
[[nodiscard]] bool tcp_listening(int port);

}  // namespace devemu::usb
