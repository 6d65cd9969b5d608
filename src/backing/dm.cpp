#include "backing/dm.hpp"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::backing {

using core::Errc;
namespace fs = std::filesystem;

std::string dm_table(const fault::Spec& s, const std::string& dev, std::uint64_t sectors, std::uint32_t block_size)
{
    const std::uint64_t per = block_size / 512;
    const std::uint64_t from = std::min(sectors, s.first * per);
    const std::uint64_t to = s.last == UINT64_MAX ? sectors : std::min(sectors, (s.last + 1) * per);
    std::string t;
    if (from > 0) t += fmt::format("0 {} linear {} 0\n", from, dev);
    std::string target = fault::dm_target(s, dev, from);
    // dm-flakey reads back with its feature count even when it is 0: write it so, and a table compares as it reads
    if (s.type == fault::Type::flakey && !s.drop_writes) target += " 0";
    t += fmt::format("{} {} {}\n", from, to - from, target);
    if (to < sectors) t += fmt::format("{} {} linear {} {}\n", to, sectors - to, dev, to);
    return t;
}

std::optional<DmDev> find_dm(const std::string& name)
{
    std::error_code ec;
    for (auto& e : fs::directory_iterator("/sys/block", ec)) {
        const auto n = e.path().filename().string();
        if (!n.starts_with("dm-")) continue;
        auto got = core::read_attr(e.path() / "dm/name");
        if (!got || core::trim(*got) != name) continue;
        auto dev = core::read_attr(e.path() / "dev");
        if (!dev) continue;
        return DmDev{std::string(core::trim(*dev)), "/dev/" + n};
    }
    return std::nullopt;
}

namespace {

std::string majmin_of(const std::string& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return fmt::format("{}:{}", major(st.st_rdev), minor(st.st_rdev));
}

core::Result<std::string> dmsetup(const std::vector<std::string>& args, std::string_view input = {})
{
    std::vector<std::string> argv{"dmsetup"};
    argv.insert(argv.end(), args.begin(), args.end());
    DEVEMU_TRY(r, core::run(argv, std::chrono::seconds(30), input));
    if (r.exit_code != 0)
        return core::fail(Errc::kernel, "dmsetup " + args[0] + ": " + std::string(core::trim(r.err.empty() ? r.out : r.err)), args.size() > 1 ? args[1] : "dmsetup",
                          "is dm-delay/dm-flakey in this kernel (modprobe dm-delay dm-flakey)? see dmesg");
    return r.out;
}

// A loop device over the file, autoclear: it detaches when its last holder (the dm device) lets go. The fd keeps it
// until then.
core::Result<std::pair<std::string, core::UniqueFd>> loop_over(const std::string& file)
{
    core::UniqueFd backing(::open(file.c_str(), O_RDWR | O_CLOEXEC));
    if (!backing) return core::fail_errno("cannot open", file);
    core::UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
    if (!ctl) return core::fail_errno("cannot open", "/dev/loop-control", "modprobe loop");
    for (int attempt = 0; attempt < 10; ++attempt) {
        const int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
        if (n < 0) return core::fail_errno("no free loop device", "/dev/loop-control");
        const std::string path = fmt::format("/dev/loop{}", n);
        core::UniqueFd loop(::open(path.c_str(), O_RDWR | O_CLOEXEC));
        if (!loop) return core::fail_errno("cannot open", path);
        loop_config cfg{};
        cfg.fd = static_cast<std::uint32_t>(backing.get());
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (::ioctl(loop.get(), LOOP_CONFIGURE, &cfg) == 0) return std::pair{path, std::move(loop)};
        if (errno != EBUSY) return core::fail_errno("cannot attach the file to", path);
    }
    return core::fail(Errc::busy, "every free loop device was taken meanwhile", file, "try again");
}

std::string stack_id(const profile::Backstore& b, const Backing& base)
{
    if (base.kind == Kind::block) return fs::path(base.path).filename().string();
    std::error_code ec;
    const auto canon = fs::weakly_canonical(b.path, ec).string();
    std::uint64_t h = 1469598103934665603ULL;   // FNV-1a
    for (unsigned char c : canon) h = (h ^ c) * 1099511628211ULL;
    return fmt::format("f{:012x}", h & 0xffffffffffffULL);
}

// The device under layer 0 of an existing stack (its first target's device), for a file: the loop device over it.
std::string bottom_of(const std::string& layer0)
{
    auto t = dmsetup({"table", layer0});
    if (!t) return {};
    auto words = core::split(std::string(core::trim(*t)), ' ');
    return words.size() > 3 ? words[3] : std::string{};
}

}  // namespace

