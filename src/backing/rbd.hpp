#pragma once
// The rbd backing's kernel side: krbd maps POOL/IMAGE (/sys/bus/rbd/add_single_major) into /dev/rbdN, which a
// front-end exports (LIO's iblock). The image itself (made, sized, checked for other users) is the caller's business.
#include <optional>

#include "core/error.hpp"
#include "core/transaction.hpp"
#include "backing/backing.hpp"
#include "profile/profile.hpp"

namespace devemu::backing {

// Maps the image (journaling the unmap first is impossible: the id is known only after; it is journaled at
// once after, and a crash in between leaves a mapping `down` cannot see -- the kernel's own list then tells).
// `reuse`: the id a previous `up` mapped, kept when it still shows the same pool and image.
[[nodiscard]] core::Result<Backing> rbd_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx,
                                                const RbdClient* client, std::optional<int> reuse);

}  // namespace devemu::backing
