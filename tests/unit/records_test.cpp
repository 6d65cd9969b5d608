// Unit records across releases: the records and journals in tests/data/records were written by devemu before
// records carried a version (a loopback target with a zram and a `user` backstore, an iSCSI target with CHAP, a
// mass-storage gadget, taken from a VM). A user who upgrades with units up must still see them in `ls` (kind,
// health) and `down` them (the journal reads). A record from a newer devemu is refused in one clear line.
#include <catch2/catch.hpp>
#include <filesystem>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/statedir.hpp"
#include "core/unit_kind.hpp"
#include "lio/kind.hpp"
#include "lio/record.hpp"
#include "temp_dir.hpp"
#include "usb/kind.hpp"
#include "usb/record.hpp"
#include "vm/record.hpp"
#include "vm/unit.hpp"

using namespace devemu;
namespace fs = std::filesystem;

namespace {
const fs::path fixtures = fs::path(DEVEMU_SOURCE_DIR) / "tests/data/records";
}

TEST_CASE("records and journals written before versions are read: kind, health, journal")
{
    lio::register_target_kind();
    usb::register_gadget_kind();
    vm::register_vm_kind();
    TempDir t;
    auto sd = core::StateDir::open(t.root / "state", false);
    REQUIRE(sd);
    fs::create_directories(t.root / "state/units");
    for (auto [unit, file] : {std::pair{"fxiscsi", "fxiscsi"}, {"fxloop", "fxloop"}, {"msc0", "msc0"}, {"zram0", "zram0-vm"}}) {
        INFO(unit);
        fs::copy_file(fixtures / (std::string(file) + ".json"), sd->record_path(unit));
        fs::copy_file(fixtures / (std::string(file) + ".journal"), sd->journal(unit));
        auto rec = sd->load(unit);
        REQUIRE(rec);
        CHECK_FALSE(rec->contains("version"));
        auto top = sd->load_scalars(unit);
        REQUIRE(top);
        const std::string kind = top->value("kind", "");
        const std::string u = unit;
        CHECK(kind == (u == "msc0" ? "gadget" : u == "zram0" ? "vm" : "target"));
        const auto* k = core::find_kind(kind);
        REQUIRE(k);
        auto h = k->health(*rec);   // this machine has none of it: every node is reported (the VM's qemu is gone), nothing throws
        CHECK(h.status == (u == "zram0" ? "dead" : "drift"));
        CHECK_FALSE(h.detail.empty());
        auto journal = core::load_journal(sd->journal(unit));
        REQUIRE(journal);
        CHECK(journal->size() >= (u == "zram0" ? 2 : 5));
        for (auto& r : *journal)   // "unbind", "zram_remove": the steps usb and backing register under their old names
            if (r.op == core::UndoOp::named) CHECK(core::undo_registered(r.name));
    }
    CHECK(sd->units().size() == 4);
    // The user backstore's handler was recorded too: ls would say it is not running.
    auto loop = sd->load("fxloop");
    bool handler_line = false;
    for (auto& l : core::find_kind("target")->health(*loop).detail) handler_line = handler_line || l.find("TCMU handler of backstore fx1") != std::string::npos;
    CHECK(handler_line);
}

TEST_CASE("records are written with a version, one from a newer devemu is refused, naming the file and the fix")
{
    TempDir t;
    auto sd = core::StateDir::open(t.root, false);
    REQUIRE(sd);
    REQUIRE(sd->save("u", {{"kind", "target"}}));
    CHECK(sd->load("u")->value("version", 0) == core::kRecordVersion);
    REQUIRE(sd->save("v", {{"kind", "target"}, {"version", core::kRecordVersion + 1}, {"nodes", nlohmann::json::array()}}));
    for (auto r : {sd->load("v"), sd->load_scalars("v")}) {
        REQUIRE_FALSE(r);
        CHECK(r.error().what.find("newer devemu") != std::string::npos);
        CHECK(r.error().where == sd->record_path("v").string());
    }
}

namespace {
nlohmann::json fixture(const std::string& name)
{
    auto text = core::read_file(fixtures / name);
    REQUIRE(text);
    return nlohmann::json::parse(*text);
}
}  // namespace

TEST_CASE("each kind's typed record reads the records today's release writes, and writes them back unchanged")
{
    for (auto unit : {"fxiscsi", "fxloop"}) {
        INFO(unit);
        auto j = fixture(std::string(unit) + ".json");
        auto r = lio::target_record(j);
        REQUIRE(r);
        CHECK(r->version == core::kRecordVersion);   // written before records carried one: read as version 1
        CHECK(r->name == unit);
        CHECK(r->nodes.size() == j["nodes"].size());
        CHECK(r->nodes == core::recorded_nodes(j));
        CHECK(r->info == j["info"]);
        auto back = lio::target_record(nlohmann::json(*r));
        REQUIRE(back);
        CHECK(nlohmann::json(*back) == nlohmann::json(*r));
    }
    auto loop = *lio::target_record(fixture("fxloop.json"));
    REQUIRE(loop.handlers.count("fx1"));
    CHECK(loop.handlers["fx1"].supervisor > 0);
    CHECK_FALSE(loop.handlers["fx1"].stats.empty());

    auto g = usb::gadget_record(fixture("msc0.json"));
    REQUIRE(g);
    CHECK(g->udc.starts_with("dummy_udc."));
    REQUIRE_FALSE(g->luns.empty());
    CHECK(g->luns[0].function == "ms0");
    CHECK(g->luns[0].disk.has_value());
    auto gback = usb::gadget_record(nlohmann::json(*g));
    REQUIRE(gback);
    CHECK(nlohmann::json(*gback) == nlohmann::json(*g));

    // `up --vm`: a record as the last release wrote it (targets without a "kind" in its units).
    auto v = vm::vm_record(fixture("zram0-vm.json"));
    REQUIRE(v);
    CHECK(v->kind == "vm");
    CHECK(v->pid > 0);
    CHECK_FALSE(v->forwards.empty());
    REQUIRE_FALSE(v->units.empty());
    CHECK(v->units[0].kind == "target");
    CHECK_FALSE(v->units[0].portal.empty());
    auto vback = vm::vm_record(nlohmann::json(*v));
    REQUIRE(vback);
    CHECK(nlohmann::json(*vback) == nlohmann::json(*v));

    // A field of the wrong type is an error naming the unit, not an exception.
    auto bad = lio::target_record({{"name", "t"}, {"nodes", "not a list"}});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().where == "t");
}
