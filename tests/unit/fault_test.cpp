// Faults: how one is written (every key checked, each refusal says which key and how to write it), and what a
// chain does to reads and writes — scope, LBA ranges, medium errors with the failing LBA, once/sticky, flakey
// cycles, stalls, delays and rate limits on a fake clock, and the same random choices for the same seed.
#include <catch2/catch.hpp>

#include "backing/dm.hpp"
#include "fault/chain.hpp"
#include "fault/fault.hpp"
#include "scsi/sense.hpp"

using namespace devemu::fault;
using namespace std::chrono_literals;

namespace {

Spec spec(std::map<std::string, std::string> keys)
{
    auto s = parse(keys, "test");
    INFO((s ? "" : s.error().message()));
    REQUIRE(s);
    return *s;
}

const Clock::time_point t0 = Clock::time_point(std::chrono::hours(1));

}  // namespace

TEST_CASE("a fault is parsed from its keys, bad ones are refused naming the key and the fix")
{
    auto d = spec({{"type", "delay"}, {"delay", "1ms..20ms"}, {"op", "read"}, {"lba", "100..199"}, {"seed", "7"}});
    CHECK(d.delay_min == 1ms);
    CHECK(d.delay_max == 20ms);
    CHECK(d.scope == Scope::read);
    CHECK(d.first == 100);
    CHECK(d.last == 199);
    CHECK(d.seed == 7);
    CHECK(spec({{"type", "error"}, {"lba", "5"}, {"mode", "sticky"}, {"probability", "0.5"}}).last == 5);
    CHECK(spec({{"type", "stall"}}).stall_for == 0ns);
    CHECK(spec({{"type", "rate"}, {"bandwidth", "20M"}}).bytes_per_s == 20u << 20);
    CHECK(*parse_duration("250us") == 250us);
    CHECK(*parse_duration("1.5s") == 1500ms);
    CHECK(*parse_duration("7") == 7ms);
    CHECK_FALSE(parse_duration("5 ms"));
    CHECK_FALSE(parse_duration("2h"));

    struct Bad {
        std::map<std::string, std::string> keys;
        const char* says;
    };
    for (auto& b : std::vector<Bad>{
             {{{"delay", "5ms"}}, "needs a type"},
             {{{"type", "slow"}}, "unknown fault type \"slow\""},
             {{{"type", "delay"}}, "needs delay"},
             {{{"type", "delay"}, {"delay", "20ms..1ms"}}, "MIN..MAX"},
             {{{"type", "delay"}, {"delay", "5ms"}, {"probability", "0.5"}}, "a delay fault has no key \"probability\""},
             {{{"type", "error"}, {"lba", "200..100"}}, "FIRST..LAST"},
             {{{"type", "error"}, {"lba", "100..5000"}}, "past the device's last LBA, 4095"},
             {{{"type", "error"}, {"probability", "0"}}, "not in (0, 1]"},
             {{{"type", "error"}, {"mode", "twice"}}, "always, once or sticky"},
             {{{"type", "error"}, {"op", "trim"}}, "read, write or rw"},
             {{{"type", "flakey"}, {"up", "1s"}}, "needs down"},
             {{{"type", "flakey"}, {"up", "1s"}, {"down", "1s"}, {"drop_writes", "yes"}}, "true or false"},
             {{{"type", "rate"}}, "needs iops or bandwidth"},
             {{{"type", "stall"}, {"for", "forever"}}, "not a duration"},
         }) {
        auto r = parse(b.keys, "p.toml:12", 4095);
        REQUIRE_FALSE(r);
        INFO(r.error().message());
        CHECK(r.error().what.find(b.says) != std::string::npos);
        CHECK(r.error().where == "p.toml:12");
        CHECK_FALSE(r.error().fix.empty());
    }
    auto words = keys_of(std::vector<std::string>{"type=error", "lba=1..2"});
    REQUIRE(words);
    CHECK(words->at("lba") == "1..2");
    CHECK_FALSE(keys_of(std::vector<std::string>{"type=error", "sticky"}));

    // The keys written back read as the same fault.
    auto back = parse(keys_of(to_json(d)), "test");
    REQUIRE(back);
    CHECK(to_json(*back) == to_json(d));
}

