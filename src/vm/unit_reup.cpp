// devemu up --vm PROFILE while the VM brought up from PROFILE runs: the profile's new text goes into the guest and the
// guest's `devemu up` applies the difference there, as `up` does on a host with LIO. What the host must add for it
// comes first: a new host file or device is plugged in as a virtio disk (as `gadget insert` does), a new iSCSI portal
// gets its 127.0.0.1 forward (HMP hostfwd_add). What the VM cannot take without a new boot is refused, named.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ceph/prepare.hpp"
#include "core/fd.hpp"
#include "core/netns.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "vm/host_disks.hpp"
#include "vm/unit_up_detail.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

core::Error needs_new_vm(const std::string& name, const std::string& why)
{
    return core::Error{core::Errc::invalid_input, why, name, "devemu down " + name + ", then up --vm again"};
}

// New forwards for new portals; a portal whose port changed in the guest is forwarded from the same host port again.
core::Status add_forwards(const profile::Profile& prof, VmRecord& rec)
{
    for (auto& f : portal_forwards(prof)) {
        auto have = rec.forwards.find(f.key);
        if (have != rec.forwards.end()) {
            auto g = rec.guest_ports.find(f.key);
            if (g == rec.guest_ports.end() || g->second == f.guest) continue;   // as it was (or a record that does not say)
            DEVEMU_TRY(said, monitor_command(rec.run_dir, rec.name, fmt::format("hostfwd_remove n0 tcp:127.0.0.1:{}", have->second)));
            if (said.find("removed") == std::string::npos) return std::unexpected(qemu_error(said, rec.name, core::Errc::kernel));
        }
        std::uint16_t port = 0;
        if (have != rec.forwards.end()) port = have->second;
        else {
            DEVEMU_TRY(p, core::free_loopback_port());
            port = p;
        }
        DEVEMU_TRY(said, monitor_command(rec.run_dir, rec.name, fmt::format("hostfwd_add n0 tcp:127.0.0.1:{}-:{}", port, f.guest)));
        if (!core::trim(said).empty()) return std::unexpected(qemu_error(said, rec.name, core::Errc::kernel));
        rec.forwards[f.key] = port;
        rec.guest_ports[f.key] = f.guest;
    }
    return {};
}

// The guest reads the profile at the host's path. Its own copy (in its initramfs) is replaced by the file's text now;
// a guest with the host's / reads the file itself, through a 9p mount that caches (cache=loose): its cached pages go.
core::Status profile_in_guest(const VmRecord& rec, const std::string& file)
{
    core::UniqueFd fd;
    if (!rec.host_root && !(fd = core::UniqueFd(::open(file.c_str(), O_RDONLY | O_CLOEXEC)))) return core::fail_errno("cannot read", file);
    const std::vector<std::string> argv = rec.host_root ? std::vector<std::string>{"/bin/busybox", "sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"}
                                                        : std::vector<std::string>{"/bin/busybox", "sh", "-c", "cat > \"$1\"", "sh", file};
    DEVEMU_TRY(r, vm_exec(rec, argv, {}, std::chrono::seconds(60), fd ? fd.get() : -1));
    if (r.rc != 0) return core::fail(core::Errc::kernel, "cannot give the VM the profile's new text: " + core::last_line(r.err), rec.name, "");
    return {};
}

}  // namespace

core::Result<UpVmResult> reup_vm(const core::StateDir& sd, const UpVmRequest& req, const profile::Profile& prof, VmRecord rec)
{
    const std::string& name = rec.name;
    DEVEMU_CHECK(profile::check_exposure(prof, req.insecure));
    if (rec.state != "up")
        return core::fail(core::Errc::busy, "the VM of unit '" + name + "' is not up (" + rec.state + ")", name, "devemu down " + name + ", then up --vm again");
    if (!req.exec.empty()) return std::unexpected(needs_new_vm(name, "--exec: the VM of this profile is up already, and an app's life is that of the VM"));
    if (!rec.host_root && needs_host_root(prof, false))
        return std::unexpected(needs_new_vm(name, "the profile now needs the host's files in the VM (a FunctionFS app, multipath, a kernel backstore's "
                                                  "faults), and this VM was started without them"));
    if (ceph::has_rbd(prof) || !rec.rbd_images.empty())
        return std::unexpected(needs_new_vm(name, "a VM with rbd backstores is not updated in place (its images and cluster are made at its start)"));

    // Host files and devices: the ones the VM has are the same disks again; a new one is checked and plugged in.
    std::vector<std::string> argv = guest_apply_args(req, rec.profile);
    core::Transaction tx(sd.journal(name));
    DEVEMU_TRY(disks, plan_host_disks(prof, tx, req.force));
    std::vector<std::string> data_lines;
    for (auto& d : disks) {
        DEVEMU_TRY(serial, plug_host_medium(sd, name, d.path, req.force));
        for (auto& b : d.backstores) argv.push_back("--host-disk=" + b + "=" + serial);
        data_lines.push_back(data_line(d.backstores, d.path, serial));
    }
    tx.commit();
    DEVEMU_TRY(now, load_vm_record(sd, name));   // plug_host_medium recorded what it plugged in
    rec = now;
    for (auto& d : disks)
        for (auto& b : d.backstores) rec.host_disks[b] = d.path.string();
    DEVEMU_CHECK(add_forwards(prof, rec));
    DEVEMU_CHECK(sd.save(name, rec));
    for (auto& [key, port] : rec.forwards) argv.push_back("--advertise=" + key + "=" + std::to_string(port));

    DEVEMU_CHECK(profile_in_guest(rec, rec.profile));
    DEVEMU_TRY(ran, vm_exec(rec, guest_devemu(argv, rec.devemu), {}, std::chrono::seconds(300 + req.timeout)));
    // What came up is recorded, also when another unit of the profile failed (the guest rolled that one back).
    auto units = guest_units_of(ran.out, req.saveconfig);
    if (units.is_discarded()) units = json::array();
    const json forwards = rec.forwards;
    UpVmResult res;
    std::vector<GuestUnit> got;
    take_guest_units(units, name, forwards, req.secrets, got, res);
    for (auto& g : got) {
        auto same = std::find_if(rec.units.begin(), rec.units.end(), [&](const GuestUnit& u) { return u.unit == g.unit; });
        if (same != rec.units.end()) *same = g;
        else rec.units.push_back(g);
    }
    DEVEMU_CHECK(sd.save(name, rec));
    if (ran.rc != 0) return std::unexpected(guest_up_error(ran.rc, ran.err));
    DEVEMU_CHECK(forwards_answer(rec.forwards, name));
    if (!rec.host_disks.empty())
        for (auto& shown : res.shown) shown["host_disks"] = rec.host_disks;
    for (auto& l : data_lines) res.lines.push_back(l);
    res.lines.push_back(fmt::format("  vm         {} (pid {}, {}), updated in place; stop it with: devemu down {}", name, rec.pid, rec.kvm ? "kvm" : "tcg", name));
    return res;
}

}  // namespace devemu::vm
