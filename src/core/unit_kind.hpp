#pragma once
// A unit kind is an ops table (as ublksrv's target types or fio's ioengines): what devemu does with a unit of that
// kind once `up` has made it. The library that owns a kind registers it (lio: "target", usb: "gadget", ceph: "ceph",
// the VM layer: "vm"); the commands look a unit's kind up by its record's "kind" and never name one.
// Which thread calls what: `down` may run on several threads at once, for different units; the rest on the caller's.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::core {

struct Health {
    std::string status = "healthy";     // healthy | drift | dead
    std::vector<std::string> detail;    // one line each: what differs, and how to mend it
};

struct UnitKind {
    std::string name;   // the record's "kind"
    // Required. Removes what `up` made (the unit's journal, in reverse) and forgets the unit. `record` holds the
    // record's top-level fields only (StateDir::load_scalars); empty when only a journal is left.
    std::function<Status(const StateDir& sd, const std::string& unit, const nlohmann::json& record)> down;
    // Required. Does the kernel still hold what `up` made? From the full record.
    std::function<Health(const nlohmann::json& record)> health;
    // Units of a kind with a higher order are removed after all others by `down --all` (a cluster other units use).
    int down_order = 0;
};

// What `down` does for a unit of no known kind, or with only a journal (a crash during `up`): replay its journal in
// reverse and forget it. Every kind's own `down` starts from this.
[[nodiscard]] Status down_by_journal(const StateDir& sd, const std::string& unit);

// Registering a name twice replaces the first (a test may stand in for a kind).
void register_kind(UnitKind kind);
[[nodiscard]] const UnitKind* find_kind(std::string_view name);

}  // namespace devemu::core
