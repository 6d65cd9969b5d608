// core::apply_unit, the skeleton lio and usb write configfs through, against a fake tree in a temp dir: phases in
// order with the kind's step between them, the kind's finishing step, and a rollback to exactly the tree before
// whenever a phase, the read-back or the finishing step fails.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <filesystem>
#include <set>

#include "core/apply_unit.hpp"
#include "core/fs.hpp"
#include "temp_dir.hpp"

using namespace devemu::core;
namespace fs = std::filesystem;

namespace {

std::set<std::string> tree(const fs::path& root)
{
    std::set<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(root)) out.insert(fs::relative(e.path(), root).string());
    return out;
}

UnitApply two_phases(const fs::path& root, std::vector<std::string>& log)
{
    UnitApply a{"target 't'", "t", root, {}, {{NodeKind::dir, "core", ""}, {NodeKind::dir, "core/bs", ""}, {NodeKind::dir, "iscsi", ""}, {NodeKind::dir, "iscsi/t", ""}}};
    a.phases = 2;
    a.phase_of = [](const Step& s) { return s.node.path.starts_with("core") ? 0 : 1; };
    a.before_phase = [&log, root](int phase, Transaction&, const std::vector<Step>& plan) -> Status {
        log.push_back(fmt::format("before {} ({} steps planned, core/bs {})", phase, plan.size(), fs::exists(root / "core/bs") ? "made" : "absent"));
        return {};
    };
    a.after_verify = [&log, root](Transaction&) -> Status {
        log.push_back(fs::exists(root / "iscsi/t") ? "after: all made" : "after: missing");
        return {};
    };
    return a;
}

}  // namespace

TEST_CASE("apply_unit: phases in order, the kind's steps between them, then its finishing step, committed")
{
    TempDir t;
    std::vector<std::string> log;
    auto a = two_phases(t.root, log);
    {
        Transaction tx(t.root / "journal");
        auto plan = apply_unit(tx, a);
        REQUIRE(plan);
        CHECK(plan->size() == 4);
    }   // committed: the destructor leaves it
    CHECK(log == std::vector<std::string>{"before 0 (4 steps planned, core/bs absent)", "before 1 (4 steps planned, core/bs made)", "after: all made"});
    CHECK(fs::exists(t.root / "iscsi/t"));

    // Again with the same record: nothing to change, so no step; the finishing step still runs (a rebind).
    log.clear();
    a.recorded = a.desired;
    Transaction tx(t.root / "journal2");
    auto plan = apply_unit(tx, a);
    REQUIRE(plan);
    CHECK(plan->empty());
    CHECK(log.back() == "after: all made");
}

TEST_CASE("apply_unit: a failure anywhere rolls back to the tree before, with the kind's explanation")
{
    for (const std::string where : {"before 1", "after", "read-back"}) {
        INFO(where);
        TempDir t;
        fs::create_directories(t.root / "cfg");
        const auto before = tree(t.root);
        std::vector<std::string> log;
        auto a = two_phases(t.root / "cfg", log);
        if (where == "before 1")
            a.before_phase = [](int phase, Transaction&, const std::vector<Step>&) -> Status {
                return phase == 1 ? fail(Errc::kernel, "handler did not start") : Status{};
            };
        if (where == "after") a.after_verify = [](Transaction&) -> Status { return fail(Errc::timeout, "not enumerated"); };
        if (where == "read-back") {
            // An attribute that swallows what is written (as a write-only control file would): read back, it differs.
            fs::create_symlink("/dev/null", t.root / "cfg/blackhole");
            a.desired.push_back({NodeKind::attr, "blackhole", "5"});
        }
        a.explain = [](Error& e) { e.what += " (explained)"; };
        Transaction tx(t.root / "journal");
        auto plan = apply_unit(tx, a);
        REQUIRE_FALSE(plan);
        CHECK(plan.error().what.ends_with("(explained)"));
        if (where == "before 1") CHECK(plan.error().what.starts_with("target 't': handler did not start"));
        if (where == "after") CHECK(plan.error().what == "not enumerated (explained)");
        if (where == "read-back") {
            CHECK(plan.error().what.starts_with("read-back differs after apply (1 differences), rolled back"));
            fs::remove(t.root / "cfg/blackhole");
        }
        auto now = tree(t.root);
        now.erase("journal");
        CHECK(now == before);
    }
}
