#include "lio/paths.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/fs.hpp"
#include "core/text.hpp"

namespace devemu::lio {

using nlohmann::json;

// The attribute that takes the target's path down or up, and its two values: tcm_loop's transport_status (commands
// then fail with DID_TRANSPORT_DISRUPTED), or the iSCSI TPG's enable (sessions drop and logins are refused; an
// initiator's queued I/O completes once it is up again and it logs back in).
namespace {
struct PathAttr {
    fs::path attr;
    const char* down;
    const char* up;
};
// Path K (1-based) of the target: path 1 is its first tcm_loop target or tpgt_1; the others are in info.paths.
std::optional<PathAttr> path_attr(const TargetRecord& r, const Roots& roots, std::size_t k)
{
    const std::string fabric = r.info.value("fabric", ""), wwn = r.info.value("wwn", "");
    if (wwn.empty() || k < 1 || k > path_count(r)) return std::nullopt;
    if (fabric == "loopback") {
        const std::string w = k == 1 ? wwn : r.info["paths"][k - 1].value("wwn", "");
        return PathAttr{roots.target / "loopback" / w / "tpgt_1/transport_status", "offline", "online"};
    }
    if (fabric == "iscsi") return PathAttr{roots.target / "iscsi" / wwn / fmt::format("tpgt_{}/enable", k), "0", "1"};
    return std::nullopt;
}

}  // namespace

std::size_t path_count(const TargetRecord& r)
{
    return r.info.contains("paths") && r.info["paths"].is_array() ? std::max<std::size_t>(1, r.info["paths"].size()) : 1;
}

std::vector<std::size_t> paths_down(const TargetRecord& r, const Roots& roots)
{
    std::vector<std::size_t> out;
    for (std::size_t k = 1; k <= path_count(r); ++k) {
        auto p = path_attr(r, roots, k);
        if (!p) continue;
        auto now = core::read_attr(p->attr);
        if (now && core::trim(*now) == p->down) out.push_back(k);
    }
    return out;
}

core::Result<json> set_path(const TargetRecord& r, std::size_t k, bool down, const Roots& roots)
{
    const auto n = path_count(r);
    if (k == 0 && n > 1)
        return core::fail(core::Errc::invalid_input, fmt::format("target {} has {} paths: say which", r.name, n), r.name,
                          fmt::format("devemu fault {} path 1 {}", r.name, down ? "down" : "up"));
    if (k > n) return core::fail(core::Errc::invalid_input, fmt::format("target {} has {} path{}, not {}", r.name, n, n == 1 ? "" : "s", k), r.name, "");
    auto p = path_attr(r, roots, k == 0 ? 1 : k);
    if (!p) return core::fail(core::Errc::invalid_input, "target " + r.name + " has no path devemu can take down", r.name, "");
    DEVEMU_CHECK(core::write_attr(p->attr, down ? p->down : p->up));
    auto now = core::read_attr(p->attr);
    if (!now || core::trim(*now) != (down ? p->down : p->up))
        return core::fail(core::Errc::check_failed, fmt::format("the path did not go {}: the kernel has '{}'", down ? "down" : "up", now ? *now : "?"),
                          p->attr.string(), "see dmesg");
    json out{{"path", down ? "down" : "up"}};
    if (k) out["path_index"] = k;
    return out;
}

}  // namespace devemu::lio
