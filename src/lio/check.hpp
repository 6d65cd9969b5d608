#pragma once
// `devemu check` for a target: log in as an initiator (libiscsi), INQUIRY, READ CAPACITY(16), and a write ->
// read-verify of a scratch range (the last few MiB) that saves and afterwards restores what was there.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/unit_kind.hpp"

namespace devemu::lio {

struct CheckResult {
    std::string name;
    bool ok = false;
    std::string detail;
};

struct IscsiCheckSpec {
    std::string url;         // iscsi://[user%secret@]host:port/iqn/lun
    std::string initiator;   // the IQN the ACL expects
    std::uint64_t scratch = 4ull << 20;
};

[[nodiscard]] std::vector<CheckResult> check_iscsi(const IscsiCheckSpec& spec);
// The same write -> read-verify on a local block device (a loopback LUN's /dev/sdX).
[[nodiscard]] std::vector<CheckResult> check_block(const std::string& device, std::uint64_t scratch = 4ull << 20);

// The initiator name a check logs in with when the target's ACL names none.
inline constexpr const char* kCheckInitiator = "iqn.2026-11.org.devemu:check";

// Results per unit (or per LUN), as `devemu check` shows them: "[ ok ] unit: check — detail" lines, and
// {"ok", "units": [{"unit", "checks": [{"check", "ok", "detail"}]}]}; rc 1 when any check failed.
[[nodiscard]] core::CheckOutcome render_checks(const std::vector<std::pair<std::string, std::vector<CheckResult>>>& runs);

}  // namespace devemu::lio
