#include "lio/disk_limits.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/fs.hpp"

namespace devemu::lio {

std::vector<std::string> lift_transfer_cap(const nlohmann::json& devices, const Roots& roots)
{
    constexpr std::uint64_t sd_default_kb = 1280;   // BLK_DEF_MAX_SECTORS (2560 sectors): sd's choice without a hint
    constexpr std::uint64_t small_kb = 128;         // below this a hinted cap costs (zram's: 4 KiB)
    std::vector<std::string> out;
    for (auto it = devices.begin(); it != devices.end(); ++it) {
        if (!it.value().is_string()) continue;
        const std::string dev = it.value().get<std::string>();
        const auto q = roots.sys / "block" / fs::path(dev).filename() / "queue";
        auto cur = core::read_number(q / "max_sectors_kb");
        auto hw = core::read_number(q / "max_hw_sectors_kb");
        auto opt = core::read_number(q / "optimal_io_size");
        if (!cur || !hw || !opt || *opt == 0 || *cur * 1024 != *opt) continue;   // not capped by the hint
        if (*cur >= small_kb) continue;   // fileio's 1 MiB hint, say: a fine request size
        // The kernel also refuses more than the LUN's MAXIMUM TRANSFER LENGTH, which sysfs does not show: halve
        // until it takes one (a value above that limit would also be reset by sd's next revalidation).
        core::Status s = core::fail(core::Errc::kernel, "no larger size accepted", (q / "max_sectors_kb").string());
        std::uint64_t want = std::min<std::uint64_t>(*hw, sd_default_kb);
        if (want <= *cur) continue;
        for (; want > *cur; want /= 2)
            if ((s = core::write_attr(q / "max_sectors_kb", std::to_string(want)))) break;
        if (!s) {
            spdlog::warn("LUN {} {}: requests stay at {} KiB (the target's optimal transfer length): {}", it.key(), dev, *cur, s.error().message());
            continue;
        }
        out.push_back(fmt::format("LUN {} {}: max_sectors_kb {} -> {} (the target hinted {} KiB as optimal)", it.key(), dev, *cur, want, *opt / 1024));
        spdlog::info("{}", out.back());
    }
    return out;
}

}  // namespace devemu::lio
