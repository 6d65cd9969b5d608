#include "vm/kernel.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <vector>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::vm {

using core::Errc;

namespace {

bool has_modules(const fs::path& root, const std::string& ver)
{
    std::error_code ec;
    return fs::exists(root / "lib/modules" / ver / "modules.dep", ec);
}

// A kernel tree as dpkg-deb -x leaves it: boot/vmlinuz-VER and lib/modules/VER.
std::optional<Kernel> from_tree(const fs::path& dir, const std::string& source)
{
    std::error_code ec;
    std::vector<std::string> versions;
    for (auto& e : fs::directory_iterator(dir / "boot", ec)) {
        auto n = e.path().filename().string();
        if (n.starts_with("vmlinuz-")) versions.push_back(n.substr(8));
    }
    std::sort(versions.begin(), versions.end());
    for (auto it = versions.rbegin(); it != versions.rend(); ++it)
        if (has_modules(dir, *it)) return Kernel{dir / "boot" / ("vmlinuz-" + *it), dir, *it, source};
    return std::nullopt;
}

core::Result<Kernel> from_user(const std::string& arg, const std::string& source)
{
    fs::path p(arg);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        if (auto k = from_tree(p, source)) return *k;
        return core::fail(Errc::missing, "no boot/vmlinuz-VERSION with lib/modules/VERSION/modules.dep here", p.string(),
                          "point at a tree unpacked with dpkg-deb -x and run depmod -b DIR VERSION, or run tools/setup");
    }
    if (!fs::is_regular_file(p, ec)) return core::fail(Errc::missing, "kernel not found", p.string(), "check " + source);
    auto name = p.filename().string();
    if (!name.starts_with("vmlinuz-"))
        return core::fail(Errc::invalid_input, "cannot tell the kernel version from the file name", p.string(),
                          "name it vmlinuz-VERSION, or pass the unpacked tree");
    auto ver = name.substr(8);
    for (auto root : {p.parent_path().parent_path(), fs::path("/")})
        if (has_modules(root, ver)) return Kernel{p, root, ver, source};
    return core::fail(Errc::missing, "no modules for kernel " + ver + " (lib/modules/" + ver + "/modules.dep)", p.string(),
                      "install its modules or pass the unpacked package tree");
}

}  // namespace

core::Result<Kernel> find_kernel(const std::string& explicit_kernel, const fs::path& cache_dir)
{
    if (!explicit_kernel.empty()) return from_user(explicit_kernel, "--kernel");
    if (const char* env = std::getenv("DEVEMU_KERNEL"); env && *env) return from_user(env, "DEVEMU_KERNEL");
    std::error_code ec;
    std::vector<fs::path> trees;
    for (auto& e : fs::directory_iterator(cache_dir / "kernel", ec))
        if (e.is_directory()) trees.push_back(e.path());
    std::sort(trees.begin(), trees.end());
    for (auto it = trees.rbegin(); it != trees.rend(); ++it)
        if (auto k = from_tree(*it, "cache")) return *k;
    utsname u{};
    ::uname(&u);
    const std::string ver = u.release;
    const fs::path host = fs::path("/boot") / ("vmlinuz-" + ver);
    if (fs::exists(host, ec) && ::access(host.c_str(), R_OK) == 0 && has_modules("/", ver)) return Kernel{host, "/", ver, "host"};
    // Installed (the package ships it in /usr/lib/devemu), or in a source tree (tools/setup runs it).
    const auto fetch = core::companion("fetch-kernel");
    const std::string how = fs::exists(fetch, ec) ? fetch.string() : "tools/fetch-kernel (tools/setup runs it)";
    return core::fail(Errc::missing, "no kernel for the VM",
                      (cache_dir / "kernel").string(),
                      "run " + how + ": it unpacks Debian's linux-image into the cache; or pass --kernel DIR|VMLINUZ");
}

Accel probe_kvm()
{
    core::UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (!kvm) return {false, fmt::format("/dev/kvm: {}", std::strerror(errno))};
    int api = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) return {false, fmt::format("/dev/kvm answers API {}, not {}", api, KVM_API_VERSION)};
    core::UniqueFd vmfd(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (!vmfd) return {false, fmt::format("/dev/kvm exists but KVM_CREATE_VM failed: {}", std::strerror(errno))};
    return {true, "/dev/kvm works"};
}

