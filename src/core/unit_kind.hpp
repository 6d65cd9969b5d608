#pragma once
// A unit kind is an ops table (as ublksrv's target types or fio's ioengines): everything devemu does with units of
// that kind. The library that owns a kind registers it (lio: "target", usb: "gadget", ceph: "ceph", vm: "vm");
// `up`, `plan`, `down`, `ls`, `check` look a kind up (by a profile's sections, or a record's "kind") and never name
// one. The CLI parses options and prints what the ops return: no op writes to the terminal.
// Which thread calls what: `down` may run on several threads at once, for different units; the rest on the caller's.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"

namespace devemu::profile {
struct Profile;
}

namespace devemu::core {

struct Health {
    std::string status = "healthy";     // healthy | drift | dead
    std::vector<std::string> detail;    // one line each: what differs, and how to mend it
};

// What `up` and `plan` ask of every kind; each reads what concerns it.
struct UpRequest {
    bool apply = true;                  // false: `plan` (nothing is touched)
    bool force = false;                 // resize backing files, export devices that hold data
    bool insecure = false;              // a non-loopback portal without CHAP and ACLs
    bool in_vm = false;                 // devemu inside an `up --vm` guest
    bool secrets = false;               // show CHAP secrets in what `up` prints
    std::chrono::seconds timeout{30};   // enumeration, FunctionFS apps
    std::chrono::seconds address_wait{0};   // an iSCSI portal's address not on this machine yet: wait this long (boot)
    std::map<std::string, std::uint16_t> advertise;   // in the guest: target -> the host's forward of its portal
    std::string ceph_local;             // how cluster = "local" is reached from here (a connection file), or empty
    // A gadget's FunctionFS instances are mounted and wait for their app: the CLI's --exec starts it here and
    // journals it in `tx`. Empty: nobody starts one (the profile says how long to wait for the user's).
    std::function<Status(Transaction& tx, const std::string& unit, const std::vector<std::string>& mounts)> on_ffs_mounted;
};

// One unit's outcome of `up` or `plan`: every unit is independent, so one failing does not stop the others.
struct UnitOutcome {
    std::string unit;
    Result<nlohmann::json> record = nlohmann::json::object();   // up: the record as saved; or why it failed
    std::vector<std::string> steps;                              // plan: what up would do, one line each
};

// What `up` and `ls` show of a unit: the JSON a script reads, and the lines a person does.
struct Described {
    nlohmann::json json = nlohmann::json::object();
    std::vector<std::string> lines;
};
enum class DescribeFor { up, ls, ls_verbose };   // ls_verbose: `ls -v` (where logs are)

struct CheckRequest {
    std::uint64_t scratch = 4u << 20;   // targets: bytes written and read back (saved and restored)
    bool as_json = false;
    bool write = true;                  // gadgets: false for read-only checks
    std::uint64_t bench_bytes = 0;      // gadgets: 0, or the bytes of a throughput run
    std::vector<std::string> flags;     // the command's flags as given, for a kind that relays them (a VM's guest)
    std::string held;                   // only this unit of the ones the unit holds (address_unit); empty: all
};
// A check's result as the kind renders it (lines and JSON), and its exit code: 0 all passed, 1 a check failed.
struct CheckOutcome {
    nlohmann::json json;
    std::vector<std::string> lines;
    int rc = 0;
    std::string relay_out, relay_err;   // what a check run elsewhere (a VM's guest) printed, shown first, as it is
};

// What a command run where a unit's own units live (a VM's guest) printed, and its exit status.
struct Relayed {
    int rc = 0;
    std::string out, err;
};
// Where a relayed command's output goes as it comes (to_stderr: its stderr); empty: collected into Relayed.
using OutputSink = std::function<void(bool to_stderr, std::string_view data)>;

struct UnitKind {
    std::string name;   // the record's "kind"
    // Profiles: brings up (or with !apply, plans) the units of this kind a profile declares. Validation errors of
    // the whole profile come back as an error before anything is touched. Empty: no profile declares this kind.
    std::function<Result<std::vector<UnitOutcome>>(const profile::Profile& p, const StateDir& sd, const UpRequest& req)> up;
    int up_order = 0;   // within a profile, lower first (targets before gadgets)
    // Required. Removes what `up` made (the unit's journal, in reverse) and forgets the unit. `record` holds the
    // record's top-level fields only (StateDir::load_scalars); empty when only a journal is left.
    std::function<Status(const StateDir& sd, const std::string& unit, const nlohmann::json& record)> down;
    // Required. Does the kernel still hold what `up` made? From the full record.
    std::function<Health(const nlohmann::json& record)> health;
    // What `up` prints of a unit it made, or what `ls` adds to its line and JSON. Empty: the name and state only.
    std::function<Described(const nlohmann::json& record, DescribeFor what, bool secrets)> describe;
    // `devemu check UNIT`: exercise the unit as its host side would. Empty: this kind has nothing to check.
    std::function<Result<CheckOutcome>(const StateDir& sd, const std::string& unit, const nlohmann::json& record, const CheckRequest& req)> check;
    // A unit whose own units live elsewhere (an `up --vm` VM's guest): runs `argv` there; argv[0] "devemu" is that
    // place's devemu, with its state dir; its output streams to `sink` when one is given, and `stdin_fd` (-1: none)
    // is its stdin. Empty: the unit's kernel objects are here.
    std::function<Result<Relayed>(const nlohmann::json& record, std::vector<std::string> argv, const OutputSink& sink, int stdin_fd)> relay;
    // `devemu fault UNIT[:BACKSTORE] …`: sends `request` ({"op": "add", "keys": {…}} | {"op": "clear"[, "id"]} |
    // {"op": "ls"}) to the fault chains of the unit's data paths (all, or the one named); answers
    // {BACKSTORE: [fault…]}. Empty: this kind's units have no fault chain.
    std::function<Result<nlohmann::json>(const nlohmann::json& record, const std::string& backstore, const nlohmann::json& request)> fault;
    // `devemu failover UNIT [options]`: cuts and restores the unit's paths under verified I/O and reports each event
    // (options and the answer as JSON: the kind's own). Empty: this kind's units have no paths to cut.
    std::function<Result<Described>(const nlohmann::json& record, const nlohmann::json& options)> failover;
    // Units of a kind with a higher order are removed after all others by `down --all` (a cluster other units use).
    int down_order = 0;
    // Units this one holds under their own names (an `up --vm` unit: its guest's targets and gadgets), so that
    // `check`, `fault`, `capture`, `gadget`, `export`, `vm exec` and `down` take those names too. Empty: none.
    std::function<bool(const nlohmann::json& record, const std::string& name)> holds;
    // `devemu down HELD`: removes one unit it holds (`unit` stays up). Empty: a held unit goes only with its holder.
    std::function<Status(const StateDir& sd, const std::string& unit, const std::string& held)> down_held;
};

// A unit as a command names it: its own record, or, when the state dir has none by that name, the one unit that
// holds a unit by that name (`held`: that name; empty for a unit of its own). Missing: the state dir's own error;
// two holders: an error naming both.
struct Addressed {
    std::string unit;   // the state dir's unit
    nlohmann::json record;
    std::string held;
    const UnitKind* kind = nullptr;
};
[[nodiscard]] Result<Addressed> address_unit(const StateDir& sd, const std::string& name);

// What `down` does for a unit of no known kind, or with only a journal (a crash during `up`): replay its journal in
// reverse and forget it. Every kind's own `down` starts from this.
[[nodiscard]] Status down_by_journal(const StateDir& sd, const std::string& unit);
// Removes one unit: its kind's `down` given the record's top-level fields (`scalars`: StateDir::load_scalars, or
// empty when there is no record), else the journal's replay (no record, or a kind this devemu does not know).
[[nodiscard]] Status down_unit(const StateDir& sd, const std::string& unit, const nlohmann::json& scalars);

// Registering a name twice replaces the first (a test may stand in for a kind).
void register_kind(UnitKind kind);
[[nodiscard]] const UnitKind* find_kind(std::string_view name);
// Every registered kind, by up_order then name.
[[nodiscard]] std::vector<const UnitKind*> all_kinds();

}  // namespace devemu::core
