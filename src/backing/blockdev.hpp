#pragma once
// Block devices: their size, and the rule that devemu never writes to one that holds data unless told to.
#include <cstdint>
#include <filesystem>

#include "core/error.hpp"

namespace devemu::backing {

using core::Result;
using core::Status;

// Refuses a device that is mounted, has holders (LVM, md, dm), or carries a filesystem or partition-table
// signature (libblkid); with `force` only the mounted/held checks remain. Holders that are dm devices whose names
// start with `own_holders` (devemu's fault stack from an earlier `up`) do not count, and then neither does a signature.
[[nodiscard]] Status check_block_device_free(const std::filesystem::path& dev, bool force, const std::string& own_holders = "");
[[nodiscard]] Result<std::uint64_t> block_device_size(const std::filesystem::path& dev);

}  // namespace devemu::backing
