#include <catch2/catch.hpp>

#include <string>

#include "profile/profile.hpp"
#include "vm/unit_up_detail.hpp"

using namespace devemu;

TEST_CASE("up --vm: the unit a profile's VM is, what it forwards, whether it needs the host's root")
{
    const std::string one = "[[backstore]]\nname = \"z\"\ntype = \"zram\"\nsize = \"16M\"\n"
                            "[[target]]\nname = \"t0\"\nportal = \"127.0.0.1:3270\"\npaths = 2\n[[target.lun]]\nbackstore = \"z\"\n";
    auto a = profile::parse(one, "/p/one.toml");
    REQUIRE(a);
    CHECK(vm::vm_unit_name(*a) == "t0");
    auto fw = vm::portal_forwards(*a);
    REQUIRE(fw.size() == 2);   // every path's portal, each its own forward
    CHECK(fw[0].key == "t0");
    CHECK(fw[0].guest == 3270);
    CHECK(fw[1].key == "t0/2");
    CHECK(fw[1].guest == a->targets[0].path_portal(1).port);
    CHECK_FALSE(vm::needs_host_root(*a, false));
    CHECK(vm::needs_host_root(*a, true));   // an --exec command is the host's

    // A second target (a loopback one: nothing to forward) and the VM is named after the file; multipath needs the
    // host's multipath-tools in the VM.
    std::string mp = one;
    mp.insert(mp.find("paths = 2\n") + 10, "multipath = true\n");
    auto b = profile::parse(mp + "[[backstore]]\nname = \"y\"\ntype = \"zram\"\nsize = \"16M\"\n[[target]]\nname = \"t1\"\nfabric = \"loopback\"\n[[target.lun]]\nbackstore = \"y\"\n", "/p/two.toml");
    INFO((b ? "" : b.error().what));
    REQUIRE(b);
    CHECK(vm::vm_unit_name(*b) == "two");
    CHECK(vm::portal_forwards(*b).size() == 2);
    CHECK(vm::needs_host_root(*b, false));
}

TEST_CASE("import --vm: the guest imports the file, and what it brought up is read as up's units")
{
    vm::UpVmRequest req;
    req.saveconfig = true;
    req.insecure = true;
    const auto a = vm::guest_apply_args(req, "/x/saveconfig.json");
    CHECK(a == std::vector<std::string>{"-q", "import", "--in-vm", "--json", "--secrets", "/x/saveconfig.json", "--insecure"});
    req.saveconfig = false;
    CHECK(vm::guest_apply_args(req, "/x/p.toml")[1] == "up");

    const auto units = vm::guest_units_of(R"({"targets": [{"unit": "t0", "ok": true, "changes": 3, "access": {"wwn": "iqn.x"}},
                                                          {"unit": "t1", "ok": false, "error": "no"}], "notes": []})", true);
    REQUIRE(units.is_array());
    REQUIRE(units.size() == 1);   // the one that failed is not up
    CHECK(units[0]["unit"] == "t0");
    CHECK(units[0]["kind"] == "target");
    CHECK(units[0]["changes"] == 3);
    CHECK(units[0]["access"]["wwn"] == "iqn.x");
    CHECK(vm::guest_units_of("not json", true).is_discarded());
    CHECK(vm::guest_units_of(R"([{"unit": "u"}])", false).size() == 1);
    CHECK(vm::guest_units_of(R"({"unit": "u"})", false).is_discarded());   // up prints an array
}
