#pragma once
// What a host binary needs to run somewhere else: its ELF interpreter and the DT_NEEDED closure of its shared
// libraries, resolved the way ld.so would (RUNPATH, then the Debian multiarch directories).
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace devemu::vm {

struct ElfDeps {
    std::string interp;                 // PT_INTERP, empty for static binaries
    std::vector<std::string> needed;    // DT_NEEDED sonames
    std::vector<std::string> runpath;   // DT_RUNPATH / DT_RPATH directories ($ORIGIN expanded)
};

[[nodiscard]] core::Result<ElfDeps> read_elf_deps(const std::filesystem::path& file);

// The binary, its interpreter and every library it needs, transitively, as absolute paths (each once).
// A library that cannot be found is an error naming it.
[[nodiscard]] core::Result<std::vector<std::string>> elf_closure(const std::filesystem::path& binary);

}  // namespace devemu::vm
