#include <catch2/catch.hpp>

#include "profile/profile.hpp"

using namespace devemu;

TEST_CASE("a full profile parses into typed objects")
{
    auto p = profile::parse(R"(
[[backstore]]
name = "d0"
type = "zram"
size = "64M"
block_size = 4096

[[backstore]]
name = "f0"
type = "fileio"
path = "f0.img"
size = 1048576

[[target]]
name = "t0"
portal = "0.0.0.0:3261"
[[target.lun]]
backstore = "d0"
[[target.lun]]
id = 5
backstore = "f0"
[[target.acl]]
initiator = "iqn.2026-11.org.example:c"
chap_user = "u"
chap_secret = "0123456789abcdef"
luns = [5]
)",
                            "/tmp/x.toml");
    REQUIRE(p);
    REQUIRE(p->backstores.size() == 2);
    CHECK(p->backstores[0].type == profile::BackstoreType::zram);
    CHECK(*p->backstores[0].size == 64ull << 20);
    CHECK(p->backstores[0].block_size == 4096);
    CHECK(p->backstores[0].comp_algorithm == "lzo-rle");
    CHECK(p->backstores[1].path == "/tmp/f0.img");   // relative to the profile
    REQUIRE(p->targets.size() == 1);
    auto& t = p->targets[0];
    CHECK(t.wwn == "iqn.2026-11.org.devemu:t0");
    CHECK(t.portal.address == "0.0.0.0");
    CHECK(t.portal.port == 3261);
    CHECK_FALSE(t.portal.loopback());
    REQUIRE(t.luns.size() == 2);
    CHECK(t.luns[0].id == 0);
    CHECK(t.luns[1].id == 5);
    REQUIRE(t.acls.size() == 1);
    CHECK(t.acls[0].luns == std::vector<std::uint32_t>{5});
    CHECK(t.loc.line == 14);
}

TEST_CASE("errors carry file:line and exit code 2")
{
    auto p = profile::parse("[[backstore]]\nname = \"a\"\ntype = \"zram\"\nsize = \"1G\"\nbogus = 1\n", "f.toml");
    REQUIRE_FALSE(p);
    CHECK(p.error().where == "f.toml:5");
    CHECK(p.error().exit_code() == 2);
    CHECK(p.error().message().find("unknown key 'bogus'") != std::string::npos);
}

TEST_CASE("gadget defaults and typed function attributes")
{
    auto p = profile::parse(R"(
[[backstore]]
name = "m"
type = "zram"
size = "16M"
[[gadget]]
name = "g"
[[gadget.function]]
type = "mass_storage"
name = "ms"
[[gadget.function.lun]]
backstore = "m"
readonly = true
[[gadget.function]]
type = "ffs"
name = "app"
)",
                            "g.toml");
    REQUIRE(p);
    auto& g = p->gadgets.at(0);
    CHECK(g.vendor_id == 0x1d6b);
    CHECK(g.speed == profile::Speed::high);
    CHECK(g.functions.at(0).luns.at(0).readonly);
    CHECK(g.functions.at(1).mount == "/dev/usb-ffs/app");
}

TEST_CASE("a user backstore takes zram:SIZE")
{
    auto ok = profile::parse("[[backstore]]\nname=\"u\"\ntype=\"user\"\nhandler=\"uring\"\npath=\"zram:1G\"\n", "u.toml");
    CHECK(ok);
    auto bad = profile::parse("[[backstore]]\nname=\"u\"\ntype=\"user\"\nhandler=\"uring\"\npath=\"zram:lots\"\n", "u.toml");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().where == "u.toml:5");   // the line of the path key itself
}
