#include "lio/model.hpp"

#include <fmt/format.h>
#include "core/fs.hpp"

namespace devemu::lio {

using core::Node;
using core::NodeKind;

core::Result<std::string> random_hex(std::size_t digits)
{
    std::string out;
    unsigned char buf[64];
    DEVEMU_CHECK(core::random_bytes(buf, sizeof buf));
    for (std::size_t i = 0; i < digits && i < 2 * sizeof buf; ++i) out += "0123456789abcdef"[(buf[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
    return out;
}

core::Result<std::string> random_secret()
{
    static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char buf[16];
    DEVEMU_CHECK(core::random_bytes(buf, sizeof buf));
    std::string out;
    for (unsigned char c : buf) out += alphabet[c % (sizeof alphabet - 1)];
    return out;
}

std::string Generated::get(const std::string& key, const std::string& fresh)
{
    auto [it, inserted] = values.emplace(key, fresh);
    return it->second;
}

std::string plugin_for(const profile::Backstore& spec, const backing::Backing& b)
{
    if (spec.type == profile::BackstoreType::user) return "user";
    if (spec.type == profile::BackstoreType::fileio) return "fileio";   // also on a block device (buffered)
    return b.kind == backing::Kind::file ? "fileio" : "iblock";
}

std::string Backstore::control() const
{
    const auto& b = *spec;
    if (plugin == "fileio")
        return fmt::format("fd_dev_name={},fd_dev_size={}{}", backing.path, backing.size, b.write_cache ? ",fd_buffered_io=1" : "");
    if (plugin == "iblock") return fmt::format("udev_path={}{}", backing.path, b.readonly ? ",readonly=1" : "");
    // nl_reply_supported=-1: the kernel does not wait for a netlink reply on add/remove (devemu starts the handler
    // itself, after the device exists, and has no netlink listener to answer with).
    return fmt::format("dev_config={}/{},dev_size={},hw_block_size={},nl_reply_supported=-1", b.handler, backing.path, backing.size, b.block_size);
}

void Backstore::nodes(std::vector<Node>& out) const
{
    const auto d = dir();
    out.push_back({NodeKind::dir, "core/" + hba, hba});
    // The control string is the backstore's identity: if it changes, the backstore is recreated.
    out.push_back({NodeKind::dir, d, control()});
    out.push_back({NodeKind::attr, d + "/control", control(), false});
    if (plugin == "iblock") out.push_back({NodeKind::attr, d + "/udev_path", backing.path});
    if (!serial.empty()) out.push_back({NodeKind::attr, d + "/wwn/vpd_unit_serial", serial, false});
    out.push_back({NodeKind::attr, d + "/enable", "1"});
    if ((spec->block_size != 512 || plugin != "iblock") && plugin != "user")   // user: hw_block_size in control
        out.push_back({NodeKind::attr, d + "/attrib/block_size", std::to_string(spec->block_size)});
    if (plugin != "user")
        out.push_back({NodeKind::attr, d + "/attrib/emulate_write_cache", spec->write_cache ? "1" : "0"});
    // The handler hears of ABORT TASK and LUN RESET (TCMU_OP_TMR), so that a command a fault stalls past the
    // initiator's timeout is given up when the initiator aborts it, rather than leaving the abort waiting for it.
    if (plugin == "user") out.push_back({NodeKind::attr, d + "/attrib/tmr_notification", "1"});
    // ALUA target port groups (after enable: LIO takes a state only on a configured device). Implicit ALUA only, so
    // that the states are devemu's to set (`devemu fault NAME alua GROUP STATE`), not an initiator's (SET TARGET
    // PORT GROUPS). alua_access_type reads back as words ("Implicit"), so it is not compared.
    for (auto& g : spec->alua) {
        const auto gd = d + "/alua/" + g.name;
        out.push_back({NodeKind::dir, gd, ""});
        out.push_back({NodeKind::attr, gd + "/tg_pt_gp_id", std::to_string(g.id)});
        out.push_back({NodeKind::attr, gd + "/alua_access_type", "1", false});
        out.push_back({NodeKind::attr, gd + "/alua_access_state", std::to_string(static_cast<int>(g.state))});
    }
}

std::vector<Node> TargetModel::nodes() const
{
    std::vector<Node> out;
    for (auto& b : backstores) b.nodes(out);
    out.push_back({NodeKind::ensure, fabric_dir(), ""});
    for (std::size_t k = 0; k < paths.size(); ++k) path_nodes(k, out);
    return out;
}

void TargetModel::path_nodes(std::size_t k, std::vector<Node>& out) const
{
    const auto& path = paths[k];
    const auto tpg = tpg_dir(k);
    const bool iscsi = spec->fabric == profile::Fabric::iscsi;
    if (!iscsi || k == 0) out.push_back({NodeKind::dir, fabric_dir() + "/" + path.wwn, ""});
    out.push_back({NodeKind::dir, tpg, ""});
    // tcm_loop wants its I_T nexus before any LUN, else no /dev/sdX appears.
    if (!iscsi) out.push_back({NodeKind::attr, tpg + "/nexus", path.initiator_wwn});
    for (size_t i = 0; i < spec->luns.size(); ++i) {
        const auto lun = fmt::format("{}/lun/lun_{}", tpg, spec->luns[i].id);
        out.push_back({NodeKind::dir, lun, backstores[i].dir()});
        out.push_back({NodeKind::link, lun + "/" + backstores[i].spec->name, backstores[i].dir()});
        // The LUN's port joins its ALUA group (reads back as a description, so it is checked by `ls`, not compared).
        const std::string group = path.alua.empty() ? spec->luns[i].alua_group : path.alua;
        if (!group.empty()) out.push_back({NodeKind::attr, lun + "/alua_tg_pt_gp", group, false});
    }
    if (!iscsi) return;
    const bool v6 = path.portal_address.find(':') != std::string::npos;
    out.push_back({NodeKind::dir, fmt::format("{}/np/{}{}{}:{}", tpg, v6 ? "[" : "", path.portal_address, v6 ? "]" : "", path.port), ""});
    if (path.advertised_port && path.advertised_port != path.port)
        out.push_back({NodeKind::dir, fmt::format("{}/np/127.0.0.1:{}", tpg, path.advertised_port), ""});
    const bool demo = spec->acls.empty();
    out.push_back({NodeKind::attr, tpg + "/attrib/generate_node_acls", demo ? "1" : "0"});
    out.push_back({NodeKind::attr, tpg + "/attrib/cache_dynamic_acls", demo ? "1" : "0"});
    out.push_back({NodeKind::attr, tpg + "/attrib/demo_mode_write_protect", "0"});
    out.push_back({NodeKind::attr, tpg + "/attrib/authentication", chap.empty() ? "0" : "1"});
    for (auto& acl : spec->acls) {
        const auto a = tpg + "/acls/" + acl.initiator;
        out.push_back({NodeKind::dir, a, ""});
        if (auto c = chap.find(acl.initiator); c != chap.end()) {
            out.push_back({NodeKind::attr, a + "/auth/userid", c->second.first});
            out.push_back({NodeKind::attr, a + "/auth/password", c->second.second});
        }
        if (auto m = mutual_chap.find(acl.initiator); m != mutual_chap.end()) {
            out.push_back({NodeKind::attr, a + "/auth/userid_mutual", m->second.first});
            out.push_back({NodeKind::attr, a + "/auth/password_mutual", m->second.second});
        }
        for (auto& l : spec->luns) {
            if (!acl.luns.empty() && std::find(acl.luns.begin(), acl.luns.end(), l.id) == acl.luns.end()) continue;
            const auto mapped = fmt::format("{}/lun_{}", a, l.id);
            out.push_back({NodeKind::dir, mapped, ""});
            out.push_back({NodeKind::link, fmt::format("{}/lun_{}", mapped, l.id), fmt::format("{}/lun/lun_{}", tpg, l.id)});
        }
    }
    Node enable{NodeKind::attr, tpg + "/enable", "1"};
    enable.undo = "0";   // disable before anything below it is removed
    out.push_back(enable);
}

}  // namespace devemu::lio
