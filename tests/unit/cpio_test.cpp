#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "vm/cpio.hpp"
#include "temp_dir.hpp"

using namespace devemu;
namespace fs = std::filesystem;

TEST_CASE("newc archive: cpio(1) lists and extracts exactly what was written")
{
    vm::CpioWriter w;
    w.add_dir("etc");
    w.add_file("etc/hostname", "devemu\n");
    w.add_file("a/b/c/deep.txt", std::string(1001, 'x'), 0600);   // parents added on demand, odd size padded
    w.add_symlink("bin/sh", "busybox");
    w.add_file("empty", "");
    w.add_file("etc/hostname", "second write is ignored\n");
    const std::string& bytes = w.finish();
    CHECK(bytes.size() % 512 == 0);
    CHECK(bytes.compare(0, 6, "070701") == 0);

    TempDir tmp;
    const auto& dir = tmp.root;
    auto archive = dir / "x.cpio";
    REQUIRE(core::write_file_atomic(archive, bytes));
    auto list = core::run({"sh", "-c", "cpio -it --quiet < " + archive.string()});
    REQUIRE(list);
    REQUIRE(list->exit_code == 0);
    auto names = core::split(std::string(core::trim(list->out)), '\n');
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"a", "a/b", "a/b/c", "a/b/c/deep.txt", "bin", "bin/sh", "empty", "etc", "etc/hostname"});

    auto out = dir / "out";
    fs::create_directories(out);
    auto x = core::run({"sh", "-c", "cd " + out.string() + " && cpio -id --quiet < " + archive.string()});
    REQUIRE(x);
    REQUIRE(x->exit_code == 0);
    CHECK(*core::read_file(out / "etc/hostname") == "devemu\n");
    CHECK(*core::read_file(out / "a/b/c/deep.txt") == std::string(1001, 'x'));
    CHECK((fs::status(out / "a/b/c/deep.txt").permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    CHECK(fs::read_symlink(out / "bin/sh") == "busybox");
    CHECK(fs::file_size(out / "empty") == 0);
}

TEST_CASE("the same input gives the same bytes (cacheable)")
{
    auto make = [] {
        vm::CpioWriter w;
        w.add_file("x/y", "z");
        w.add_symlink("l", "x/y");
        return w.finish();
    };
    CHECK(make() == make());
}
