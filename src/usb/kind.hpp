#pragma once
// The "gadget" unit kind (core/unit_kind.hpp): a profile's [[gadget]]s on dummy UDCs, and `devemu check` of a
// gadget (or of any USB device by VID:PID) over libusb.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/unit_kind.hpp"

namespace devemu::usb {

void register_gadget_kind();

// What `up` prints of a gadget unit record (the UDC, its id, where the host side sees it, its LUNs, FunctionFS).
[[nodiscard]] std::vector<std::string> gadget_lines(const nlohmann::json& record);

// Checks a gadget unit (`record`; `sd` to store the disks' names the host gives them again after the check), or
// with `record` null the device `what` names as VID:PID.
[[nodiscard]] core::Result<core::CheckOutcome> check_usb(const core::StateDir* sd, const nlohmann::json* record, const std::string& what,
                                                         const core::CheckRequest& req);

}  // namespace devemu::usb
