// The supervisor of devemu's mass-storage function: it owns ep0 (so the function stays on the bus while a server
// is restarted: the host sees at most a reset) and restarts the server whenever it dies, until SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/supervise.hpp"
#include "usb/bot_device.hpp"
#include "usb/msc_serve.hpp"

namespace devemu::usb {

namespace {

bool write_all(int fd, const std::vector<std::uint8_t>& b, const char* what, const std::string& mount)
{
    if (::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size())) return true;
    spdlog::error("{}/ep0: writing the {} failed: {} (is usb_f_fs loaded and {} a fresh FunctionFS mount?)", mount, what, std::strerror(errno), mount);
    return false;
}

}  // namespace

int msc_supervise(const MscConfig& cfg)
{
    core::UniqueFd ep0(::open((cfg.mount + "/ep0").c_str(), O_RDWR));   // inherited by every server
    if (!ep0) {
        spdlog::error("{}/ep0: {} (is FunctionFS mounted there?)", cfg.mount, std::strerror(errno));
        return 2;
    }
    if (!write_all(ep0.get(), bot::ffs_descriptors(), "descriptors", cfg.mount) ||
        !write_all(ep0.get(), bot::ffs_strings(cfg.interface_name), "strings", cfg.mount))
        return 2;
    return core::supervise([&] { return msc_serve(cfg, ep0.get()); },
                           cfg.stats.empty() ? std::filesystem::path{} : std::filesystem::path(cfg.stats).replace_extension(".supervisor"), "server",
                           "usb: server");
}

}  // namespace devemu::usb
