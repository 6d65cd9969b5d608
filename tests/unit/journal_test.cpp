#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/statedir.hpp"
#include "core/transaction.hpp"
#include "temp_dir.hpp"

using namespace devemu::core;
namespace fs = std::filesystem;

namespace {

// Stand-in for configfs: a directory with an existing attribute file.
struct TempTree : TempDir {
    TempTree() { write("cfg/enable", "0\n"); }
};

// Everything below root, as "path" or "path=contents", so two trees can be compared.
std::set<std::string> snapshot(const fs::path& root)
{
    std::set<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(root)) {
        auto rel = fs::relative(e.path(), root).string();
        if (rel.starts_with("journal")) continue;
        if (e.is_symlink()) out.insert(rel + "->" + fs::read_symlink(e.path()).string());
        else if (e.is_regular_file()) out.insert(rel + "=" + *read_file(e.path()));
        else out.insert(rel + "/");
    }
    return out;
}

// Six steps shaped like a LIO bring-up: objects, attributes, links.
Status bring_up(Transaction& tx, const fs::path& cfg)
{
    DEVEMU_CHECK(tx.mkdir(cfg / "core"));
    DEVEMU_CHECK(tx.mkdir(cfg / "core" / "fileio_0"));
    DEVEMU_CHECK(tx.mkdir(cfg / "iscsi"));
    DEVEMU_CHECK(tx.mkdir(cfg / "iscsi" / "lun_0"));
    DEVEMU_CHECK(tx.symlink(cfg / "core" / "fileio_0", cfg / "iscsi" / "lun_0" / "link"));
    DEVEMU_CHECK(tx.write(cfg / "enable", "1", Undo::restore));
    return {};
}

constexpr std::size_t kSteps = 6;

}  // namespace

TEST_CASE("rollback restores the tree exactly")
{
    TempTree t;
    auto before = snapshot(t.root);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(bring_up(tx, t.root / "cfg"));
        CHECK(tx.steps() == kSteps);
        CHECK(*read_attr(t.root / "cfg" / "enable") == "1");
        REQUIRE(tx.rollback());
    }
    CHECK(snapshot(t.root) == before);
    CHECK_FALSE(fs::exists(t.root / "journal"));
}

TEST_CASE("an uncommitted transaction rolls back when destroyed, a committed one keeps its journal")
{
    TempTree t;
    auto before = snapshot(t.root);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(bring_up(tx, t.root / "cfg"));
    }
    CHECK(snapshot(t.root) == before);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(bring_up(tx, t.root / "cfg"));
        tx.commit();
    }
    CHECK(snapshot(t.root) != before);
    CHECK(load_journal(t.root / "journal")->size() == kSteps);
    REQUIRE(replay_journal(t.root / "journal"));   // what `down` does
    CHECK(snapshot(t.root) == before);
}

TEST_CASE("a failing step rolls back only its own transaction")
{
    TempTree t;
    Transaction first(t.root / "journal");
    REQUIRE(first.mkdir(t.root / "cfg" / "kept"));
    first.commit();
    auto after_first = snapshot(t.root);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(tx.mkdir(t.root / "cfg" / "new"));
        auto s = tx.mkdir(t.root / "cfg" / "kept");   // exists, not ours: refused
        REQUIRE_FALSE(s);
        CHECK(s.error().code == Errc::busy);
        REQUIRE(tx.rollback());
    }
    CHECK(snapshot(t.root) == after_first);
    CHECK(load_journal(t.root / "journal")->size() == 1);
}

TEST_CASE("a partial rollback on top of a unit that is up undoes its own steps in reverse, children first")
{
    // The `up` that fails on a unit already up: only the new transaction's steps go, newest first (a forward undo
    // would meet a directory that still has children, or restore an attribute before what depends on it is gone).
    TempTree t;
    {
        Transaction first(t.root / "journal");
        REQUIRE(bring_up(first, t.root / "cfg"));
        first.commit();
    }
    auto after_first = snapshot(t.root);
    {
        Transaction tx(t.root / "journal");
        REQUIRE(tx.mkdir(t.root / "cfg" / "iscsi" / "lun_1"));
        REQUIRE(tx.mkdir(t.root / "cfg" / "iscsi" / "lun_1" / "acl"));
        REQUIRE(tx.symlink(t.root / "cfg" / "core" / "fileio_0", t.root / "cfg" / "iscsi" / "lun_1" / "acl" / "link"));
        REQUIRE(tx.write(t.root / "cfg" / "enable", "2", Undo::restore));
        REQUIRE(tx.rollback());
    }
    CHECK(snapshot(t.root) == after_first);
    CHECK(*read_attr(t.root / "cfg" / "enable") == "1");
    CHECK(load_journal(t.root / "journal")->size() == kSteps);   // the first transaction's records, untouched
    REQUIRE(replay_journal(t.root / "journal"));
    CHECK_FALSE(fs::exists(t.root / "cfg" / "core"));
}