TEST_CASE("an error fault fails reads in its range with 03/11/00 at the first bad LBA, and nothing else")
{
    Chain c;
    REQUIRE(c.add(spec({{"type", "error"}, {"op", "read"}, {"lba", "100..199"}}), t0));
    CHECK_FALSE(c.decide({false, 0, 100, 51200}, t0).error);       // 0..99: before it
    CHECK_FALSE(c.decide({false, 200, 8, 4096}, t0).error);        // after it
    CHECK_FALSE(c.decide({true, 100, 8, 4096}, t0).error);         // a write: not in scope
    auto v = c.decide({false, 96, 8, 4096}, t0);                   // 96..103 overlaps at 100
    REQUIRE(v.error);
    CHECK(v.error->is(devemu::scsi::medium_error_read));
    CHECK(v.error_lba == 100);
    auto w = c.decide({false, 150, 1, 512}, t0);
    REQUIRE(w.error);
    CHECK(w.error_lba == 150);
    CHECK(c.to_json()[0]["events"] == 2);
    CHECK(c.to_json()[0]["id"] == "error1");
    REQUIRE(c.add(spec({{"type", "error"}, {"op", "write"}}), t0));
    auto x = c.decide({true, 7, 1, 512}, t0);
    REQUIRE(x.error);
    CHECK(x.error->is(devemu::scsi::medium_error_write));          // 03/0C/00 for writes
    CHECK(c.clear("error1"));
    CHECK_FALSE(c.clear("error1"));
    CHECK_FALSE(c.decide({false, 150, 1, 512}, t0).error);
}

TEST_CASE("error modes: once fires once, sticky keeps an LBA that failed failing, a seed repeats the same choices")
{
    Chain once;
    REQUIRE(once.add(spec({{"type", "error"}, {"mode", "once"}}), t0));
    CHECK(once.decide({false, 10, 1, 512}, t0).error);
    CHECK_FALSE(once.decide({false, 10, 1, 512}, t0).error);

    auto pattern = [](const std::string& seed) {
        Chain c;
        REQUIRE(c.add(spec({{"type", "error"}, {"probability", "0.3"}, {"seed", seed}}), t0));
        std::string out;
        for (int i = 0; i < 200; ++i) out += c.decide({false, std::uint64_t(i), 1, 512}, t0).error ? 'x' : '.';
        return out;
    };
    const auto a = pattern("7");
    CHECK(a == pattern("7"));
    CHECK(a != pattern("8"));
    const auto fails = std::count(a.begin(), a.end(), 'x');
    CHECK(fails > 30);   // about 60 of 200
    CHECK(fails < 100);

    Chain sticky;
    REQUIRE(sticky.add(spec({{"type", "error"}, {"mode", "sticky"}, {"probability", "0.5"}, {"seed", "3"}}), t0));
    std::uint64_t bad = UINT64_MAX;
    for (std::uint64_t l = 0; l < 100 && bad == UINT64_MAX; ++l)
        if (auto v = sticky.decide({false, l, 1, 512}, t0); v.error) bad = v.error_lba;
    REQUIRE(bad != UINT64_MAX);
    for (int i = 0; i < 20; ++i) {   // the same LBA fails every time, also inside a larger read
        auto v = sticky.decide({false, bad, 1, 512}, t0);
        REQUIRE(v.error);
        CHECK(v.error_lba == bad);
    }
}

