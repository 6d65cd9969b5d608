#pragma once
// The CLI layer: parsing and printing only. Each command gets the global context and its own arguments.
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace devemu::cli {

struct Context {
    std::filesystem::path state_dir;
    std::filesystem::path cache_dir;
    std::string kernel;    // --kernel / DEVEMU_KERNEL / devemu.conf
    int verbosity = 0;
};

using Args = std::vector<std::string>;

int cmd_doctor(Context& ctx, const Args& args);
int cmd_profile(Context& ctx, const Args& args);
int cmd_vm(Context& ctx, const Args& args);
int cmd_ls(Context& ctx, const Args& args);
int cmd_not_landed(const std::string& command, const std::string& issue);

// Prints one error line (red on a TTY) and returns its exit code.
int report(const core::Error& e);

}  // namespace devemu::cli
