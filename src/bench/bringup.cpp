#include "bench/bringup.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <thread>

#include "backing/backing.hpp"
#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "core/unit_kind.hpp"
#include "lio/initiator.hpp"
#include "profile/profile.hpp"
#include "uring/bench.hpp"

namespace devemu::bench {

using core::Errc;
using nlohmann::json;
namespace fs = std::filesystem;

Teardown::~Teardown()
{
    if (!sd) return;
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        auto s = core::down_unit(*sd, *it, sd->load_scalars(*it).value_or(json::object()));
        if (!s) spdlog::error("bench --paths: could not remove {}: {} (retry: DEVEMU_STATE_DIR={} devemu down --all)", *it, s.error().what,
                              sd->root().string());
    }
}

core::Status interrupted_status()
{
    return uring::interrupted() ? core::fail(Errc::io, "interrupted", "devemu bench --paths", "everything it made is removed") : core::Status{};
}

namespace {

constexpr std::uint16_t kIscsiPort = 3260, kTgtPort = 3261;
constexpr int kTgtControlPort = 29;   // tgtd's control socket /var/run/tgtd/socket.29: not a system tgtd's (0)
const char* kIqnLio = "iqn.2026-11.org.devemu:bench-iscsi";
const char* kIqnLioUser = "iqn.2026-11.org.devemu:bench-iscsi-user";
const char* kIqnTgtRdwr = "iqn.2026-11.org.devemu:bench-tgt-rdwr";
const char* kIqnTgtAio = "iqn.2026-11.org.devemu:bench-tgt-aio";

std::string profile_text(const std::vector<std::string>& paths, const std::string& dev)
{
    std::string t;
    auto backstore = [&](const char* name, const char* type, const char* extra = "") {
        t += fmt::format("[[backstore]]\nname = \"{}\"\ntype = \"{}\"\npath = \"{}\"\n{}\n", name, type, dev, extra);
    };
    auto target = [&](const char* name, const char* fabric, const char* bs, const std::string& extra = "") {
        t += fmt::format("[[target]]\nname = \"{}\"\nfabric = \"{}\"\n{}\n[[target.lun]]\nid = 0\nbackstore = \"{}\"\n\n", name, fabric, extra, bs);
    };
    auto gadget = [&](const char* name, unsigned pid, const char* bs) {
        t += fmt::format("[[gadget]]\nname = \"{}\"\nproduct_id = {:#06x}\n[[gadget.function]]\ntype = \"mass_storage\"\nname = \"ms\"\n"
                         "[[gadget.function.lun]]\nbackstore = \"{}\"\n\n", name, pid, bs);
    };
    if (uses(paths, {"fileio"})) backstore("bp_fileio", "fileio"), target("bench-fileio", "loopback", "bp_fileio");
    if (uses(paths, {"iblock"})) backstore("bp_block", "block"), target("bench-iblock", "loopback", "bp_block");
    if (uses(paths, {"user"})) backstore("bp_user", "user", "handler = \"uring\"\n"), target("bench-user", "loopback", "bp_user");
    if (uses(paths, {"iscsi"}))
        backstore("bp_iscsi", "fileio"),
            target("bench-iscsi", "iscsi", "bp_iscsi", fmt::format("iqn = \"{}\"\nportal = \"127.0.0.1:{}\"\n", kIqnLio, kIscsiPort));
    if (uses(paths, {"iscsi-user"}))
        backstore("bp_iscsiu", "user", "handler = \"uring\"\n"),
            target("bench-iscsi-user", "iscsi", "bp_iscsiu", fmt::format("iqn = \"{}\"\nportal = \"127.0.0.1:{}\"\n", kIqnLioUser, kIscsiPort));
    if (uses(paths, {"usb"})) backstore("bp_usb", "fileio"), gadget("bench-usb", 0x0130, "bp_usb");
    if (uses(paths, {"usb-user"})) backstore("bp_usbu", "user", "handler = \"uring\"\n"), gadget("bench-usb-user", 0x0131, "bp_usbu");
    return t;
}

core::Status tgtadm(const std::vector<std::string>& args)
{
    std::vector<std::string> argv{"tgtadm", "-C", std::to_string(kTgtControlPort), "--lld", "iscsi"};
    argv.insert(argv.end(), args.begin(), args.end());
    DEVEMU_TRY(r, core::run(argv, std::chrono::seconds(30)));
    if (r.exit_code != 0) return core::fail(Errc::kernel, "tgtadm failed: " + std::string(core::trim(r.err + r.out)), fmt::format("{}", fmt::join(argv, " ")));
    return {};
}

// tgtd in its own process group, journaled (by its command line) before it starts; two targets on the backing.
core::Status tgt_up(const core::StateDir& sd, Teardown& td, const std::vector<std::string>& paths, const std::string& dev)
{
    core::Transaction tx(sd.journal("bench-tgtd"));
    td.order.push_back("bench-tgtd");
    const std::string portal = fmt::format("portal=127.0.0.1:{}", kTgtPort);
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "", portal, 0, 0, ""}));
    const auto log = sd.root() / "tgtd.log";
    auto child = core::Child::spawn({"tgtd", "-f", "-C", std::to_string(kTgtControlPort), "--iscsi", portal}, core::SpawnOptions::daemon(log));
    if (!child) return std::unexpected(child.error());
    child->detach();
    tx.commit();
    // Ready when its control socket answers.
    for (int i = 0;; ++i) {
        if (tgtadm({"--op", "show", "--mode", "sys"})) break;
        if (i == 100) return core::fail(Errc::timeout, "tgtd did not answer within 10 s", log.string(), "see its log");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    int tid = 0;
    for (auto [name, iqn, bstype] : {std::tuple{"tgt-rdwr", kIqnTgtRdwr, "rdwr"}, std::tuple{"tgt-aio", kIqnTgtAio, "aio"}}) {
        if (!uses(paths, {name})) continue;
        const auto t = std::to_string(++tid);
        DEVEMU_CHECK(tgtadm({"--op", "new", "--mode", "target", "--tid", t, "-T", iqn}));
        DEVEMU_CHECK(tgtadm({"--op", "new", "--mode", "logicalunit", "--tid", t, "--lun", "1", "-b", dev, "--bstype", bstype}));
        DEVEMU_CHECK(tgtadm({"--op", "bind", "--mode", "target", "--tid", t, "-I", "127.0.0.1"}));
    }
    return {};
}

