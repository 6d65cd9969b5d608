// The "target" unit kind: a LIO target with its backstores (and TCMU handlers), as lio::up made it.
#include "lio/kind.hpp"

#include "backing/backing.hpp"
#include "core/journal.hpp"
#include "core/unit_kind.hpp"
#include "lio/unit.hpp"

namespace devemu::lio {

using nlohmann::json;

core::Health target_health(const json& rec, const Roots& roots)
{
    core::Health h;
    h.detail = health(rec, roots);
    const json handlers = rec.value("handlers", json::object());   // named: items() of a temporary dangles
    for (auto it = handlers.begin(); it != handlers.end(); ++it)
        if (core::process_start_time(it.value().value("supervisor", 0)) != it.value().value("start", std::uint64_t{0}))
            h.detail.push_back("the TCMU handler of backstore " + it.key() + " is not running (devemu up again restarts it)");
    if (!h.detail.empty()) h.status = "drift";
    return h;
}

void register_target_kind(AfterDown after_down)
{
    backing::register_undo_ops();
    core::register_kind({"target",
                         [after_down](const core::StateDir& sd, const std::string& unit, const json& rec) -> core::Status {
                             DEVEMU_CHECK(down(sd, unit));
                             if (after_down) after_down(sd, unit, rec);
                             return {};
                         },
                         [](const json& rec) { return target_health(rec, Roots{}); }});
}

}  // namespace devemu::lio
