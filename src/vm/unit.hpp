#pragma once
// The "vm" unit kind: `devemu up --vm PROFILE`, a long-lived VM of the distribution kernel that runs `devemu up` on
// the profile inside (the same code path as on a host with LIO and dummy_hcd), its iSCSI portals forwarded to
// 127.0.0.1 on free ports. Its record lists the guest's units; `check` and `gadget` reach them through the VM's
// control socket (vm_exec); `down` asks the guest to remove its units and power off, then reaps qemu.
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "vm/record.hpp"

namespace devemu::vm {

void register_vm_kind();

struct UpVmRequest {
    std::string profile;           // one profile file
    bool saveconfig = false;       // `profile` is targetcli-fb's saveconfig.json (import --vm): the guest imports it
    bool secrets = false;          // show CHAP secrets in what is returned
    std::string exec;              // started in the VM (with the host's / as its root); `down` stops it
    unsigned timeout = 30;         // the guest's `up --timeout`
    bool force = false;
    bool insecure = false;         // as for up: a non-loopback portal without CHAP and ACLs
    std::string kernel;            // --kernel (empty: the distribution's newest in the cache)
    std::filesystem::path cache_dir;
};

struct UpVmResult {
    nlohmann::json shown = nlohmann::json::array();   // what `up --json` prints: per guest unit, how to reach it
    std::vector<std::string> lines;                    // what `up` prints
    std::vector<std::string> notes;                    // import --vm: what the saveconfig held that is not applied
};

// Boots the VM, brings the profile up in it, waits for its forwarded portals. On any failure nothing is left: no
// qemu, no record, nothing the host made for it (an ephemeral rbd image, a local Ceph cluster it started).
[[nodiscard]] core::Result<UpVmResult> up_vm(const core::StateDir& sd, const UpVmRequest& req);

// Stops an `up --vm` unit: the guest removes its units and powers off (60 s), then the journal reaps qemu.
// !clean: the journal's kill only (an interrupted boot: the guest may not listen yet).
[[nodiscard]] core::Status stop_vm_unit(const core::StateDir& sd, const std::string& name, const VmRecord& rec, bool clean = true);

// devemu inside an `up --vm` guest, with the guest's state dir, then `args`: the binary the VM was started with
// (`devemu`, recorded; at the same path in the guest), or this one for a record that does not say.
[[nodiscard]] std::vector<std::string> guest_devemu(const std::vector<std::string>& args, const std::string& devemu = {});

// What a command run in the VM printed, and its exit status.
struct Ran {
    int rc = 0;
    std::string out, err;
};
// Runs ARGS in the running VM of an `up --vm` unit record (its devemu, its tools). Up to kExecPorts commands run at
// once, each on its own virtio port (vm/init/exec_port.cpp); more wait for one to end.
inline constexpr int kExecPorts = 4;
// With a sink, the output goes there as it comes (Ran's out and err stay empty).
// `timeout` bounds the wait for a free port and the command (ended when it passes).
// `stdin_fd` (-1: /dev/null) is read to its end and is the command's stdin.
[[nodiscard]] core::Result<Ran> vm_exec(const VmRecord& rec, const std::vector<std::string>& args, const core::OutputSink& sink = {},
                                        std::chrono::seconds timeout = std::chrono::seconds(900), int stdin_fd = -1);

}  // namespace devemu::vm
