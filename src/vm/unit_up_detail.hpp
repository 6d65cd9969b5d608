#pragma once
// What `up --vm` (vm/unit_up.cpp) and its second run on a unit that is up (vm/unit_reup.cpp) share.
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "profile/profile.hpp"
#include "vm/record.hpp"
#include "vm/unit.hpp"

namespace devemu::vm {

// The profile `req` names: a TOML profile, or for import --vm a saveconfig.json (its notes appended to `notes`).
[[nodiscard]] core::Result<profile::Profile> load_vm_profile(const UpVmRequest& req, std::vector<std::string>* notes = nullptr);

// The guest's command that applies `file` (`up --in-vm`, or `import --in-vm` for a saveconfig.json), to which the
// --advertise and --host-disk options are added.
[[nodiscard]] std::vector<std::string> guest_apply_args(const UpVmRequest& req, const std::string& file);

// What that command printed (--json) as `up --json`'s units: an array, or a discarded value when it is not JSON.
[[nodiscard]] nlohmann::json guest_units_of(const std::string& out, bool saveconfig);

// Each forwarded portal answers on 127.0.0.1 (10 s each at most), else a timeout naming it and the unit `name`.
[[nodiscard]] core::Status forwards_answer(const std::map<std::string, std::uint16_t>& forwards, const std::string& name);

// What `up --vm` prints for a host file or device the VM has as a disk.
[[nodiscard]] std::string data_line(const std::vector<std::string>& backstores, const std::filesystem::path& path, const std::string& serial);

// The guest's `devemu up` failed with exit `rc`: its own one-line error (the last of `err`), with the exit's meaning.
[[nodiscard]] core::Error guest_up_error(int rc, const std::string& err);

// The unit a profile's VM is: its one target's or gadget's name, else the file's stem.
[[nodiscard]] std::string vm_unit_name(const profile::Profile& prof);

// Whether the guest needs the host's / (a FunctionFS app or --exec command, multipath-tools, dmsetup).
[[nodiscard]] bool needs_host_root(const profile::Profile& prof, bool exec);

// Every portal of every iSCSI target, each forwarded from a port of 127.0.0.1: lio::forward_key and the guest's port.
struct PortalForward {
    std::string key;
    std::uint16_t guest = 0;
};
[[nodiscard]] std::vector<PortalForward> portal_forwards(const profile::Profile& prof);

// The guest's `up --json` output -> what the record keeps (`stored`) and what the user is shown.
void take_guest_units(const nlohmann::json& units, const std::string& vm_name, const nlohmann::json& forwards, bool secrets,
                      std::vector<GuestUnit>& stored, UpVmResult& res);

// `up --vm PROFILE` again while the VM of `rec`, brought up from PROFILE, runs: the guest applies the difference.
[[nodiscard]] core::Result<UpVmResult> reup_vm(const core::StateDir& sd, const UpVmRequest& req, const profile::Profile& prof, VmRecord rec);

}  // namespace devemu::vm
