#pragma once
// What a host binary needs to run somewhere else: its ELF interpreter and the DT_NEEDED closure of its shared
// libraries, resolved the way ld.so would (RUNPATH, then the Debian multiarch directories).
#include <cstdint>
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

// The file as a program needs it to run: everything the program headers cover (what the loader maps, the dynamic
// section, notes), without what only debuggers and linkers read after it (debug info, symbol tables, the section
// headers). A RelWithDebInfo devemu is 176 MB and runs from 5; an ELF laid out otherwise (sections before the end
// of its segments) or a file that is not ELF comes back whole. `stripped`: bytes left out; `mode`: the file's.
struct RuntimeImage {
    std::string data;
    std::uint64_t stripped = 0;
    unsigned mode = 0;
};
[[nodiscard]] core::Result<RuntimeImage> elf_runtime_image(const std::filesystem::path& file);

}  // namespace devemu::vm
