#pragma once
// Registers the "gadget" unit kind (core/unit_kind.hpp).
namespace devemu::usb {
void register_gadget_kind();
}
