#include "usb/usbip.hpp"

#include <fmt/format.h>

#include <sstream>
#include <thread>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::usb {

namespace {

// A running usbipd (any: one daemon serves every usbip-vudc UDC), by its command name.
bool usbipd_running()
{
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/proc", ec)) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        if (core::trim(core::read_attr(e.path() / "comm").value_or("")) == "usbipd") return true;
    }
    return false;
}

}  // namespace

bool tcp_listening(int port)
{
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::istringstream in(core::read_file(table).value_or(""));
        std::string line;
        std::getline(in, line);   // header
        while (std::getline(in, line)) {
            std::istringstream f(line);
            std::string sl, local, remote, state;
            f >> sl >> local >> remote >> state;
            if (state == "0A" && local.size() > 5 && local.ends_with(fmt::format(":{:04X}", port))) return true;
        }
    }
    return false;
}

core::Result<nlohmann::json> start_usbipd(core::Transaction& tx, const core::StateDir& sd, const std::string& unit, const std::string& udc)
{
    nlohmann::json out = {{"busid", udc}, {"port", usbip_port}, {"attach", fmt::format("usbip attach -r HOST -d {}", udc)}};
    if (usbipd_running()) {   // someone else's (or another unit's): used, never stopped by us
        out["usbipd"] = "already running";
        return out;
    }
    DEVEMU_CHECK(core::make_dirs(sd.unit_dir(unit), 0700));
    const auto pid_file = sd.unit_dir(unit) / "usbipd.pid", log = sd.unit_dir(unit) / "usbipd.log";
    DEVEMU_CHECK(tx.record({core::UndoOp::kill, "usbipd", pid_file.string(), 0, 0}));   // its command line names the pid file
    DEVEMU_TRY(child, core::Child::spawn({"usbipd", "--device", "--pid", pid_file.string(), "--tcp-port", std::to_string(usbip_port)},
                                         core::SpawnOptions::daemon(log)));
    for (int i = 0; i < 250 && !tcp_listening(usbip_port); ++i) {
        if (auto st = child.try_wait())
            return core::fail(core::Errc::kernel, fmt::format("usbipd exited ({}) before listening", *st), log.string(),
                              "is port 3240 taken? is usbip-vudc loaded? (apt install usbip)");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!tcp_listening(usbip_port))
        return core::fail(core::Errc::timeout, "usbipd did not listen on port 3240 within 5 s", log.string(), "read that log");
    out["usbipd"] = child.pid();
    child.detach();
    return out;
}

}  // namespace devemu::usb
