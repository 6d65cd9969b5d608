#include "uring/discard.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/fs.hpp"

namespace devemu::uring {

namespace {
std::string sys_dev_block(dev_t dev)
{
    return "/sys/dev/block/" + std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
}

// zram0, ram0 (brd), or a partition of one (/sys/dev/block/MAJ:MIN links to .../block/zram0[/zram0p1]).
bool ram_device(dev_t dev)
{
    std::error_code ec;
    const auto link = std::filesystem::read_symlink(sys_dev_block(dev), ec);
    if (ec) return false;
    for (const auto& part : link) {
        const auto n = part.string();
        if ((n.starts_with("zram") || n.starts_with("ram")) && n.find_first_of("0123456789") != std::string::npos) return true;
    }
    return false;
}
}  // namespace

Geometry probe_geometry(int fd, const struct stat& st)
{
    Geometry g;
    if (!S_ISBLK(st.st_mode)) {
        g.align = st.st_blksize > 0 ? static_cast<std::uint64_t>(st.st_blksize) : 4096;
        struct statfs sf {};
        g.ram = (::fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) || ram_device(st.st_dev);
        return g;
    }
    g.ram = ram_device(st.st_rdev);
    g.blockdev = true;
    int lbs = 0;
    if (::ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs >= 512) g.logical = static_cast<std::uint32_t>(lbs);
    g.align = g.logical;
    const std::string q = sys_dev_block(st.st_rdev) + "/queue/";
    if (auto gran = core::read_attr(q + "discard_granularity")) {
        const auto v = std::strtoull(gran->c_str(), nullptr, 10);
        if (v > g.align && v % g.align == 0) g.align = v;
    }
    return g;
}

Split split_range(std::uint64_t off, std::uint64_t len, std::uint64_t align)
{
    Split s;
    if (align <= 1) {
        s.mid_off = off, s.mid_len = len;
        return s;
    }
    const std::uint64_t end = off + len;
    const std::uint64_t a = (off + align - 1) / align * align, b = end / align * align;
    if (a >= b) {   // no whole unit inside: all of it is "head"
        s.head_off = off, s.head_len = len;
        return s;
    }
    s.head_off = off, s.head_len = a - off;
    s.mid_off = a, s.mid_len = b - a;
    s.tail_off = b, s.tail_len = end - b;
    return s;
}

namespace {
bool write_zeros(int fd, std::uint64_t off, std::uint64_t len)
{
    static const char zeros[65536] = {};
    while (len) {
        const auto n = ::pwrite(fd, zeros, std::min<std::uint64_t>(len, sizeof zeros), static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<std::uint64_t>(n), len -= static_cast<std::uint64_t>(n);
    }
    return true;
}

bool zero_middle(int fd, bool blockdev, std::uint64_t off, std::uint64_t len)
{
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), static_cast<off_t>(len)) == 0) return true;
    if (errno != EOPNOTSUPP) return false;
    if (blockdev) {   // no write-zeroes that deallocates: the kernel writes the zeros
        std::uint64_t range[2] = {off, len};
        return ::ioctl(fd, BLKZEROOUT, range) == 0;
    }
    return write_zeros(fd, off, len);   // a filesystem without hole punching
}
}  // namespace

bool unmap_range(int fd, const Geometry& g, std::uint64_t off, std::uint64_t len)
{
    if (len == 0) return true;
    if (!g.blockdev) return zero_middle(fd, false, off, len);
    const auto s = split_range(off, len, g.align);
    return (s.head_len == 0 || write_zeros(fd, s.head_off, s.head_len)) && (s.mid_len == 0 || zero_middle(fd, true, s.mid_off, s.mid_len)) &&
           (s.tail_len == 0 || write_zeros(fd, s.tail_off, s.tail_len));
}

std::optional<scsi::Run> run_at(int fd, std::uint64_t off, std::uint64_t end)
{
    if (off >= end) return std::nullopt;
    const off_t data = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0) return errno == ENXIO ? std::optional<scsi::Run>{scsi::Run{false, end - off}} : std::nullopt;
    if (static_cast<std::uint64_t>(data) > off) return scsi::Run{false, std::min<std::uint64_t>(static_cast<std::uint64_t>(data), end) - off};
    const off_t hole = ::lseek(fd, static_cast<off_t>(off), SEEK_HOLE);
    if (hole < 0 || static_cast<std::uint64_t>(hole) <= off) return std::nullopt;
    return scsi::Run{true, std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), end) - off};
}

scsi::Plan lba_status(int fd, const scsi::Plan& plan, const scsi::Device& d)
{
    return scsi::lba_status(plan, d, [fd](std::uint64_t off, std::uint64_t end) { return run_at(fd, off, end); });
}

}  // namespace devemu::uring
