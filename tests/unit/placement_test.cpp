#include <catch2/catch.hpp>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "bench/placement.hpp"
#include "core/journal.hpp"
#include "core/statedir.hpp"
#include "temp_dir.hpp"

using namespace devemu;

namespace {
cpu_set_t cpus(std::initializer_list<int> list)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    for (int c : list) CPU_SET(c, &s);
    return s;
}
cpu_set_t mask_of(pid_t tid)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    REQUIRE(::sched_getaffinity(tid, sizeof s, &s) == 0);
    return s;
}
}  // namespace

TEST_CASE("cpu_list writes a CPU set as taskset -c takes it")
{
    CHECK(bench::cpu_list(cpus({0})) == "0");
    CHECK(bench::cpu_list(cpus({0, 1})) == "0-1");
    CHECK(bench::cpu_list(cpus({1, 2, 3, 5, 7, 8})) == "1-3,5,7-8");
    CHECK(bench::cpu_list(cpus({})) == "");
}

TEST_CASE("split-cpus placement: a unit's process group goes to the device's CPUs and comes back, the engine to CPU 0")
{
    const cpu_set_t all = mask_of(0);
    if (CPU_COUNT(&all) < 2) {
        WARN("this process may use one CPU: placement cannot be tried");
        return;
    }
    int first = 0;
    while (!CPU_ISSET(first, &all)) ++first;

    // A unit's server: its own process group, named by the unit's journal as the run's units name theirs.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::setpgid(0, 0);
        ::pause();
        ::_exit(0);
    }
    ::setpgid(child, child);
    TempDir t;
    auto sd = core::StateDir::open(t.root / "state", false);
    REQUIRE(sd);
    REQUIRE(sd->save("srv", {{"kind", "test"}}));
    core::UndoRecord r{core::UndoOp::kill_group, "", "", child, core::process_start_time(child), ""};
    std::ofstream(sd->journal("srv")) << r.to_line() << "\n";
    {
        auto placed = bench::SplitCpus::place(*sd, {"no-such-kernel-thread"});
        REQUIRE(placed);
        const auto j = placed->to_json();
        CHECK(j["host_cpus"] == std::to_string(first));
        REQUIRE(j["device_tasks"].size() == 1);
        CHECK(j["device_tasks"][0]["tid"] == child);
        cpu_set_t device = all;
        CPU_CLR(first, &device);
        CHECK(j["device_cpus"] == bench::cpu_list(device));
        cpu_set_t now = mask_of(child);
        CHECK(CPU_EQUAL(&now, &device));

        REQUIRE(placed->engine_pinned());
        cpu_set_t engine = mask_of(0), host = cpus({first});
        CHECK(CPU_EQUAL(&engine, &host));
        placed->engine_free();
        engine = mask_of(0);
        CHECK(CPU_EQUAL(&engine, &all));
        REQUIRE(placed->engine_pinned());   // left pinned: the end of the placement frees it
    }
    cpu_set_t after = mask_of(child), engine = mask_of(0);
    CHECK(CPU_EQUAL(&after, &all));
    CHECK(CPU_EQUAL(&engine, &all));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
}

TEST_CASE("split-cpus placement on one CPU is refused with exit 2 before anything is made")
{
    const cpu_set_t all = mask_of(0);
    int first = 0;
    while (!CPU_ISSET(first, &all)) ++first;
    const cpu_set_t one = cpus({first});
    REQUIRE(::sched_setaffinity(0, sizeof one, &one) == 0);
    auto st = bench::SplitCpus::possible();
    REQUIRE(::sched_setaffinity(0, sizeof all, &all) == 0);
    REQUIRE_FALSE(st);
    CHECK(st.error().exit_code() == 2);
    CHECK_THAT(st.error().message(), Catch::Contains("needs two CPUs"));
}
