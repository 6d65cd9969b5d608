// Processes devemu leaves running (daemon spawns) and process groups stopped as a whole (an app's tree).
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/fs.hpp"
#include "core/journal.hpp"
#include "core/process.hpp"
#include "core/text.hpp"
#include "core/transaction.hpp"
#include "temp_dir.hpp"

using namespace devemu::core;
using namespace std::chrono_literals;

namespace {
// Waits up to 5 s for `file` to hold a line (what a backgrounded script writes once it is set up).
std::string wait_for_text(const std::filesystem::path& file)
{
    for (int i = 0; i < 250; ++i) {
        auto t = read_file(file);
        if (t && t->find('\n') != std::string::npos) return *t;
        std::this_thread::sleep_for(20ms);
    }
    return {};
}
bool alive(pid_t pid) { return process_start_time(pid) != 0; }
}  // namespace

TEST_CASE("a daemon spawn holds none of the caller's descriptors, has its own session and logs to its file")
{
    TempDir t;
    int p[2];
    REQUIRE(::pipe(p) == 0);   // not CLOEXEC: a plain spawn would hand it down (what $(devemu up) waits on)
    const auto log = t.root / "d.log";
    auto c = Child::spawn({"/bin/sh", "-c", "ls /proc/self/fd; echo sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$; echo err >&2"},
                          SpawnOptions::daemon(log));
    ::close(p[1]);
    REQUIRE(c);
    CHECK(c->wait() == 0);
    char buf[8];
    CHECK(::read(p[0], buf, sizeof buf) == 0);   // the write end is gone with the child: nothing else held it
    ::close(p[0]);
    auto text = read_file(log).value_or("");
    auto lines = split(text, '\n');
    // ls lists 0, 1, 2 and its own directory fd: nothing of ours.
    for (auto& l : lines)
        if (!l.empty() && l.find('=') == std::string::npos && l != "err") CHECK(std::stoi(l) <= 3);
    const auto sid = text.substr(text.find("sid=") + 4, text.find(' ', text.find("sid=")) - text.find("sid=") - 4);
    const auto pid = text.substr(text.find("pid=") + 4, text.find('\n', text.find("pid=")) - text.find("pid=") - 4);
    CHECK(sid == pid);                                 // a session leader: no terminal or group of the caller's
    CHECK(text.find("err\n") != std::string::npos);    // stderr goes to the log too
    struct stat st {};
    REQUIRE(::stat(log.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);                 // a log may hold what a handler printed of its backing
}

TEST_CASE("a daemon's log that cannot be opened is an error naming it")
{
    auto c = Child::spawn({"/bin/true"}, SpawnOptions::daemon("/nonexistent-devemu/dir/x.log"));
    REQUIRE(!c);
    CHECK(c.error().where == "/nonexistent-devemu/dir/x.log");
}

TEST_CASE("terminate() of an own-group child stops its whole tree, a SIGTERM-ignoring member included")
{
    TempDir t;
    const auto ready = t.root / "ready";
    SpawnOptions so;
    so.own_group = true;
    // A shell with a child, a pipeline and a member that ignores SIGTERM: what `--exec 'CMD'` may start.
    auto c = Child::spawn({"/bin/sh", "-c",
                           "sleep 300 & (trap '' TERM; while :; do sleep 0.1; done) & sleep 300 | cat & echo $! > " + ready.string() + "; wait"},
                          so);
    REQUIRE(c);
    REQUIRE(!wait_for_text(ready).empty());
    const pid_t pgid = c->pid();
    CHECK(group_members(pgid).size() >= 4);
    const auto t0 = std::chrono::steady_clock::now();
    c->terminate(300ms);
    CHECK(group_members(pgid).empty());
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);   // bounded: grace, then SIGKILL
    CHECK(!c->running());
}

TEST_CASE("the journal's kill_group stops a group whose leader already exited, and never a reused pid's")
{
    TempDir t;
    const auto ready = t.root / "ready";
    SpawnOptions so;
    so.own_group = true;
    so.die_with_parent = false;
    // The leader exits at once and leaves two members behind (re-parented), as a shell that ran `cmd &` does.
    auto c = Child::spawn({"/bin/sh", "-c", "sleep 300 & sleep 300 & echo up > " + ready.string()}, so);
    REQUIRE(c);
    const pid_t pgid = c->pid();
    const auto start = process_start_time(pgid);
    REQUIRE(!wait_for_text(ready).empty());
    c->wait();
    REQUIRE(group_members(pgid).size() == 2);
    {
        Transaction tx(t.root / "j");
        REQUIRE(tx.record({UndoOp::kill_group, "app", "", pgid, start}));
        tx.commit();
    }
    auto recs = load_journal(t.root / "j");
    REQUIRE(recs);
    REQUIRE(recs->size() == 1);
    CHECK((*recs)[0].op == UndoOp::kill_group);   // the op survives its journal line
    REQUIRE(replay_journal(t.root / "j"));
    CHECK(group_members(pgid).empty());

    // A group led by a live process that started at another time is someone else's: left alone.
    SpawnOptions other;
    other.own_group = true;
    auto d = Child::spawn({"/bin/sleep", "300"}, other);
    REQUIRE(d);
    CHECK(stop_group(d->pid(), process_start_time(d->pid()) + 1, 100ms) == 0);
    CHECK(alive(d->pid()));
    d->terminate(100ms);
}
