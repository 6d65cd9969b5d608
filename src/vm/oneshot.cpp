#include "vm/oneshot.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "vm/image.hpp"
#include "vm/kernel.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> busybox_applets()
{
    auto r = core::run({"/bin/busybox", "--list"}, std::chrono::seconds(5));
    return r && r->exit_code == 0 ? core::split(r->out, '\n') : std::vector<std::string>{};
}

// The guest's side of the options: what to load, share, copy in and run.
core::Result<RunSpec> run_spec(const OneShot& o, VmConfig& cfg)
{
    RunSpec run;
    run.argv = o.command;
    run.host_root = o.host_root;
    run.systemd = o.systemd;
    if (o.systemd && !o.host_root)
        return core::fail(core::Errc::invalid_input, "--systemd boots the host's systemd: it needs --host-root", "devemu vm run", "add --host-root");
    for (auto& f : o.forwards) {
        DEVEMU_TRY(pf, parse_forward(f));
        cfg.forwards.push_back(pf);
    }
    run.net = cfg.net = o.net || !cfg.forwards.empty();
    // Modules: the transports' are added by build_initrd; then configfs and what the user asked for.
    run.load.push_back("configfs");
    if (o.modules == "all") run.load.insert(run.load.end(), module_set().begin(), module_set().end());
    else if (!o.modules.empty())
        for (auto& m : core::split(o.modules, ',')) run.load.push_back(m);
    int i = 0;
    for (auto& s : o.shares) {
        auto colon = s.find(':');
        Share sh{fs::absolute(s.substr(0, colon)), colon == std::string::npos ? fs::absolute(s).string() : s.substr(colon + 1)};
        if (!fs::is_directory(sh.host)) return core::fail(core::Errc::invalid_input, "not a directory", sh.host.string(), "--share HOSTDIR[:GUESTDIR]");
        run.shares.push_back({"share" + std::to_string(i++), sh.guest});
        cfg.shares.push_back(sh);
    }
    run.env = o.env;
    if (run.host_root) {
        std::error_code ec;
        run.cwd = fs::current_path(ec).string();
    }
    for (auto& b : o.binaries) {
        auto p = core::which(b);
        if (p.empty()) return core::fail(core::Errc::missing, "no such binary", b, "give a path or a name on PATH");
        run.binaries.push_back(p);
    }
    if (run.host_root) return run;
    auto applets = busybox_applets();
    if (std::find(applets.begin(), applets.end(), o.command[0]) == applets.end()) {
        auto p = core::which(o.command[0]);
        if (p.empty())
            return core::fail(core::Errc::missing, "not a busybox applet and not found on the host's PATH", o.command[0], "use --host-root, or --bin PATH");
        run.binaries.push_back(p);
        run.argv[0] = p;
    }
    return run;
}

// --emit: what would boot, written out (the initramfs and qemu's arguments, one a line) instead.
core::Status emit(VmConfig cfg, const fs::path& dir, const fs::path& cache_dir)
{
    DEVEMU_CHECK(core::make_dirs(dir));
    std::error_code ec;
    fs::copy_file(cfg.initrd, dir / "initrd.cpio", fs::copy_options::overwrite_existing, ec);
    if (ec) return core::fail(core::Errc::io, "cannot copy the initramfs: " + ec.message(), (dir / "initrd.cpio").string());
    cfg.initrd = dir / "initrd.cpio";
    if (auto elf = uncompressed_kernel(cfg.kernel, cache_dir)) cfg.boot_image = *elf;
    std::string lines;
    for (auto& a : qemu_argv(cfg, false)) lines += a + "\n";
    return core::write_file_atomic(dir / "qemu.args", lines);
}

// The run's directory goes with it; after a failure or a timeout (or with -v), its console.log stays.
struct RunDir {
    fs::path dir;
    bool keep_console = false;
    ~RunDir()
    {
        std::error_code ec;
        if (!keep_console) {
            fs::remove_all(dir, ec);
            return;
        }
        for (auto& e : fs::directory_iterator(dir, ec))
            if (e.path().filename() != "console.log") fs::remove(e.path(), ec);
    }
};

}  // namespace

core::Result<PortForward> parse_forward(const std::string& s)
{
    auto parts = core::split(s, ':');
    auto port = [](const std::string& p) { return core::parse_number(p).value_or(0); };
    if (parts.size() != 2 || port(parts[0]) < 1 || port(parts[0]) > 65535 || port(parts[1]) < 1 || port(parts[1]) > 65535)
        return core::fail(core::Errc::invalid_input, "--fwd " + s + " is not HOSTPORT:GUESTPORT", "", "e.g. --fwd 3260:3260");
    return PortForward{static_cast<std::uint16_t>(port(parts[0])), static_cast<std::uint16_t>(port(parts[1]))};
}

core::Result<int> run_oneshot(const OneShot& o)
{
    if (o.command.empty()) return core::fail(core::Errc::invalid_input, "no command given", "", "devemu vm run -- sh -c 'uname -r'");
    VmConfig cfg;
    if (!o.mpath_disk.empty()) {   // a regular file the guest's two paths write through (never a device: it may hold data)
        std::error_code ec;
        const auto st = fs::status(o.mpath_disk, ec);
        if (ec || !fs::is_regular_file(st))
            return core::fail(core::Errc::invalid_input, "--mpath-disk takes an existing regular file", o.mpath_disk.string(),
                              "truncate -s 256M disk.img, then --mpath-disk disk.img");
        if (fs::file_size(o.mpath_disk, ec) < (1u << 20))
            return core::fail(core::Errc::invalid_input, "--mpath-disk: the file is smaller than 1 MiB", o.mpath_disk.string(), "truncate -s 256M FILE");
        cfg.mpath_disk = fs::absolute(o.mpath_disk);
    }
    DEVEMU_TRY(kernel, find_kernel(o.kernel, o.cache_dir));
    cfg.kernel = kernel;
    cfg.host_root = o.host_root;
    cfg.memory_mb = o.memory_mb;
    cfg.cpus = o.cpus;
    cfg.timeout = std::chrono::seconds(o.timeout_s);
    cfg.boot_timeout = std::chrono::seconds(o.boot_timeout_s);
    cfg.console = o.console;
    cfg.accel = o.accel;
    cfg.extra_append = o.append;
    cfg.cache_dir = o.cache_dir;
    DEVEMU_TRY(run, run_spec(o, cfg));
    DEVEMU_TRY(base, build_base({kernel}, o.cache_dir));
    spdlog::debug("vm: base image {} ({}, {} bytes, {} ms)", base.path.string(), base.cached ? "cached" : "built", base.bytes, base.build_time.count());
    cfg.run_dir = o.state_dir / "vm" / ("run-" + std::to_string(::getpid()));
    DEVEMU_CHECK(core::make_dirs(cfg.run_dir, 0700));
    RunDir run_dir{cfg.run_dir};
    cfg.initrd = cfg.run_dir / "initrd.cpio";
    DEVEMU_CHECK(build_initrd(base, kernel, run, cfg.initrd));
    if (!o.emit.empty()) {
        DEVEMU_CHECK(emit(cfg, o.emit, o.cache_dir));
        return 0;
    }
    auto res = run_vm(cfg);
    run_dir.keep_console = !res || res->exit_code == 124 || o.keep_console_log;
    if (!res) return std::unexpected(res.error());
    return res->exit_code;
}

}  // namespace devemu::vm
