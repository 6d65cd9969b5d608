#include "uring/tcmu.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/supervise.hpp"
#include "uring/discard.hpp"
#include "uring/tcmu_handler.hpp"
#include "uring/tcmu_ring.hpp"

namespace devemu::uring {

namespace fs = std::filesystem;

namespace {

// A predecessor killed mid-way may have left commands in the ring, and since commands complete out of order, some
// of their slots may already hold other commands' responses: they cannot be served again from the ring. The kernel
// is first given what the predecessor completed (a kick), then, if anything is left, completes every command it
// still holds with BUSY (the device's action/reset_ring, 1) and starts the ring again at 0; initiators resend BUSY
// commands, so the host sees a retry, not an error.
core::Status take_over_ring(Device& dev, const std::string& uio_prefix)
{
    DEVEMU_CHECK(kick(dev, uio_prefix));
    const auto tail = __atomic_load_n(&dev.mb->cmd_tail, __ATOMIC_ACQUIRE), head = __atomic_load_n(&dev.mb->cmd_head, __ATOMIC_ACQUIRE);
    if (tail == head) return {};
    // "tcm-user/HBA/NAME/" is the UIO name's prefix; the device is target/core/user_HBA/NAME in configfs.
    const auto first = uio_prefix.find('/'), second = first == std::string::npos ? first : uio_prefix.find('/', first + 1);
    if (second == std::string::npos || uio_prefix.back() != '/')
        return core::fail(core::Errc::invalid_input, "not a TCMU UIO prefix (tcm-user/HBA/NAME/)", uio_prefix, "");
    const fs::path dir = fs::path("/sys/kernel/config/target/core") / ("user_" + uio_prefix.substr(first + 1, second - first - 1)) /
                         uio_prefix.substr(second + 1, uio_prefix.size() - second - 2);
    spdlog::info("tcmu: the ring has work a previous handler left (tail {}, head {}): resetting it, the initiator resends it", tail, head);
    return core::write_attr(dir / "action" / "reset_ring", "1");
}

}  // namespace

int tcmu_serve(const TcmuConfig& cfg)
{
    auto uio = find_uio(cfg.uio_prefix, cfg.wait_for_device);
    Device dev;
    if (auto s = uio ? map_device(uio->first, uio->second, dev) : core::Status(std::unexpected(uio.error())); !s) {
        spdlog::error("{}", s.error().message());
        return 2;
    }
    if (auto s = take_over_ring(dev, cfg.uio_prefix); !s) {
        spdlog::error("{}", s.error().message());
        return 2;
    }
    struct stat st {};
    const int flags = O_RDWR | O_CLOEXEC | (cfg.write_cache ? 0 : O_DSYNC);   // no volatile cache: writes are durable at GOOD
    core::UniqueFd backing(::open(cfg.backing.c_str(), cfg.readonly ? (O_RDONLY | O_CLOEXEC) : flags));
    if (!backing || ::fstat(backing.get(), &st) != 0) {
        spdlog::error("cannot open the backing {}: {}", cfg.backing, std::strerror(errno));
        return 2;
    }
    return serve_ring(cfg, dev, uio->first, backing.get(), probe_geometry(backing.get(), st));
}

int tcmu_supervise(const TcmuConfig& cfg)
{
    return core::supervise([&] { return tcmu_serve(cfg); }, cfg.stats.empty() ? fs::path{} : fs::path(cfg.stats).replace_extension(".supervisor"),
                           "handler", "tcmu: handler");
}

}  // namespace devemu::uring
