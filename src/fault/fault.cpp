#include "fault/fault.hpp"

#include <fmt/format.h>

#include <cmath>
#include <set>

#include "core/text.hpp"

namespace devemu::fault {

using core::Errc;

namespace {

constexpr const char* kTypes[] = {"delay", "error", "flakey", "stall", "rate"};

// Which keys each type takes, besides type, id, op, lba and seed.
const std::map<Type, std::set<std::string>>& type_keys()
{
    static const std::map<Type, std::set<std::string>> k = {
        {Type::delay, {"delay"}},
        {Type::error, {"probability", "mode"}},
        {Type::flakey, {"up", "down", "drop_writes"}},
        {Type::stall, {"for"}},
        {Type::rate, {"iops", "bandwidth"}},
    };
    return k;
}

std::string fmt_ns(Nanos n)
{
    const auto v = n.count();
    if (v % 1000000000 == 0) return fmt::format("{}s", v / 1000000000);
    if (v % 1000000 == 0) return fmt::format("{}ms", v / 1000000);
    if (v % 1000 == 0) return fmt::format("{}us", v / 1000);
    return fmt::format("{}ns", v);
}

}  // namespace

std::optional<Nanos> parse_duration(const std::string& s)
{
    std::size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    char* end = nullptr;
    const std::string num = s.substr(0, i);
    const double v = std::strtod(num.c_str(), &end);
    if (*end || !std::isfinite(v) || v < 0) return std::nullopt;
    const std::string unit = s.substr(i);
    double scale = 0;
    if (unit == "ns") scale = 1;
    else if (unit == "us") scale = 1e3;
    else if (unit == "ms" || unit.empty()) scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else return std::nullopt;
    if (v * scale > 3.6e12) return std::nullopt;   // an hour is the most a fault waits
    return Nanos(static_cast<std::int64_t>(std::llround(v * scale)));
}

const char* to_string(Type t) { return kTypes[static_cast<int>(t)]; }
const char* to_string(Scope s) { return s == Scope::read ? "read" : s == Scope::write ? "write" : "rw"; }

core::Result<std::map<std::string, std::string>> keys_of(const std::vector<std::string>& words)
{
    std::map<std::string, std::string> out;
    for (auto& w : words) {
        auto eq = w.find('=');
        if (eq == std::string::npos || eq == 0)
            return core::fail(Errc::invalid_input, "'" + w + "' is not KEY=VALUE", w, "e.g. devemu fault t0 add type=error lba=1000..1999 op=read");
        out[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return out;
}

namespace {

using Keys = std::map<std::string, std::string>;

// The keys of `s.type` (delay, probability and mode, up/down, for, iops/bandwidth) into `s`.
core::Status parse_type_keys(Spec& s, const Keys& keys, const std::string& where)
{
    auto bad = [&](const std::string& what, const std::string& fix) { return core::fail(Errc::invalid_input, what, where, fix); };
    auto get = [&](const char* k) -> std::optional<std::string> {
        auto it = keys.find(k);
        return it == keys.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    const std::string type = to_string(s.type);
    auto duration = [&](const char* k, Nanos& out, bool required) -> core::Status {
        auto v = get(k);
        if (!v) return required ? bad(fmt::format("a {} fault needs {}", type, k), fmt::format("{} = \"5ms\"", k)) : core::Status{};
        auto d = parse_duration(*v);
        if (!d) return bad(fmt::format("{} = \"{}\" is not a duration", k, *v), fmt::format("{} = \"5ms\" (ns, us, ms, s; at most an hour)", k));
        out = *d;
        return {};
    };
    switch (s.type) {
    case Type::delay: {
        auto v = get("delay");
        if (!v) return bad("a delay fault needs delay", "delay = \"5ms\" or delay = \"1ms..20ms\"");
        auto dots = v->find("..");
        auto lo = parse_duration(v->substr(0, dots));
        auto hi = dots == std::string::npos ? lo : parse_duration(v->substr(dots + 2));
        if (!lo || !hi || *hi < *lo) return bad("delay = \"" + *v + "\" is not a duration or MIN..MAX", "delay = \"5ms\" or delay = \"1ms..20ms\"");
        s.delay_min = *lo, s.delay_max = *hi;
        break;
    }
    case Type::error: {
        if (auto p = get("probability")) {
            char* end = nullptr;
            s.probability = std::strtod(p->c_str(), &end);
            if (p->empty() || *end || !(s.probability > 0 && s.probability <= 1)) return bad("probability = \"" + *p + "\" is not in (0, 1]", "probability = 0.01");
        }
        if (auto m = get("mode")) {
            if (*m == "always") s.mode = Mode::always;
            else if (*m == "once") s.mode = Mode::once;
            else if (*m == "sticky") s.mode = Mode::sticky;
            else return bad("mode = \"" + *m + "\" is not always, once or sticky", "mode = \"sticky\"");
        }
        break;
    }
    case Type::flakey: {
        DEVEMU_CHECK(duration("up", s.up, true));
        DEVEMU_CHECK(duration("down", s.down, true));
        if (s.up.count() == 0 || s.down.count() == 0) return bad("a flakey fault needs up and down longer than 0", "up = \"10s\", down = \"2s\"");
        if (auto d = get("drop_writes")) {
            if (*d != "true" && *d != "false") return bad("drop_writes = \"" + *d + "\" is not true or false", "drop_writes = true");
            s.drop_writes = *d == "true";
        }
        break;
    }
    case Type::stall:
        DEVEMU_CHECK(duration("for", s.stall_for, false));
        break;
    case Type::rate: {
        if (auto n = get("iops")) {
            auto v = core::parse_number(*n);
            if (!v || *v == 0) return bad("iops = \"" + *n + "\" is not a whole number above 0", "iops = 500");
            s.iops = *v;
        }
        if (auto b = get("bandwidth")) {
            auto v = core::parse_size(*b);
            if (!v || *v == 0) return bad("bandwidth = \"" + *b + "\" is not a size per second", "bandwidth = \"20M\"");
            s.bytes_per_s = *v;
        }
        if (!s.iops && !s.bytes_per_s) return bad("a rate fault needs iops or bandwidth", "iops = 500, or bandwidth = \"20M\"");
        break;
    }
    }
    return {};
}

}  // namespace

core::Result<Spec> parse(const std::map<std::string, std::string>& keys, const std::string& where, std::uint64_t end_lba)
{
    auto bad = [&](const std::string& what, const std::string& fix) { return core::fail(Errc::invalid_input, what, where, fix); };
    Spec s;
    auto type = keys.find("type");
    if (type == keys.end()) return bad("a fault needs a type", "type = \"delay\", \"error\", \"flakey\", \"stall\" or \"rate\"");
    bool known = false;
    for (int i = 0; i < 5; ++i)
        if (type->second == kTypes[i]) s.type = static_cast<Type>(i), known = true;
    if (!known) return bad("unknown fault type \"" + type->second + "\"", "type = \"delay\", \"error\", \"flakey\", \"stall\" or \"rate\"");
    const auto& allowed = type_keys().at(s.type);
    for (auto& [k, v] : keys)
        if (k != "type" && k != "id" && k != "op" && k != "lba" && k != "seed" && !allowed.count(k))
            return bad(fmt::format("a {} fault has no key \"{}\"", type->second, k),
                       fmt::format("its keys: id, op, lba, seed, {}", core::join(std::vector<std::string>(allowed.begin(), allowed.end()), ", ")));
    auto get = [&](const char* k) -> std::optional<std::string> {
        auto it = keys.find(k);
        return it == keys.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    if (auto id = get("id")) {
        if (id->empty() || id->find_first_of(" \t/=") != std::string::npos) return bad("fault id \"" + *id + "\" is not a word", "id = \"bad-sectors\"");
        s.id = *id;
    }
    if (auto op = get("op")) {
        if (*op == "read") s.scope = Scope::read;
        else if (*op == "write") s.scope = Scope::write;
        else if (*op == "rw") s.scope = Scope::rw;
        else return bad("op = \"" + *op + "\" is not read, write or rw", "op = \"read\"");
    }
    if (auto lba = get("lba")) {
        auto dots = lba->find("..");
        auto a = core::parse_number(lba->substr(0, dots));
        auto b = dots == std::string::npos ? a : core::parse_number(lba->substr(dots + 2));
        if (!a || !b || *b < *a) return bad("lba = \"" + *lba + "\" is not FIRST..LAST (inclusive) or one LBA", "lba = \"2048..4095\"");
        if (*b > end_lba) return bad(fmt::format("lba = \"{}\" ends past the device's last LBA, {}", *lba, end_lba), fmt::format("keep it within 0..{}", end_lba));
        s.first = *a, s.last = *b;
    }
    if (auto seed = get("seed")) {
        auto n = core::parse_number(*seed);
        if (!n) return bad("seed = \"" + *seed + "\" is not a whole number", "seed = 7");
        s.seed = *n;
    }
    DEVEMU_CHECK(parse_type_keys(s, keys, where));
    return s;
}

core::Result<nlohmann::json> request(const std::vector<std::string>& words)
{
    using nlohmann::json;
    const std::string verb = words.empty() ? "" : words[0];
    if (verb == "ls" && words.size() == 1) return json{{"op", "ls"}};
    if (verb == "path" && words.size() == 2 && (words[1] == "down" || words[1] == "up")) return json{{"op", "path"}, {"state", words[1]}};
    if (verb == "path" && words.size() == 3 && (words[2] == "down" || words[2] == "up")) {   // path K down|up: one of several
        char* end = nullptr;
        const unsigned long k = std::strtoul(words[1].c_str(), &end, 10);
        if (*end == '\0' && k >= 1 && k <= 64) return json{{"op", "path"}, {"path", k}, {"state", words[2]}};
    }
    // The state's spelling is checked by the kind that owns the groups (LIO's), which knows them.
    if (verb == "alua" && words.size() == 3) return json{{"op", "alua"}, {"group", words[1]}, {"state", words[2]}};
    if (verb == "usb" && (words.size() == 2 || words.size() == 3)) {   // usb FAULT [count=N]: the kind checks FAULT's spelling
        json r = {{"op", "usb"}, {"fault", words[1]}};
        if (words.size() == 3) {
            char* end = nullptr;
            const unsigned long n = words[2].starts_with("count=") ? std::strtoul(words[2].c_str() + 6, &end, 10) : 0;
            if (!end || *end != '\0' || n < 1 || n > 1000000)
                return core::fail(Errc::invalid_input, "expected count=N (1 or more)", words[2], "e.g. devemu fault msc0 usb bad-tag count=3");
            r["count"] = n;
        }
        return r;
    }
    if (verb == "clear" && words.size() <= 2) return words.size() == 2 ? json{{"op", "clear"}, {"id", words[1]}} : json{{"op", "clear"}};
    if (verb == "add" && words.size() >= 2) {
        DEVEMU_TRY(keys, keys_of(std::vector<std::string>(words.begin() + 1, words.end())));
        DEVEMU_CHECK(parse(keys, "devemu fault add"));
        return json{{"op", "add"}, {"keys", keys}, {"where", "devemu fault add"}};
    }
    return core::fail(Errc::invalid_input, "expected add KEY=VALUE…, clear [ID], ls, path [K] down|up, alua GROUP STATE, or usb FAULT [count=N]",
                      core::join(words, " "),
                      "e.g. devemu fault t0 add type=error op=read lba=2048..4095");
}

std::vector<std::string> lines(const std::string& unit, const nlohmann::json& answer)
{
    if (answer.contains("path"))
        return {unit + ": path " + (answer.contains("path_index") ? std::to_string(answer["path_index"].get<int>()) + " " : "") + answer["path"].get<std::string>()};
    if (answer.contains("usb")) {
        const auto& u = answer["usb"];
        if (u.contains("state")) return {unit + ": USB " + u.value("state", "?")};
        return {u.value("fault", "none") == "none" ? unit + ": no USB fault armed"
                                                   : fmt::format("{}: USB fault {} armed for the next {} command(s)", unit, u.value("fault", "?"), u.value("count", 1))};
    }
    if (answer.contains("alua"))
        return {unit + ": ALUA group " + answer["alua"].value("group", "?") + " is " + answer["alua"].value("state", "?")};
    std::vector<std::string> out;
    for (auto& [bs, faults] : answer.items()) {
        if (faults.empty()) out.push_back(unit + ":" + bs + ": no faults");
        for (auto& f : faults) {
            std::string keys;
            for (auto& [k, v] : f.items())
                if (k != "id" && k != "type" && k != "events" && k != "seed" && k != "dropped" && k != "dropped_more" && k != "dm")
                    keys += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
            std::uint64_t dropped = 0;
            for (auto& r : f.value("dropped", nlohmann::json::array())) dropped += r.at(1).get<std::uint64_t>();
            if (f.contains("dm")) {   // under a kernel backstore: a dm device, which counts nothing
                out.push_back(fmt::format("{}:{}: {}  {}{}  ({}, from the profile)", unit, bs, f.value("id", "?"), f.value("type", "?"), keys,
                                          f["dm"].get<std::string>()));
                continue;
            }
            out.push_back(fmt::format("{}:{}: {}  {}{}  ({} events{})", unit, bs, f.value("id", "?"), f.value("type", "?"), keys, f.value("events", 0),
                                      dropped ? fmt::format(", {} blocks of writes dropped{} (--json lists them)", dropped, f.value("dropped_more", false) ? " and more" : "") : ""));
        }
    }
    return out;
}

std::optional<DmRefusal> dm_refusal(const Spec& s)
{
    using namespace std::chrono;
    switch (s.type) {
    case Type::error:
    case Type::stall:
    case Type::rate:
        return DmRefusal{"type", fmt::format("{} faults need devemu's own data path (no dm target in Debian's kernel does them)", to_string(s.type))};
    case Type::delay:
        if (s.delay_min != s.delay_max) return DmRefusal{"delay", "a range of delays needs devemu's own data path (dm-delay's is fixed)"};
        if (s.delay_min % milliseconds(1) != Nanos(0)) return DmRefusal{"delay", "dm-delay counts whole milliseconds"};
        return std::nullopt;
    case Type::flakey:
        if (s.scope != Scope::rw) return DmRefusal{"op", "dm-flakey fails reads and writes alike (with drop_writes: drops writes only)"};
        if (s.up % seconds(1) != Nanos(0)) return DmRefusal{"up", "dm-flakey counts whole seconds"};
        if (s.down % seconds(1) != Nanos(0)) return DmRefusal{"down", "dm-flakey counts whole seconds"};
        return std::nullopt;
    }
    return DmRefusal{"type", "unknown"};
}

std::string dm_target(const Spec& s, const std::string& dev, std::uint64_t offset)
{
    using namespace std::chrono;
    if (s.type == Type::delay) {
        const auto ms = duration_cast<milliseconds>(s.delay_min).count();
        if (s.scope == Scope::rw) return fmt::format("delay {} {} {}", dev, offset, ms);
        // reads, then writes: a delay on one of them only
        return fmt::format("delay {} {} {} {} {} {}", dev, offset, s.scope == Scope::read ? ms : 0, dev, offset, s.scope == Scope::write ? ms : 0);
    }
    return fmt::format("flakey {} {} {} {}{}", dev, offset, duration_cast<seconds>(s.up).count(), duration_cast<seconds>(s.down).count(),
                       s.drop_writes ? " 1 drop_writes" : "");
}

nlohmann::json to_json(const Spec& s)
{
    nlohmann::json j = {{"type", to_string(s.type)}, {"op", to_string(s.scope)}, {"seed", std::to_string(s.seed)}};
    if (!s.id.empty()) j["id"] = s.id;
    if (s.first != 0 || s.last != UINT64_MAX) j["lba"] = fmt::format("{}..{}", s.first, s.last);
    switch (s.type) {
    case Type::delay: j["delay"] = s.delay_min == s.delay_max ? fmt_ns(s.delay_min) : fmt_ns(s.delay_min) + ".." + fmt_ns(s.delay_max); break;
    case Type::error:
        j["probability"] = fmt::format("{}", s.probability);
        j["mode"] = s.mode == Mode::once ? "once" : s.mode == Mode::sticky ? "sticky" : "always";
        break;
    case Type::flakey:
        j["up"] = fmt_ns(s.up), j["down"] = fmt_ns(s.down), j["drop_writes"] = s.drop_writes ? "true" : "false";
        break;
    case Type::stall:
        if (s.stall_for.count()) j["for"] = fmt_ns(s.stall_for);
        break;
    case Type::rate:
        if (s.iops) j["iops"] = std::to_string(s.iops);
        if (s.bytes_per_s) j["bandwidth"] = std::to_string(s.bytes_per_s);
        break;
    }
    return j;
}

std::map<std::string, std::string> keys_of(const nlohmann::json& j)
{
    std::map<std::string, std::string> out;
    for (auto it = j.begin(); it != j.end(); ++it)
        out[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    return out;
}

}  // namespace devemu::fault