core::Result<Backing> stack_faults(const profile::Backstore& b, Backing base, core::Transaction* tx)
{
    if (b.faults.empty() || b.type == profile::BackstoreType::user) return base;
    const std::string prefix = "devemu-" + stack_id(b, base);
    const std::string top = fmt::format("{}-{}", prefix, b.faults.size() - 1);
    const std::uint64_t sectors = base.size / 512;
    if (!tx) {
        base.path = "/dev/mapper/" + top + (find_dm(top) ? "" : "(new)");
        return base;
    }
    // `up` again: the same stack is kept; another one is not changed under the LUN.
    if (auto have = find_dm(top)) {
        std::string dev = base.kind == Kind::block ? majmin_of(base.path) : bottom_of(prefix + "-0");
        bool same = !dev.empty();
        for (std::size_t i = 0; same && i < b.faults.size(); ++i) {
            auto live = dmsetup({"table", fmt::format("{}-{}", prefix, i)});
            same = live && core::trim(*live) == core::trim(dm_table(b.faults[i], dev, sectors, b.block_size));
            if (auto d = find_dm(fmt::format("{}-{}", prefix, i))) dev = d->majmin;
        }
        if (!same)
            return core::fail(Errc::invalid_input, "the faults under backstore " + b.name + " differ from the dm devices an earlier up made (" + top + ")",
                              b.loc.str(), "devemu down the unit, then up: dm tables are not changed under a live LUN");
        base.path = have->node;
        return base;
    }
    if (core::which("dmsetup").empty()) return core::fail(Errc::missing, "dmsetup is not installed", b.loc.str(), "apt-get install dmsetup");
    std::vector<core::ModuleWant> mods{{"dm_mod", "", true}};
    if (base.kind == Kind::file) mods.push_back({"loop", "", true});
    for (auto& f : b.faults) mods.push_back({f.type == fault::Type::delay ? "dm_delay" : "dm_flakey", "", true});
    DEVEMU_CHECK(core::ensure_modules(mods));
    std::optional<core::UniqueFd> hold;   // the loop device's only opener until layer 0 holds it
    std::string dev;
    if (base.kind == Kind::file) {
        DEVEMU_TRY(loop, loop_over(base.path));
        dev = majmin_of(loop.first);
        hold = std::move(loop.second);
    } else {
        dev = majmin_of(base.path);
    }
    if (dev.empty()) return core::fail(Errc::missing, "cannot stat the backing", base.path, "");
    std::string node;
    for (std::size_t i = 0; i < b.faults.size(); ++i) {
        const auto name = fmt::format("{}-{}", prefix, i);
        DEVEMU_CHECK(tx->record(core::UndoRecord::named_op("dm_remove", "/dev/mapper/" + name, name)));
        DEVEMU_CHECK(dmsetup({"create", name, "--noudevsync"}, dm_table(b.faults[i], dev, sectors, b.block_size)));
        std::optional<DmDev> made;
        for (int w = 0; w < 200 && !(made = find_dm(name)); ++w) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (!made) return core::fail(Errc::kernel, "dmsetup made no device", name, "see dmesg");
        for (int w = 0; w < 200 && ::access(made->node.c_str(), F_OK) != 0; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        dev = made->majmin;
        node = made->node;
    }
    base.path = node;
    return base;
}

void register_dm_undo()
{
    core::register_undo("dm_remove", [](const core::UndoRecord& r) -> core::Status {
        if (!find_dm(r.value)) return {};
        // LIO and f_mass_storage close a device asynchronously: --retry waits out a brief EBUSY.
        auto out = dmsetup({"remove", "--noudevsync", "--retry", r.value});
        if (!out && find_dm(r.value)) return std::unexpected(out.error());
        return {};
    });
}

}  // namespace devemu::backing
