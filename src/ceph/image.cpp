#include "ceph/image.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "core/fs.hpp"
#include "core/netns.hpp"
#include "core/text.hpp"

namespace devemu::ceph {

using core::Errc;
using nlohmann::json;

namespace {

std::string spec_of(const profile::Backstore& b) { return b.pool + "/" + b.image; }

// rbd sizes: whole KiB ("K" is a unit rbd accepts; a bare number would mean MiB).
std::string rbd_size(std::uint64_t bytes) { return std::to_string(bytes / 1024) + "K"; }

// Another client with the image open (a watch: mapped with krbd, or open in librbd) or holding a lock.
core::Status check_unused(const Conn& c, const profile::Backstore& b)
{
    DEVEMU_TRY(st, cli(c, "rbd", {"status", spec_of(b), "--format", "json"}));
    auto j = json::parse(st, nullptr, false);
    if (!j.is_discarded() && j.contains("watchers") && j["watchers"].is_array() && !j["watchers"].empty())
        return core::fail(Errc::busy,
                          fmt::format("rbd image {} is open elsewhere (watcher {})", spec_of(b), j["watchers"][0].value("address", "?")),
                          b.loc.str(), "unmap it there (rbd device unmap), or pass --force if that client is gone");
    DEVEMU_TRY(locks, cli(c, "rbd", {"lock", "ls", spec_of(b), "--format", "json"}));
    auto l = json::parse(locks, nullptr, false);
    if (!l.is_discarded() && !l.empty())
        return core::fail(Errc::busy, fmt::format("rbd image {} is locked by another client", spec_of(b)), b.loc.str(),
                          "see rbd lock ls " + spec_of(b) + "; pass --force to use it anyway");
    return {};
}

}  // namespace

json to_json(const Conn& c)
{
    return {{"mon_host", c.mon_host}, {"user", c.user}, {"keyring", c.keyring}, {"secret_file", c.secret_file},
            {"conf", c.conf}, {"netns", c.netns}, {"where", c.where}};
}

Conn conn_from_json(const json& j)
{
    Conn c;
    c.mon_host = j.value("mon_host", "");
    c.user = j.value("user", "admin");
    c.keyring = j.value("keyring", "");
    c.secret_file = j.value("secret_file", "");
    c.conf = j.value("conf", "");
    c.netns = j.value("netns", "");
    c.where = j.value("where", "");
    return c;
}

core::Result<ImageState> ensure_image(const Conn& c, const profile::Backstore& b, bool force, core::Transaction* tx, bool check_users)
{
    ImageState st;
    auto info = cli(c, "rbd", {"info", spec_of(b), "--format", "json"});
    if (info) {
        auto j = json::parse(*info, nullptr, false);
        st.size = j.is_discarded() ? 0 : j.value("size", std::uint64_t{0});
        if (b.size && st.size != *b.size) {
            if (!force)
                return core::fail(Errc::invalid_input,
                                  fmt::format("rbd image {} holds {} but the profile asks for {}; devemu does not resize data", spec_of(b),
                                              core::format_size(st.size), core::format_size(*b.size)),
                                  b.loc.str(), "fix the size, or pass --force to resize it");
            if (tx) {
                spdlog::info("resizing rbd image {} from {} to {} (--force)", spec_of(b), core::format_size(st.size), core::format_size(*b.size));
                DEVEMU_CHECK(cli(c, "rbd", {"resize", "--size", rbd_size(*b.size), "--allow-shrink", spec_of(b)}, 30));
                st.size = *b.size;
            }
        }
        if (!force && check_users) DEVEMU_CHECK(check_unused(c, b));
        return st;
    }
    // rbd says "error opening image NAME: (2) No such file or directory" for an absent image (in a pool that exists).
    const auto& why = info.error().what;
    if (why.find("No such file") == std::string::npos || why.find("error opening image") == std::string::npos) return std::unexpected(info.error());
    if (!b.size)
        return core::fail(Errc::invalid_input, fmt::format("rbd image {} does not exist and the profile gives no size", spec_of(b)), b.loc.str(),
                          "add size = \"1G\" to create it");
    st.size = *b.size;
    st.created = true;
    if (!tx) return st;
    if (b.ephemeral) {
        std::vector<std::string> argv = {core::self_exe().string(), "ceph", "rm-image", "--conn", to_json(c).dump(), spec_of(b)};
        DEVEMU_CHECK(tx->record({core::UndoOp::exec, "", core::join(argv, "\x1f")}));
    }
    DEVEMU_CHECK(cli(c, "rbd", {"create", "--size", rbd_size(*b.size), "--image-feature", "layering", spec_of(b)}, 30));
    spdlog::info("created rbd image {} ({}{})", spec_of(b), core::format_size(*b.size), b.ephemeral ? ", removed at down" : "");
    return st;
}

core::Status remove_image(const Conn& c, const std::string& pool, const std::string& image)
{
    const std::string spec = pool + "/" + image;
    if (!c.netns.empty() && !core::netns_exists(c.netns)) return {};   // the local cluster, and its images, are gone
    for (int i = 0;; ++i) {
        auto r = cli(c, "rbd", {"rm", "--no-progress", spec}, 10);
        if (r) return {};
        const auto& why = r.error().what;
        if (why.find("No such file") != std::string::npos) return {};
        if (why.find("watchers") == std::string::npos || i >= 15) return std::unexpected(r.error());
        std::this_thread::sleep_for(std::chrono::seconds(3));
    }
}

}  // namespace devemu::ceph
