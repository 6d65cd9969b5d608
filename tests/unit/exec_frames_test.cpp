#include <catch2/catch.hpp>

#include <string>

#include "vm/exec_frames.hpp"

using devemu::vm::ExecFrames;

namespace {

// What a guest port sends for command `id`: started, the output chunks, the status.
std::string stream(const std::string& id, const std::vector<std::pair<char, std::string>>& chunks, int status)
{
    std::string s = id + " s 42\n";
    for (auto& [k, d] : chunks) s += id + " " + k + " " + std::to_string(d.size()) + "\n" + d;
    return s + id + " x " + std::to_string(status) + "\n";
}

struct Got {
    std::string out, err;
};

}  // namespace

TEST_CASE("exec frames: output and status, fed in pieces of every size")
{
    const std::string data1 = "line one\nwith 7 o 99\n", data2(70000, 'z'), data3 = "err\n";
    const std::string all = stream("9.1", {{'o', data1}, {'e', data3}, {'o', data2}}, 3);
    for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{4096}, all.size()}) {
        ExecFrames f("9.1");
        Got g;
        for (std::size_t at = 0; at < all.size(); at += piece) {
            CHECK_FALSE(f.status());
            REQUIRE(f.feed(std::string_view(all).substr(at, piece), [&](bool e, std::string_view d) { (e ? g.err : g.out).append(d); }));
        }
        CHECK(f.started());
        REQUIRE(f.status());
        CHECK(*f.status() == 3);
        CHECK(g.out == data1 + data2);
        CHECK(g.err == data3);
    }
}

TEST_CASE("exec frames: another command's frames are skipped, its status too")
{
    const std::string all = stream("7.0", {{'o', "not mine\n"}}, 0) + stream("8.0", {{'o', "mine\n"}}, 5);
    ExecFrames f("8.0");
    Got g;
    REQUIRE(f.feed(all.substr(0, all.size() / 2), [&](bool e, std::string_view d) { (e ? g.err : g.out).append(d); }));
    CHECK_FALSE(f.started());   // the other command's "s" is not ours
    CHECK_FALSE(f.status());    // nor its "x"
    REQUIRE(f.feed(all.substr(all.size() / 2), [&](bool e, std::string_view d) { (e ? g.err : g.out).append(d); }));
    CHECK(f.started());
    REQUIRE(f.status());
    CHECK(*f.status() == 5);
    CHECK(g.out == "mine\n");
}

TEST_CASE("exec frames: an unreadable frame is an error")
{
    for (const char* bad : {"garbage\n", "1.0 q 3\nabc", "1.0 o many\n", "1.0 o\n"}) {
        ExecFrames f("1.0");
        CHECK_FALSE(f.feed(bad, {}));
    }
    ExecFrames f("1.0");
    CHECK(f.feed("1.0 o 5\nab", {}));   // incomplete is not an error: the rest is on the way
    CHECK_FALSE(f.status());
}
