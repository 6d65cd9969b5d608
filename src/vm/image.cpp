#include "vm/image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <optional>
#include <set>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "vm/cpio.hpp"
#include "vm/elf.hpp"
#include "vm/runner.hpp"

namespace devemu::vm {

using core::Errc;

const std::vector<std::string>& module_set()
{
    static const std::vector<std::string> set = {
        // transport and host root
        "virtio_pci", "virtio_net", "virtio_blk", "9pnet_virtio", "9p", "overlay",
        // configfs, LIO
        "configfs", "target_core_mod", "target_core_file", "target_core_iblock", "target_core_user", "tcm_loop",
        "iscsi_target_mod", "crc32c",
        // USB gadget on dummy_hcd, and the host side that enumerates it
        "dummy_hcd", "libcomposite", "usb_f_mass_storage", "usb_f_fs", "usb_f_acm", "usb-storage", "sd_mod", "sg", "cdc_acm",
        // block devices
        "zram", "loop", "rbd",
        // a filesystem for tests and benchmarks that need one (tmpfs has no non-blocking buffered I/O)
        "ext4"};
    return set;
}

fs::path default_init() { return core::companion("devemu-init"); }

std::string boot_module_options(const std::string& name)
{
    // dummy_hcd loaded at boot (--modules all, or by name) with its default num=1 leaves one UDC, and a second
    // gadget or a `bench --paths usb,usb-user` then finds every UDC busy: load it as `devemu up` does.
    if (name == "dummy_hcd") return fmt::format("num={}", core::kDummyHcdNum);
    return {};
}

namespace {

std::string stat_key(const fs::path& p)
{
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return "missing";
    return fmt::format("{}:{}:{}", p.string(), st.st_size, st.st_mtim.tv_sec);
}

// Copies the module tree subset into a staging dir and lets depmod write its indexes (text and .bin: busybox
// modprobe reads modules.dep, kmod's modprobe and libkmod read the .bin files).
core::Status stage_modules(const Kernel& k, const std::vector<core::ModuleInfo>& mods, const fs::path& stage)
{
    const auto src = k.modules_dir();
    const auto dst = stage / "lib/modules" / k.version;
    for (auto& m : mods) {
        auto rel = fs::path(m.path).lexically_relative(src);
        std::error_code ec;
        fs::create_directories((dst / rel).parent_path(), ec);
        fs::create_symlink(m.path, dst / rel, ec);   // depmod reads through links; the cpio reads the originals
        if (ec) return core::fail(Errc::io, "cannot stage module: " + ec.message(), m.path);
    }
    for (auto f : {"modules.order", "modules.builtin", "modules.builtin.modinfo"}) {
        std::error_code ec;
        fs::copy_file(src / f, dst / f, fs::copy_options::overwrite_existing, ec);
    }
    auto depmod = core::which("depmod");
    if (depmod.empty()) depmod = "/sbin/depmod";
    auto r = core::run({depmod, "-b", stage.string(), k.version}, std::chrono::seconds(60));
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0)
        return core::fail(Errc::missing, "depmod failed: " + std::string(core::trim(r->err)), stage.string(), "apt-get install kmod");
    return {};
}

// Adds a staged tree; symlinks are added as the files they point to.
core::Status add_tree(CpioWriter& w, const fs::path& root)
{
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) return core::fail(Errc::io, ec.message(), root.string());
        auto rel = it->path().lexically_relative(root).string();
        if (it->is_directory()) w.add_dir(rel);
        else DEVEMU_CHECK(w.add_host_file(rel, it->is_symlink() ? fs::read_symlink(it->path()) : it->path(), 0644));
    }
    return {};
}

// The guest's /sbin/modprobe (what the kernel's request_module runs too). Until the command starts it answers "no"
// at once, as the base archive's modprobe did for what it lacked: the kernel's own requests during boot
// (crypto-hmac(sha256), …) would otherwise load modules no one asked for, and each request cost a second exec.
// Afterwards its first call mounts the kernel's whole module tree (9p, see build_initrd) unless the run mounted it
// at boot, and busybox's modprobe then finds any module: a run that loads none pays nothing for the tree.
constexpr const char* kModprobe = R"SH(#!/bin/sh
[ -e /devemu/command-started ] || exit 1
d=/lib/modules/$(uname -r)
if ! grep -q "^MODTAG $d " /proc/mounts; then
    /bin/busybox modprobe -a virtio_pci 9pnet_virtio 9p 2>/dev/null
    /bin/busybox mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=262144 MODTAG "$d" 2>/dev/null
fi
exec /bin/busybox modprobe "$@"
)SH";

