#include <catch2/catch.hpp>

#include "profile/profile.hpp"
#include "profile/table.hpp"

#include <functional>
#include <sstream>

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

TEST_CASE("a user backstore's handler is devemu's own: it may be left out, another is refused at its line")
{
    auto plain = profile::parse("[[backstore]]\nname=\"u\"\ntype=\"user\"\npath=\"zram:1G\"\n", "u.toml");
    REQUIRE(plain);
    CHECK(plain->backstores.at(0).handler == "uring");
    auto other = profile::parse("[[backstore]]\nname=\"u\"\ntype=\"user\"\nhandler=\"file\"\npath=\"zram:1G\"\n", "u.toml");
    REQUIRE_FALSE(other);
    CHECK(other.error().where == "u.toml:4");
    CHECK(other.error().what.find("handler \"file\"") != std::string::npos);
}

TEST_CASE("line_of agrees with toml11's own line for every value, across two files")
{
    for (int n : {3, 40}) {
        std::string text = "# a comment\nname = \"x\"\n\n";
        for (int i = 0; i < n; ++i)
            text += "[[backstore]]\nname = \"b" + std::to_string(i) + "\"\nsize = \"1M\"\nattrs = { a = 1, b = [1,\n 2] }\n\n";
        std::istringstream in(text);
        const auto root = toml::parse(in, "t" + std::to_string(n) + ".toml");
        int checked = 0;
        std::function<void(const toml::value&)> walk = [&](const toml::value& v) {
            CHECK(profile::line_of(v) == v.location().line());
            ++checked;
            if (v.is_table())
                for (const auto& [k, c] : v.as_table()) walk(c);
            if (v.is_array())
                for (const auto& c : v.as_array()) walk(c);
        };
        walk(root);
        CHECK(checked > n * 5);
        CHECK(profile::line_of(toml::find(root, "backstore").as_array().back().as_table().at("size")) == 6u + 6u * static_cast<unsigned>(n - 1));
    }
}
