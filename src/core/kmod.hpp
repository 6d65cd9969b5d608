#pragma once
// libkmod, wrapped: look modules up in a modules directory (the running kernel's or a VM kernel's), resolve
// aliases, hard dependencies and soft dependencies, and load them.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"

struct kmod_ctx;

namespace devemu::core {

struct ModuleInfo {
    std::string name;       // real module name (after alias resolution)
    std::string path;       // .ko path, empty for builtin
    bool builtin = false;
    bool loaded = false;    // only meaningful for the running kernel
};

class Kmod {
public:
    // modules_dir empty: the running kernel's /lib/modules/$(uname -r). Configuration (modprobe.d) is read only
    // for the running kernel; a foreign tree uses its own modules.softdep.
    [[nodiscard]] static Result<Kmod> open(const std::filesystem::path& modules_dir = {});

    // All modules an alias or name resolves to (empty: unknown).
    [[nodiscard]] std::vector<ModuleInfo> lookup(const std::string& name) const;
    // Load order for `names`: pre-softdeps, hard dependencies, the module, post-softdeps; each once.
    // Names that resolve to nothing are an error naming them.
    [[nodiscard]] Result<std::vector<ModuleInfo>> closure(const std::vector<std::string>& names) const;
    // modprobe NAME (with dependencies and softdeps) into the running kernel.
    // `options` are module parameters ("num=2 is_high_speed=1"), added to those from modprobe.d.
    [[nodiscard]] Status load(const std::string& name, const std::string& options = {}) const;

    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

private:
    struct Free {
        void operator()(kmod_ctx* c) const;
    };
    std::unique_ptr<kmod_ctx, Free> ctx_;
    std::filesystem::path dir_;
    std::vector<std::pair<std::string, std::vector<std::string>>> softdep_pre_, softdep_post_;
    void read_softdeps();
};

// How many UDC/HCD pairs dummy_hcd is loaded with, by `up` and at a VM's boot: several gadgets (and other devemu
// units) coexist; the module's own default is one.
inline constexpr int kDummyHcdNum = 4;

struct ModuleWant {
    std::string name;
    std::string options;     // parameters, used only if this call loads it
    bool optional = false;   // absent from this kernel (built in, or not built): skipped
};

// What `up` needs before it touches configfs: each module that is not in the running kernel yet is loaded (with
// dependencies), in order. A kernel without modules gets one line naming the module and the --vm fix.
[[nodiscard]] Status ensure_modules(const std::vector<ModuleWant>& mods);
// Mounts configfs on /sys/kernel/config unless it already is.
[[nodiscard]] Status ensure_configfs_mounted();

}  // namespace devemu::core
