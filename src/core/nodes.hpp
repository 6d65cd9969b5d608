#pragma once
// Desired kernel state as an ordered list of nodes (directories, symlinks, attributes) under one root, and the
// three things done with it: diff against what a unit recorded last time (the plan), apply the plan through a
// Transaction, and read the live state back. Parents come before children; removal runs in reverse.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/transaction.hpp"

namespace devemu::core {

namespace fs = std::filesystem;

enum class NodeKind {
    ensure,   // a directory that may be shared with others (a fabric's top dir): created if absent, never removed
    dir,      // a directory we create and remove; `value` is its identity: a changed value recreates its subtree
    link,     // a symlink to `value`
    attr,     // an attribute holding `value`
};

struct Node {
    NodeKind kind = NodeKind::dir;
    std::string path;      // relative to the root
    std::string value;
    bool verify = true;    // attr: read back and compare (control files are write-only)
    std::string undo;      // attr: written on removal (enable -> 0), empty: nothing

    bool operator==(const Node&) const = default;
};

void to_json(nlohmann::json& j, const Node& n);
void from_json(const nlohmann::json& j, Node& n);

// The nodes a unit record holds under "nodes" (what it applied last time); empty for a new unit.
[[nodiscard]] std::vector<Node> recorded_nodes(const nlohmann::json& record);

enum class Action { create, remove, change, repair };

struct Step {
    Action action;
    Node node;
    std::string old;   // change/repair: what was there
};

// What to do to go from `recorded` (applied by this unit before; empty for a new unit) to `desired`, given the
// live tree under `root`: nodes that drifted (removed or changed behind our back) are repaired.
[[nodiscard]] std::vector<Step> diff(const std::vector<Node>& recorded, const std::vector<Node>& desired, const fs::path& root);

[[nodiscard]] Status apply(Transaction& tx, const std::vector<Step>& plan, const fs::path& root);

// Differences between `desired` and the live tree, one line each; empty when the kernel holds what was asked.
[[nodiscard]] std::vector<std::string> verify(const std::vector<Node>& desired, const fs::path& root);

[[nodiscard]] std::string describe(const Step& s);

}  // namespace devemu::core
