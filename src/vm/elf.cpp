#include "vm/elf.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/fd.hpp"
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

// What the program headers of an ELF64 file cover (its header, its segments: the dynamic section and the strings it
// names are in them), read with pread: a RelWithDebInfo devemu is 176 MB, and its segments end at 5 MB. A file that
// is not ELF64, or whose section headers come before the segments end (not what linkers write), is read whole.
struct Prefix {
    std::string data;
    std::uint64_t size = 0;   // the whole file's
    unsigned mode = 0;        // its permission bits
    bool cut = false;         // data is the part the segments cover, the rest left out
};
core::Result<Prefix> runtime_prefix(const std::filesystem::path& file)
{
    core::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return core::fail_errno("cannot open", file.string());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return core::fail_errno("cannot read", file.string());
    Prefix p;
    p.size = static_cast<std::uint64_t>(st.st_size);
    p.mode = st.st_mode & 07777;
    auto read_at = [&](std::uint64_t off, std::uint64_t len, std::string& into) -> bool {
        into.resize(len);
        std::uint64_t got = 0;
        while (got < len) {
            const ssize_t n = ::pread(fd.get(), into.data() + got, len - got, static_cast<off_t>(off + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            got += static_cast<std::uint64_t>(n);
        }
        return true;
    };
    auto whole = [&]() -> core::Result<Prefix> {
        DEVEMU_TRY(all, core::read_file(file));
        p.data = std::move(all);
        p.size = p.data.size();
        return p;
    };
    Elf64_Ehdr eh{};
    std::string head;
    if (!S_ISREG(st.st_mode) || p.size < sizeof eh || !read_at(0, sizeof eh, head)) return whole();
    std::memcpy(&eh, head.data(), sizeof eh);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phnum == 0 || eh.e_phentsize < sizeof(Elf64_Phdr))
        return whole();
    const std::uint64_t ph_end = eh.e_phoff + std::uint64_t(eh.e_phnum) * eh.e_phentsize;
    std::string phs;
    if (ph_end > p.size || !read_at(eh.e_phoff, ph_end - eh.e_phoff, phs)) return whole();
    std::uint64_t end = ph_end;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        std::memcpy(&ph, phs.data() + std::uint64_t(i) * eh.e_phentsize, sizeof ph);
        end = std::max<std::uint64_t>(end, ph.p_offset + ph.p_filesz);
    }
    if (end >= p.size || eh.e_shoff < end) return whole();
    if (!read_at(0, end, p.data)) return whole();
    p.cut = true;
    return p;
}

}  // namespace

core::Result<ElfDeps> read_elf_deps(const std::filesystem::path& file)
{
    auto prefix = runtime_prefix(file);
    if (!prefix) return std::unexpected(prefix.error());
    const std::string* img = &prefix->data;
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

core::Result<RuntimeImage> elf_runtime_image(const std::filesystem::path& file)
{
    DEVEMU_TRY(p, runtime_prefix(file));
    RuntimeImage out;
    if (p.cut) {   // no section headers: what they described is not there
        Elf64_Ehdr eh{};
        std::memcpy(&eh, p.data.data(), sizeof eh);
        eh.e_shoff = 0;
        eh.e_shnum = 0;
        eh.e_shstrndx = SHN_UNDEF;
        std::memcpy(p.data.data(), &eh, sizeof eh);
        out.stripped = p.size - p.data.size();
    }
    out.data = std::move(p.data);
    out.mode = p.mode;
    return out;
}

}  // namespace devemu::vm