std::optional<fs::path> uncompressed_kernel(const Kernel& k, const fs::path& cache_dir)
{
    std::error_code ec;
    core::Hasher h;
    h.add(k.vmlinuz.string());
    h.add_u64(fs::file_size(k.vmlinuz, ec));
    h.add_u64(static_cast<std::uint64_t>(fs::last_write_time(k.vmlinuz, ec).time_since_epoch().count()));
    const auto out = cache_dir / "vmlinux" / (k.version + "-" + h.hex());
    if (fs::exists(out, ec)) return out;
    // PVH needs CONFIG_PVH; the config sits next to the kernel in a Debian tree.
    if (auto cfg = core::read_file(k.vmlinuz.parent_path() / ("config-" + k.version)); cfg && cfg->find("CONFIG_PVH=y") == std::string::npos)
        return std::nullopt;
    auto img = core::read_file(k.vmlinuz);
    if (!img) return std::nullopt;
    struct Format {
        std::string magic;
        const char* tool;
    };
    const Format formats[] = {{std::string("\xfd" "7zXZ\0", 6), "xz"}, {std::string("\x28\xb5\x2f\xfd", 4), "zstd"},
                              {std::string("\x1f\x8b\x08", 3), "gzip"}};
    for (auto& f : formats) {
        auto pos = img->find(f.magic);
        if (pos == std::string::npos) continue;
        auto tool = core::which(f.tool);
        if (tool.empty()) continue;
        if (!core::make_dirs(out.parent_path())) return std::nullopt;
        const auto payload = out.string() + ".payload";
        if (!core::write_file_atomic(payload, std::string_view(*img).substr(pos))) return std::nullopt;
        // Trailing bytes after the stream make the tools complain; the output is still whole, so check the ELF instead.
        auto r = core::run({tool, "-dc", payload}, std::chrono::seconds(60));
        fs::remove(payload, ec);
        if (!r || r->out.size() < 1024 || r->out.compare(0, 4, "\x7f" "ELF") != 0) continue;
        if (!core::write_file_atomic(out, r->out)) return std::nullopt;
        return out;
    }
    return std::nullopt;
}

core::Result<Accel> choose_accel(const std::string& mode, const Kernel& k, const fs::path& cache_dir)
{
    if (mode == "tcg") return Accel{false, "--accel tcg"};
    if (mode != "auto" && mode != "kvm")
        return core::fail(Errc::invalid_input, "--accel " + mode + " is not auto, kvm or tcg", "", "use --accel auto");
    if (::access("/dev/kvm", F_OK) != 0) {
        if (mode == "kvm") return core::fail(Errc::missing, "KVM requested but /dev/kvm is absent", "/dev/kvm", "use --accel tcg");
        return Accel{false, "no /dev/kvm"};
    }
    utsname u{};
    ::uname(&u);
    core::Hasher h;
    h.add(u.release);
    h.add(k.version);
    std::error_code ec;
    auto qemu = core::which("qemu-system-x86_64");
    h.add(qemu);
    h.add_u64(fs::exists(qemu, ec) ? static_cast<std::uint64_t>(fs::last_write_time(qemu, ec).time_since_epoch().count()) : 0);
    const auto verdict_file = cache_dir / ("kvm-verdict-" + h.hex());
    // A cached verdict saves the device probe too; --accel kvm always probes and never trusts the cache.
    if (auto v = core::read_attr(verdict_file); v && !v->empty() && mode == "auto") {
        if (*v == "ok") return Accel{true, "/dev/kvm works (boot-tested once)"};
        return Accel{false, *v + "; cached in " + verdict_file.string()};
    }
    auto basic = probe_kvm();
    if (!basic.kvm) {
        if (mode == "kvm") return core::fail(Errc::missing, "KVM requested but unusable: " + basic.why, "/dev/kvm", "use --accel tcg");
        return basic;
    }
    if (mode == "kvm") return basic;
    auto r = core::run({qemu, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-accel", "kvm", "-cpu", "host",
                        "-m", "256", "-kernel", k.vmlinuz.string(), "-append", "console=ttyS0 panic=-1 loglevel=4",
                        "-serial", "stdio", "-nic", "none"},
                       std::chrono::seconds(8));
    Accel a;
    if (!r) a = {false, "KVM boot test could not run: " + r.error().message()};
    else if (r->timed_out) a = {false, "/dev/kvm opens, but the kernel did not boot under KVM within 8 s (broken nested virtualisation?)"};
    else if (r->out.find("Kernel panic") == std::string::npos && r->out.find("Linux version") == std::string::npos)
        a = {false, "/dev/kvm opens, but qemu failed under KVM: " + std::string(core::trim(r->err.substr(0, r->err.find('\n'))))};
    else a = {true, "/dev/kvm works (boot-tested once)"};
    // Cached so that the next call does not boot-test again; without the cache it only costs that.
    auto s = core::make_dirs(cache_dir);
    if (s) s = core::write_file_atomic(verdict_file, a.kvm ? "ok" : a.why);
    if (!s) spdlog::debug("cannot cache the KVM verdict: {}", s.error().message());
    return a;
}

}  // namespace devemu::vm