// This kernel's initiator logged in to one target (a unit of its own: its journal logs out).
core::Result<std::string> login(const core::StateDir& sd, Teardown& td, const std::string& unit, const std::string& iqn, std::uint16_t port,
                                std::uint32_t lun)
{
    lio::initiator::Want w{unit, iqn, {{"127.0.0.1", port, 1}}, {lun}, "", "", "", "", "", {}};
    core::Transaction tx(sd.journal(unit));
    td.order.push_back(unit);
    DEVEMU_TRY(disks, lio::initiator::up(w, tx));
    tx.commit();
    return disks.at(0).at(lun);
}

}  // namespace

core::Result<std::string> make_backing(const core::StateDir& sd, Teardown& td, bool ext4, std::uint64_t size)
{
    core::progress("bench --paths: making the zram backing");
    if (!fs::exists("/sys/class/zram-control")) {
        DEVEMU_TRY(km, core::Kmod::open());
        DEVEMU_CHECK(km.load("zram"));
    }
    profile::Backstore b;
    // ext4:SIZE: the file on ext4 on a zram device a little larger (the filesystem's own blocks).
    b.name = "bench_backing", b.type = profile::BackstoreType::zram, b.size = ext4 ? size + size / 16 + (64u << 20) : size;
    core::Transaction tx(sd.journal("bench-backing"));
    td.order.push_back("bench-backing");
    DEVEMU_TRY(bk, backing::resolve_backing(b, {}, &tx, std::nullopt, false));
    std::string dev = bk.path;
    if (ext4) {
        const auto mnt = sd.root() / "mnt";
        DEVEMU_TRY(mk, core::run({"mkfs.ext4", "-q", "-F", dev}, std::chrono::seconds(120)));
        if (mk.exit_code != 0) return core::fail(Errc::kernel, "mkfs.ext4 failed: " + std::string(core::trim(mk.err)), dev);
        fs::create_directories(mnt);
        DEVEMU_CHECK(tx.record({core::UndoOp::umount, mnt.string(), "", 0, 0, ""}));
        DEVEMU_TRY(mo, core::run({"mount", "-t", "ext4", dev, mnt.string()}, std::chrono::seconds(60)));
        if (mo.exit_code != 0) return core::fail(Errc::kernel, "cannot mount the ext4 backing: " + std::string(core::trim(mo.err)), mnt.string());
        dev = (mnt / "disk.img").string();
    }
    tx.commit();
    core::progress(fmt::format("bench --paths: filling {} ({}) with random data", dev, core::format_size(size)));
    // The file through the page cache, whose pages stay there (clean after the fsync): the regime the table states.
    DEVEMU_CHECK(uring::fill_device(dev, size, /*cached=*/ext4));
    return dev;
}

