#pragma once
// `devemu doctor`'s findings: what the running kernel can emulate natively (configfs, LIO and gadget modules, UDCs,
// zram, io_uring, the local Ceph cluster's tools, libiscsi for `check`) and what the VM layer would use (qemu, the
// distribution kernel, the accelerator, busybox, devemu-init), each with its fix.
#include <filesystem>
#include <string>
#include <vector>

namespace devemu::vm {

struct DoctorItem {
    std::string group, name;   // group: host | vm
    bool ok = false;
    std::string detail, fix;
};

[[nodiscard]] std::vector<DoctorItem> doctor_checks(const std::string& kernel, const std::filesystem::path& cache_dir);

}  // namespace devemu::vm
