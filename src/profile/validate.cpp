#include <sys/stat.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/text.hpp"
#include "profile/profile.hpp"

namespace devemu::profile {

using core::Errc;
using core::Status;

namespace {

std::unexpected<core::Error> bad(const Loc& l, std::string msg, std::string fix = {})
{
    return core::fail(Errc::invalid_input, std::move(msg), l.str(), std::move(fix));
}

Status check_backing(const Backstore& b)
{
    struct stat st {};
    const bool on_host = b.host_disk && !b.path.empty();   // an `up --vm` guest: the host checked the file or device
    switch (b.type) {
    case BackstoreType::fileio: {
        if (on_host) return {};
        if (b.path.empty()) return bad(b.loc, fmt::format("fileio backstore '{}' needs 'path'", b.name), "add path = \"/var/lib/devemu/disk.img\"");
        if (::stat(b.path.c_str(), &st) == 0) {
            if (S_ISDIR(st.st_mode)) return bad(b.loc, fmt::format("path {} is a directory", b.path), "name a file");
            // A device under fileio is LIO's buffered path to it (the page cache), as targetcli allows; the device rules
            // (never one that holds data without --force) apply when it is resolved.
            if (S_ISBLK(st.st_mode)) return {};
            if (st.st_size == 0 && !b.size)
                return bad(b.loc, fmt::format("backing file {} is empty and no size is given", b.path), "add size = \"1G\"");
            return {};
        }
        if (!b.size) return bad(b.loc, fmt::format("backing file {} does not exist and no size is given", b.path),
                                "create the file, or add size = \"1G\" so devemu creates it");
        auto parent = std::filesystem::path(b.path).parent_path();
        if (!parent.empty() && ::stat(parent.c_str(), &st) != 0)
            return bad(b.loc, fmt::format("directory {} for backing file does not exist", parent.string()), "create it first");
        return {};
    }
    case BackstoreType::block:
        if (on_host) return {};
        if (b.path.empty()) return bad(b.loc, fmt::format("block backstore '{}' needs 'path' (the device)", b.name), "add path = \"/dev/sdX\"");
        if (::stat(b.path.c_str(), &st) != 0)
            return bad(b.loc, fmt::format("block device {} does not exist", b.path), "check the path, or use a zram backstore");
        if (!S_ISBLK(st.st_mode)) return bad(b.loc, fmt::format("{} is not a block device", b.path), "use type = \"fileio\" for files");
        return {};
    case BackstoreType::zram:
        if (!b.size) return bad(b.loc, fmt::format("zram backstore '{}' needs 'size'", b.name), "add size = \"1G\"");
        return {};
    case BackstoreType::rbd:
        if (b.pool.empty() || b.image.empty())
            return bad(b.loc, fmt::format("rbd backstore '{}' needs 'pool' and 'image'", b.name));
        if (b.cluster.empty() && b.mon_host.empty())
            return bad(b.loc, fmt::format("rbd backstore '{}' needs cluster = \"local\" or 'mon_host'", b.name));
        if (!b.cluster.empty() && b.cluster != "local" && b.mon_host.empty())
            return bad(b.loc, fmt::format("rbd cluster \"{}\" is unknown", b.cluster), "use cluster = \"local\" or give mon_host");
        if (b.cluster == "local" && !b.mon_host.empty())
            return bad(b.loc, fmt::format("rbd backstore '{}' names both cluster = \"local\" and mon_host", b.name), "keep one of them");
        if (b.mon_host.find_first_of("[]") != std::string::npos || b.mon_host.find("v2:") != std::string::npos)
            return bad(b.loc, fmt::format("mon_host \"{}\" is in msgr2 form; krbd takes ADDR:6789 (v1) addresses", b.mon_host),
                       "write mon_host = \"ADDR:6789[,ADDR:6789]\"");
        if (!b.keyring.empty() && ::stat(b.keyring.c_str(), &st) != 0)
            return bad(b.loc, fmt::format("keyring {} does not exist", b.keyring));
        if (!b.mon_host.empty() && b.keyring.empty())
            return bad(b.loc, fmt::format("rbd backstore '{}' names mon_host but no keyring for client.{}", b.name, b.user.empty() ? "admin" : b.user),
                       "add keyring = \"/etc/ceph/ceph.client." + (b.user.empty() ? std::string("admin") : b.user) + ".keyring\"");
        return {};
    case BackstoreType::user:
        if (b.handler != "uring")
            return bad(b.loc, fmt::format("user backstore '{}': handler \"{}\" is not devemu's io_uring handler", b.name, b.handler), "use handler = \"uring\"");
        if (b.path.empty()) return bad(b.loc, fmt::format("user backstore '{}' needs 'path' (a file, a device or zram:SIZE)", b.name));
        if (b.path.starts_with("zram:")) {
            if (!core::parse_size(b.path.substr(5))) return bad(b.loc, fmt::format("\"{}\" is not zram:SIZE", b.path));
            return {};
        }
        if (on_host) return {};
        if (::stat(b.path.c_str(), &st) != 0 && !b.size)
            return bad(b.loc, fmt::format("backing {} does not exist and no size is given", b.path), "add size = \"1G\"");
        return {};
    }
    return {};
}

template <class T>
Status unique_names(const std::vector<T>& v, const char* kind)
{
    std::map<std::string, Loc> seen;
    for (auto& e : v) {
        auto [it, fresh] = seen.emplace(e.name, e.loc);
        if (!fresh) return bad(e.loc, fmt::format("duplicate {} name '{}' (first at {})", kind, e.name, it->second.str()), "rename one");
    }
    return {};
}

}  // namespace

Status validate(const Profile& p)
{
    DEVEMU_CHECK(unique_names(p.backstores, "backstore"));
    DEVEMU_CHECK(unique_names(p.targets, "target"));
    DEVEMU_CHECK(unique_names(p.gadgets, "gadget"));
    for (auto& b : p.backstores) DEVEMU_CHECK(check_backing(b));

    std::map<std::string, std::string> used_by;   // backstore -> "target X" / "gadget Y"
    auto claim = [&](const std::string& bs, const Loc& l, const std::string& who) -> Status {
        if (!p.backstore(bs)) return bad(l, fmt::format("{} uses backstore '{}', which is not declared", who, bs), "add a [[backstore]] with that name");
        auto [it, fresh] = used_by.emplace(bs, who);
        if (!fresh && it->second != who)
            return bad(l, fmt::format("backstore '{}' is used by both {} and {}", bs, it->second, who), "give each its own backstore");
        return {};
    };

    std::map<std::string, Loc> wwns;
    for (auto& t : p.targets) {
        if (!t.wwn.empty()) {
            auto [it, fresh] = wwns.emplace(t.wwn, t.loc);
            if (!fresh) return bad(t.loc, fmt::format("duplicate target name {} (first at {})", t.wwn, it->second.str()));
        }
        if (t.luns.empty()) return bad(t.loc, fmt::format("target '{}' has no [[target.lun]]", t.name), "add one with backstore = \"NAME\"");
        std::set<std::uint32_t> ids;
        for (auto& l : t.luns) {
            if (!ids.insert(l.id).second) return bad(l.loc, fmt::format("target '{}' has LUN {} twice", t.name, l.id));
            DEVEMU_CHECK(claim(l.backstore, l.loc, "target '" + t.name + "'"));
            if (l.alua_group.empty()) continue;
            const auto* b = p.backstore(l.backstore);
            if (!std::any_of(b->alua.begin(), b->alua.end(), [&](const AluaGroup& g) { return g.name == l.alua_group; }))
                return bad(l.loc, fmt::format("LUN {} of target '{}' joins ALUA group '{}', which backstore '{}' does not have", l.id, t.name,
                                              l.alua_group, l.backstore),
                           "add a [[backstore.alua]] with name = \"" + l.alua_group + "\" to backstore " + l.backstore);
        }
        std::set<std::string> portals;
        for (std::size_t k = 0; k < t.paths.size(); ++k) {
            const auto& path = t.paths[k];
            for (auto& l : t.luns) {
                const auto* b = p.backstore(l.backstore);
                if (path.alua.empty() || !b) continue;
                if (!std::any_of(b->alua.begin(), b->alua.end(), [&](const AluaGroup& g) { return g.name == path.alua; }))
                    return bad(path.loc, fmt::format("path {} of target '{}' joins ALUA group '{}', which backstore '{}' does not have", k + 1, t.name,
                                                     path.alua, l.backstore),
                               "add a [[backstore.alua]] with name = \"" + path.alua + "\" to backstore " + l.backstore);
            }
            if (t.fabric == Fabric::iscsi && path.portal) {
                const auto key = path.portal->address + ":" + std::to_string(path.portal->port);
                if (!portals.insert(key).second) return bad(path.loc, fmt::format("two paths of target '{}' on portal {}", t.name, key), "give each path its own port");
            }
        }
        std::set<std::string> initiators;
        for (auto& a : t.acls) {
            if (!initiators.insert(a.initiator).second)
                return bad(a.loc, fmt::format("target '{}' has two ACLs for {}", t.name, a.initiator));
            for (auto id : a.luns)
                if (!ids.count(id)) return bad(a.loc, fmt::format("ACL for {} maps LUN {}, which target '{}' does not have", a.initiator, id, t.name));
        }
    }
    for (auto& g : p.gadgets) {
        std::set<std::string> fnames;
        for (auto& f : g.functions) {
            if (!fnames.insert(f.name).second) return bad(f.loc, fmt::format("gadget '{}' has two functions named '{}'", g.name, f.name));
            for (auto& l : f.luns) {
                if (l.backstore.empty()) continue;   // a removable LUN without a medium yet
                DEVEMU_CHECK(claim(l.backstore, l.loc, "gadget '" + g.name + "'"));
                auto* b = p.backstore(l.backstore);
                if (b->type == BackstoreType::user && !f.user_engine)
                    return bad(l.loc, "the kernel's mass-storage function (engine = \"kernel\") cannot serve a user backstore",
                               "drop engine = \"kernel\" (devemu serves it), or use a fileio, block or zram backstore");
            }
            if (f.user_engine) {
                for (auto& l : f.luns)
                    if (l.backstore.empty())
                        return bad(l.loc, "devemu's own mass-storage function has no media change: every LUN needs a backstore",
                                   "give the LUN a backstore, or use engine = \"kernel\" for a removable LUN without a medium");
                    else if (l.cdrom)
                        return bad(l.loc, "devemu's own mass-storage function has no CD-ROM mode", "use engine = \"kernel\" for cdrom = true");
            }
        }
    }
    return {};
}

Status check_exposure(const Target& t, bool insecure)
{
    if (t.fabric != Fabric::iscsi || t.portal.loopback() || insecure) return {};
    bool all_chap = !t.acls.empty();
    for (auto& a : t.acls) all_chap = all_chap && !a.chap_user.empty();
    if (all_chap) return {};
    return bad(t.portal.loc.line ? t.portal.loc : t.loc,
               fmt::format("target '{}' listens on {} but not every initiator needs CHAP and an ACL", t.name, t.portal.address),
               "add [[target.acl]] entries with chap_user, use a 127.0.0.1 portal, or pass --insecure");
}

Status check_exposure(const Profile& p, bool insecure)
{
    for (auto& t : p.targets) DEVEMU_CHECK(check_exposure(t, insecure));
    for (auto& g : p.gadgets)
        if (g.udc == "usbip" && !insecure)
            return bad(g.loc, fmt::format("gadget '{}' is exported with USB/IP: usbipd listens on every address, without authentication", g.name),
                       "pass --insecure on a machine whose port 3240 others cannot reach, or drop udc = \"usbip\"");
    return {};
}

}  // namespace devemu::profile
