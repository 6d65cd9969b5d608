#include "core/probe.hpp"

#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/fs.hpp"

namespace devemu::core {

bool filesystem_known(const std::string& fstype)
{
    std::ifstream in("/proc/filesystems");
    std::string line;
    while (std::getline(in, line)) {
        auto tab = line.rfind('\t');
        if ((tab == std::string::npos ? line : line.substr(tab + 1)) == fstype) return true;
    }
    return false;
}

bool mounted_at(const std::string& path, const std::string& fstype)
{
    std::ifstream in("/proc/self/mounts");
    std::string dev, mnt, type, rest;
    while (in >> dev >> mnt >> type && std::getline(in, rest))
        if (mnt == path && type == fstype) return true;
    return false;
}

bool io_uring_works(std::string& why)
{
    if (auto v = read_attr("/proc/sys/kernel/io_uring_disabled"); v && *v != "0") {
        why = "kernel.io_uring_disabled = " + *v;
        return false;
    }
    io_uring_params p{};
    long fd = ::syscall(__NR_io_uring_setup, 1, &p);
    if (fd < 0) {
        why = std::string("io_uring_setup: ") + std::strerror(errno);
        return false;
    }
    ::close(static_cast<int>(fd));
    why = "io_uring_setup works";
    return true;
}

}  // namespace devemu::core
