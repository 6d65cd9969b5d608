#pragma once
// A [[backstore]]'s own sub-tables: [[backstore.fault]] (faults in its data path, or dm targets under a kernel
// backstore) and [[backstore.alua]] (target port groups on a kernel backstore).
#include <vector>

#include "core/error.hpp"
#include "fault/fault.hpp"
#include "profile/profile.hpp"
#include "profile/table.hpp"

namespace devemu::profile {

[[nodiscard]] core::Result<std::vector<fault::Spec>> parse_faults(const Table& t, const Backstore& b);
[[nodiscard]] core::Result<std::vector<AluaGroup>> parse_alua(const Table& t, const Backstore& b);

}  // namespace devemu::profile
