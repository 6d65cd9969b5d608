#include "lio/saveconfig.hpp"

#include <fmt/format.h>

#include <set>

#include "core/fs.hpp"
#include "core/text.hpp"

namespace devemu::lio {

using nlohmann::json;
using core::Errc;

namespace {

void unknown_keys(const json& obj, std::initializer_list<const char*> known, const std::string& where, std::vector<std::string>& notes)
{
    for (auto& [k, v] : obj.items()) {
        bool ok = false;
        for (auto kk : known) ok = ok || k == kk;
        if (!ok) notes.push_back(fmt::format("{}: key '{}' ({}) is not understood by devemu and was not applied", where, k, v.dump()));
    }
}

std::string unit_name_for(const std::string& wwn, size_t index)
{
    std::string base = wwn.substr(wwn.rfind(':') == std::string::npos ? 0 : wwn.rfind(':') + 1);
    std::string out;
    for (char c : base) out += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : '-';
    while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
    if (out.empty() || out.size() > 32 || wwn.starts_with("naa.")) out = fmt::format("target{}", index);
    return out;
}

}  // namespace

namespace {

// One storage object -> a backstore; none when its plugin is not one devemu has (a note says so).
core::Result<std::optional<profile::Backstore>> storage_object(const json& so, const std::string& file, std::vector<std::string>& notes)
{
    const std::string name = so.value("name", ""), plugin = so.value("plugin", "");
    const std::string where = fmt::format("{}: storage object '{}'", file, name);
    profile::Backstore b;
    b.name = name;
    b.loc = {file, 0};
    b.path = so.value("dev", "");
    b.wwn = so.value("wwn", "");
    b.write_cache = so.value("write_back", false);
    b.readonly = so.value("readonly", false);
    if (so.contains("size")) b.size = so["size"].get<std::uint64_t>();
    if (auto attrs = so.value("attributes", json::object()); attrs.contains("block_size")) b.block_size = attrs["block_size"];
    if (plugin == "fileio") {
        b.type = profile::BackstoreType::fileio;
        unknown_keys(so, {"name", "plugin", "dev", "size", "write_back", "wwn", "aio", "attributes", "alua_tpgs"}, where, notes);
        if (so.value("aio", false)) notes.push_back(where + ": aio = true is not supported; using buffered/direct file I/O");
    } else if (plugin == "block") {
        b.type = profile::BackstoreType::block;
        b.size.reset();
        unknown_keys(so, {"name", "plugin", "dev", "write_back", "wwn", "readonly", "attributes", "alua_tpgs"}, where, notes);
    } else if (plugin == "user") {
        b.type = profile::BackstoreType::user;
        // config is SUBTYPE/CFGSTRING: devemu's "uring/PATH", or tcmu-runner's handlers' ("file/PATH", "rbd/POOL/IMAGE", …).
        // A file's path is served by devemu's handler as well; the others' strings are no path, and are skipped.
        auto cfg = so.value("config", "");
        const auto handler = cfg.substr(0, cfg.find('/'));
        if (handler != "uring" && handler != "file") {
            notes.push_back(fmt::format("{}: handler '{}' (config \"{}\") is tcmu-runner's, not devemu's; skipped", where, handler, cfg));
            return std::nullopt;
        }
        if (handler == "file") notes.push_back(where + ": tcmu-runner's 'file' handler: served by devemu's io_uring handler");
        b.handler = "uring";
        b.path = cfg.find('/') == std::string::npos ? "" : cfg.substr(cfg.find('/') + 1);
        unknown_keys(so, {"name", "plugin", "config", "size", "wwn", "attributes", "alua_tpgs", "hw_max_sectors", "control"}, where, notes);
    } else {
        notes.push_back(fmt::format("{}: plugin '{}' is not supported by devemu; skipped", where, plugin));
        return std::nullopt;
    }
    if (auto why = core::check_unit_name(name)) return core::fail(Errc::invalid_input, fmt::format("storage object name \"{}\" {}", name, *why), file);
    // Attributes devemu does not set stay at the kernel's defaults; say which ones the file set otherwise.
    for (auto& tg : so.value("alua_tpgs", json::array()))
        if (tg.value("name", "") != "default_tg_pt_gp") notes.push_back(where + ": ALUA group '" + tg.value("name", "") + "' is not applied");
    return b;
}

profile::Acl node_acl(const json& a, const std::string& file, const std::string& where, std::vector<std::string>& notes)
{
    profile::Acl acl;
    acl.initiator = a.value("node_wwn", "");
    acl.chap_user = a.value("chap_userid", "");
    acl.chap_secret = a.value("chap_password", "");
    acl.mutual_user = a.value("chap_mutual_userid", "");
    acl.mutual_secret = a.value("chap_mutual_password", "");
    acl.loc = {file, 0};
    unknown_keys(a, {"node_wwn", "chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password", "mapped_luns",
                     "attributes", "tcq_depth", "tag"}, where + " ACL " + acl.initiator, notes);
    for (auto& m : a.value("mapped_luns", json::array())) {
        if (m.value("index", 0) != m.value("tpg_lun", 0))
            notes.push_back(fmt::format("{} ACL {}: mapped LUN {} -> TPG LUN {} becomes LUN {}", where, acl.initiator,
                                           m.value("index", 0), m.value("tpg_lun", 0), m.value("tpg_lun", 0)));
        if (m.value("write_protect", false)) notes.push_back(where + ": write_protect on mapped LUNs is not applied");
        acl.luns.push_back(m.value("tpg_lun", 0));
    }
    std::sort(acl.luns.begin(), acl.luns.end());
    return acl;
}

// One target -> a profile target (its first TPG); none when its fabric is not one devemu has, or it has no TPG.
core::Result<std::optional<profile::Target>> saved_target(const json& t, std::size_t index, const std::string& file,
                                                          const std::map<std::string, std::string>& so_path_to_name, std::vector<std::string>& notes)
{
    profile::Target tg;
    const std::string fabric = t.value("fabric", ""), wwn = t.value("wwn", "");
    const std::string where = fmt::format("{}: target {}", file, wwn);
    unknown_keys(t, {"fabric", "wwn", "tpgs"}, where, notes);
    if (fabric == "iscsi") tg.fabric = profile::Fabric::iscsi;
    else if (fabric == "loopback") tg.fabric = profile::Fabric::loopback;
    else {
        notes.push_back(fmt::format("{}: fabric '{}' is not supported by devemu; skipped", where, fabric));
        return std::nullopt;
    }
    tg.wwn = wwn;
    tg.name = unit_name_for(wwn, index);
    tg.loc = {file, 0};
    auto tpgs = t.value("tpgs", json::array());
    if (tpgs.size() != 1) notes.push_back(fmt::format("{}: {} TPGs; devemu applies the first", where, tpgs.size()));
    if (tpgs.empty()) return std::nullopt;
    auto& tpg = tpgs[0];
    unknown_keys(tpg, {"tag", "enable", "luns", "node_acls", "portals", "attributes", "parameters", "nexus"}, where, notes);
    if (tpg.value("tag", 1) != 1) notes.push_back(where + ": TPG tag " + std::to_string(tpg.value("tag", 1)) + " becomes tpgt_1");
    if (tpg.contains("nexus")) tg.initiator_wwn = tpg["nexus"];
    for (auto& l : tpg.value("luns", json::array())) {
        profile::Lun lun;
        lun.id = l.value("index", 0);
        auto so = so_path_to_name.find(l.value("storage_object", ""));
        if (so == so_path_to_name.end())
            return core::fail(Errc::invalid_input, fmt::format("LUN {} uses {}, which is not among the storage objects", lun.id, l.value("storage_object", "")), where);
        if (so->second.empty()) {
            notes.push_back(fmt::format("{}: LUN {} uses {}, which is skipped; so is the LUN", where, lun.id, so->first));
            continue;
        }
        lun.backstore = so->second;
        lun.loc = {file, 0};
        tg.luns.push_back(lun);
    }
    std::sort(tg.luns.begin(), tg.luns.end(), [](auto& a, auto& b) { return a.id < b.id; });
    auto portals = tpg.value("portals", json::array());
    if (!portals.empty()) {
        tg.portal.address = portals[0].value("ip_address", "127.0.0.1");
        tg.portal.port = portals[0].value("port", 3260);
        if (portals.size() > 1) notes.push_back(fmt::format("{}: {} portals; devemu applies the first", where, portals.size()));
        if (portals[0].value("iser", false) || portals[0].value("offload", false)) notes.push_back(where + ": iser/offload portals are not supported");
    }
    for (auto& a : tpg.value("node_acls", json::array())) tg.acls.push_back(node_acl(a, file, where, notes));
    return tg;
}

}  // namespace

core::Result<Imported> from_saveconfig(const json& doc, const std::string& file, const std::set<std::string>& host_disks)
{
    Imported im;
    auto& p = im.profile;
    p.file = file;
    if (!doc.is_object()) return core::fail(Errc::invalid_input, "not a saveconfig.json object", file, "pass the file targetcli's saveconfig wrote");
    unknown_keys(doc, {"fabric_modules", "storage_objects", "targets"}, file, im.notes);
    if (doc.contains("fabric_modules") && !doc["fabric_modules"].empty())
        im.notes.push_back(file + ": fabric_modules settings (discovery auth) are not applied");

    std::map<std::string, std::string> so_path_to_name;   // "/backstores/fileio/disk0" -> "disk0"
    for (auto& so : doc.value("storage_objects", json::array())) {
        DEVEMU_TRY(b, storage_object(so, file, im.notes));
        if (!b) {   // its LUNs are skipped too, each named
            so_path_to_name[fmt::format("/backstores/{}/{}", so.value("plugin", ""), so.value("name", ""))] = "";
            continue;
        }
        so_path_to_name[fmt::format("/backstores/{}/{}", so.value("plugin", ""), b->name)] = b->name;
        p.backstores.push_back(*b);
    }
    size_t index = 0;
    for (auto& t : doc.value("targets", json::array())) {
        DEVEMU_TRY(tg, saved_target(t, index, file, so_path_to_name, im.notes));
        if (t.value("fabric", "") == "iscsi" || t.value("fabric", "") == "loopback") ++index;
        if (tg) p.targets.push_back(*tg);
    }
    // Storage objects no target uses: devemu's backstores belong to a target's unit.
    std::set<std::string> used;
    for (auto& t : p.targets)
        for (auto& l : t.luns) used.insert(l.backstore);
    std::vector<profile::Backstore> kept;
    for (auto& b : p.backstores) {
        if (used.count(b.name)) kept.push_back(b);
        else im.notes.push_back(fmt::format("{}: storage object '{}' is not exported by any target; skipped", file, b.name));
    }
    p.backstores = kept;
    for (auto& b : p.backstores) b.host_disk = host_disks.count(b.name) > 0;
    DEVEMU_CHECK(profile::validate(p));
    return im;
}

json spec_of(const profile::Target& t, const profile::Profile& p)
{
    json luns = json::array(), acls = json::array(), bss = json::object();
    for (auto& l : t.luns) {
        luns.push_back({{"id", l.id}, {"backstore", l.backstore}});
        auto* b = p.backstore(l.backstore);
        bss[b->name] = {{"type", profile::to_string(b->type)}, {"path", b->path}, {"wwn", b->wwn}, {"write_cache", b->write_cache},
                        {"readonly", b->readonly}, {"handler", b->handler}};
    }
    for (auto& a : t.acls) acls.push_back({{"initiator", a.initiator}, {"luns", a.luns}});
    return {{"fabric", profile::to_string(t.fabric)}, {"luns", luns}, {"acls", acls}, {"backstores", bss},
            {"portal", {{"address", t.portal.address}, {"port", t.portal.port}}}};
}

json to_saveconfig(const std::vector<json>& records, const Roots& roots)
{
    json sos = json::array(), targets = json::array();
    for (auto& rec : records) {
        if (rec.value("kind", "") != "target" || !rec.contains("spec")) continue;
        const auto& spec = rec["spec"];
        const auto& info = rec["info"];
        const std::string fabric = spec["fabric"];
        std::map<std::string, std::string> so_paths;
        for (auto& [name, b] : spec["backstores"].items()) {
            const auto& res = rec["backstores"][name];
            const std::string type = b["type"];
            const std::string plugin = type == "fileio" ? "fileio" : type == "user" ? "user" : "block";
            json so = {{"name", name}, {"plugin", plugin}};
            // Live attributes, as targetcli saves them.
            json attrs = json::object();
            std::error_code ec;
            for (auto& e : fs::directory_iterator(roots.target / "core" / res["hba"].get<std::string>() / name / "attrib", ec)) {
                // Like rtslib: only attributes one can set (read-only hw_* ones describe the device, not the config).
                if ((e.status(ec).permissions() & fs::perms::owner_write) == fs::perms::none) continue;
                auto v = core::read_attr(e.path());
                if (!v) continue;
                const std::string s(core::trim(*v));
                char* end = nullptr;
                long long n = std::strtoll(s.c_str(), &end, 10);
                attrs[e.path().filename().string()] = (!s.empty() && *end == 0) ? json(n) : json(s);
            }
            so["attributes"] = attrs;
            auto serial = core::read_attr(roots.target / "core" / res["hba"].get<std::string>() / name / "wwn/vpd_unit_serial");
            if (serial) {
                auto s = std::string(core::trim(*serial));
                if (auto c = s.find(':'); c != std::string::npos) s = std::string(core::trim(s.substr(c + 1)));   // "T10 VPD Unit Serial Number: X"
                so["wwn"] = s;
            }
            if (plugin == "fileio") {
                so["dev"] = res["path"];
                so["size"] = res["size"];
                so["write_back"] = b["write_cache"];
                so["aio"] = false;
            } else if (plugin == "block") {
                so["dev"] = res["path"];
                so["write_back"] = b["write_cache"];
                so["readonly"] = b["readonly"];
            } else {
                so["config"] = b["handler"].get<std::string>() + "/" + res["path"].get<std::string>();
                so["size"] = res["size"];
            }
            so_paths[name] = fmt::format("/backstores/{}/{}", plugin, name);
            sos.push_back(so);
        }
        json tpg = {{"tag", 1}, {"enable", true}, {"luns", json::array()}, {"node_acls", json::array()}, {"portals", json::array()}};
        for (auto& l : spec["luns"]) tpg["luns"].push_back({{"index", l["id"]}, {"storage_object", so_paths[l["backstore"]]}});
        if (fabric == "iscsi") {
            tpg["portals"].push_back({{"ip_address", spec["portal"]["address"]}, {"port", spec["portal"]["port"]}, {"iser", false}, {"offload", false}});
            for (auto& a : spec["acls"]) {
                const std::string ini = a["initiator"];
                json acl = {{"node_wwn", ini}, {"mapped_luns", json::array()}};
                const json chap = rec.value("chap", json::object()).value(ini, json::object());
                for (auto [ours, theirs] : {std::pair{"user", "chap_userid"}, {"secret", "chap_password"},
                                            {"mutual_user", "chap_mutual_userid"}, {"mutual_secret", "chap_mutual_password"}})
                    if (chap.contains(ours)) acl[theirs] = chap[ours];
                for (auto& l : spec["luns"]) {
                    auto want = a["luns"];
                    if (!want.empty() && std::find(want.begin(), want.end(), l["id"]) == want.end()) continue;
                    acl["mapped_luns"].push_back({{"index", l["id"]}, {"tpg_lun", l["id"]}, {"write_protect", false}});
                }
                tpg["node_acls"].push_back(acl);
            }
        } else {
            tpg["nexus"] = info.value("initiator_wwn", "");
        }
        targets.push_back({{"fabric", fabric}, {"wwn", info["wwn"]}, {"tpgs", json::array({tpg})}});
    }
    return {{"fabric_modules", json::array()}, {"storage_objects", sos}, {"targets", targets}};
}

core::Status merge_saveconfig(nlohmann::json& into, const nlohmann::json& part, const std::map<std::string, std::string>& host_paths,
                              const std::string& from)
{
    using nlohmann::json;
    if (!part.is_object()) return core::fail(core::Errc::invalid_input, "not a saveconfig.json", from, "");
    for (const char* k : {"fabric_modules", "storage_objects", "targets"})
        if (!into.contains(k) || !into[k].is_array()) into[k] = json::array();
    for (auto so : part.value("storage_objects", json::array())) {
        if (!so.is_object()) continue;
        const std::string name = so.value("name", ""), plugin = so.value("plugin", "");
        for (auto& have : into["storage_objects"])
            if (have.value("name", "") == name && have.value("plugin", "") == plugin)
                return core::fail(core::Errc::invalid_input, "two units have a " + plugin + " backstore named '" + name + "'", from, "export them one at a time");
        if (auto h = host_paths.find(name); h != host_paths.end()) {
            if (so.contains("dev")) so["dev"] = h->second;
            if (const std::string cfg = so.value("config", ""); !cfg.empty()) so["config"] = cfg.substr(0, cfg.find('/')) + "/" + h->second;
        }
        into["storage_objects"].push_back(so);
    }
    for (auto& t : part.value("targets", json::array())) {
        for (auto& have : into["targets"])
            if (have.value("wwn", "") == t.value("wwn", "") && have.value("fabric", "") == t.value("fabric", ""))
                return core::fail(core::Errc::invalid_input, "two units have the target " + t.value("wwn", "?"), from, "export them one at a time");
        into["targets"].push_back(t);
    }
    for (auto& f : part.value("fabric_modules", json::array()))
        if (std::none_of(into["fabric_modules"].begin(), into["fabric_modules"].end(), [&](const json& h) { return h == f; })) into["fabric_modules"].push_back(f);
    return {};
}

}  // namespace devemu::lio
