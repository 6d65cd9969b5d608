#pragma once
// How a user reaches a target that is up: per LUN the iscsi:// URL (CHAP user in it, the secret only when asked),
// the iscsiadm lines, the initiator the ACL expects; for loopback, the disks. Built from the unit record, what
// `up`, `ls`, `import` and `check` print.
#include <nlohmann/json.hpp>
#include <string>

namespace devemu::lio {

// `portal_override`: a forward of the portal (up --vm's 127.0.0.1:PORT); `secrets`: put CHAP secrets in, else
// "SECRET" stands where they go.
[[nodiscard]] nlohmann::json access_info(const nlohmann::json& rec, const std::string& portal_override, bool secrets);
// The iscsi:// URL with its host:port replaced by `portal`.
[[nodiscard]] std::string with_portal(const std::string& url, const std::string& portal);
// The key of path K's (0-based) portal forward in an `up --vm` unit and in --advertise: "NAME" for path 1,
// "NAME/K" for path K.
[[nodiscard]] std::string forward_key(const std::string& target, std::size_t k);

}  // namespace devemu::lio
