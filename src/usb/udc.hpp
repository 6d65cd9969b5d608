#pragma once
// The UDC side of a gadget: which UDC it binds to (a dummy one on purpose, never usbip-vudc or hardware unless the
// profile names it), the bind itself (read back: libusbgx #12), and the kernel's own words when something is refused.
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"
#include "usb/gadget.hpp"

namespace devemu::usb {

// Kernel messages logged from now on (for the reason behind a refused bind or a failed enumeration): the lines
// about USB, gadgets and FunctionFS, without the record header.
class KernelLog {
public:
    KernelLog();
    [[nodiscard]] std::string reason();                       // the last such line, empty when none
    [[nodiscard]] std::string find(const std::string& what);  // the first line containing `what`, empty when none

private:
    void poll();
    core::UniqueFd fd_;
    std::vector<std::string> lines_;
};

// The UDC gadget `g` binds to: the profile's, or a free dummy_udc.N. Busy and missing UDCs are one-line errors.
[[nodiscard]] core::Result<std::string> pick_udc(const profile::Gadget& g, const Roots& r, const std::string& file);

// Binds gadget `name` (its UDC attribute `udc_attr`) to `udc`, journaling the unbind first (with the dummy_hcd whose
// host side must see the device go); reads the bind back.
[[nodiscard]] core::Status bind_udc(core::Transaction& tx, const std::string& name, const fs::path& udc_attr, const std::string& udc, const Roots& r);

// Unbinds a gadget: "\n" to its UDC attribute (not bound, or gone: nothing to do); with `hcd` (a dummy_hcd platform
// device), waits up to 5 s until its host side has seen the device go, so the UDC is really free on return.
[[nodiscard]] core::Status unbind_udc(const fs::path& udc_attr, const std::string& hcd = {});

// The journal step "unbind" (path: the UDC attribute, value: the dummy_hcd), registered by register_gadget_kind.
void register_undo_ops();

}  // namespace devemu::usb