core::Result<std::map<std::string, std::string>> bring_up(const core::StateDir& sd, Teardown& td, const std::vector<std::string>& paths, const std::string& dev)
{
    std::map<std::string, std::string> devices{{"raw", dev}};
    // The LIO and USB paths: one profile through the unit kinds, as `devemu up` does it.
    const std::string text = profile_text(paths, dev);
    if (!text.empty()) {
        core::progress("bench --paths: bringing up the LIO and USB paths");
        const auto file = sd.root() / "paths.toml";
        DEVEMU_CHECK(core::write_file_atomic(file, text));
        DEVEMU_TRY(prof, profile::load(file));
        core::UpRequest req;
        req.force = true;   // the backing is the run's own, or the user's, already checked above
        req.timeout = std::chrono::seconds(60);
        for (const auto* kind : core::all_kinds()) {
            if (!kind->up) continue;
            DEVEMU_TRY(outs, kind->up(prof, sd, req));
            for (auto& o : outs) {
                td.order.push_back(o.unit);
                if (!o.record) return std::unexpected(o.record.error());
                const json rec = *o.record;
                const json d = kind->describe ? kind->describe(rec, core::DescribeFor::ls, false).json : json::object();
                std::string disk;
                if (d.contains("luns") && d["luns"].is_array() && !d["luns"].empty()) disk = d["luns"][0].value("disk", "");
                if (d.contains("access") && d["access"].contains("devices") && d["access"]["devices"].contains("0")) disk = d["access"]["devices"]["0"];
                devices[o.unit.substr(6)] = disk;   // "bench-fileio" -> "fileio"
            }
        }
        DEVEMU_CHECK(interrupted_status());
    }
    if (uses(paths, {"iscsi"})) {
        core::progress("bench --paths: logging in to the LIO iSCSI target");
        DEVEMU_TRY(d, login(sd, td, "bench-login-iscsi", kIqnLio, kIscsiPort, 0));
        devices["iscsi"] = d;
    }
    if (uses(paths, {"iscsi-user"})) {
        core::progress("bench --paths: logging in to the LIO iSCSI target of the user backstore");
        DEVEMU_TRY(d, login(sd, td, "bench-login-iscsi-user", kIqnLioUser, kIscsiPort, 0));
        devices["iscsi-user"] = d;
    }
    if (uses(paths, {"tgt-rdwr", "tgt-aio"})) {
        core::progress("bench --paths: starting tgtd and logging in");
        DEVEMU_CHECK(tgt_up(sd, td, paths, dev));
        if (uses(paths, {"tgt-rdwr"})) {
            DEVEMU_TRY(d, login(sd, td, "bench-login-tgt-rdwr", kIqnTgtRdwr, kTgtPort, 1));
            devices["tgt-rdwr"] = d;
        }
        if (uses(paths, {"tgt-aio"})) {
            DEVEMU_TRY(d, login(sd, td, "bench-login-tgt-aio", kIqnTgtAio, kTgtPort, 1));
            devices["tgt-aio"] = d;
        }
    }
    DEVEMU_CHECK(interrupted_status());
    for (auto& p : paths)
        if (devices[p].empty()) return core::fail(Errc::timeout, "path " + p + " came up without a disk", sd.root().string(), "see dmesg");
    return devices;
}

}  // namespace devemu::bench
