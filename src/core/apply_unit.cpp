#include "core/apply_unit.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace devemu::core {

Result<std::vector<Step>> apply_unit(Transaction& tx, const UnitApply& a)
{
    const auto plan = diff(a.recorded, a.desired, a.root);
    for (auto& s : plan) spdlog::debug("{}: {}", a.unit, describe(s));
    auto failed = [&](Error e, bool labelled) -> Result<std::vector<Step>> {
        if (labelled && !a.label.empty()) e.what = fmt::format("{}: {}", a.label, e.what);
        if (a.explain) a.explain(e);
        if (auto r = tx.rollback(); !r) spdlog::error("rollback incomplete: {}", r.error().message());
        return std::unexpected(e);
    };
    for (int phase = 0; phase < a.phases; ++phase) {
        if (a.before_phase)
            if (auto s = a.before_phase(phase, tx, plan); !s) return failed(s.error(), true);
        std::vector<Step> steps;
        for (auto& s : plan)
            if ((a.phase_of ? a.phase_of(s) : 0) == phase) steps.push_back(s);
        if (auto s = apply(tx, steps, a.root); !s) return failed(s.error(), true);
    }
    if (auto diffs = plan.empty() && !a.verify_unchanged ? std::vector<std::string>{} : verify(a.desired, a.root); !diffs.empty())
        return failed({Errc::check_failed, fmt::format("read-back differs after apply ({} differences), rolled back: {}", diffs.size(), diffs.front()),
                       a.unit, "see `devemu plan` and dmesg"},
                      false);
    if (a.after_verify)
        if (auto s = a.after_verify(tx); !s) return failed(s.error(), false);
    tx.commit();
    return plan;
}

}  // namespace devemu::core
