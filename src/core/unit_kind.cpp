#include "core/unit_kind.hpp"

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

}  // namespace devemu::core
