#pragma once
// Faults on demand in a userspace data path (the TCMU handler; any front-end that serves SCSI from userspace): what
// a fault is (delay, error, flakey, stall, rate), scoped to reads, writes or both and to an LBA range, and how one
// is written: `key = value` pairs, the same in a profile's [[backstore.fault]] table and on `devemu fault add`.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace devemu::fault {

using Nanos = std::chrono::nanoseconds;

enum class Type { delay, error, flakey, stall, rate };
enum class Scope { read, write, rw };
enum class Mode { always, once, sticky };   // error: every time (with `probability`), the first time only, or an LBA that failed stays failed

struct Spec {
    std::string id;                     // unique in a chain; default: the type and a number ("error1")
    Type type = Type::delay;
    Scope scope = Scope::rw;
    std::uint64_t first = 0, last = UINT64_MAX;   // LBA range, inclusive
    Nanos delay_min{0}, delay_max{0};   // delay: fixed (min == max) or uniform in [min, max]
    double probability = 1.0;           // error: per command in scope
    Mode mode = Mode::always;
    Nanos up{0}, down{0};               // flakey: up this long, then down this long, from when the fault is armed
    bool drop_writes = false;           // flakey: while down, writes succeed without reaching the medium (reads are served)
    Nanos stall_for{0};                 // stall: commands in scope are held this long after the fault is armed; 0: until cleared
    std::uint64_t iops = 0;             // rate: commands per second (0: no limit)
    std::uint64_t bytes_per_s = 0;      // rate: bytes per second (0: no limit)
    std::uint64_t seed = 1;             // random choices repeat exactly for a seed
};

// Parses one fault from its keys. `where` names it in errors (file:line, or the argument); an unknown key, a bad
// value or a missing one is an error that says which and how to write it. `end_lba`: the device's last LBA (a
// range past it is refused); UINT64_MAX when not known yet.
[[nodiscard]] core::Result<Spec> parse(const std::map<std::string, std::string>& keys, const std::string& where,
                                       std::uint64_t end_lba = UINT64_MAX);
// "key=value" words (devemu fault add) -> keys; a word without '=' is an error naming it.
[[nodiscard]] core::Result<std::map<std::string, std::string>> keys_of(const std::vector<std::string>& words);

// A duration: "250us", "5ms", "2s", "1.5s", "100ns"; a bare number is milliseconds.
[[nodiscard]] std::optional<Nanos> parse_duration(const std::string& s);

// `devemu fault NAME` words -> the request a data path's control socket takes: "add KEY=VALUE…" ({"op": "add",
// "keys": …}, the keys checked here so that a typo needs no round trip), "clear [ID]", "ls"; and "path down|up"
// ({"op": "path", "state": …}) and "alua GROUP STATE" ({"op": "alua", "group": …, "state": …}), which the unit's
// kind carries out on its transport and its target port groups.
[[nodiscard]] core::Result<nlohmann::json> request(const std::vector<std::string>& words);

// What `devemu fault NAME …` prints of an answer ({BACKSTORE: [fault…]} or {"path": STATE}).
[[nodiscard]] std::vector<std::string> lines(const std::string& unit, const nlohmann::json& answer);

// Under a kernel backstore a fault is a device-mapper target (dm-delay, dm-flakey) stacked on the backing. What one
// cannot do — an error with sense, a stall, a rate, a random delay, a flakey scoped to reads or writes, times finer
// than dm's (delay: ms, flakey: s) — is {the key, why}; nothing when it can.
struct DmRefusal {
    std::string key, why;
};
[[nodiscard]] std::optional<DmRefusal> dm_refusal(const Spec& s);
// The dm target line of a fault dm_refusal accepts, for `sectors` 512-byte sectors of `dev` (a path or MAJ:MIN)
// from `offset`: "delay DEV OFF MS [DEV OFF MS]" or "flakey DEV OFF UP DOWN [1 drop_writes]".
[[nodiscard]] std::string dm_target(const Spec& s, const std::string& dev, std::uint64_t offset);

[[nodiscard]] const char* to_string(Type t);
[[nodiscard]] const char* to_string(Scope s);
[[nodiscard]] nlohmann::json to_json(const Spec& s);   // the keys again, as `parse` reads them
[[nodiscard]] std::map<std::string, std::string> keys_of(const nlohmann::json& j);

}  // namespace devemu::fault
