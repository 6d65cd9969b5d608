// The "gadget" unit kind: a USB gadget on a UDC, as usb::up made it.
#include "usb/kind.hpp"

#include "backing/backing.hpp"
#include "core/unit_kind.hpp"
#include "usb/gadget.hpp"
#include "usb/udc.hpp"

namespace devemu::usb {

void register_gadget_kind()
{
    register_undo_ops();
    backing::register_undo_ops();
    core::register_kind({"gadget", [](const core::StateDir& sd, const std::string& unit, const nlohmann::json&) { return down(sd, unit); },
                         [](const nlohmann::json& rec) {
                             core::Health h;
                             h.detail = health(rec, Roots{});
                             if (!h.detail.empty()) h.status = "drift";
                             return h;
                         }});
}

}  // namespace devemu::usb
