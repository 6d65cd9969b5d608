#include "core/kmod.hpp"

#include <libkmod.h>
#include <sys/mount.h>
#include <sys/utsname.h>

#include <algorithm>
#include <optional>

#include <fstream>
#include <set>
#include <sstream>

#include "core/probe.hpp"
#include "core/text.hpp"

namespace devemu::core {

void Kmod::Free::operator()(kmod_ctx* c) const { kmod_unref(c); }

Result<Kmod> Kmod::open(const std::filesystem::path& modules_dir)
{
    Kmod k;
    if (modules_dir.empty()) {
        utsname u{};
        ::uname(&u);
        k.dir_ = std::filesystem::path("/lib/modules") / u.release;
        k.ctx_.reset(kmod_new(nullptr, nullptr));
    } else {
        k.dir_ = modules_dir;
        static const char* const no_config[] = {nullptr};
        k.ctx_.reset(kmod_new(modules_dir.c_str(), no_config));
    }
    if (!k.ctx_) return fail(Errc::missing, "libkmod could not open the modules directory", k.dir_.string());
    if (kmod_load_resources(k.ctx_.get()) < 0)
        return fail(Errc::missing, "no module index (modules.dep.bin)", k.dir_.string(), "run depmod for this kernel");
    k.read_softdeps();
    return k;
}

// modules.softdep is what depmod extracts from the modules' own MODULE_SOFTDEP; libkmod reads softdeps only from
// modprobe.d, so a foreign kernel tree's softdeps (libcrc32c -> crc32c) would be lost without this.
void Kmod::read_softdeps()
{
    std::ifstream in(dir_ / "modules.softdep");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ws(line);
        std::string word, mod;
        ws >> word >> mod;
        if (word != "softdep" || mod.empty()) continue;
        std::vector<std::string> pre, post;
        std::vector<std::string>* cur = nullptr;
        while (ws >> word) {
            if (word == "pre:") cur = &pre;
            else if (word == "post:") cur = &post;
            else if (cur) cur->push_back(word);
        }
        if (!pre.empty()) softdep_pre_.emplace_back(mod, pre);
        if (!post.empty()) softdep_post_.emplace_back(mod, post);
    }
}

static ModuleInfo info_of(kmod_module* m)
{
    ModuleInfo i;
    i.name = kmod_module_get_name(m);
    const char* p = kmod_module_get_path(m);
    i.path = p ? p : "";
    int st = kmod_module_get_initstate(m);
    i.builtin = st == KMOD_MODULE_BUILTIN || (p == nullptr);
    i.loaded = st == KMOD_MODULE_LIVE || st == KMOD_MODULE_COMING;
    return i;
}

std::vector<ModuleInfo> Kmod::lookup(const std::string& name) const
{
    std::vector<ModuleInfo> out;
    kmod_list* list = nullptr;
    if (kmod_module_new_from_lookup(ctx_.get(), name.c_str(), &list) < 0 || !list) return out;
    kmod_list* it;
    kmod_list_foreach(it, list)
    {
        kmod_module* m = kmod_module_get_module(it);
        out.push_back(info_of(m));
        kmod_module_unref(m);
    }
    kmod_module_unref_list(list);
    return out;
}

Result<std::vector<ModuleInfo>> Kmod::closure(const std::vector<std::string>& names) const
{
    std::vector<ModuleInfo> order;
    std::set<std::string> seen;
    std::vector<std::string> missing;

    auto softdeps = [](const auto& table, const std::string& mod) {
        for (auto& [m, deps] : table)
            if (m == mod) return deps;
        return std::vector<std::string>{};
    };
    // Depth-first: everything a module needs is placed before it.
    auto visit = [&](auto& self, const std::string& name, bool required) -> void {
        auto found = lookup(name);
        if (found.empty()) {
            if (required) missing.push_back(name);
            return;
        }
        for (auto& mi : found) {
            if (seen.count(mi.name)) continue;
            seen.insert(mi.name);
            if (mi.builtin) continue;
            for (auto& d : softdeps(softdep_pre_, mi.name)) self(self, d, false);
            kmod_module* m = nullptr;
            if (kmod_module_new_from_name(ctx_.get(), mi.name.c_str(), &m) == 0) {
                kmod_list* deps = kmod_module_get_dependencies(m);
                kmod_list* it;
                std::vector<std::string> dep_names;
                kmod_list_foreach(it, deps)
                {
                    kmod_module* d = kmod_module_get_module(it);
                    dep_names.emplace_back(kmod_module_get_name(d));
                    kmod_module_unref(d);
                }
                kmod_module_unref_list(deps);
                kmod_module_unref(m);
                for (auto& d : dep_names) self(self, d, true);
            }
            order.push_back(mi);
            for (auto& d : softdeps(softdep_post_, mi.name)) self(self, d, false);
        }
    };
    for (auto& n : names) visit(visit, n, true);
    if (!missing.empty()) {
        std::string list;
        for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        return fail(Errc::missing, "kernel modules not found: " + list, dir_.string(),
                    "this kernel lacks them; use a kernel that has them (devemu uses Debian's linux-image-amd64)");
    }
    return order;
}

Status Kmod::load(const std::string& name, const std::string& options) const
{
    kmod_list* list = nullptr;
    if (kmod_module_new_from_lookup(ctx_.get(), name.c_str(), &list) < 0 || !list)
        return fail(Errc::missing, "kernel module " + name + " not found", dir_.string(),
                    "install the kernel's modules, or use --vm");
    int err = 0;
    kmod_list* it;
    kmod_list_foreach(it, list)
    {
        kmod_module* m = kmod_module_get_module(it);
        err = kmod_module_probe_insert_module(m, KMOD_PROBE_APPLY_BLACKLIST_ALIAS_ONLY, options.empty() ? nullptr : options.c_str(), nullptr, nullptr, nullptr);
        kmod_module_unref(m);
        if (err == 0) break;
    }
    kmod_module_unref_list(list);
    if (err < 0) {
        errno = -err;
        return fail_errno("cannot load kernel module " + name, dir_.string(), "see dmesg");
    }
    return {};
}

Status ensure_modules(const std::vector<ModuleWant>& mods)
{
    std::optional<Kmod> kmod;   // opened only when something is missing
    for (auto& m : mods) {
        std::string sysname = m.name;
        std::replace(sysname.begin(), sysname.end(), '-', '_');
        if (std::filesystem::exists(std::filesystem::path("/sys/module") / sysname) || (m.name == "configfs" && filesystem_known("configfs")))
            continue;
        if (!kmod) {
            auto k = Kmod::open();
            if (!k) return fail(Errc::missing, "kernel module " + m.name + " is not loaded and this kernel has no modules", k.error().where,
                                "use --vm (runs it in a VM of the distribution kernel)");
            kmod = std::move(*k);
        }
        if (m.optional && kmod->lookup(m.name).empty()) continue;
        DEVEMU_CHECK(kmod->load(m.name, m.options));
    }
    return {};
}

Status ensure_configfs_mounted()
{
    if (mounted_at("/sys/kernel/config", "configfs")) return {};
    if (::mount("configfs", "/sys/kernel/config", "configfs", 0, nullptr) != 0)
        return fail_errno("cannot mount configfs", "/sys/kernel/config", "mount -t configfs none /sys/kernel/config");
    return {};
}

}  // namespace devemu::core
