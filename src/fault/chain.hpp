#pragma once
// A chain of faults between a SCSI front-end and its backing: for each read or write the front-end asks what
// the chain does to it (nothing; serve it later; hold it until the stall is cleared; fail it with a medium error
// at an LBA; accept a write without storing it), and the chain counts what each fault did. Faults are added and
// cleared at run time; the front-end changes the chain between commands, so a change is atomic for them.
// Not thread-safe: the front-end's one thread owns it.
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "fault/fault.hpp"
#include "scsi/sense.hpp"

namespace devemu::fault {

using Clock = std::chrono::steady_clock;

struct Io {
    bool write = false;
    std::uint64_t lba = 0, blocks = 0, bytes = 0;
};

struct Verdict {
    Clock::time_point not_before{};     // serve it no earlier (delay, rate, a timed stall); epoch: now
    bool held = false;                  // stalled until the fault is cleared (Chain::stalled says when)
    std::optional<scsi::Sense> error;   // fail it with this sense, INFORMATION = error_lba
    std::uint64_t error_lba = 0;
    bool drop = false;                  // a write that succeeds without reaching the medium
};

class Chain {
public:
    // Adds a fault, armed at `now` (flakey's cycle and a timed stall start then). An id already in use is an error.
    [[nodiscard]] core::Status add(Spec s, Clock::time_point now);
    // Removes a fault; false when there is none of that id.
    bool clear(const std::string& id);
    void clear_all() { faults_.clear(); }
    [[nodiscard]] bool empty() const { return faults_.empty(); }

    [[nodiscard]] Verdict decide(const Io& io, Clock::time_point now);
    // Is a command that was held still held (a stall without end that is still in the chain and in scope)?
    [[nodiscard]] bool stalled(const Io& io) const;

    // [{the fault's keys..., "events": how many commands it acted on, "dropped": [[lba, blocks]...] of the writes a
    // flakey fault dropped (with "dropped_more": true when there were more ranges than it keeps)}], in chain order.
    // Only the keys are a fault's definition: strip_counts leaves just them.
    [[nodiscard]] nlohmann::json to_json() const;
    static void strip_counts(nlohmann::json& fault);

private:
    struct Armed {
        Spec spec;
        Clock::time_point armed;
        std::mt19937_64 rng;
        std::uint64_t events = 0;
        bool fired = false;                 // error, once: it has
        std::set<std::uint64_t> failed;     // error, sticky: LBAs that failed and stay failed
        Clock::time_point next_free{};      // rate: when the next command may start
        // flakey with drop_writes: the LBA ranges of the writes it dropped ({lba, blocks}, adjacent ones merged),
        // so that a test can tell exactly what is missing; the first max_dropped_ranges of them.
        std::vector<std::pair<std::uint64_t, std::uint64_t>> dropped;
        bool dropped_more = false;
    };
    static constexpr std::size_t max_dropped_ranges = 4096;
    [[nodiscard]] static bool in_scope(const Spec& s, const Io& io);
    std::vector<Armed> faults_;
    unsigned next_id_ = 1;
};

}  // namespace devemu::fault
