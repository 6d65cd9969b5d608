#pragma once
// The one skeleton by which a unit kind writes its kernel tree (configfs): the nodes it recorded last time and the
// nodes it wants -> diff -> apply through the unit's Transaction (in phases, with the kind's own steps between) ->
// read back -> the kind's finishing steps -> commit. Any failure rolls the whole transaction back, so a unit is
// either as asked or as it was. lio (targets) and usb (gadgets) use it; a new kind that writes configfs should too.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/nodes.hpp"
#include "core/transaction.hpp"

namespace devemu::core {

struct UnitApply {
    std::string label;             // "target 'name'": an apply error's message starts with it
    std::string unit;              // where a read-back difference is reported
    fs::path root;                 // the tree the nodes are relative to
    std::vector<Node> recorded;    // what the unit applied last time (empty for a new unit)
    std::vector<Node> desired;
    // Read back even when there was nothing to change (false: the diff has just read every node and found it).
    bool verify_unchanged = true;
    // Steps run in phases, 0 first: `phase_of` picks a step's phase (none: all in phase 0), and `before_phase` runs
    // before each phase's steps with the whole plan (a TCMU handler started between backstores and LUNs; a bound
    // gadget unbound before it changes).
    int phases = 1;
    std::function<int(const Step&)> phase_of;
    std::function<Status(int phase, Transaction& tx, const std::vector<Step>& plan)> before_phase;
    // Once the read-back matched: what the kind still does before the unit is up (bind a UDC, wait for the host).
    std::function<Status(Transaction& tx)> after_verify;
    // Every failure's error passes through here before the rollback (what LIO's EINVAL meant, what dmesg said).
    std::function<void(Error& e)> explain;
};

// Returns the plan that was applied, with `tx` committed; on failure, `tx` is rolled back (a rollback that fails is
// logged) and the error returned.
[[nodiscard]] Result<std::vector<Step>> apply_unit(Transaction& tx, const UnitApply& a);

}  // namespace devemu::core
