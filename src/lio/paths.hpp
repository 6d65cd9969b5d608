#pragma once
// A target's paths as devemu takes them down and up (`devemu fault NAME path [K] down|up`, `devemu failover`):
// tcm_loop's transport_status (commands then fail with DID_TRANSPORT_DISRUPTED), or the iSCSI TPG's enable
// (sessions drop and logins are refused; an initiator's queued I/O completes once it is up again and it logs back in).
#include <cstddef>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "lio/model.hpp"
#include "lio/record.hpp"

namespace devemu::lio {

// How many paths the target has (1 when its record lists none).
[[nodiscard]] std::size_t path_count(const TargetRecord& r);
// The paths (1-based) that are down now.
[[nodiscard]] std::vector<std::size_t> paths_down(const TargetRecord& r, const Roots& roots);
// Takes path k (1-based; 0: the only one) down or up and reads it back: {"path": "down"|"up"[, "path_index": k]}.
[[nodiscard]] core::Result<nlohmann::json> set_path(const TargetRecord& r, std::size_t k, bool down, const Roots& roots);

}  // namespace devemu::lio