core::Status add_busybox(CpioWriter& w, const fs::path& busybox)
{
    DEVEMU_CHECK(w.add_host_file("bin/busybox", busybox, 0755));
    std::string modprobe = kModprobe;
    for (std::size_t at; (at = modprobe.find("MODTAG")) != std::string::npos;) modprobe.replace(at, 6, kModuleTreeTag);
    w.add_file("sbin/modprobe", modprobe, 0755);
    auto r = core::run({busybox.string(), "--list-full"}, std::chrono::seconds(10));
    if (!r || r->exit_code != 0)
        return core::fail(Errc::missing, "busybox --list-full failed", busybox.string(), "apt-get install busybox-static");
    for (auto& line : core::split(r->out, '\n')) {
        if (line.empty() || line == "bin/busybox" || line == "sbin/modprobe") continue;
        auto depth = std::count(line.begin(), line.end(), '/');
        std::string up;
        for (long i = 0; i < depth; ++i) up += "../";
        w.add_symlink(line, up + "bin/busybox");
    }
    return {};
}

}  // namespace

namespace {

// zstd: 11 MB -> ~3.8 MB, and under TCG the guest decompresses it as fast as it copies the raw archive. The per-run
// archive is appended uncompressed; the kernel takes mixed segments. Without zstd (or if it fails): raw.
std::string compressed(std::string raw)
{
    auto zstd = core::which("zstd");
    if (zstd.empty()) return raw;
    auto r = core::run({zstd, "-q", "-1", "-T2", "-c"}, std::chrono::seconds(60), raw);
    if (!r || r->exit_code != 0 || r->out.empty()) return raw;
    // The kernel skips zero bytes between segments but wants the next cpio header 4-byte aligned.
    r->out.resize((r->out.size() + 511) / 512 * 512, '\0');
    return std::move(r->out);
}

}  // namespace

core::Result<BaseImage> build_base(const BaseSpec& spec, const fs::path& cache_dir, bool force)
{
    const auto t0 = std::chrono::steady_clock::now();
    const auto init = spec.init.empty() ? default_init() : spec.init;
    if (!fs::exists(init)) return core::fail(Errc::missing, "devemu-init not found", init.string(), "rebuild devemu");
    if (!fs::exists(spec.busybox)) return core::fail(Errc::missing, "busybox not found", spec.busybox.string(), "apt-get install busybox-static");

    core::Hasher h;
    h.add("devemu-base-v5");
    h.add(kModprobe);
    h.add(core::which("zstd"));
    h.add(spec.kernel.version);
    h.add(stat_key(spec.kernel.vmlinuz));
    h.add(stat_key(spec.kernel.modules_dir() / "modules.dep.bin"));
    for (auto& m : spec.modules) h.add(m);
    h.add(stat_key(spec.busybox));
    DEVEMU_CHECK(h.add_file(init));
    const auto dir = cache_dir / "images";
    const auto path = dir / fmt::format("base-{}-{}.cpio", spec.kernel.version, h.hex());
    BaseImage img;
    img.path = path;
    std::error_code ec;
    if (!force && fs::exists(path, ec)) {
        img.cached = true;
        img.bytes = fs::file_size(path, ec);
        img.build_time = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        return img;
    }

    auto lap = [t = std::chrono::steady_clock::now()](const char* what) mutable {
        auto now = std::chrono::steady_clock::now();
        spdlog::trace("image: {} {} ms", what, std::chrono::duration_cast<std::chrono::microseconds>(now - t).count() / 1000.0);
        t = now;
    };
    DEVEMU_TRY(kmod, core::Kmod::open(spec.kernel.modules_dir()));
    DEVEMU_TRY(mods, kmod.closure(spec.modules));
    lap("closure");
    img.modules = mods.size();
    char tmpl[] = "/tmp/devemu-stage-XXXXXX";
    if (!::mkdtemp(tmpl)) return core::fail_errno("mkdtemp", tmpl);
    const fs::path stage = tmpl;
    struct Cleanup {
        fs::path p;
        ~Cleanup() { std::error_code e; fs::remove_all(p, e); }
    } cleanup{stage};
    DEVEMU_CHECK(stage_modules(spec.kernel, mods, stage));
    lap("stage+depmod");

    CpioWriter w;
    for (auto d : {"proc", "sys", "dev", "tmp", "run", "root", "etc", "mnt/host", "mnt/rw", "newroot", "devemu"}) w.add_dir(d);
    w.add_char_device("dev/console", 5, 1);
    DEVEMU_CHECK(w.add_host_file("init", init, 0755));
    DEVEMU_CHECK(add_busybox(w, spec.busybox));
    w.add_file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    w.add_file("etc/group", "root:x:0:\n");
    DEVEMU_CHECK(add_tree(w, stage));
    lap("cpio");
    DEVEMU_CHECK(core::make_dirs(dir));
    const std::string bytes = compressed(w.finish());
    lap("zstd");
    DEVEMU_CHECK(core::write_file_atomic(path, bytes));
    lap("write");
    // Old bases of the same kernel are dead weight once a new one exists.
    for (auto& e : fs::directory_iterator(dir, ec)) {
        auto n = e.path().filename().string();
        if (e.path() != path && n.starts_with("base-" + spec.kernel.version + "-")) fs::remove(e.path(), ec);
    }
    img.bytes = fs::file_size(path, ec);
    img.build_time = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    spdlog::debug("built {} ({} modules, {} bytes) in {} ms", path.string(), img.modules, img.bytes, img.build_time.count());
    return img;
}

