#include "vm/host_disks.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <thread>

#include "backing/backing.hpp"
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

core::Status use_host_disks(profile::Profile& prof, const std::map<std::string, std::string>& serials, const fs::path& sys_block,
                            const fs::path& dev, std::chrono::milliseconds wait)
{
    // serial -> vdX, as the virtio disks appear
    auto find = [&](const std::string& serial) -> std::optional<std::string> {
        std::error_code ec;
        for (auto& e : fs::directory_iterator(sys_block, ec)) {
            const auto name = e.path().filename().string();
            if (!name.starts_with("vd")) continue;
            if (auto s = core::read_attr(e.path() / "serial"); s && std::string(core::trim(*s)) == serial) return name;
        }
        return std::nullopt;
    };
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (auto& [name, serial] : serials) {
        auto it = std::find_if(prof.backstores.begin(), prof.backstores.end(), [&](const profile::Backstore& b) { return b.name == name; });
        if (it == prof.backstores.end()) return core::fail(core::Errc::invalid_input, "no backstore '" + name + "' in the profile", prof.file, "");
        std::optional<std::string> vd;
        while (!(vd = find(serial)) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (!vd) return core::fail(core::Errc::missing, "the VM has no virtio disk with serial " + serial + " (the host's " + it->path + ")", sys_block.string(), "");
        const fs::path node = dev / *vd;
        while (::access(node.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        it->path = node.string();
        it->host_disk = true;
    }
    return {};
}

}  // namespace devemu::vm
