// Module and ELF closures against real inputs: the kernel tree tools/setup unpacks, and host binaries.
#include <catch2/catch.hpp>
#include <algorithm>

#include "core/fs.hpp"
#include "core/kmod.hpp"
#include "core/process.hpp"
#include "core/statedir.hpp"
#include "vm/elf.hpp"
#include "vm/kernel.hpp"
#include "temp_dir.hpp"

using namespace devemu;

namespace {
bool has(const std::vector<core::ModuleInfo>& v, const std::string& n)
{
    return std::any_of(v.begin(), v.end(), [&](auto& m) { return m.name == n; });
}
size_t index_of(const std::vector<core::ModuleInfo>& v, const std::string& n)
{
    return static_cast<size_t>(std::find_if(v.begin(), v.end(), [&](auto& m) { return m.name == n; }) - v.begin());
}
}  // namespace

TEST_CASE("module closure: hard dependencies first, soft dependencies included")
{
    // The VM kernel tools/setup unpacked; without it the VM layer cannot work, so this fails rather than skips.
    auto k = vm::find_kernel("", core::default_cache_dir());
    REQUIRE(k);
    auto kmod = core::Kmod::open(k->modules_dir());
    REQUIRE(kmod);

    auto iscsi = kmod->closure({"iscsi_target_mod"});
    REQUIRE(iscsi);
    REQUIRE(has(*iscsi, "target_core_mod"));
    REQUIRE(has(*iscsi, "configfs"));
    CHECK(index_of(*iscsi, "target_core_mod") < index_of(*iscsi, "iscsi_target_mod"));
    CHECK(index_of(*iscsi, "configfs") < index_of(*iscsi, "target_core_mod"));

    // libcrc32c has "softdep pre: crc32c" (modules.softdep), which resolves through the alias to crc32c_generic.
    auto zram = kmod->closure({"rbd"});
    REQUIRE(zram);
    REQUIRE(has(*zram, "libcrc32c"));
    REQUIRE(has(*zram, "crc32c_generic"));
    CHECK(index_of(*zram, "crc32c_generic") < index_of(*zram, "libcrc32c"));

    auto gadget = kmod->closure({"usb_f_mass_storage", "dummy_hcd"});
    REQUIRE(gadget);
    CHECK(index_of(*gadget, "libcomposite") < index_of(*gadget, "usb_f_mass_storage"));
    CHECK(has(*gadget, "udc_core"));

    // Each module once, even when asked twice or reached twice.
    auto twice = kmod->closure({"tcm_loop", "target_core_mod", "tcm_loop"});
    REQUIRE(twice);
    CHECK(std::count_if(twice->begin(), twice->end(), [](auto& m) { return m.name == "target_core_mod"; }) == 1);

    auto missing = kmod->closure({"no_such_module_xyz"});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().what.find("no_such_module_xyz") != std::string::npos);
}

TEST_CASE("ELF closure: interpreter and DT_NEEDED, transitively")
{
    auto ls = vm::elf_closure("/bin/ls");
    REQUIRE(ls);
    auto contains = [&](const std::string& needle) {
        return std::any_of(ls->begin(), ls->end(), [&](auto& p) { return p.find(needle) != std::string::npos; });
    };
    CHECK(ls->front() == "/bin/ls");
    CHECK(contains("ld-linux-x86-64.so.2"));
    CHECK(contains("libc.so.6"));
    CHECK(contains("libselinux.so.1"));   // direct
    CHECK(contains("libpcre2-8.so.0"));   // through libselinux

    auto deps = vm::read_elf_deps("/bin/busybox");   // busybox-static: no interpreter, no libraries
    REQUIRE(deps);
    CHECK(deps->interp.empty());
    CHECK(deps->needed.empty());

    auto not_elf = vm::elf_closure("/etc/hostname");
    REQUIRE_FALSE(not_elf);
}

TEST_CASE("an ELF file as it runs: what the program headers cover, runnable, without what comes after")
{
    const auto self = core::self_exe();
    auto img = vm::elf_runtime_image(self);
    REQUIRE(img);
    CHECK(img->stripped > 0);   // at least the symbol tables and section headers of a test binary
    CHECK(img->data.size() + img->stripped == std::filesystem::file_size(self));
    CHECK(img->mode == static_cast<unsigned>(std::filesystem::status(self).permissions()));   // rwx as the file's
    TempDir t;
    const auto copy = t.root / "runs";
    t.write("runs", img->data);
    std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
    auto ran = core::run({copy.string(), "counts in words take the singular for one"});   // one case of this binary, run by the copy
    REQUIRE(ran);
    CHECK(ran->exit_code == 0);
    CHECK(ran->out.find("All tests passed") != std::string::npos);
    auto text = vm::elf_runtime_image("/etc/hostname");   // not ELF: as it is
    REQUIRE(text);
    CHECK(text->stripped == 0);
    CHECK(text->data == core::read_file("/etc/hostname").value());
}
