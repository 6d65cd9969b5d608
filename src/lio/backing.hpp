#pragma once
// What sits under a LIO backstore: a file (created sparse, never truncated), a block device (refused when it holds
// a filesystem, a partition table or is mounted, unless --force), or a zram device devemu creates and removes.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::lio {

namespace fs = std::filesystem;

struct Roots {
    fs::path target = "/sys/kernel/config/target";
    fs::path sys = "/sys";
    fs::path dev = "/dev";
};

struct Backing {
    std::string plugin;      // fileio | iblock | user
    std::string path;        // file or device
    std::uint64_t size = 0;
    int zram = -1;           // zram device number devemu made
};

// Refuses a device that is mounted, has holders, or carries a filesystem / partition-table signature.
[[nodiscard]] core::Status check_block_device_free(const fs::path& dev, bool force);
[[nodiscard]] core::Result<std::uint64_t> block_device_size(const fs::path& dev);

// Resolves (and when `tx` is given, creates) the backing of one backstore. `reuse_zram` is the device a previous
// `up` made for it. Without `tx` nothing is touched (for `plan`).
[[nodiscard]] core::Result<Backing> resolve_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx,
                                                    std::optional<int> reuse_zram, bool force);

}  // namespace devemu::lio
