// Desired-state nodes against a fake configfs tree in a temp dir: the plan for a new unit, apply, read-back,
// drift repaired, removal children first, a changed identity recreated, and `down` (journal replay) leaving the
// tree as it was.
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/nodes.hpp"
#include "core/transaction.hpp"
#include "temp_dir.hpp"

using namespace devemu::core;
namespace fs = std::filesystem;

namespace {

// configfs makes attribute files itself; the fake tree has the ones these nodes write, and the shared fabric dir.
struct FakeConfigfs : TempDir {
    fs::path cfg;
    FakeConfigfs() : cfg(root / "target")
    {
        write("target/iscsi/enable", "0");
        write("target/core/fileio_0/disk/enable", "0");
    }
};

std::vector<Node> desired(const std::string& tpg_identity = "")
{
    return {
        {NodeKind::ensure, "iscsi", ""},
        {NodeKind::dir, "iscsi/t1", tpg_identity},
        {NodeKind::dir, "iscsi/t1/lun_0", ""},
        {NodeKind::link, "iscsi/t1/lun_0/disk", "core/fileio_0/disk"},
        {NodeKind::attr, "iscsi/enable", "1", true, "0"},
    };
}

std::set<std::string> tree(const fs::path& root)
{
    std::set<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(root)) {
        const auto rel = fs::relative(e.path(), root).string();
        if (e.is_symlink()) out.insert(rel + " -> " + fs::read_symlink(e.path()).string());
        else if (e.is_regular_file()) out.insert(rel + " = " + *read_attr(e.path()));
        else out.insert(rel + "/");
    }
    return out;
}

}  // namespace

TEST_CASE("a new unit: every node is created parents first, applied, and reads back as asked")
{
    FakeConfigfs t;
    auto plan = diff({}, desired(), t.cfg);
    REQUIRE(plan.size() == 5);
    for (auto& s : plan) CHECK(s.action == Action::create);
    CHECK(plan[1].node.path == "iscsi/t1");
    CHECK(plan[2].node.path == "iscsi/t1/lun_0");   // a child after its parent
    CHECK(verify(desired(), t.cfg).size() == 4);     // nothing of it there yet (the shared dir is)
    Transaction tx(t.root / "journal");
    REQUIRE(apply(tx, plan, t.cfg));
    tx.commit();
    CHECK(verify(desired(), t.cfg).empty());
    CHECK(*read_attr(t.cfg / "iscsi/enable") == "1");
    CHECK(diff(desired(), desired(), t.cfg).empty());   // up again: nothing to do
}

TEST_CASE("drift behind devemu's back is repaired, removal goes children first, down leaves the tree as it was")
{
    FakeConfigfs t;
    const auto before = tree(t.root);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(apply(tx, diff({}, desired(), t.cfg), t.cfg));
        tx.commit();
    }
    // Someone else turned the target off and removed the LUN's link.
    REQUIRE(write_attr(t.cfg / "iscsi/enable", "0"));
    fs::remove(t.cfg / "iscsi/t1/lun_0/disk");
    auto plan = diff(desired(), desired(), t.cfg);
    REQUIRE(plan.size() == 2);
    for (auto& s : plan) CHECK(s.action == Action::repair);
    CHECK(verify(desired(), t.cfg).size() == 2);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(apply(tx, plan, t.cfg));
        tx.commit();
    }
    CHECK(verify(desired(), t.cfg).empty());

    // The LUN leaves the profile: its link goes before its directory, and nothing else moves.
    auto without_lun = desired();
    without_lun.erase(without_lun.begin() + 2, without_lun.begin() + 4);
    plan = diff(desired(), without_lun, t.cfg);
    REQUIRE(plan.size() == 2);
    CHECK((plan[0].action == Action::remove && plan[0].node.path == "iscsi/t1/lun_0/disk"));
    CHECK((plan[1].action == Action::remove && plan[1].node.path == "iscsi/t1/lun_0"));
    {
        Transaction tx(t.root / "journal");
        REQUIRE(apply(tx, plan, t.cfg));
        tx.commit();
    }
    CHECK_FALSE(fs::exists(t.cfg / "iscsi/t1/lun_0"));
    CHECK(verify(without_lun, t.cfg).empty());

    // `down`: the journal replayed in reverse leaves what was there before devemu, the shared dir included.
    REQUIRE(replay_journal(t.root / "journal"));
    CHECK(tree(t.root) == before);
}

TEST_CASE("a directory whose identity changes is removed with everything below it, then made again")
{
    FakeConfigfs t;
    {
        Transaction tx(t.root / "journal");
        REQUIRE(apply(tx, diff({}, desired("fileio"), t.cfg), t.cfg));
        tx.commit();
    }
    auto plan = diff(desired("fileio"), desired("iblock"), t.cfg);
    std::vector<std::string> order;
    for (auto& s : plan) order.push_back((s.action == Action::remove ? "-" : "+") + s.node.path);
    CHECK(order == std::vector<std::string>{"-iscsi/t1/lun_0/disk", "-iscsi/t1/lun_0", "-iscsi/t1", "+iscsi/t1", "+iscsi/t1/lun_0",
                                            "+iscsi/t1/lun_0/disk"});
    Transaction tx(t.root / "journal");
    REQUIRE(apply(tx, plan, t.cfg));
    tx.commit();
    CHECK(verify(desired("iblock"), t.cfg).empty());
}

TEST_CASE("a link into a directory that is recreated goes first and comes back after it (a LUN and its backstore)")
{
    FakeConfigfs t;
    auto nodes = [](const std::string& control) {
        return std::vector<Node>{{NodeKind::ensure, "core", ""},
                                 {NodeKind::dir, "core/fileio_1", ""},
                                 {NodeKind::dir, "core/fileio_1/d", control},
                                 {NodeKind::ensure, "iscsi", ""},
                                 {NodeKind::dir, "iscsi/t1", ""},
                                 {NodeKind::link, "iscsi/t1/lun", "core/fileio_1/d"}};
    };
    {
        Transaction tx(t.root / "journal");
        REQUIRE(apply(tx, diff({}, nodes("fd_dev_size=1"), t.cfg), t.cfg));
        tx.commit();
    }
    auto plan = diff(nodes("fd_dev_size=1"), nodes("fd_dev_size=2"), t.cfg);
    std::vector<std::string> order;
    for (auto& s : plan) order.push_back((s.action == Action::remove ? "-" : "+") + s.node.path);
    CHECK(order == std::vector<std::string>{"-iscsi/t1/lun", "-core/fileio_1/d", "+core/fileio_1/d", "+iscsi/t1/lun"});
    Transaction tx(t.root / "journal");
    REQUIRE(apply(tx, plan, t.cfg));
    tx.commit();
    CHECK(verify(nodes("fd_dev_size=2"), t.cfg).empty());
}
