// Unit kinds as ops tables: registered by their library, found by a record's "kind"; the target kind's health.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/transaction.hpp"
#include "core/unit_kind.hpp"
#include "lio/kind.hpp"
#include "temp_dir.hpp"

using nlohmann::json;
using namespace devemu;

TEST_CASE("a kind registered by its library is found by name, an unknown one is not")
{
    int downs = 0;
    core::UnitKind tk;
    tk.name = "test-kind";
    tk.down = [&](const core::StateDir&, const std::string&, const json&) -> core::Status { ++downs; return {}; };
    tk.health = [](const json&) { return core::Health{"drift", {"x"}}; };
    tk.down_order = 3;
    core::register_kind(std::move(tk));
    const auto* k = core::find_kind("test-kind");
    REQUIRE(k);
    CHECK(k->down_order == 3);
    CHECK(k->health(json::object()).status == "drift");
    TempDir t;
    auto sd = core::StateDir::open(t.root / "sd", false);
    REQUIRE(sd);
    CHECK(k->down(*sd, "u", json::object()));
    CHECK(downs == 1);
    CHECK_FALSE(core::find_kind("no-such-kind"));
    lio::register_target_kind();
    REQUIRE(core::find_kind("target"));
}

TEST_CASE("a target's health: its configfs nodes as recorded, and its TCMU handlers alive")
{
    TempDir t;
    t.write("target/iscsi/t1/tpgt_1/enable", "1");
    lio::Roots roots;
    roots.target = t.root / "target";
    json rec = {{"kind", "target"},
                {"nodes", json::array({{{"kind", "dir"}, {"path", "iscsi/t1"}, {"value", ""}},
                                       {{"kind", "attr"}, {"path", "iscsi/t1/tpgt_1/enable"}, {"value", "1"}}})}};
    CHECK(lio::target_health(rec, roots).status == "healthy");
    t.write("target/iscsi/t1/tpgt_1/enable", "0");   // turned off behind devemu's back
    auto drift = lio::target_health(rec, roots);
    CHECK(drift.status == "drift");
    REQUIRE(drift.detail.size() == 1);
    CHECK(drift.detail[0].find("enable") != std::string::npos);
    t.write("target/iscsi/t1/tpgt_1/enable", "1");
    rec["handlers"] = {{"u0", {{"supervisor", 999999999}, {"start", 1}}}};   // a handler that is not there
    auto dead = lio::target_health(rec, roots);
    CHECK(dead.status == "drift");
    REQUIRE(dead.detail.size() == 1);
    CHECK(dead.detail[0].find("TCMU handler of backstore u0 is not running") != std::string::npos);
}

TEST_CASE("a unit with only a journal (a crash during up) is removed by replaying it, then forgotten")
{
    TempDir t;
    auto sd = core::StateDir::open(t.root / "sd", false);
    REQUIRE(sd);
    std::filesystem::create_directories(t.root / "sd/units");
    {
        core::Transaction tx(sd->journal("crashed"));
        REQUIRE(tx.mkdir(t.root / "made"));
        REQUIRE(tx.mkdir(t.root / "made/child"));
        tx.commit();
    }
    REQUIRE(core::down_by_journal(*sd, "crashed"));
    CHECK_FALSE(std::filesystem::exists(t.root / "made"));
    CHECK_FALSE(std::filesystem::exists(sd->journal("crashed")));
    CHECK(sd->units().empty());
}

TEST_CASE("a record from another boot is forgotten when the state dir is opened, this boot's is kept")
{
    TempDir t;
    {
        auto sd = core::StateDir::open(t.root / "sd", false);
        REQUIRE(sd);
        REQUIRE(sd->save("now", {{"kind", "target"}}));
        REQUIRE(sd->save("old", {{"kind", "target"}}));
        REQUIRE(sd->save("older", {{"kind", "target"}}));
        REQUIRE(sd->load_scalars("now")->value("boot_id", "") == core::boot_id());
    }
    for (auto name : {"old", "older"}) {   // as a state dir that survived a reboot has them
        auto rec = nlohmann::json::parse(std::ifstream(t.root / "sd/units" / (std::string(name) + ".json")));
        rec["boot_id"] = "00000000-0000-0000-0000-000000000000";
        std::ofstream(t.root / "sd/units" / (std::string(name) + ".json")) << rec.dump();
    }
    std::ofstream(t.root / "sd/units/older.journal") << "{}\n";
    {
        auto peek = core::StateDir::open(t.root / "sd", false);   // without the lock (ls): nothing changes
        REQUIRE(peek);
        CHECK(peek->units().size() == 3);
    }
    auto sd = core::StateDir::open(t.root / "sd", true);
    REQUIRE(sd);
    CHECK(sd->units() == std::vector<std::string>{"now"});
    CHECK_FALSE(std::filesystem::exists(t.root / "sd/units/older.journal"));
}

TEST_CASE("a unit is addressed by its own name, or by the name of a unit another holds")
{
    core::UnitKind hk;
    hk.name = "test-holder";
    hk.down = [](const core::StateDir&, const std::string&, const json&) -> core::Status { return {}; };
    hk.health = [](const json&) { return core::Health{}; };
    hk.holds = [](const json& rec, const std::string& name) {
        for (auto& n : rec.value("inner", json::array()))
            if (n == name) return true;
        return false;
    };
    core::register_kind(std::move(hk));
    TempDir t;
    auto sd = core::StateDir::open(t.root / "sd", true);
    REQUIRE(sd);
    REQUIRE(sd->save("vm1", {{"kind", "test-holder"}, {"inner", {"vm1", "a", "b"}}}));
    REQUIRE(sd->save("vm2", {{"kind", "test-holder"}, {"inner", {"b"}}}));
    auto own = core::address_unit(*sd, "vm1");   // its own record first, though it holds that name too
    REQUIRE(own);
    CHECK(own->unit == "vm1");
    CHECK(own->held.empty());
    REQUIRE(own->kind);
    CHECK(own->kind->name == "test-holder");
    auto held = core::address_unit(*sd, "a");
    REQUIRE(held);
    CHECK(held->unit == "vm1");
    CHECK(held->held == "a");
    CHECK(held->record["inner"].size() == 3);
    auto both = core::address_unit(*sd, "b");
    REQUIRE_FALSE(both);
    CHECK(both.error().code == core::Errc::invalid_input);
    CHECK(both.error().what.find("vm1") != std::string::npos);
    CHECK(both.error().what.find("vm2") != std::string::npos);
    auto none = core::address_unit(*sd, "zz");
    REQUIRE_FALSE(none);
    CHECK(none.error().code == core::Errc::missing);
    CHECK(none.error().what == "no such unit 'zz'");
}
