#pragma once
// LIO's configfs objects as node lists (core/nodes.hpp), built parent to child as rtslib-fb models them:
// Backstore (core/HBA/NAME), Target (FABRIC/WWN) -> Tpg (tpgt_1) -> Lun (lun/lun_N -> backstore),
// Portal (np/ADDR:PORT), NodeAcl (acls/INITIATOR) -> MappedLun (acls/INITIATOR/lun_N -> lun).
// Paths are relative to the target root (/sys/kernel/config/target). One formatter per kernel control string.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/nodes.hpp"
#include "backing/backing.hpp"
#include "profile/profile.hpp"

namespace devemu::lio {

namespace fs = std::filesystem;

// Where LIO lives, and (for backings) sysfs and /dev: a test points them at a fake tree.
struct Roots : backing::Roots {
    fs::path target = "/sys/kernel/config/target";
};

// The LIO backstore plugin that exports a backing: the `user` backstore's handler, fileio for a file, iblock for a device.
[[nodiscard]] std::string plugin_for(const profile::Backstore& spec, const backing::Backing& b);

struct Backstore {
    const profile::Backstore* spec;
    std::string hba;     // "fileio_3": one HBA per backstore, as rtslib does, so removing ours never touches others
    backing::Backing backing;
    std::string plugin;  // fileio | iblock | user
    // VPD unit serial (kernel backstores): the profile's wwn, else generated once and kept. Without one LIO's VPD
    // page 0x00 lists no page and 0x83 has no NAA designator: no /dev/disk/by-id, no ALUA handler, no multipath WWID.
    std::string serial;

    [[nodiscard]] std::string dir() const { return "core/" + hba + "/" + spec->name; }
    [[nodiscard]] std::string control() const;   // the one string LIO's `control` attribute takes for this plugin
    void nodes(std::vector<core::Node>& out) const;
};

// Values devemu generates once per unit and keeps (so a rerun of `up` is a no-op): WWNs, CHAP secrets.
struct Generated {
    std::map<std::string, std::string> values;
    std::string get(const std::string& key, const std::string& fresh);
};

// One path to the target's LUNs: a tcm_loop target of its own (WWN, nexus) or an iSCSI TPG (tag, portal).
struct PathModel {
    std::string wwn, initiator_wwn;   // loopback; iscsi: the target's IQN
    std::uint16_t tpgt = 1;
    std::string portal_address;       // iscsi: where it listens
    std::uint16_t port = 0;
    std::string alua;                 // the ALUA group its LUN ports join ("": each LUN's own)
    std::uint16_t advertised_port = 0;   // inside up --vm: also listen on 127.0.0.1:this (the host's forward)
};

struct TargetModel {
    const profile::Target* spec;
    std::vector<Backstore> backstores;   // in the order of spec->luns
    std::string portal_address;          // what the portal listens on (0.0.0.0 inside a VM)
    std::string wwn, initiator_wwn;      // resolved (loopback ones may be generated)
    std::map<std::string, std::pair<std::string, std::string>> chap;          // initiator -> user, secret
    std::map<std::string, std::pair<std::string, std::string>> mutual_chap;   // initiator -> user, secret

    std::vector<PathModel> paths;        // at least one; paths[0] is wwn/initiator_wwn/tpgt_1 at the target's portal

    [[nodiscard]] std::string fabric_dir() const { return spec->fabric == profile::Fabric::iscsi ? "iscsi" : "loopback"; }
    [[nodiscard]] std::string tpg_dir(std::size_t path = 0) const
    {
        return fabric_dir() + "/" + paths.at(path).wwn + "/tpgt_" + std::to_string(paths.at(path).tpgt);
    }
    [[nodiscard]] std::vector<core::Node> nodes() const;

private:
    void path_nodes(std::size_t k, std::vector<core::Node>& out) const;
};

[[nodiscard]] core::Result<std::string> random_hex(std::size_t digits);
[[nodiscard]] core::Result<std::string> random_secret();   // 16 characters, letters and digits: every initiator takes it

}  // namespace devemu::lio