core::Status build_initrd(const BaseImage& base, const Kernel& kernel, const RunSpec& run, const fs::path& out)
{
    CpioWriter w;
    std::string conf;
    // The transports the run uses come first: networking (virtio_net), the host root and shares (9p over virtio),
    // the host root's overlay. Then what the run asks for; the closure loads each module once.
    // The kernel's whole module tree arrives over 9p (runner.cpp). It is mounted at boot when the run needs it then:
    // with the host root (kmod's modprobe there reads it) or for a module that is not in the base archive; its 9p
    // transport is loaded from the base first, the mount follows ("modtree"), then every other module, from the
    // same paths. Otherwise the guest's /sbin/modprobe mounts it at its first call, and boots pay nothing for it.
    std::vector<std::string> load;
    const bool nine_p = run.host_root || !run.shares.empty();
    if (run.net || !run.eth1_addr.empty()) load.push_back("virtio_net");
    if (run.host_root) load.push_back("overlay");
    load.insert(load.end(), run.load.begin(), run.load.end());
    DEVEMU_TRY(kmod, core::Kmod::open(kernel.modules_dir()));
    DEVEMU_TRY(wanted, kmod.closure(load));
    bool tree_now = run.host_root;
    if (!tree_now && !wanted.empty()) {
        DEVEMU_TRY(base_mods, kmod.closure(module_set()));
        std::set<std::string> in_base;
        for (auto& m : base_mods) in_base.insert(m.path);
        for (auto& m : wanted) tree_now = tree_now || !in_base.count(m.path);
    }
    std::set<std::string> listed;
    auto add_modules = [&](const std::vector<core::ModuleInfo>& mods) {
        for (auto& m : mods)
            if (listed.insert(m.path).second) {
                conf += "module /" + (fs::path("lib/modules") / kernel.version / fs::path(m.path).lexically_relative(kernel.modules_dir())).string();
                if (auto o = boot_module_options(m.name); !o.empty()) conf += " " + o;
                conf += "\n";
            }
    };
    if (tree_now || nine_p || run.net || !run.eth1_addr.empty()) {
        std::vector<std::string> transport = {"virtio_pci"};
        if (tree_now || nine_p) transport.insert(transport.end(), {"9pnet_virtio", "9p"});
        DEVEMU_TRY(first, kmod.closure(transport));
        add_modules(first);
    }
    if (tree_now) conf += std::string("modtree ") + kModuleTreeTag + "\n";
    add_modules(wanted);
    if (run.net) conf += "net 1\n";
    if (!run.eth1_addr.empty()) conf += "eth1 " + run.eth1_addr + "\n";
    if (run.host_root) conf += "hostroot 1\n";
    if (run.systemd) conf += "systemd 1\n";
    for (auto& [tag, dir] : run.shares) conf += "share " + tag + " " + dir + "\n";
    if (!run.cwd.empty()) conf += "cwd " + run.cwd + "\n";
    for (auto& e : run.env) conf += "env " + e + "\n";
    if (run.stay) conf += "stay 1\n";
    if (run.stay && run.exec_ports > 0) conf += fmt::format("execports {}\n", run.exec_ports);
    w.add_file("devemu/run.conf", conf);
    auto nul_joined = [](const std::vector<std::string>& v) {
        std::string joined;
        for (auto& a : v) joined += a + '\0';
        return joined;
    };
    w.add_file("devemu/argv", nul_joined(run.argv));
    if (!run.down_argv.empty()) w.add_file("devemu/down-argv", nul_joined(run.down_argv));
    for (auto& f : run.files) DEVEMU_CHECK(w.add_host_file(fs::absolute(f).string(), f));
    for (auto& [path, data] : run.secret_files) w.add_file(path.starts_with('/') ? path.substr(1) : path, data, 0600);
    for (auto& bin : run.binaries) {
        DEVEMU_TRY(files, elf_closure(bin));
        for (auto& f : files) {
            if (!run.runtime_images) {
                DEVEMU_CHECK(w.add_host_file(f, f));
                continue;
            }
            DEVEMU_TRY(image, elf_runtime_image(f));   // as it runs: a RelWithDebInfo devemu's debug info (171 of 176 MB) stays here
            w.add_file(f, image.data, image.mode);
        }
    }
    // A throw-away file read once by qemu: no fsync (that is for state that must survive a crash).
    DEVEMU_TRY(base_bytes, core::read_file(base.path));
    core::UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return core::fail_errno("cannot create", out.string());
    const std::string* parts[] = {&base_bytes, &w.finish()};
    for (const std::string* part : parts)
        if (::write(fd.get(), part->data(), part->size()) != static_cast<ssize_t>(part->size())) return core::fail_errno("cannot write", out.string());
    return {};
}

}  // namespace devemu::vm