TEST_CASE("flakey: up, then down (errors, or writes dropped while reads are served), then up again")
{
    Chain c;
    REQUIRE(c.add(spec({{"type", "flakey"}, {"up", "10s"}, {"down", "5s"}}), t0));
    CHECK_FALSE(c.decide({false, 0, 1, 512}, t0 + 9s).error);
    CHECK(c.decide({false, 0, 1, 512}, t0 + 11s).error);
    CHECK_FALSE(c.decide({false, 0, 1, 512}, t0 + 16s).error);     // the next up
    Chain d;
    REQUIRE(d.add(spec({{"type", "flakey"}, {"up", "1s"}, {"down", "1s"}, {"drop_writes", "true"}}), t0));
    auto w = d.decide({true, 0, 1, 512}, t0 + 1500ms);
    CHECK(w.drop);
    CHECK_FALSE(w.error);
    auto r = d.decide({false, 0, 1, 512}, t0 + 1500ms);
    CHECK_FALSE(r.drop);
    CHECK_FALSE(r.error);
    CHECK_FALSE(d.decide({true, 0, 1, 512}, t0 + 2500ms).drop);
    CHECK(d.to_json()[0]["events"] == 1);
    // The dropped writes are listed, adjacent ones merged, so that a test can tell exactly what is missing.
    CHECK(d.decide({true, 8, 8, 4096}, t0 + 3100ms).drop);
    CHECK(d.decide({true, 16, 8, 4096}, t0 + 3200ms).drop);
    CHECK(d.decide({true, 40, 8, 4096}, t0 + 3300ms).drop);
    const auto j = d.to_json()[0];
    CHECK(j["dropped"] == nlohmann::json::parse("[[0,1],[8,16],[40,8]]"));
    auto stripped = j;
    Chain::strip_counts(stripped);
    CHECK_FALSE(stripped.contains("dropped"));
    CHECK_FALSE(stripped.contains("events"));
    CHECK(stripped["type"] == "flakey");
}

TEST_CASE("delay adds its time, a range of delays draws within it, stalls hold until their end or until cleared")
{
    Chain c;
    REQUIRE(c.add(spec({{"type", "delay"}, {"delay", "5ms"}}), t0));
    CHECK(c.decide({false, 0, 1, 512}, t0).not_before == t0 + 5ms);
    REQUIRE(c.add(spec({{"type", "delay"}, {"delay", "1ms..3ms"}, {"op", "write"}}), t0));
    CHECK(c.decide({false, 0, 1, 512}, t0).not_before == t0 + 5ms);   // a read: only the first
    for (int i = 0; i < 50; ++i) {
        auto v = c.decide({true, 0, 1, 512}, t0).not_before;
        CHECK(v >= t0 + 6ms);
        CHECK(v <= t0 + 8ms);
    }
    Chain s;
    REQUIRE(s.add(spec({{"type", "stall"}, {"for", "2s"}, {"id", "hold"}}), t0));
    CHECK(s.decide({false, 0, 1, 512}, t0 + 1s).not_before == t0 + 2s);
    CHECK(s.decide({false, 0, 1, 512}, t0 + 3s).not_before == Clock::time_point{});
    Chain u;
    REQUIRE(u.add(spec({{"type", "stall"}, {"lba", "0..9"}}), t0));
    CHECK(u.decide({false, 5, 1, 512}, t0).held);
    CHECK_FALSE(u.decide({false, 50, 1, 512}, t0).held);
    CHECK(u.stalled({false, 5, 1, 512}));
    CHECK(u.clear("stall1"));
    CHECK_FALSE(u.stalled({false, 5, 1, 512}));
    REQUIRE(u.add(spec({{"type", "stall"}, {"id", "x"}}), t0));
    CHECK_FALSE(u.add(spec({{"type", "stall"}, {"id", "x"}}), t0));   // ids are unique
}

TEST_CASE("rate: commands are spaced by 1/iops and by their bytes over the bandwidth")
{
    Chain c;
    REQUIRE(c.add(spec({{"type", "rate"}, {"iops", "100"}}), t0));
    Clock::time_point last{};
    for (int i = 0; i < 10; ++i) last = std::max(t0, c.decide({false, 0, 1, 512}, t0).not_before);
    CHECK(last == t0 + 90ms);   // the 10th of a burst starts 9 intervals in
    Chain b;
    REQUIRE(b.add(spec({{"type", "rate"}, {"bandwidth", "1M"}}), t0));
    CHECK(b.decide({false, 0, 2048, 1u << 20}, t0).not_before <= t0);   // 1 MiB: now, and it takes the next second
    CHECK(b.decide({false, 0, 8, 4096}, t0).not_before == t0 + 1s);
}