TEST_CASE("a crash between any two steps is undone by replaying the journal")
{
    // For every step k: a child process runs the bring-up and dies (_exit) right after step k's undo record is
    // durable and before the step acts; the parent then replays the journal as `down` or recovery would.
    for (std::size_t k = 0; k < kSteps; ++k) {
        TempTree t;
        auto before = snapshot(t.root);
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            testing::after_journal_hook = [k](std::size_t step) {
                if (step == k) ::_exit(42);
            };
            Transaction tx(t.root / "journal");
            (void)bring_up(tx, t.root / "cfg");
            ::_exit(0);
        }
        int st = 0;
        ::waitpid(pid, &st, 0);
        INFO("crash at step " << k);
        REQUIRE(WEXITSTATUS(st) == 42);
        CHECK(load_journal(t.root / "journal")->size() == k + 1);
        REQUIRE(replay_journal(t.root / "journal"));
        CHECK(snapshot(t.root) == before);
        REQUIRE(replay_journal(t.root / "journal"));   // idempotent: nothing left to do, no error
    }
}

TEST_CASE("a torn last journal line is ignored, a corrupt middle line is an error")
{
    TempTree t;
    auto j = t.root / "journal";
    fs::create_directories(t.root / "cfg" / "x");
    { std::ofstream(j) << UndoRecord{UndoOp::rmdir, (t.root / "cfg" / "x").string()}.to_line() << "\n"; }
    { std::ofstream(j, std::ios::app) << "{\"op\":\"rmd"; }
    auto recs = load_journal(j);
    REQUIRE(recs);
    CHECK(recs->size() == 1);
    REQUIRE(replay_journal(j));
    CHECK_FALSE(fs::exists(t.root / "cfg" / "x"));

    { std::ofstream(j) << "garbage\n{\"op\":\"rmdir\",\"path\":\"/nonexistent\"}\n"; }
    auto bad = load_journal(j);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().where == j.string() + ":1");
}

TEST_CASE("undo records round-trip through their journal line")
{
    UndoRecord r{UndoOp::kill, "qemu", "tab\tand\nnewline", 1234, 99};
    auto back = UndoRecord::from_line(r.to_line());
    REQUIRE(back);
    CHECK(*back == r);
}

TEST_CASE("kill undo spares a reused pid")
{
    // The child takes SIGTERM with the default action, not Catch's handler (which would report the child as a failed
    // test): blocked across the fork, so it cannot arrive before the child has reset it.
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &term, &old);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGTERM, SIG_DFL);
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        ::pause();
        ::_exit(0);
    }
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    auto start = process_start_time(pid);
    REQUIRE(start != 0);
    REQUIRE(undo({UndoOp::kill, "sleeper", "", pid, start + 1}));   // wrong start time: not our process
    CHECK(::waitpid(pid, nullptr, WNOHANG) == 0);
    REQUIRE(undo({UndoOp::kill, "sleeper", "", pid, start}));
    int st = 0;
    CHECK(::waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st));
}

