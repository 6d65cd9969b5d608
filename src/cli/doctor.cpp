// devemu doctor: what the running kernel can emulate, what the VM layer would use, and each fix.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/cli.hpp"
#include "vm/doctor.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace devemu::cli {

int cmd_doctor(Context& ctx, const Args& args)
{
    po::options_description opts("devemu doctor [--json]\n\nExample: devemu doctor --json | jq '.native'");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    auto& vm = p.vm;
    const auto items = vm::doctor_checks(ctx.kernel, ctx.cache_dir);

    auto ok = [&](const std::string& name) {
        for (auto& i : items)
            if (i.name == name) return i.ok;
        return false;
    };
    const bool lio = ok("configfs") && ok("module target_core_mod") && ok("module iscsi_target_mod");
    const bool usb = ok("configfs") && ok("module libcomposite") && ok("module dummy_hcd");
    const bool vm_ready = ok("qemu-system-x86_64") && ok("kernel") && ok("busybox (static)") && ok("devemu-init");

    if (vm.count("json")) {
        nlohmann::json j;
        j["native"] = {{"lio", lio}, {"usb_gadget", usb}, {"io_uring", ok("io_uring")}, {"zram", ok("zram")},
                       {"rbd", lio && ok("module rbd")}, {"ceph_local_cluster", ok("ceph (local cluster)")}};
        j["vm_ready"] = vm_ready;
        for (auto& i : items) j["checks"].push_back({{"group", i.group}, {"name", i.name}, {"ok", i.ok}, {"detail", i.detail}, {"fix", i.fix}});
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    const bool tty = ::isatty(1);
    for (auto& i : items) {
        const char* mark = i.ok ? (tty ? "\033[32m ok \033[0m" : " ok ") : (tty ? "\033[33mmiss\033[0m" : "miss");
        std::cout << "[" << mark << "] " << i.group << ": " << i.name << " — " << i.detail;
        if (!i.fix.empty()) std::cout << "  (fix: " << i.fix << ")";
        std::cout << "\n";
    }
    std::cout << "\nLIO targets: " << (lio ? "native" : "need --vm") << "; USB gadgets: " << (usb ? "native" : "need --vm")
              << "; rbd: " << (lio && ok("module rbd") ? "native" : "need --vm")
              << "; local Ceph cluster: " << (ok("ceph (local cluster)") ? "ready" : "tools missing")
              << "; io_uring bench: " << (ok("io_uring") ? "native" : "unavailable")
              << "; VM layer: " << (vm_ready ? "ready" : "not ready (see above)") << "\n";
    return 0;
}

}  // namespace devemu::cli
