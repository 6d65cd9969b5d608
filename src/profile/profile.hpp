#pragma once
// A profile (TOML) declares backstores, LIO targets and USB gadgets. load() parses and validates all of it
// before anything is touched; every error names file:line and the fix.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "fault/fault.hpp"

namespace devemu::profile {

struct Loc {
    std::string file;
    unsigned line = 0;
    [[nodiscard]] std::string str() const { return line ? file + ":" + std::to_string(line) : file; }
};

enum class BackstoreType { fileio, block, zram, rbd, user };
enum class Fabric { iscsi, loopback };
enum class FunctionType { mass_storage, ffs, acm };
enum class Speed { full, high, super };

// A target port group on a kernel backstore's device (LIO emulates ALUA for those: the INQUIRY TPGS bits, the VPD
// 0x83 port designators, REPORT TARGET PORT GROUPS, and the access-state checks).
enum class AluaState { active_optimized = 0, active_non_optimized = 1, standby = 2, unavailable = 3, transitioning = 15 };
struct AluaGroup {
    std::string name;
    std::uint16_t id = 1;                 // tg_pt_gp_id, 1..65535, unique on the backstore
    AluaState state = AluaState::active_optimized;
    Loc loc;
};

struct Backstore {
    std::string name;
    BackstoreType type = BackstoreType::fileio;
    std::optional<std::uint64_t> size;
    std::string path;            // fileio: the file; block: the device; user: "zram:SIZE", a file or a device
    std::string comp_algorithm;  // zram
    std::string handler;         // user (TCMU handler name)
    // rbd
    std::string pool, image, cluster, mon_host, user, keyring;
    bool ephemeral = false;
    // common attributes
    std::uint32_t block_size = 512;
    std::string wwn;             // unit serial; generated when empty
    bool write_cache = false;
    bool readonly = false;
    // [[backstore.fault]]: faults the backstore's data path starts with (a `user` backstore's handler)
    std::vector<fault::Spec> faults;
    // [[backstore.alua]]: its target port groups (kernel backstores); a LUN names the one its port joins
    std::vector<AluaGroup> alua;
    // Not a profile key: in an `up --vm` guest, `path` is the virtio disk the host's file or device became (the host
    // made and checked it; its data may hold a filesystem the guest must not refuse). See vm::host_disks.
    bool host_disk = false;
    Loc loc;
};

struct Lun {
    std::uint32_t id = 0;
    std::string backstore;
    std::string alua_group;     // empty: LIO's default_tg_pt_gp
    Loc loc;
};

struct Acl {
    std::string initiator;
    std::string chap_user, chap_secret;       // empty secret with a user: generated at up, stored 0600
    std::string mutual_user, mutual_secret;
    std::vector<std::uint32_t> luns;          // empty: every LUN of the target
    Loc loc;
};

struct Portal {
    std::string address = "127.0.0.1";
    std::uint16_t port = 3260;
    Loc loc;                    // the `portal` key (the target's table when absent)
    [[nodiscard]] bool loopback() const { return address.starts_with("127.") || address == "::1"; }
};

// One way to the target's LUNs (`paths = N`, or a [[target.path]] table each): a tcm_loop nexus of its own (a SCSI
// host), or an iSCSI TPG with its own portal. Path K's LUN ports may join an ALUA group.
struct Path {
    std::string alua;           // the group its LUN ports join ("": each LUN's own `alua`)
    std::optional<Portal> portal;   // iscsi: its portal (default: the target's, port + K - 1)
    Loc loc;
};

struct Target {
    std::string name;
    Fabric fabric = Fabric::iscsi;
    std::string wwn;            // iscsi: IQN; loopback: naa.
    std::string initiator_wwn;  // loopback nexus; generated when empty
    Portal portal;
    std::vector<Lun> luns;
    std::vector<Acl> acls;
    std::vector<Path> paths;    // at least one
    // The initiator side on the same kernel: dm-multipath over the paths (loopback), with multipath.conf settings
    bool multipath = false;
    std::string no_path_retry = "10";   // "queue", "fail" or a number of checker intervals
    unsigned polling_interval = 0;      // multipathd's path checks, seconds (0: its default, 5)
    // iSCSI path K's (0-based) portal: its [[target.path]] table's, else the target's with port + K
    [[nodiscard]] Portal path_portal(std::size_t k) const
    {
        if (k < paths.size() && paths[k].portal) return *paths[k].portal;
        Portal p = portal;
        p.port = static_cast<std::uint16_t>(portal.port + k);
        return p;
    }
    bool fast_timeouts = true;          // iSCSI: devemu's short session timeouts; false: the distribution's ("distribution")
    Loc loc;
};

struct MsLun {
    std::string backstore;
    bool readonly = false, removable = false, cdrom = false, nofua = false;
    std::string inquiry_string;
    Loc loc;
};

struct Function {
    FunctionType type = FunctionType::mass_storage;
    std::string name;
    std::vector<MsLun> luns;   // mass_storage
    bool stall = true;         // mass_storage
    // mass_storage: served by devemu's own function over FunctionFS (engine = "user"; the default when a LUN uses a
    // `user` backstore) instead of the kernel's f_mass_storage; engine_set: the profile said which
    bool user_engine = false, engine_set = false;
    std::string mount;         // ffs: where functionfs is mounted (default /dev/usb-ffs/NAME)
    // ffs: the app devemu starts once the instance is mounted (sh -c; DEVEMU_FFS is the mount), left running in its
    // own session and stopped by `down` (what a service needs); empty: the user starts it (or `up --exec`)
    std::string app;
    Loc loc;
};

struct Gadget {
    std::string name;
    std::uint16_t vendor_id = 0x1d6b, product_id = 0x0104, bcd_device = 0x0100;
    std::string manufacturer = "devemu", product, serial;
    Speed speed = Speed::high;
    std::uint32_t max_power = 250;
    std::string udc;           // empty: the first dummy_udc.N that is free
    std::vector<Function> functions;
    Loc loc;
};

struct Profile {
    std::string file;
    std::vector<Backstore> backstores;
    std::vector<Target> targets;
    std::vector<Gadget> gadgets;

    [[nodiscard]] const Backstore* backstore(const std::string& name) const;
};

// Parses and validates. Errors: Errc::invalid_input with where = "file:line". `host_disks`: in an `up --vm` guest, the
// backstores whose files or devices are the host's (marked host_disk; their paths are not looked for here).
[[nodiscard]] core::Result<Profile> load(const std::filesystem::path& file, const std::set<std::string>& host_disks = {});
[[nodiscard]] core::Result<Profile> parse(const std::string& text, const std::string& file_name, const std::set<std::string>& host_disks = {});
// Semantic checks across objects (references, duplicates, backing files). Called by parse().
[[nodiscard]] core::Status validate(const Profile& p);
// The rules a command's flags can lift: an iSCSI portal off loopback needs an ACL with CHAP for every initiator
// unless `insecure` (--insecure). `profile check`, `plan`, `up` and `import` all ask it, so they agree.
[[nodiscard]] core::Status check_exposure(const Target& t, bool insecure);
[[nodiscard]] core::Status check_exposure(const Profile& p, bool insecure);

[[nodiscard]] const char* to_string(BackstoreType t);
[[nodiscard]] const char* to_string(Fabric f);
[[nodiscard]] const char* to_string(FunctionType f);
[[nodiscard]] const char* to_string(Speed s);
// "active/optimized", "active/non-optimized", "standby", "unavailable", "transitioning"
[[nodiscard]] const char* to_string(AluaState s);
[[nodiscard]] std::optional<AluaState> alua_state(const std::string& s);

}  // namespace devemu::profile
