#pragma once
// What sits under a LIO backstore or a USB mass-storage LUN: a file (created sparse, never truncated), a block
// device (refused when it holds a filesystem, a partition table or is mounted, unless --force), a zram device devemu
// creates and removes, or an rbd image krbd maps (rbd.hpp). The front-ends (lio, usb) decide how to export it.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "core/transaction.hpp"
#include "profile/profile.hpp"

namespace devemu::backing {

namespace fs = std::filesystem;

struct Roots {
    fs::path sys = "/sys";
    fs::path dev = "/dev";
};

enum class Kind { file, block };

struct Backing {
    Kind kind = Kind::file;
    std::string path;        // file or device
    std::uint64_t size = 0;
    int zram = -1;           // zram device number devemu made
    int rbd = -1;            // krbd device id devemu mapped
};

// How to reach an rbd backstore's cluster from here (resolved by the caller: a profile names "local" or monitors).
struct RbdClient {
    std::string mon_host;    // v1 addresses, comma-separated
    std::string user = "admin";
    std::string secret;      // cephx key: never logged
    std::string netns;       // the namespace the cluster is reached from; empty: this one
};


// The zram device a unit's previous `up` made for backstore `name` (its record's "backstores"), if any.
[[nodiscard]] std::optional<int> recorded_zram(const nlohmann::json& record, const std::string& name);

// The krbd device a unit's previous `up` mapped for backstore `name`, if any.
[[nodiscard]] std::optional<int> recorded_rbd(const nlohmann::json& record, const std::string& name);

// Resolves (and when `tx` is given, creates) the backing of one backstore. `reuse_zram` / `reuse_rbd`: the device
// a previous `up` made for it. `rbd`: the cluster of an rbd backstore. Without `tx` nothing is touched (`plan`).
[[nodiscard]] core::Result<Backing> resolve_backing(const profile::Backstore& b, const Roots& roots, core::Transaction* tx,
                                                    std::optional<int> reuse_zram, bool force, const RbdClient* rbd = nullptr,
                                                    std::optional<int> reuse_rbd = std::nullopt);

// The journal step "zram_remove" (path: zram-control's hot_remove, value: the device number). The front-ends register
// it with their unit kinds (lio::register_target_kind, usb::register_gadget_kind).
void register_undo_ops();

}  // namespace devemu::backing
