#include "vm/host_disks.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "backing/backing.hpp"
#include "backing/blockdev.hpp"
#include "core/fd.hpp"
#include "core/unix_socket.hpp"
#include "vm/qemu_paths.hpp"
#include "vm/record.hpp"
#include "core/fs.hpp"
#include "core/text.hpp"

namespace devemu::vm {

namespace fs = std::filesystem;

namespace {

bool on_host_path(const profile::Backstore& b)
{
    switch (b.type) {
    case profile::BackstoreType::fileio:
    case profile::BackstoreType::block: return !b.path.empty();
    case profile::BackstoreType::user: return !b.path.empty() && !b.path.starts_with("zram:");
    default: return false;
    }
}

// qemu's option syntax: a comma in a value is written twice.
std::string qemu_escape(const std::string& s)
{
    std::string out;
    for (char c : s) out += c == ',' ? std::string(",,") : std::string(1, c);
    return out;
}

// The monitor of a running `up --vm` VM (run_dir/qmp.sock); the caller holds run_dir/qmp.lock.
core::Result<Qmp> open_monitor(const fs::path& dir, const std::string& unit)
{
    std::error_code ec;
    if (!fs::exists(dir / "qmp.sock", ec))
        return core::fail(core::Errc::missing, "this VM was started by an older devemu (it has no monitor socket)", unit,
                          "devemu down " + unit + ", then up --vm again");
    DEVEMU_TRY(conn, core::connect_unix(dir / "qmp.sock", "is the VM still running? see devemu ls"));
    return Qmp::start(std::move(conn));
}

core::Result<core::UniqueFd> lock_monitor(const fs::path& dir)
{
    core::UniqueFd lock(::open((dir / "qmp.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock || ::flock(lock.get(), LOCK_EX) != 0) return core::fail_errno("cannot lock", (dir / "qmp.lock").string());
    return lock;
}

// A unit's record under its VM's monitor lock (held while `lock` lives), read again once the lock is taken: as it
// is now that no other plug-in or unplug runs.
struct LockedVm {
    core::UniqueFd lock;
    VmRecord rec;
};
core::Result<LockedVm> lock_vm(const core::StateDir& sd, const std::string& unit)
{
    DEVEMU_TRY(before, load_vm_record(sd, unit));
    DEVEMU_TRY(lock, lock_monitor(before.run_dir));
    DEVEMU_TRY(rec, load_vm_record(sd, unit));
    return LockedVm{std::move(lock), std::move(rec)};
}

// gadget insert's disks: drive "mN", serial "devemu-mN", device "dev-mN".
constexpr std::string_view kSerialPrefix = "devemu-";

}  // namespace

core::Result<std::vector<HostDisk>> plan_host_disks(const profile::Profile& prof, core::Transaction& tx, bool force)
{
    std::vector<HostDisk> disks;
    for (auto& b : prof.backstores) {
        if (!on_host_path(b)) continue;
        profile::Backstore plain = b;
        plain.faults.clear();   // faults are stacked in the guest, on the virtio disk
        DEVEMU_TRY(bk, backing::resolve_backing(plain, {}, &tx, std::nullopt, force));
        std::error_code ec;
        const fs::path path = fs::weakly_canonical(bk.path, ec);
        auto same = std::find_if(disks.begin(), disks.end(), [&](const HostDisk& d) { return d.path == path; });
        if (same != disks.end()) {
            same->backstores.push_back(b.name);
            same->readonly = same->readonly && b.readonly;
            continue;
        }
        disks.push_back({{b.name}, path, fmt::format("devemu-{}", disks.size()), b.readonly});
    }
    return disks;
}

std::vector<std::string> host_disk_args(const std::vector<HostDisk>& disks)
{
    std::vector<std::string> a;
    for (std::size_t i = 0; i < disks.size(); ++i) {
        // Written through to the host's page cache (cache=writeback: the guest's flushes become fsync); UNMAP punches
        // holes in a file. qemu locks the file, so a second VM (or a second drive) on it fails, named.
        a.insert(a.end(), {"-drive", fmt::format("file={},format=raw,if=none,id=hd{},cache=writeback,discard=unmap{}", qemu_escape(disks[i].path.string()), i,
                                                 disks[i].readonly ? ",readonly=on" : ""),
                           "-device", fmt::format("virtio-blk-pci,drive=hd{},serial={}", i, disks[i].serial)});
    }
    return a;
}

core::Result<fs::path> find_virtio_disk(const std::string& serial, const fs::path& sys_block, const fs::path& dev, std::chrono::milliseconds wait)
{
    auto find = [&]() -> std::optional<std::string> {
        std::error_code ec;
        for (auto& e : fs::directory_iterator(sys_block, ec)) {
            const auto name = e.path().filename().string();
            if (!name.starts_with("vd")) continue;
            if (auto s = core::read_attr(e.path() / "serial"); s && std::string(core::trim(*s)) == serial) return name;
        }
        return std::nullopt;
    };
    const auto deadline = std::chrono::steady_clock::now() + wait;
    std::optional<std::string> vd;
    while (!(vd = find()) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!vd) return core::fail(core::Errc::missing, "the VM has no virtio disk with serial " + serial, sys_block.string(), "");
    const fs::path node = dev / *vd;
    while (::access(node.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return node;
}

core::Status use_host_disks(profile::Profile& prof, const std::map<std::string, std::string>& serials, const fs::path& sys_block,
                            const fs::path& dev, std::chrono::milliseconds wait)
{
    for (auto& [name, serial] : serials) {
        auto it = std::find_if(prof.backstores.begin(), prof.backstores.end(), [&](const profile::Backstore& b) { return b.name == name; });
        if (it == prof.backstores.end()) return core::fail(core::Errc::invalid_input, "no backstore '" + name + "' in the profile", prof.file, "");
        auto node = find_virtio_disk(serial, sys_block, dev, wait);
        if (!node) return core::fail(node.error().code, node.error().what + " (the host's " + it->path + ")", node.error().where, "");
        it->path = node->string();
        it->host_disk = true;
    }
    return {};
}

std::optional<ServedBy> vm_serving(const core::StateDir& sd, const std::string& path, const std::string& except)
{
    for (auto& r : vm_records(sd)) {
        if (r.name == except) continue;
        for (auto* m : {&r.host_disks, &r.media})
            for (auto& [what, p] : *m)
                if (p == path) return ServedBy{r.name, what};
    }
    return std::nullopt;
}

core::Error qemu_error(std::string said, std::string where, core::Errc code)
{
    said = std::string(core::trim(said));
    std::replace(said.begin(), said.end(), '\n', ' ');
    std::erase(said, '\r');
    if (said.starts_with("qemu-system-x86_64: ")) said = said.substr(20);
    return core::Error{said.find("lock") != std::string::npos ? core::Errc::busy : code, "qemu: " + said, std::move(where), ""};
}

core::Result<std::string> plug_host_medium(const core::StateDir& sd, const std::string& unit, const fs::path& file_in, bool force)
{
    std::error_code ec;
    const fs::path file = fs::weakly_canonical(fs::absolute(file_in, ec), ec);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return core::fail_errno("cannot use as medium", file_in.string());
    if (S_ISBLK(st.st_mode)) DEVEMU_CHECK(backing::check_block_device_free(file, force));
    else if (!S_ISREG(st.st_mode) || st.st_size < 512)
        return core::fail(core::Errc::invalid_input, "not an image file (of 512 bytes or more) nor a block device", file_in.string(), "");
    DEVEMU_TRY(locked, lock_vm(sd, unit));   // held to the end: one plug-in at a time
    auto& rec = locked.rec;
    const fs::path dir = rec.run_dir;
    for (auto& [serial, path] : rec.media)   // a backstore's, or plugged in before: the same disk again
        if (path == file.string()) return serial;
    if (auto other = vm_serving(sd, file.string(), unit))
        return core::fail(core::Errc::busy, "the VM of unit '" + other->unit + "' serves this file already (" + other->what + ")", file_in.string(),
                          "devemu down " + other->unit + " first, or insert a copy");
    DEVEMU_TRY(qmp, open_monitor(dir, unit));
    std::size_t n = 0;
    while (rec.media.count(fmt::format("{}m{}", kSerialPrefix, n))) ++n;
    const std::string id = fmt::format("m{}", n), serial = std::string(kSerialPrefix) + id;
    // HMP splits its arguments at spaces: the options go as one quoted string (a path may hold spaces or quotes).
    std::string opts = fmt::format("file={},format=raw,if=none,id={},cache=writeback,discard=unmap", qemu_escape(file.string()), id), quoted = "\"";
    for (char c : opts) quoted += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    DEVEMU_TRY(added, qmp.hmp("drive_add 0 " + quoted + "\""));
    if (core::trim(added) != "OK") return std::unexpected(qemu_error(added, file_in.string(), core::Errc::kernel));
    DEVEMU_TRY(dev, qmp.hmp(fmt::format("device_add virtio-blk-pci,drive={},serial={},id=dev-{}", id, serial, id)));
    if (!core::trim(dev).empty()) {
        (void)qmp.hmp("drive_del " + id);
        return std::unexpected(qemu_error(dev, file_in.string(), core::Errc::kernel));
    }
    rec.media[serial] = file.string();
    DEVEMU_CHECK(sd.save(unit, rec));
    return serial;
}

core::Result<std::string> monitor_command(const fs::path& run_dir, const std::string& unit, const std::string& command)
{
    DEVEMU_TRY(lock, lock_monitor(run_dir));
    (void)lock;
    DEVEMU_TRY(qmp, open_monitor(run_dir, unit));
    return qmp.hmp(command);
}

core::Status media_changed(const core::StateDir& sd, const std::string& unit, const std::string& key, const std::string& serial)
{
    DEVEMU_TRY(locked, lock_vm(sd, unit));
    auto& rec = locked.rec;
    const std::string old = rec.inserted.count(key) ? rec.inserted[key] : "";
    if (serial.empty()) rec.inserted.erase(key);
    else rec.inserted[key] = serial;
    const bool held = std::any_of(rec.inserted.begin(), rec.inserted.end(), [&](const auto& kv) { return kv.second == old; });
    if (!old.empty() && old != serial && old.starts_with(std::string(kSerialPrefix) + "m") && !held && rec.media.count(old)) {
        const std::string dev = "dev-" + old.substr(kSerialPrefix.size());
        DEVEMU_TRY(qmp, open_monitor(rec.run_dir, unit));
        DEVEMU_TRY(said, qmp.hmp("device_del " + dev));
        if (!core::trim(said).empty()) return std::unexpected(qemu_error(said, rec.media[old], core::Errc::kernel));
        DEVEMU_CHECK(qmp.wait_event("DEVICE_DELETED", dev, std::chrono::seconds(20)));
        rec.media.erase(old);
    }
    return sd.save(unit, rec);
}

}  // namespace devemu::vm
