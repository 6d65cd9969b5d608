#include <arpa/inet.h>
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/text.hpp"
#include "profile/backstore_tables.hpp"
#include "profile/profile.hpp"
#include "profile/table.hpp"

namespace devemu::profile {

using core::Errc;
using core::Result;
using core::Status;

const char* to_string(BackstoreType t)
{
    switch (t) {
    case BackstoreType::fileio: return "fileio";
    case BackstoreType::block: return "block";
    case BackstoreType::zram: return "zram";
    case BackstoreType::rbd: return "rbd";
    case BackstoreType::user: return "user";
    }
    return "?";
}
const char* to_string(Fabric f) { return f == Fabric::iscsi ? "iscsi" : "loopback"; }
const char* to_string(FunctionType f)
{
    return f == FunctionType::mass_storage ? "mass_storage" : f == FunctionType::ffs ? "ffs" : "acm";
}
const char* to_string(Speed s) { return s == Speed::full ? "full" : s == Speed::high ? "high" : "super"; }

namespace {
constexpr std::pair<const char*, AluaState> alua_states[] = {{"active/optimized", AluaState::active_optimized},
                                                             {"active/non-optimized", AluaState::active_non_optimized},
                                                             {"standby", AluaState::standby},
                                                             {"unavailable", AluaState::unavailable},
                                                             {"transitioning", AluaState::transitioning}};
}

const char* to_string(AluaState s)
{
    for (auto& [n, v] : alua_states)
        if (v == s) return n;
    return "?";
}

std::optional<AluaState> alua_state(const std::string& s)
{
    for (auto& [n, v] : alua_states)
        if (s == n) return v;
    return std::nullopt;
}

const Backstore* Profile::backstore(const std::string& name) const
{
    for (auto& b : backstores)
        if (b.name == name) return &b;
    return nullptr;
}

namespace {

template <class E, size_t N>
Result<E> choice(const Table& t, const std::string& key, const std::pair<const char*, E> (&opts)[N], std::optional<E> dflt)
{
    DEVEMU_TRY(s, t.str(key));
    std::string names;
    for (auto& [n, e] : opts) names += (names.empty() ? "" : ", ") + std::string(n);
    if (!s) {
        if (dflt) return *dflt;
        return t.error(key, fmt::format("{} needs '{}'", t.what(), key), "one of: " + names);
    }
    for (auto& [n, e] : opts)
        if (*s == n) return e;
    return t.error(key, fmt::format("'{}' = \"{}\" is not known", key, *s), "one of: " + names);
}

Result<std::string> name_of(const Table& t)
{
    DEVEMU_TRY(n, t.required_str("name"));
    if (auto why = core::check_unit_name(n)) return t.error("name", fmt::format("name \"{}\" {}", n, *why));
    return n;
}

Result<Backstore> parse_backstore(const Table& t)
{
    static const std::pair<const char*, BackstoreType> types[] = {{"fileio", BackstoreType::fileio},
                                                                  {"block", BackstoreType::block},
                                                                  {"zram", BackstoreType::zram},
                                                                  {"rbd", BackstoreType::rbd},
                                                                  {"user", BackstoreType::user}};
    Backstore b;
    b.loc = t.loc();
    DEVEMU_TRY(name, name_of(t));
    b.name = name;
    DEVEMU_TRY(type, choice<BackstoreType>(t, "type", types, std::nullopt));
    b.type = type;
    if (b.type == BackstoreType::rbd && t.has("fault"))
        return t.error("fault", "faults under an rbd backstore are not built", "faults need devemu's data path: put them on a user backstore (a file, block device or zram:SIZE)");
    switch (b.type) {
    case BackstoreType::fileio:
        DEVEMU_CHECK(t.only_keys({"name", "type", "size", "block_size", "wwn", "write_cache", "readonly", "path", "alua", "fault"}));
        break;
    case BackstoreType::block:
        DEVEMU_CHECK(t.only_keys({"name", "type", "block_size", "wwn", "write_cache", "readonly", "path", "alua", "fault"}));
        break;
    case BackstoreType::zram:
        DEVEMU_CHECK(t.only_keys({"name", "type", "size", "block_size", "wwn", "write_cache", "readonly", "comp_algorithm", "alua", "fault"}));
        break;
    case BackstoreType::rbd:
        DEVEMU_CHECK(t.only_keys({"name", "type", "size", "block_size", "wwn", "write_cache", "readonly", "pool", "image",
                                  "cluster", "mon_host", "user", "keyring", "ephemeral", "alua"}));
        break;
    case BackstoreType::user:
        DEVEMU_CHECK(t.only_keys({"name", "type", "size", "block_size", "wwn", "write_cache", "readonly", "handler", "path", "backing",
                                  "comp_algorithm", "fault", "alua"}));
        break;
    }
    DEVEMU_TRY(size, t.size("size"));
    b.size = size;
    DEVEMU_TRY(bs, t.integer("block_size", 512, 4096));
    if (bs) {
        if (*bs != 512 && *bs != 1024 && *bs != 2048 && *bs != 4096)
            return t.error("block_size", fmt::format("block_size {} is not supported", *bs), "use 512, 1024, 2048 or 4096");
        b.block_size = static_cast<std::uint32_t>(*bs);
    }
    if (b.size && *b.size % b.block_size)
        return t.error("size", fmt::format("size {} is not a multiple of block_size {}", *b.size, b.block_size));
    DEVEMU_TRY(wwn, t.str("wwn"));
    b.wwn = wwn.value_or("");
    DEVEMU_TRY(wc, t.boolean("write_cache"));
    b.write_cache = wc.value_or(false);
    DEVEMU_TRY(ro, t.boolean("readonly"));
    b.readonly = ro.value_or(false);
    DEVEMU_TRY(path, t.str("path"));
    b.path = path.value_or("");
    DEVEMU_TRY(backing, t.str("backing"));   // user backstores: `backing` is the same as `path`
    if (backing && path) return t.error("backing", "give either path or backing, not both");
    if (backing) b.path = *backing;
    if (b.type == BackstoreType::user && b.path.starts_with("zram:")) {
        auto z = core::parse_size(b.path.substr(5));
        if (!z || *z == 0 || *z % b.block_size) return t.error(backing ? "backing" : "path", "zram:SIZE needs a size such as zram:256M");
        if (b.size && *b.size != *z) return t.error("size", "size differs from the zram:SIZE of the backing");
        b.size = *z;
    }
    DEVEMU_TRY(algo, t.str("comp_algorithm"));
    b.comp_algorithm = algo.value_or("lzo-rle");
    DEVEMU_TRY(handler, t.str("handler"));   // the TCMU subtype: devemu serves its own, "uring", which is the default
    if (handler && *handler != "uring")
        return t.error("handler", fmt::format("handler \"{}\" is not devemu's: a user backstore is served by devemu's io_uring handler", *handler),
                       "write handler = \"uring\", or leave it out");
    b.handler = b.type == BackstoreType::user ? "uring" : "";
    for (auto [key, dst] : {std::pair{"pool", &b.pool}, {"image", &b.image}, {"cluster", &b.cluster},
                            {"mon_host", &b.mon_host}, {"user", &b.user}, {"keyring", &b.keyring}}) {
        DEVEMU_TRY(v, t.str(key));
        *dst = v.value_or("");
    }
    DEVEMU_TRY(eph, t.boolean("ephemeral"));
    b.ephemeral = eph.value_or(false);
    DEVEMU_TRY(faults, parse_faults(t, b));
    b.faults = std::move(faults);
    DEVEMU_TRY(alua, parse_alua(t, b));
    b.alua = std::move(alua);
    return b;
}

Result<Portal> parse_portal(const Table& t)
{
    Portal p;
    p.loc = t.loc("portal");
    DEVEMU_TRY(s, t.str("portal"));
    if (!s) return p;
    auto colon = s->rfind(':');
    std::string addr = colon == std::string::npos ? *s : s->substr(0, colon);
    if (addr.starts_with('[') && addr.ends_with(']')) addr = addr.substr(1, addr.size() - 2);
    if (colon != std::string::npos && addr.find(':') == std::string::npos) {
        auto port = s->substr(colon + 1);
        char* end = nullptr;
        long n = std::strtol(port.c_str(), &end, 10);
        if (port.empty() || *end || n < 1 || n > 65535)
            return t.error("portal", fmt::format("portal \"{}\" has a bad port", *s), "use ADDRESS:PORT, e.g. 127.0.0.1:3260");
        p.port = static_cast<std::uint16_t>(n);
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET, addr.c_str(), buf) != 1 && inet_pton(AF_INET6, addr.c_str(), buf) != 1)
        return t.error("portal", fmt::format("portal address \"{}\" is not an IP address", addr),
                       "use 127.0.0.1:3260, 0.0.0.0:3260 or [::1]:3260");
    p.address = addr;
    return p;
}

// `paths = N` and/or [[target.path]] tables; `multipath` and `no_path_retry` (loopback).
core::Status parse_paths(const Table& t, Target& tg)
{
    DEVEMU_TRY(n, t.integer("paths", 1, 8));
    DEVEMU_TRY(tables, t.tables("path", "[[target.path]]"));
    if (n && !tables.empty() && static_cast<std::size_t>(*n) != tables.size())
        return t.error("paths", fmt::format("paths = {} but there are {} [[target.path]] tables", *n, tables.size()), "give one of them");
    for (auto& pt : tables) {
        if (tg.fabric == Fabric::iscsi) DEVEMU_CHECK(pt.only_keys({"alua", "portal"}));
        else DEVEMU_CHECK(pt.only_keys({"alua"}));
        Path path;
        path.loc = pt.loc();
        DEVEMU_TRY(alua, pt.str("alua"));
        path.alua = alua.value_or("");
        if (pt.has("portal")) {
            DEVEMU_TRY(portal, parse_portal(pt));
            path.portal = portal;
        }
        tg.paths.push_back(path);
    }
    if (tg.paths.empty()) tg.paths.resize(static_cast<std::size_t>(n.value_or(1)), Path{"", std::nullopt, t.loc("paths")});
    DEVEMU_TRY(mp, t.boolean("multipath"));
    tg.multipath = mp.value_or(false);
    if (tg.multipath && tg.paths.size() < 2) return t.error("multipath", "multipath needs two paths or more", "add paths = 2");
    if (t.has("no_path_retry")) {
        const auto* v = t.get("no_path_retry");
        if (v->is_integer() && v->as_integer() >= 0) tg.no_path_retry = std::to_string(v->as_integer());
        else if (v->is_string() && (v->as_string().str == "queue" || v->as_string().str == "fail")) tg.no_path_retry = v->as_string().str;
        else return t.error("no_path_retry", "no_path_retry is \"queue\", \"fail\" or a number of path checks", "e.g. no_path_retry = 10");
        if (!tg.multipath) return t.error("no_path_retry", "no_path_retry is for multipath = true");
    }
    DEVEMU_TRY(poll, t.integer("polling_interval", 1, 60));
    if (poll && !tg.multipath) return t.error("polling_interval", "polling_interval is for multipath = true");
    tg.polling_interval = static_cast<unsigned>(poll.value_or(0));
    DEVEMU_TRY(tmo, t.str("path_timeouts"));
    if (tmo) {
        if (*tmo != "fast" && *tmo != "distribution")
            return t.error("path_timeouts", "path_timeouts is \"fast\" (devemu's) or \"distribution\" (open-iscsi's and multipath-tools' defaults)");
        if (!tg.multipath || tg.fabric != Fabric::iscsi) return t.error("path_timeouts", "path_timeouts is for multipath = true over iSCSI");
        tg.fast_timeouts = *tmo == "fast";
    }
    return {};
}

Result<Acl> parse_acl(const Table& t)
{
    DEVEMU_CHECK(t.only_keys({"initiator", "chap_user", "chap_secret", "mutual_user", "mutual_secret", "luns"}));
    Acl a;
    a.loc = t.loc();
    DEVEMU_TRY(ini, t.required_str("initiator"));
    if (auto why = core::check_iscsi_name(ini)) return t.error("initiator", fmt::format("initiator \"{}\": {}", ini, *why));
    a.initiator = ini;
    for (auto [key, dst] : {std::pair{"chap_user", &a.chap_user}, {"chap_secret", &a.chap_secret},
                            {"mutual_user", &a.mutual_user}, {"mutual_secret", &a.mutual_secret}}) {
        DEVEMU_TRY(v, t.str(key));
        *dst = v.value_or("");
    }
    if (!a.chap_secret.empty() && a.chap_user.empty()) return t.error("chap_secret", "chap_secret without chap_user", "add chap_user");
    if (!a.mutual_user.empty() && a.chap_user.empty())
        return t.error("mutual_user", "mutual CHAP needs one-way CHAP too", "add chap_user");
    for (auto [key, s] : {std::pair{"chap_secret", &a.chap_secret}, {"mutual_secret", &a.mutual_secret}})
        if (!s->empty() && (s->size() < 12 || s->size() > 255))
            return t.error(key, fmt::format("{} must be 12 to 255 characters (initiators reject shorter ones)", key),
                           "leave it out and devemu generates one");
    if (auto* v = t.get("luns")) {
        if (!v->is_array()) return t.error("luns", "'luns' in an acl must be an array of LUN numbers");
        for (auto& e : v->as_array()) {
            if (!e.is_integer() || e.as_integer() < 0 || e.as_integer() > 255)
                return t.error_at(e, "acl LUN numbers must be integers 0..255");
            a.luns.push_back(static_cast<std::uint32_t>(e.as_integer()));
        }
    }
    return a;
}

Result<Target> parse_target(const Table& t)
{
    static const std::pair<const char*, Fabric> fabrics[] = {{"iscsi", Fabric::iscsi}, {"loopback", Fabric::loopback}};
    Target tg;
    tg.loc = t.loc();
    DEVEMU_TRY(name, name_of(t));
    tg.name = name;
    DEVEMU_TRY(fabric, choice<Fabric>(t, "fabric", fabrics, Fabric::iscsi));
    tg.fabric = fabric;
    if (tg.fabric == Fabric::iscsi) {
        DEVEMU_CHECK(t.only_keys({"name", "fabric", "iqn", "portal", "lun", "acl", "paths", "path", "multipath", "no_path_retry", "polling_interval",
                                  "path_timeouts"}));
        DEVEMU_TRY(iqn, t.str("iqn"));
        tg.wwn = iqn.value_or("iqn.2026-11.org.devemu:" + tg.name);
        if (auto why = core::check_iscsi_name(tg.wwn)) return t.error("iqn", fmt::format("iqn \"{}\": {}", tg.wwn, *why));
        DEVEMU_TRY(portal, parse_portal(t));
        tg.portal = portal;
    } else {
        DEVEMU_CHECK(t.only_keys({"name", "fabric", "wwn", "initiator_wwn", "lun", "paths", "path", "multipath", "no_path_retry", "polling_interval"}));
        for (auto [key, dst] : {std::pair{"wwn", &tg.wwn}, {"initiator_wwn", &tg.initiator_wwn}}) {
            DEVEMU_TRY(w, t.str(key));
            *dst = w.value_or("");
            if (!dst->empty())
                if (auto why = core::check_naa_wwn(*dst)) return t.error(key, fmt::format("{} \"{}\": {}", key, *dst, *why));
        }
    }
    DEVEMU_TRY(luns, t.tables("lun", "[[target.lun]]"));
    std::uint32_t next = 0;
    for (auto& lt : luns) {
        DEVEMU_CHECK(lt.only_keys({"id", "backstore", "alua"}));
        Lun l;
        l.loc = lt.loc();
        DEVEMU_TRY(id, lt.integer("id", 0, 255));
        l.id = id ? static_cast<std::uint32_t>(*id) : next;
        next = l.id + 1;
        DEVEMU_TRY(bs, lt.required_str("backstore"));
        l.backstore = bs;
        DEVEMU_TRY(group, lt.str("alua"));
        l.alua_group = group.value_or("");
        tg.luns.push_back(l);
    }
    DEVEMU_TRY(acls, t.tables("acl", "[[target.acl]]"));
    for (auto& at : acls) {
        DEVEMU_TRY(a, parse_acl(at));
        tg.acls.push_back(a);
    }
    DEVEMU_CHECK(parse_paths(t, tg));
    return tg;
}

Result<MsLun> parse_ms_lun(const Table& t)
{
    DEVEMU_CHECK(t.only_keys({"backstore", "readonly", "removable", "cdrom", "nofua", "inquiry_string"}));
    MsLun l;
    l.loc = t.loc();
    for (auto [key, dst] : {std::pair{"readonly", &l.readonly}, {"removable", &l.removable}, {"cdrom", &l.cdrom},
                            {"nofua", &l.nofua}}) {
        DEVEMU_TRY(v, t.boolean(key));
        *dst = v.value_or(false);
    }
    // A removable LUN may start without a medium (inserted later with devemu gadget insert).
    DEVEMU_TRY(bs, t.str("backstore"));
    if (!bs && !l.removable) return t.error("backstore", "a LUN needs backstore = \"NAME\" (only a removable LUN may start empty)");
    l.backstore = bs.value_or("");
    DEVEMU_TRY(inq, t.str("inquiry_string"));
    l.inquiry_string = inq.value_or("");
    if (l.inquiry_string.size() > 28) return t.error("inquiry_string", "inquiry_string is at most 28 characters (8 vendor + 16 product + 4 revision)");
    return l;
}

Result<Function> parse_function(const Table& t)
{
    static const std::pair<const char*, FunctionType> types[] = {
        {"mass_storage", FunctionType::mass_storage}, {"ffs", FunctionType::ffs}, {"acm", FunctionType::acm}};
    Function f;
    f.loc = t.loc();
    DEVEMU_TRY(type, choice<FunctionType>(t, "type", types, std::nullopt));
    f.type = type;
    DEVEMU_TRY(name, name_of(t));
    f.name = name;
    if (f.type == FunctionType::mass_storage) {
        DEVEMU_CHECK(t.only_keys({"type", "name", "lun", "stall", "engine"}));
        DEVEMU_TRY(stall, t.boolean("stall"));
        f.stall = stall.value_or(true);
        static const std::pair<const char*, bool> engines[] = {{"kernel", false}, {"user", true}};
        if (t.has("engine")) {
            DEVEMU_TRY(user, choice<bool>(t, "engine", engines, std::nullopt));
            f.user_engine = user;
            f.engine_set = true;
        }
        DEVEMU_TRY(luns, t.tables("lun", "[[gadget.function.lun]]"));
        if (luns.empty()) return t.error("lun", "a mass_storage function needs at least one [[gadget.function.lun]]");
        if (luns.size() > 8) return t.error("lun", "mass_storage supports at most 8 LUNs");
        for (auto& lt : luns) {
            DEVEMU_TRY(l, parse_ms_lun(lt));
            f.luns.push_back(l);
        }
    } else if (f.type == FunctionType::ffs) {
        DEVEMU_CHECK(t.only_keys({"type", "name", "mount", "app"}));
        DEVEMU_TRY(mount, t.str("mount"));
        f.mount = mount.value_or("/dev/usb-ffs/" + f.name);
        if (!f.mount.starts_with('/')) return t.error("mount", "mount must be an absolute path");
        DEVEMU_TRY(app, t.str("app"));
        f.app = app.value_or("");
    } else {
        DEVEMU_CHECK(t.only_keys({"type", "name"}));
    }
    return f;
}

Result<Gadget> parse_gadget(const Table& t)
{
    static const std::pair<const char*, Speed> speeds[] = {{"full", Speed::full}, {"high", Speed::high}, {"super", Speed::super}};
    DEVEMU_CHECK(t.only_keys({"name", "vendor_id", "product_id", "bcd_device", "manufacturer", "product", "serial",
                              "speed", "max_power", "udc", "function"}));
    Gadget g;
    g.loc = t.loc();
    DEVEMU_TRY(name, name_of(t));
    g.name = name;
    for (auto [key, dst] : {std::pair{"vendor_id", &g.vendor_id}, {"product_id", &g.product_id}, {"bcd_device", &g.bcd_device}}) {
        DEVEMU_TRY(v, t.integer(key, 0, 0xffff));
        if (v) *dst = static_cast<std::uint16_t>(*v);
    }
    for (auto [key, dst] : {std::pair{"manufacturer", &g.manufacturer}, {"product", &g.product}, {"serial", &g.serial}, {"udc", &g.udc}}) {
        DEVEMU_TRY(v, t.str(key));
        if (v) *dst = *v;
        if (dst->size() > 126) return t.error(key, fmt::format("{} is longer than a USB string descriptor allows (126)", key));
    }
    if (g.product.empty()) g.product = "devemu " + g.name;
    if (g.serial.empty()) g.serial = "devemu-" + g.name;
    DEVEMU_TRY(speed, choice<Speed>(t, "speed", speeds, Speed::high));
    g.speed = speed;
    DEVEMU_TRY(power, t.integer("max_power", 0, g.speed == Speed::super ? 900 : 500));
    g.max_power = static_cast<std::uint32_t>(power.value_or(250));
    DEVEMU_TRY(fns, t.tables("function", "[[gadget.function]]"));
    if (fns.empty()) return t.error("function", fmt::format("gadget '{}' has no [[gadget.function]]", g.name));
    for (auto& ft : fns) {
        DEVEMU_TRY(f, parse_function(ft));
        g.functions.push_back(f);
    }
    return g;
}

std::string first_line(const std::string& s)
{
    auto l = s.substr(0, s.find('\n'));
    if (l.starts_with("[error] ")) l = l.substr(8);
    return l;
}

}  // namespace

