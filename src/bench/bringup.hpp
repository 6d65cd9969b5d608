#pragma once
// Internal to src/bench: what a --paths run makes, and how it is removed. The backing (zram:SIZE, or ext4:SIZE: a
// file on ext4 on zram) and every path on it are units of the run's private state dir, made through the unit kinds
// and journals as `devemu up` makes them, so a Teardown removes them in the reverse order of making: on success, on
// error and on Ctrl-C (and a crash leaves journals that `devemu down --all` replays in that dir).
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"

namespace devemu::bench {

// Everything the run made lives in units of its private state dir; removed in the reverse order of making:
// sessions, tgtd, the profile's units (targets, gadgets), the backing.
struct Teardown {
    const core::StateDir* sd = nullptr;
    std::vector<std::string> order;   // in the order made
    ~Teardown();
};

inline bool uses(const std::vector<std::string>& paths, std::initializer_list<const char*> any)
{
    for (auto& p : paths)
        for (auto* a : any)
            if (p == a) return true;
    return false;
}

// "interrupted" once Ctrl-C has been pressed (the engine's stop handler), else nothing: checked between the steps.
[[nodiscard]] core::Status interrupted_status();

// zram:SIZE (ext4 false) or ext4:SIZE made, filled with random data, and journaled as the unit "bench-backing": the
// zram device's path, or the file's. The file is filled through the page cache, so its pages are there when the
// runs start; the zram device with O_DIRECT.
[[nodiscard]] core::Result<std::string> make_backing(const core::StateDir& sd, Teardown& td, bool ext4, std::uint64_t size);

// Every path in `paths` but raw brought up on `dev`: the LIO and USB paths as one profile through the unit kinds, the
// iSCSI sessions, tgtd. Each path's disk (raw: dev itself).
[[nodiscard]] core::Result<std::map<std::string, std::string>> bring_up(const core::StateDir& sd, Teardown& td, const std::vector<std::string>& paths,
                                                                         const std::string& dev);

}  // namespace devemu::bench
