#include "profile/backstore_tables.hpp"

#include <fmt/format.h>

#include <map>
#include <string>

#include "core/text.hpp"

namespace devemu::profile {

using core::Result;

// [[backstore.fault]] tables: each one's keys, as fault::parse reads them (the same as `devemu fault add`).
Result<std::vector<fault::Spec>> parse_faults(const Table& t, const Backstore& b)
{
    std::vector<fault::Spec> out;
    DEVEMU_TRY(tables, t.tables("fault", "[[backstore.fault]]"));
    const std::uint64_t end_lba = b.size ? *b.size / b.block_size - 1 : UINT64_MAX;
    for (auto& ft : tables) {
        std::map<std::string, std::string> keys;
        for (auto& [k, v] : ft.get_table()) {
            if (v.is_string()) keys[k] = v.as_string().str;
            else if (v.is_integer()) keys[k] = std::to_string(v.as_integer());
            else if (v.is_floating()) keys[k] = fmt::format("{}", v.as_floating());
            else if (v.is_boolean()) keys[k] = v.as_boolean() ? "true" : "false";
            else return ft.error(k, "a fault's values are strings, numbers or true/false");
        }
        const auto loc = ft.loc();
        DEVEMU_TRY(spec, fault::parse(keys, fmt::format("{}:{}", loc.file, loc.line), end_lba));
        if (b.type != BackstoreType::user)   // a dm target under the kernel backstore: only what dm-delay/dm-flakey do
            if (auto no = fault::dm_refusal(spec))
                return ft.error(keys.count(no->key) ? no->key : "type",
                                fmt::format("under a {} backstore a fault is dm-delay or dm-flakey: {}", to_string(b.type), no->why),
                                "use type = \"user\" (devemu's data path) with the same path for this fault");
        if (spec.id.empty() && b.type != BackstoreType::user)   // a dm device's fault is named here (a handler names its own)
            spec.id = fmt::format("{}{}", fault::to_string(spec.type), out.size() + 1);
        for (auto& o : out)
            if (!spec.id.empty() && o.id == spec.id) return ft.error("id", "two faults with id \"" + spec.id + "\" on backstore " + b.name);
        out.push_back(spec);
    }
    return out;
}

// [[backstore.alua]] tables: target port groups on a kernel backstore.
Result<std::vector<AluaGroup>> parse_alua(const Table& t, const Backstore& b)
{
    std::vector<AluaGroup> out;
    DEVEMU_TRY(tables, t.tables("alua", "[[backstore.alua]]"));
    if (!tables.empty() && b.type == BackstoreType::user)
        return t.error("alua", "ALUA groups are LIO's to answer, for kernel backstores; a TCMU handler is not told which port a command came through",
                       "use a fileio, block or zram backstore for a LUN with ALUA groups");
    for (auto& at : tables) {
        DEVEMU_CHECK(at.only_keys({"name", "id", "state"}));
        AluaGroup g;
        g.loc = at.loc();
        DEVEMU_TRY(name, at.required_str("name"));
        if (auto why = core::check_unit_name(name)) return at.error("name", fmt::format("name \"{}\" {}", name, *why));
        if (name == "default_tg_pt_gp") return at.error("name", "default_tg_pt_gp is LIO's own group", "give the group another name");
        g.name = name;
        DEVEMU_TRY(id, at.integer("id", 1, 65535));
        g.id = static_cast<std::uint16_t>(id.value_or(static_cast<std::int64_t>(out.size() + 1)));
        DEVEMU_TRY(state, at.str("state"));
        if (state) {
            auto st = alua_state(*state);
            if (!st) return at.error("state", fmt::format("unknown ALUA state \"{}\"", *state),
                                     "use active/optimized, active/non-optimized, standby, unavailable or transitioning");
            g.state = *st;
        }
        for (auto& o : out) {
            if (o.name == g.name) return at.error("name", "two ALUA groups named \"" + g.name + "\" on backstore " + b.name);
            if (o.id == g.id) return at.error("id", fmt::format("two ALUA groups with id {} on backstore {}", g.id, b.name), "give each group its own id");
        }
        out.push_back(g);
    }
    return out;
}

}  // namespace devemu::profile