TEST_CASE("devemu fault's words become the control request, its answer becomes lines")
{
    auto add = request({"add", "type=error", "lba=1..2", "id=x"});
    REQUIRE(add);
    CHECK((*add)["op"] == "add");
    CHECK((*add)["keys"]["lba"] == "1..2");
    CHECK((*request({"clear", "x"}))["id"] == "x");
    CHECK_FALSE(request({"clear"})->contains("id"));
    CHECK((*request({"path", "down"}))["state"] == "down");
    CHECK((*request({"ls"}))["op"] == "ls");
    for (auto words : std::vector<std::vector<std::string>>{{}, {"add"}, {"add", "type=slow"}, {"path", "sideways"}, {"ls", "x"}, {"drop"}}) {
        auto r = request(words);
        CHECK_FALSE(r);
    }
    Chain c;
    REQUIRE(c.add(spec({{"type", "error"}, {"id", "bad"}, {"lba", "4096..4159"}, {"op", "read"}}), t0));
    auto out = lines("floop", {{"f0", c.to_json()}, {"f1", nlohmann::json::array()}});
    REQUIRE(out.size() == 2);
    CHECK(out[0] == "floop:f0: bad  error lba=4096..4159 mode=always op=read probability=1  (0 events)");
    CHECK(out[1] == "floop:f1: no faults");
    CHECK(lines("oi", {{"path", "down"}}) == std::vector<std::string>{"oi: path down"});
}

TEST_CASE("under a kernel backstore a fault is a dm table: the fault's range, linear around it, what dm cannot do is refused")
{
    // dm-delay on reads only, LBA 100..199 of a 4096-sector device with 512-byte blocks
    auto d = spec({{"type", "delay"}, {"delay", "150ms"}, {"op", "read"}, {"lba", "100..199"}});
    CHECK_FALSE(dm_refusal(d));
    CHECK(devemu::backing::dm_table(d, "7:0", 4096, 512) ==
          "0 100 linear 7:0 0\n100 100 delay 7:0 100 150 7:0 100 0\n200 3896 linear 7:0 200\n");
    // 4 KiB blocks: LBAs are 8 sectors; a whole-device flakey dropping writes, and one that fails I/O
    auto f = spec({{"type", "flakey"}, {"up", "2s"}, {"down", "1s"}, {"drop_writes", "true"}});
    CHECK(devemu::backing::dm_table(f, "252:1", 65536, 4096) == "0 65536 flakey 252:1 0 2 1 1 drop_writes\n");
    auto fe = spec({{"type", "flakey"}, {"up", "1s"}, {"down", "1s"}, {"lba", "10..19"}});
    CHECK(devemu::backing::dm_table(fe, "252:1", 65536, 4096) == "0 80 linear 252:1 0\n80 80 flakey 252:1 80 1 1 0\n160 65376 linear 252:1 160\n");
    CHECK(devemu::backing::dm_table(spec({{"type", "delay"}, {"delay", "5ms"}}), "8:16", 100, 512) == "0 100 delay 8:16 0 5\n");
    // refused, naming the key
    CHECK(dm_refusal(spec({{"type", "error"}}))->key == "type");
    CHECK(dm_refusal(spec({{"type", "stall"}}))->key == "type");
    CHECK(dm_refusal(spec({{"type", "rate"}, {"iops", "10"}}))->key == "type");
    CHECK(dm_refusal(spec({{"type", "delay"}, {"delay", "1ms..5ms"}}))->key == "delay");
    CHECK(dm_refusal(spec({{"type", "delay"}, {"delay", "250us"}}))->key == "delay");
    CHECK(dm_refusal(spec({{"type", "flakey"}, {"up", "500ms"}, {"down", "1s"}}))->key == "up");
    CHECK(dm_refusal(spec({{"type", "flakey"}, {"up", "1s"}, {"down", "1s"}, {"op", "read"}}))->key == "op");
}
