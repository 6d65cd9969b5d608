#include "backing/blockdev.hpp"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>

#include "core/fs.hpp"
#include "core/text.hpp"

#include "core/fd.hpp"

namespace devemu::backing {

using namespace core;

namespace fs = std::filesystem;

Result<std::uint64_t> block_device_size(const fs::path& dev)
{
    UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail_errno("cannot open", dev.string());
    std::uint64_t size = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return fail_errno("cannot read the size of", dev.string());
    return size;
}

Status check_block_device_free(const fs::path& dev, bool force, const std::string& own_holders)
{
    struct stat st {};
    if (::stat(dev.c_str(), &st) != 0) return fail_errno("block device not found", dev.string());
    if (!S_ISBLK(st.st_mode)) return fail(Errc::invalid_input, "not a block device", dev.string(), "use a fileio backstore for files");
    // Mounted anywhere (by device number, so /dev/mapper aliases count too)?
    std::ifstream mounts("/proc/self/mountinfo");
    std::string line;
    const auto majmin = fmt::format(" {}:{} ", major(st.st_rdev), minor(st.st_rdev));
    while (std::getline(mounts, line))
        if (line.find(majmin) != std::string::npos)
            return fail(Errc::busy, "is mounted", dev.string(), "unmount it first; devemu never exports a mounted device");
    const auto holders = fs::path("/sys/dev/block") / fmt::format("{}:{}", major(st.st_rdev), minor(st.st_rdev)) / "holders";
    std::error_code ec;
    bool ours = false;   // held only by dm devices devemu made for it (an earlier `up` of the same backstore)
    for (auto& h : fs::directory_iterator(holders, ec)) {
        auto name = core::read_attr(h.path() / "dm/name");
        if (own_holders.empty() || !name || !core::trim(*name).starts_with(own_holders))
            return fail(Errc::busy, "is in use (it has holders: LVM, md or dm)", dev.string(), "release it first");
        ours = true;
    }
    if (force || ours) return {};
    blkid_probe pr = blkid_new_probe_from_filename(dev.c_str());
    if (!pr) return fail_errno("cannot probe", dev.string());
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_enable_partitions(pr, 1);
    const char* type = nullptr;
    std::string found;
    if (blkid_do_safeprobe(pr) == 0) {
        if (blkid_probe_lookup_value(pr, "TYPE", &type, nullptr) == 0) found = std::string("a ") + type + " filesystem";
        else if (blkid_probe_lookup_value(pr, "PTTYPE", &type, nullptr) == 0) found = std::string("a ") + type + " partition table";
        else found = "a signature";
    }
    blkid_free_probe(pr);
    if (!found.empty())
        return fail(Errc::invalid_input, "holds " + found + "; exporting it would let initiators overwrite it", dev.string(),
                          "pass --force if you mean it, or wipe it (wipefs -a)");
    return {};
}

}  // namespace devemu::backing