TEST_CASE("atomic writes leave either the old or the new file")
{
    TempTree t;
    auto f = t.root / "state.json";
    REQUIRE(write_file_atomic(f, "old", 0600));
    REQUIRE(write_file_atomic(f, "new", 0600));
    CHECK(*read_file(f) == "new");
    CHECK((fs::status(f).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    for (auto& e : fs::directory_iterator(t.root)) CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("kill undo by command-line marker: for a process journaled before its pid was known")
{
    const std::string marker = "devemu-test-marker-" + std::to_string(::getpid());
    pid_t pid = ::fork();
    if (pid == 0) {
        ::execlp("sleep", marker.c_str(), "100", nullptr);   // the marker is argv[0]: it stays in /proc/PID/cmdline
        ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {   // until exec has happened and the command line carries the marker
        auto cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline");
        if (cmd && cmd->find(marker) != std::string::npos) break;
        ::usleep(10000);
    }
    REQUIRE(undo({UndoOp::kill, "sh", "some-other-marker", 0, 0}));
    CHECK(::waitpid(pid, nullptr, WNOHANG) == 0);   // untouched
    REQUIRE(undo({UndoOp::kill, "sh", marker, 0, 0}));
    int st = 0;
    CHECK(::waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st));
}

TEST_CASE("a record's scalars load without its nested values")
{
    TempTree t;
    auto sd = StateDir::open(t.root / "state", false);
    REQUIRE(sd);
    REQUIRE(sd->save("u", {{"kind", "vm"}, {"pid", 42}, {"flag", true}, {"nodes", {{{"path", "x"}}, {{"path", "y"}}}}, {"info", {{"a", 1}}}}));
    auto j = sd->load_scalars("u");
    REQUIRE(j);
    CHECK(j->value("kind", "") == "vm");
    CHECK(j->value("pid", 0) == 42);
    CHECK(j->value("flag", false));
    CHECK_FALSE(j->contains("nodes"));
    CHECK_FALSE(j->contains("info"));
    CHECK(sd->load("u")->contains("nodes"));
}

TEST_CASE("a record's scalars: brackets, quotes and escapes inside values do not confuse the skipping")
{
    TempTree t;
    auto sd = StateDir::open(t.root / "state", false);
    REQUIRE(sd);
    const nlohmann::json rec = {{"a", {{"s", "}]\\\"{["}, {"x", {1, {{"y", "]"}}, nullptr}}}},
                                {"kind", "lio \"}{ ,"},
                                {"n", -1.5e3},
                                {"nil", nullptr},
                                {"z", {"[", "\\"}}};
    REQUIRE(sd->save("u", rec));
    auto j = sd->load_scalars("u");
    REQUIRE(j);
    CHECK(*j == nlohmann::json({{"boot_id", devemu::core::boot_id()}, {"kind", "lio \"}{ ,"}, {"n", -1.5e3}, {"nil", nullptr}, {"version", kRecordVersion}}));   // save stamps the version and the boot
    for (const char* bad : {"{\"kind\": \"lio\", \"nodes\": [1, 2", "{\"kind\" \"lio\"}", "[1]", "{\"kind\": \"lio\",}", ""}) {
        std::ofstream(t.root / "state" / "units" / "u.json", std::ios::trunc) << bad;
        INFO(bad);
        CHECK_FALSE(sd->load_scalars("u"));
    }
    std::ofstream(t.root / "state" / "units" / "u.json", std::ios::trunc) << "  { }\n";
    auto empty = sd->load_scalars("u");
    REQUIRE(empty);
    CHECK(*empty == nlohmann::json::object());
}

TEST_CASE("a library's own journal step: its line carries its name, replay runs what the library registered")
{
    TempTree t;
    const auto journal = t.root / "j";
    std::vector<std::string> ran;
    register_undo("test_step", [&](const UndoRecord& r) -> Status {
        ran.push_back(r.path + "=" + r.value);
        return {};
    });
    {
        Transaction tx(journal);
        REQUIRE(tx.record(UndoRecord::named_op("test_step", "a", "1")));
        REQUIRE(tx.record(UndoRecord::named_op("test_step", "b", "2")));
        tx.commit();
    }
    auto recs = load_journal(journal);
    REQUIRE(recs);
    REQUIRE(recs->size() == 2);
    CHECK((*recs)[0] == UndoRecord::named_op("test_step", "a", "1"));
    CHECK(read_file(journal)->find("\"op\":\"test_step\"") != std::string::npos);
    REQUIRE(replay_journal(journal));
    CHECK(ran == std::vector<std::string>{"b=2", "a=1"});   // in reverse
    CHECK_FALSE(fs::exists(journal));

    // A step no library registered (a newer devemu's): refused by name, and the journal is kept for one that knows it.
    {
        Transaction tx(journal);
        REQUIRE(tx.record(UndoRecord::named_op("from_the_future", "x")));
        tx.commit();
    }
    auto s = replay_journal(journal);
    REQUIRE_FALSE(s);
    CHECK(s.error().what.find("'from_the_future'") != std::string::npos);
    CHECK(fs::exists(journal));
    CHECK_FALSE(undo_registered("from_the_future"));
    CHECK(undo_registered("test_step"));
}
