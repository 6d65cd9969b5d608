#pragma once
// RBD images of an rbd backstore: made when absent (and removed at `down` only when devemu made them and the
// profile says ephemeral), never resized without --force, and refused while another client has them open or
// locked (two writers on one image corrupt it).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "ceph/conn.hpp"
#include "core/error.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::ceph {

struct ImageState {
    bool created = false;
    std::uint64_t size = 0;
};

// Checks (and with `tx`, creates or with `force` resizes) POOL/IMAGE. Without `tx` nothing changes (plan).
// `check_users`: refuse an image another client has open or locked (off for one this unit maps itself).
[[nodiscard]] core::Result<ImageState> ensure_image(const Conn& c, const profile::Backstore& b, bool force, core::Transaction* tx,
                                                    bool check_users = true);

// Removes POOL/IMAGE; gone already is fine. A crashed client's watch lingers for ~30 s: retried up to 45 s.
[[nodiscard]] core::Status remove_image(const Conn& c, const std::string& pool, const std::string& image);

// A Conn as one JSON value (for the journal's undo command and the guest's client file) and back. Holds paths,
// never the secret itself.
[[nodiscard]] nlohmann::json to_json(const Conn& c);
[[nodiscard]] Conn conn_from_json(const nlohmann::json& j);

}  // namespace devemu::ceph
