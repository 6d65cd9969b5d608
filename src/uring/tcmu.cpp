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

int tcmu_serve(const TcmuConfig& cfg)
{
    auto uio = find_uio(cfg.uio_prefix, cfg.wait_for_device);
    Device dev;
    if (auto s = uio ? map_device(uio->first, uio->second, dev) : core::Status(std::unexpected(uio.error())); !s) {
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
