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
#include "temp_dir.hpp"
#include "usb/kind.hpp"

using namespace devemu;
namespace fs = std::filesystem;

namespace {
const fs::path fixtures = fs::path(DEVEMU_SOURCE_DIR) / "tests/data/records";
}

TEST_CASE("records and journals written before versions are read: kind, health, journal")
{
    lio::register_target_kind();
    usb::register_gadget_kind();
    TempDir t;
    auto sd = core::StateDir::open(t.root / "state", false);
    REQUIRE(sd);
    fs::create_directories(t.root / "state/units");
    for (auto unit : {"fxiscsi", "fxloop", "msc0"}) {
        INFO(unit);
        fs::copy_file(fixtures / (std::string(unit) + ".json"), sd->record_path(unit));
        fs::copy_file(fixtures / (std::string(unit) + ".journal"), sd->journal(unit));
        auto rec = sd->load(unit);
        REQUIRE(rec);
        CHECK_FALSE(rec->contains("version"));
        auto top = sd->load_scalars(unit);
        REQUIRE(top);
        const std::string kind = top->value("kind", "");
        CHECK(kind == (std::string(unit) == "msc0" ? "gadget" : "target"));
        const auto* k = core::find_kind(kind);
        REQUIRE(k);
        auto h = k->health(*rec);   // this machine has none of it: every node is reported, nothing throws
        CHECK(h.status == "drift");
        CHECK_FALSE(h.detail.empty());
        auto journal = core::load_journal(sd->journal(unit));
        REQUIRE(journal);
        CHECK(journal->size() >= 5);
        for (auto& r : *journal)   // "unbind", "zram_remove": the steps usb and backing register under their old names
            if (r.op == core::UndoOp::named) CHECK(core::undo_registered(r.name));
    }
    CHECK(sd->units().size() == 3);
    // The user backstore's handler was recorded too: ls would say it is not running.
    auto loop = sd->load("fxloop");
    bool handler_line = false;
    for (auto& l : core::find_kind("target")->health(*loop).detail) handler_line = handler_line || l.find("TCMU handler of backstore fx1") != std::string::npos;
    CHECK(handler_line);
}

TEST_CASE("records are written with a version; one from a newer devemu is refused, naming the file and the fix")
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
