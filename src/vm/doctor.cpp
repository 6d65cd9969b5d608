#include "vm/doctor.hpp"

#include <unistd.h>

#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/probe.hpp"
#include "core/process.hpp"
#include "lio/libiscsi.hpp"
#include "vm/kernel.hpp"
#include "vm/runner.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;

namespace {

using Item = DoctorItem;

// The modules each kernel path needs; crc32c is a soft dependency of iSCSI login.
const char* kModules[] = {"configfs", "target_core_mod", "iscsi_target_mod", "target_core_file", "target_core_iblock",
                          "target_core_user", "tcm_loop", "dummy_hcd", "libcomposite", "usb_f_mass_storage",
                          "usb_f_fs", "zram", "rbd", "crc32c"};

void host_checks(std::vector<Item>& out)
{
    const bool configfs_fs = core::filesystem_known("configfs");
    const bool configfs_mnt = core::mounted_at("/sys/kernel/config", "configfs");
    auto kmod = core::Kmod::open();
    Item cf{"host", "configfs", configfs_mnt, "", ""};
    if (configfs_mnt) cf.detail = "mounted at /sys/kernel/config";
    else if (configfs_fs) cf.detail = "known to the kernel, not mounted", cf.fix = "mount -t configfs none /sys/kernel/config (devemu up does it)", cf.ok = true;
    else if (kmod && !kmod->lookup("configfs").empty()) cf.detail = "available as a module", cf.fix = "modprobe configfs (devemu up does it)", cf.ok = true;
    else cf.detail = "not in this kernel", cf.fix = "use --vm";
    out.push_back(cf);

    if (!kmod && !configfs_fs) {
        // One line, not fourteen: nothing can be loaded into this kernel.
        out.push_back({"host", "kernel modules", false, "no modules for the running kernel (" + kmod.error().where + ")",
                       "use --vm (LIO, USB gadget and rbd paths run in a VM of the distribution kernel)"});
    } else for (auto name : kModules) {
        Item it{"host", std::string("module ") + name, false, "", ""};
        if (std::string(name) == "configfs" && configfs_fs) {
            it.ok = true, it.detail = "built in or loaded";
        } else if (fs::exists(fs::path("/sys/module") / name)) {
            it.ok = true, it.detail = "loaded";
        } else if (!kmod) {
            it.detail = "no modules for the running kernel (" + kmod.error().where + ")";
            it.fix = "use --vm";
        } else {
            auto found = kmod->lookup(name);
            if (found.empty()) it.detail = "not in this kernel", it.fix = "use --vm";
            else if (found.front().builtin) it.ok = true, it.detail = "built in";
            else it.ok = ::geteuid() == 0, it.detail = "loadable: " + found.front().path, it.fix = it.ok ? "" : "run as root";
        }
        out.push_back(it);
    }

    Item udc{"host", "USB device controllers", false, "", ""};
    std::error_code ec;
    std::string udcs;
    for (auto& e : fs::directory_iterator("/sys/class/udc", ec)) udcs += (udcs.empty() ? "" : " ") + e.path().filename().string();
    udc.ok = !udcs.empty();
    udc.detail = udc.ok ? udcs : "none in /sys/class/udc";
    if (!udc.ok) udc.fix = "modprobe dummy_hcd (devemu up does it), or use --vm";
    out.push_back(udc);

    Item zram{"host", "zram", fs::exists("/sys/class/zram-control"), "", ""};
    zram.detail = zram.ok ? "/sys/class/zram-control present" : "no /sys/class/zram-control";
    if (!zram.ok) zram.fix = "modprobe zram, or use --vm";
    out.push_back(zram);

    // The local Ceph cluster (cluster = "local") runs on the host in a namespace: its tools and iproute2.
    Item ceph{"host", "ceph (local cluster)", true, "", ""};
    std::string missing;
    for (auto bin : {"ceph-mon", "ceph-osd", "ceph", "rbd", "rados", "ip"})
        if (core::which(bin).empty()) missing += std::string(missing.empty() ? "" : ", ") + bin;
    ceph.ok = missing.empty();
    ceph.detail = ceph.ok ? "ceph-mon, ceph-osd, ceph, rbd, rados, ip present" : "missing: " + missing;
    if (!ceph.ok) ceph.fix = "apt-get install ceph-mon ceph-osd ceph-common iproute2 (tools/setup does it)";
    out.push_back(ceph);

    // `devemu check` logs in with libiscsi, loaded when it runs (not linked): say here whether it will load.
    Item iscsi{"host", "libiscsi (devemu check)", false, "", ""};
    auto lib = lio::libiscsi();
    iscsi.ok = lib.has_value();
    iscsi.detail = iscsi.ok ? "libiscsi.so.7 loads" : lib.error().what;
    if (!iscsi.ok) iscsi.fix = lib.error().fix;
    out.push_back(iscsi);

    Item ur{"host", "io_uring", false, "", ""};
    ur.ok = core::io_uring_works(ur.detail);
    if (!ur.ok) ur.fix = "sysctl kernel.io_uring_disabled=0";
    out.push_back(ur);
}

void vm_checks(const std::string& kernel, const fs::path& cache_dir, std::vector<Item>& out)
{
    Item q{"vm", "qemu-system-x86_64", false, "", ""};
    auto qemu = core::which("qemu-system-x86_64");
    q.ok = !qemu.empty();
    q.detail = q.ok ? qemu : "not found";
    if (!q.ok) q.fix = "apt-get install qemu-system-x86 (tools/setup does it)";
    out.push_back(q);

    Item k{"vm", "kernel", false, "", ""};
    auto kern = find_kernel(kernel, cache_dir);
    if (kern) k.ok = true, k.detail = kern->version + " from " + kern->source + " (" + kern->vmlinuz.string() + ")";
    else k.detail = kern.error().what + " in " + kern.error().where, k.fix = kern.error().fix;
    out.push_back(k);

    // The accelerator `vm run` would use, decided the same way (a device that opens is not proof: the first call
    // boot-tests the kernel under KVM and caches the verdict). Without a kernel only the device can be probed.
    Accel accel = probe_kvm();
    if (kern && q.ok)
        if (auto a = choose_accel("auto", *kern, cache_dir)) accel = *a;
    out.push_back({"vm", "accelerator", true, accel.kvm ? "kvm (" + accel.why + ")" : "tcg, slower (" + accel.why + ")",
                   accel.kvm ? "" : "VMs still work; boots take a few seconds more"});

    Item bb{"vm", "busybox (static)", fs::exists("/bin/busybox"), "", ""};
    bb.detail = bb.ok ? "/bin/busybox" : "not found";
    if (!bb.ok) bb.fix = "apt-get install busybox-static";
    out.push_back(bb);

    auto init = core::companion("devemu-init");
    Item in{"vm", "devemu-init", fs::exists(init), init.string(), ""};
    if (!in.ok) in.fix = "rebuild devemu (cmake --build build)";
    out.push_back(in);
}

}  // namespace

std::vector<DoctorItem> doctor_checks(const std::string& kernel, const fs::path& cache_dir)
{
    std::vector<DoctorItem> items;
    host_checks(items);
    vm_checks(kernel, cache_dir, items);
    return items;
}

}  // namespace devemu::vm