Result<Profile> parse(const std::string& text, const std::string& file_name, const std::set<std::string>& host_disks)
{
    toml::value root;
    try {
        std::istringstream in(text);
        root = toml::parse(in, file_name);
    } catch (const toml::syntax_error& e) {
        return core::fail(Errc::invalid_input, "TOML syntax: " + first_line(e.what()),
                          Loc{file_name, static_cast<unsigned>(e.location().line())}.str());
    } catch (const std::exception& e) {
        return core::fail(Errc::invalid_input, "TOML: " + first_line(e.what()), file_name);
    }
    Table top(root, file_name, "the profile");
    DEVEMU_CHECK(top.only_keys({"backstore", "target", "gadget"}));
    Profile p;
    p.file = file_name;
    DEVEMU_TRY(bss, top.tables("backstore", "[[backstore]]"));
    for (auto& t : bss) {
        DEVEMU_TRY(b, parse_backstore(t));
        p.backstores.push_back(b);
    }
    DEVEMU_TRY(tgs, top.tables("target", "[[target]]"));
    for (auto& t : tgs) {
        DEVEMU_TRY(tg, parse_target(t));
        p.targets.push_back(tg);
    }
    DEVEMU_TRY(gds, top.tables("gadget", "[[gadget]]"));
    for (auto& t : gds) {
        DEVEMU_TRY(g, parse_gadget(t));
        p.gadgets.push_back(g);
    }
    // Relative backing paths are relative to the profile, so a profile and its images travel together.
    const auto base = std::filesystem::path(file_name).parent_path();
    for (auto& b : p.backstores)
        if (!b.path.empty() && !b.path.starts_with('/') && !b.path.starts_with("zram:")) b.path = (base / b.path).lexically_normal().string();
    if (p.backstores.empty() && p.targets.empty() && p.gadgets.empty())
        return core::fail(Errc::invalid_input, "the profile declares nothing", file_name,
                          "add [[backstore]] with [[target]] or [[gadget]]; see targets/ and gadgets/ for examples");
    // A mass-storage function with a `user` backstore is devemu's own unless the profile says otherwise.
    for (auto& g : p.gadgets)
        for (auto& f : g.functions)
            for (auto& l : f.luns)
                if (auto* b = p.backstore(l.backstore); !f.engine_set && b && b->type == BackstoreType::user) f.user_engine = true;
    for (auto& b : p.backstores) b.host_disk = host_disks.count(b.name) > 0;
    DEVEMU_CHECK(validate(p));
    return p;
}

Result<Profile> load(const std::filesystem::path& file, const std::set<std::string>& host_disks)
{
    std::ifstream in(file);
    if (!in) return core::fail(Errc::missing, "cannot read the profile", file.string(), "check the path");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), file.string(), host_disks);
}

}  // namespace devemu::profile
