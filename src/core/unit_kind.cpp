#include "core/unit_kind.hpp"

#include "core/journal.hpp"

#include <algorithm>
#include <map>
#include <mutex>

namespace devemu::core {

namespace {
std::mutex mu;
std::map<std::string, UnitKind, std::less<>>& kinds()
{
    static std::map<std::string, UnitKind, std::less<>> k;
    return k;
}
}  // namespace

Status down_by_journal(const StateDir& sd, const std::string& unit)
{
    auto s = replay_journal(sd.journal(unit));
    if (!s) return fail(s.error().code, "could not remove everything: " + s.error().message(), unit,
                        "fix the cause (a program still using what it made?) and run devemu down again");
    return sd.forget(unit);
}

void register_kind(UnitKind kind)
{
    std::lock_guard lock(mu);
    kinds()[kind.name] = std::move(kind);
}

const UnitKind* find_kind(std::string_view name)
{
    std::lock_guard lock(mu);
    auto it = kinds().find(name);
    return it == kinds().end() ? nullptr : &it->second;
}

std::vector<const UnitKind*> all_kinds()
{
    std::lock_guard lock(mu);
    std::vector<const UnitKind*> out;
    for (auto& [n, k] : kinds()) out.push_back(&k);
    std::stable_sort(out.begin(), out.end(), [](const UnitKind* a, const UnitKind* b) { return a->up_order < b->up_order; });
    return out;
}

Result<Addressed> address_unit(const StateDir& sd, const std::string& name)
{
    auto own = sd.load(name);
    if (own) return Addressed{name, *own, "", find_kind(own->value("kind", ""))};
    if (own.error().code != Errc::missing) return std::unexpected(own.error());
    std::vector<Addressed> holders;
    for (auto& u : sd.units()) {
        auto rec = sd.load(u);
        const auto* kind = rec ? find_kind(rec->value("kind", "")) : nullptr;
        if (kind && kind->holds && kind->holds(*rec, name)) holders.push_back({u, *rec, name, kind});
    }
    if (holders.empty()) return std::unexpected(own.error());
    if (holders.size() > 1)
        return fail(Errc::invalid_input, "'" + name + "' is a unit of both " + holders[0].unit + " and " + holders[1].unit, name,
                    "name it through its VM: devemu vm exec " + holders[0].unit + " -- devemu …");
    return holders[0];
}

Status down_unit(const StateDir& sd, const std::string& unit, const nlohmann::json& scalars)
{
    const auto* kind = scalars.is_object() ? find_kind(scalars.value("kind", "")) : nullptr;
    return kind ? kind->down(sd, unit, scalars) : down_by_journal(sd, unit);
}

}  // namespace devemu::core
