#include "vm/elf.hpp"

#include <elf.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "core/fs.hpp"
#include "core/text.hpp"

namespace devemu::vm {

using core::Errc;

namespace {

template <class T>
bool at(const std::string& img, std::uint64_t off, T& out)
{
    if (off > img.size() || img.size() - off < sizeof(T)) return false;
    std::memcpy(&out, img.data() + off, sizeof(T));
    return true;
}

}  // namespace

core::Result<ElfDeps> read_elf_deps(const std::filesystem::path& file)
{
    auto img = core::read_file(file);
    if (!img) return std::unexpected(img.error());
    Elf64_Ehdr eh{};
    if (!at(*img, 0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return core::fail(Errc::invalid_input, "not an ELF file", file.string(), "scripts need --host-root");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) return core::fail(Errc::invalid_input, "not a 64-bit ELF file", file.string());

    ElfDeps d;
    std::vector<Elf64_Phdr> loads;
    Elf64_Phdr dyn{};
    bool has_dyn = false;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        if (!at(*img, eh.e_phoff + std::uint64_t(i) * eh.e_phentsize, ph)) return core::fail(Errc::invalid_input, "truncated ELF", file.string());
        if (ph.p_type == PT_LOAD) loads.push_back(ph);
        if (ph.p_type == PT_DYNAMIC) dyn = ph, has_dyn = true;
        if (ph.p_type == PT_INTERP && ph.p_offset + ph.p_filesz <= img->size())
            d.interp = std::string(img->data() + ph.p_offset, strnlen(img->data() + ph.p_offset, ph.p_filesz));
    }
    if (!has_dyn) return d;
    auto vaddr_to_off = [&](std::uint64_t va) -> std::uint64_t {
        for (auto& l : loads)
            if (va >= l.p_vaddr && va < l.p_vaddr + l.p_filesz) return va - l.p_vaddr + l.p_offset;
        return UINT64_MAX;
    };
    std::uint64_t strtab = 0;
    std::vector<std::uint64_t> needed, paths;
    for (std::uint64_t off = dyn.p_offset; off + sizeof(Elf64_Dyn) <= dyn.p_offset + dyn.p_filesz; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn e{};
        if (!at(*img, off, e) || e.d_tag == DT_NULL) break;
        if (e.d_tag == DT_STRTAB) strtab = vaddr_to_off(e.d_un.d_ptr);
        if (e.d_tag == DT_NEEDED) needed.push_back(e.d_un.d_val);
        if (e.d_tag == DT_RUNPATH || e.d_tag == DT_RPATH) paths.push_back(e.d_un.d_val);
    }
    if (strtab == UINT64_MAX || strtab >= img->size()) return core::fail(Errc::invalid_input, "ELF string table out of range", file.string());
    auto str = [&](std::uint64_t o) {
        if (strtab + o >= img->size()) return std::string();
        return std::string(img->data() + strtab + o, strnlen(img->data() + strtab + o, img->size() - strtab - o));
    };
    for (auto o : needed) d.needed.push_back(str(o));
    const auto origin = std::filesystem::path(file).parent_path().string();
    for (auto o : paths)
        for (auto& p : core::split(str(o), ':')) {
            std::string dir = p;
            if (auto pos = dir.find("$ORIGIN"); pos != std::string::npos) dir.replace(pos, 7, origin);
            if (!dir.empty()) d.runpath.push_back(dir);
        }
    return d;
}

core::Result<std::vector<std::string>> elf_closure(const std::filesystem::path& binary)
{
    static const char* const system_dirs[] = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                                              "/lib", "/usr/lib", "/usr/local/lib"};
    std::vector<std::string> out;
    std::set<std::string> seen_names;
    std::vector<std::pair<std::string, std::vector<std::string>>> todo{{binary.string(), {}}};
    out.push_back(binary.string());
    while (!todo.empty()) {
        auto [file, inherited_runpath] = todo.back();
        todo.pop_back();
        auto d = read_elf_deps(file);
        if (!d) return std::unexpected(d.error());
        if (!d->interp.empty() && seen_names.insert(d->interp).second) out.push_back(d->interp);
        std::vector<std::string> dirs = d->runpath;
        for (auto& r : inherited_runpath) dirs.push_back(r);
        for (auto& soname : d->needed) {
            if (!seen_names.insert(soname).second) continue;
            std::string found;
            for (auto& dir : dirs)
                if (::access((dir + "/" + soname).c_str(), R_OK) == 0) { found = dir + "/" + soname; break; }
            if (found.empty())
                for (auto dir : system_dirs)
                    if (::access((std::string(dir) + "/" + soname).c_str(), R_OK) == 0) { found = std::string(dir) + "/" + soname; break; }
            if (found.empty())
                return core::fail(Errc::missing, "shared library " + soname + " not found", file, "install it, or use --host-root");
            out.push_back(found);
            todo.push_back({found, d->runpath});
        }
    }
    return out;
}

}  // namespace devemu::vm
