#include "uring/tcmu_ring.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <thread>

#include "core/fs.hpp"

namespace devemu::uring {

namespace fs = std::filesystem;

core::Result<std::pair<std::string, std::size_t>> find_uio(const std::string& prefix, std::chrono::seconds wait)
{
    const auto deadline = std::chrono::steady_clock::now() + wait;
    do {
        std::error_code ec;
        for (auto& e : fs::directory_iterator("/sys/class/uio", ec)) {
            auto name = core::read_attr(e.path() / "name").value_or("");
            if (!name.starts_with(prefix)) continue;
            DEVEMU_TRY(size, core::read_number(e.path() / "maps/map0/size", 0));
            return std::pair{"/dev/" + e.path().filename().string(), static_cast<std::size_t>(size)};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return core::fail(core::Errc::missing, "no TCMU device " + prefix + " appeared", "/sys/class/uio", "is target_core_user loaded and the backstore enabled?");
}

core::Status map_device(const std::string& uio, std::size_t size, Device& dev)
{
    dev.uio.reset(::open(uio.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev.uio) return core::fail_errno("cannot open", uio);
    dev.map_size = size;
    void* m = ::mmap(nullptr, dev.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, dev.uio.get(), 0);
    if (m == MAP_FAILED) return core::fail_errno("cannot map", uio);
    dev.base = static_cast<std::uint8_t*>(m);
    dev.mb = reinterpret_cast<tcmu_mailbox*>(dev.base);
    dev.cmdr = dev.base + dev.mb->cmdr_off;
    dev.cmdr_size = dev.mb->cmdr_size;
    return {};
}

core::Status kick(const Device& dev, const std::string& uio_prefix)
{
    const std::uint32_t one = 1;
    if (::write(dev.uio.get(), &one, sizeof one) < 0 && errno != EINTR && errno != EAGAIN) return core::fail_errno("cannot kick", uio_prefix);
    return {};
}

}  // namespace devemu::uring
