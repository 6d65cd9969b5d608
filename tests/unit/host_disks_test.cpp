#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "core/transaction.hpp"
#include "profile/profile.hpp"
#include "temp_dir.hpp"
#include "vm/host_disks.hpp"

namespace fs = std::filesystem;
using namespace devemu;

namespace {

std::string two_files(const TempDir& t)
{
    return "[[backstore]]\nname = \"a\"\ntype = \"fileio\"\npath = \"" + (t.root / "a.img").string() + "\"\nsize = \"1M\"\n"
           "[[backstore]]\nname = \"b\"\ntype = \"user\"\nhandler = \"uring\"\nbacking = \"" + (t.root / "a.img").string() + "\"\nsize = \"1M\"\nreadonly = true\n"
           "[[backstore]]\nname = \"z\"\ntype = \"user\"\nhandler = \"uring\"\nbacking = \"zram:16M\"\n"
           "[[backstore]]\nname = \"c\"\ntype = \"fileio\"\npath = \"" + (t.root / "dir,1/c.img").string() + "\"\nsize = \"2M\"\n"
           "[[target]]\nname = \"t\"\nfabric = \"loopback\"\n[[target.lun]]\nbackstore = \"a\"\n[[target.lun]]\nbackstore = \"b\"\n"
           "[[target.lun]]\nbackstore = \"z\"\n[[target.lun]]\nbackstore = \"c\"\n";
}

}  // namespace

TEST_CASE("host disks: files are made on the host, one disk per file, zram stays in the VM")
{
    TempDir t;
    fs::create_directories(t.root / "dir,1");
    auto prof = profile::parse(two_files(t), (t.root / "p.toml").string());
    REQUIRE(prof);
    core::Transaction tx(t.root / "journal");
    auto disks = vm::plan_host_disks(*prof, tx, false);
    REQUIRE(disks);
    REQUIRE(disks->size() == 2);
    CHECK((*disks)[0].backstores == std::vector<std::string>{"a", "b"});   // the same file: one disk
    CHECK((*disks)[0].serial == "devemu-0");
    CHECK_FALSE((*disks)[0].readonly);   // a writable backstore on it keeps it writable
    CHECK((*disks)[1].backstores == std::vector<std::string>{"c"});
    CHECK(fs::file_size(t.root / "a.img") == 1 << 20);   // made sparse, at its size
    CHECK(fs::file_size(t.root / "dir,1/c.img") == 2 << 20);
    tx.commit();

    const auto args = vm::host_disk_args(*disks);
    REQUIRE(args.size() == 8);
    CHECK(args[1] == "file=" + (t.root / "a.img").string() + ",format=raw,if=none,id=hd0,cache=writeback,discard=unmap");
    CHECK(args[3] == "virtio-blk-pci,drive=hd0,serial=devemu-0");
    CHECK(args[5].find("dir,,1/c.img,format=raw") != std::string::npos);   // qemu's escape of a comma
}

TEST_CASE("host disks: a file of another size is not resized without --force")
{
    TempDir t;
    t.write("a.img", std::string(4096, 'x'));
    auto prof = profile::parse("[[backstore]]\nname = \"a\"\ntype = \"fileio\"\npath = \"" + (t.root / "a.img").string() +
                                   "\"\nsize = \"1M\"\n[[target]]\nname = \"t\"\nfabric = \"loopback\"\n[[target.lun]]\nbackstore = \"a\"\n",
                               (t.root / "p.toml").string());
    REQUIRE(prof);
    core::Transaction tx(t.root / "journal");
    auto disks = vm::plan_host_disks(*prof, tx, false);
    REQUIRE_FALSE(disks);
    CHECK(disks.error().what.find("does not resize data") != std::string::npos);
    CHECK(fs::file_size(t.root / "a.img") == 4096);
    tx.commit();
}

TEST_CASE("host disks: the guest serves the virtio disk with the serial, its path not looked for")
{
    TempDir t;
    const std::string text = "[[backstore]]\nname = \"a\"\ntype = \"fileio\"\npath = \"/no/such/dir/a.img\"\n"
                             "[[target]]\nname = \"t\"\nfabric = \"loopback\"\n[[target.lun]]\nbackstore = \"a\"\n";
    REQUIRE_FALSE(profile::parse(text, "p.toml"));   // on the host: no such file and no size
    auto prof = profile::parse(text, "p.toml", {"a"});
    REQUIRE(prof);
    CHECK(prof->backstores[0].host_disk);
    t.write("sys/vda/serial", "other\n");
    t.write("sys/vdb/serial", "devemu-0\n");
    t.write("dev/vdb", "");
    REQUIRE(vm::use_host_disks(*prof, {{"a", "devemu-0"}}, t.root / "sys", t.root / "dev", std::chrono::milliseconds(100)));
    CHECK(prof->backstores[0].path == (t.root / "dev/vdb").string());

    auto missing = vm::use_host_disks(*prof, {{"a", "devemu-7"}}, t.root / "sys", t.root / "dev", std::chrono::milliseconds(50));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().what.find("no virtio disk with serial devemu-7") != std::string::npos);
    CHECK_FALSE(vm::use_host_disks(*prof, {{"nope", "devemu-0"}}, t.root / "sys", t.root / "dev", std::chrono::milliseconds(50)));
}

TEST_CASE("host disks: qemu's complaint is one line, a lock it cannot take is busy")
{
    auto e = vm::qemu_error("qemu-system-x86_64: -device virtio-blk-pci,drive=hd0: Failed to get \"write\" lock\r\nIs another process using the image [/a.img]?\n",
                            "u1", core::Errc::kernel);
    CHECK(e.code == core::Errc::busy);
    CHECK(e.what == "qemu: -device virtio-blk-pci,drive=hd0: Failed to get \"write\" lock Is another process using the image [/a.img]?");
    CHECK(e.where == "u1");
    auto other = vm::qemu_error("Could not open '/x': No such file or directory", "/x", core::Errc::kernel);
    CHECK(other.code == core::Errc::kernel);
    CHECK(other.what == "qemu: Could not open '/x': No such file or directory");
}
