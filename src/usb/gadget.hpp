#pragma once
// A USB gadget unit on dummy_hcd: the configfs tree (libcomposite) as desired-state nodes, FunctionFS mounts,
// the bind to a dummy UDC chosen on purpose, and the wait until this machine's own host stack has enumerated it.
// Everything goes through one core::Transaction, so `down` (and a crash at any point) unbinds first and removes
// the rest in the order the kernel needs.
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/nodes.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"
#include "backing/backing.hpp"
#include "profile/profile.hpp"
#include "usb/record.hpp"

namespace devemu::usb {

namespace fs = std::filesystem;

struct Roots {
    fs::path gadget = "/sys/kernel/config/usb_gadget";
    fs::path sys = "/sys";
    fs::path dev = "/dev";
};

struct UpOptions {
    bool force = false;                          // backing files/devices: same rules as LIO backstores
    bool load_modules = true;
    std::chrono::seconds timeout{30};            // enumeration, and the FunctionFS app's descriptors
    Roots roots;
    backing::Roots backing_roots;
    // Called while waiting for FunctionFS apps (mount paths not yet ready) so the caller can start one; it
    // journals what it started in `tx` (so down and rollback stop it before FunctionFS is unmounted).
    std::function<core::Status(core::Transaction& tx, const std::vector<std::string>& mounts)> on_ffs_mounted;
    std::map<std::string, backing::RbdClient> rbd;   // rbd backstore -> how its cluster is reached (ceph::prepare_units_rbd)
};

// Loads libcomposite, dummy_hcd (with the speed the profile's gadgets need) and the host-side drivers, mounts
// configfs. Says what is missing and how to get it.
[[nodiscard]] core::Status prepare_kernel(const profile::Profile& p, const UpOptions& opt);

// The configfs nodes of a gadget (without the bind). `lun_files`: the backing path of each mass-storage LUN,
// keyed "FUNCTION/LUN".
[[nodiscard]] std::vector<core::Node> gadget_nodes(const profile::Gadget& g, const std::map<std::string, std::string>& lun_files);

[[nodiscard]] core::Result<std::vector<core::Step>> plan(const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd,
                                                         const UpOptions& opt);
// Builds, mounts FunctionFS, waits for the apps, binds, waits for enumeration; returns the unit record.
[[nodiscard]] core::Result<nlohmann::json> up(const profile::Profile& p, const profile::Gadget& g, const core::StateDir& sd,
                                              const UpOptions& opt);
[[nodiscard]] core::Status down(const core::StateDir& sd, const std::string& unit);
[[nodiscard]] std::vector<std::string> health(const GadgetRecord& record, const Roots& roots);

// Media change on a removable LUN: `file` empty ejects. Updates the unit record.
[[nodiscard]] core::Status change_media(const core::StateDir& sd, const std::string& unit, unsigned lun, const std::string& file,
                                        bool force, const Roots& roots);

// The host side of a bound gadget: its USB device in sysfs and the /dev nodes the kernel gave its functions.
struct Enumerated {
    std::string sysfs;          // /sys/bus/usb/devices/B-P
    int bus = 0, device = 0;
    std::string speed;          // "480" etc. (Mbit/s, from sysfs)
    bool configured = false;    // the host set a configuration
    nlohmann::json disks = nlohmann::json::object();   // "FUNCTION/LUN" -> /dev/sdX
    nlohmann::json ttys = nlohmann::json::object();    // acm function -> /dev/ttyACMn
};
// Finds the device on the dummy_hcd that pairs with `udc`; nullopt while it is not (yet) there.
[[nodiscard]] std::optional<Enumerated> find_enumerated(const profile::Gadget& g, const std::string& udc, const std::string& serial,
                                                        const Roots& roots);

class KernelLog;
// Waits (progress, `timeout`) until this machine's host side has enumerated and configured the gadget bound to `udc`
// and its drivers gave every LUN a disk and every ACM function a tty; returns what it got ({} for a UDC that is not a
// dummy one). A configuration the host refused is said at once, with the kernel's line from `klog`.
[[nodiscard]] core::Result<nlohmann::json> wait_enumerated(const profile::Gadget& g, const std::string& udc, const Roots& roots,
                                                           std::chrono::seconds timeout, KernelLog& klog);

// Re-reads which /dev/sdX the host gave each LUN of a gadget unit (after `check` detached and re-attached
// usb-storage, the names may change) and updates the record's "luns" and "host.disks". True when every LUN has one.
[[nodiscard]] bool refresh_disks(GadgetRecord& rec, const Roots& roots);

}  // namespace devemu::usb
