// The pure parts of the rbd path: keys from keyrings and secret files, the CLI's bounded options, the journal's
// exec undo step, and krbd mapping against a stand-in sysfs (no rbd in the kernel; a mapping kept on re-up).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "ceph/cluster.hpp"
#include "ceph/conn.hpp"
#include "ceph/image.hpp"
#include "core/journal.hpp"
#include "core/statedir.hpp"
#include "backing/rbd.hpp"
#include "lio/model.hpp"
#include "temp_dir.hpp"

using namespace devemu;
namespace fs = std::filesystem;

TEST_CASE("the cephx key comes from the user's keyring section, a bare key file, or is refused")
{
    TempDir t;
    ceph::Conn c;
    c.user = "devemu";
    c.keyring = t.write("k", "[client.admin]\n\tkey = ADMINKEY==\n[client.devemu]\n\tkey = AQDEVEMUKEY==\n\tcaps mon = \"allow r\"\n").string();
    CHECK(*c.secret() == "AQDEVEMUKEY==");
    c.user = "nobody";
    auto none = c.secret();
    REQUIRE_FALSE(none);
    CHECK(none.error().what == "no key for client.nobody");
    c.keyring = t.write("bare", "AQBAREKEY==\n").string();
    CHECK(*c.secret() == "AQBAREKEY==");
    c.keyring.clear();
    c.secret_file = t.write("empty", "\n").string();
    CHECK_FALSE(c.secret());
}

TEST_CASE("a profile's keyring path that holds only a key is passed to the tools as a key file")
{
    TempDir t;
    profile::Backstore b;
    b.mon_host = "192.0.2.1:6789";
    b.keyring = t.write("bare", "AQBAREKEY==\n").string();
    auto c = ceph::conn_of(b);
    CHECK(c.secret_file == b.keyring);
    CHECK(c.keyring.empty());
    auto args = c.cli_args(7);
    auto at = [&](const std::string& opt) {
        auto it = std::find(args.begin(), args.end(), opt);
        return it == args.end() || it + 1 == args.end() ? std::string("(absent)") : *(it + 1);
    };
    CHECK(at("--keyfile") == b.keyring);
    CHECK(at("-m") == "192.0.2.1:6789");
    CHECK(at("--id") == "admin");
    CHECK(at("--client_mount_timeout") == "7");   // bounded: a wrong address fails in seconds
    CHECK(at("--rados_osd_op_timeout") == "21");
    b.keyring = t.write("full", "[client.admin]\nkey = X==\n").string();
    CHECK(ceph::conn_of(b).keyring == b.keyring);
}

TEST_CASE("a connection survives its JSON form (the undo step and the guest's file carry it)")
{
    ceph::Conn c{"10.99.0.1:6789", "admin", "/k", "", "/c.conf", "devemu-ceph-1", "p.toml:3"};
    auto back = ceph::conn_from_json(ceph::to_json(c));
    CHECK(back.mon_host == c.mon_host);
    CHECK(back.keyring == c.keyring);
    CHECK(back.conf == c.conf);
    CHECK(back.netns == c.netns);
    CHECK(ceph::to_json(c).dump().find("secret\":\"") == std::string::npos);   // paths only, never a key
}

TEST_CASE("each state dir has its own cluster namespace, stable across calls")
{
    TempDir a, b;
    auto sa = core::StateDir::open(a.root, false), sb = core::StateDir::open(b.root, false);
    REQUIRE(sa);
    REQUIRE(sb);
    CHECK(ceph::netns_name(*sa) == ceph::netns_name(*sa));
    CHECK(ceph::netns_name(*sa) != ceph::netns_name(*sb));
    CHECK(ceph::netns_name(*sa).size() <= 31);   // a file name under /run/netns, short enough for tools
    CHECK_FALSE(ceph::status(*sa).value("up", true));
    CHECK_FALSE(ceph::local_conn(*sa));
}

TEST_CASE("the exec undo step runs its command and reports a failure with the command's own words")
{
    TempDir t;
    const auto flag = t.root / "ran";
    REQUIRE(core::undo({core::UndoOp::exec, "", "touch\x1f" + flag.string()}));
    CHECK(fs::exists(flag));
    auto r = core::undo({core::UndoOp::exec, "", "sh\x1f-c\x1f" "echo it broke >&2; exit 3"});
    REQUIRE_FALSE(r);
    CHECK(r.error().what.find("(3): it broke") != std::string::npos);
    auto line = core::UndoRecord{core::UndoOp::exec, "x", "a\x1f" "b"}.to_line();
    auto back = core::UndoRecord::from_line(line);
    REQUIRE(back);
    CHECK(back->op == core::UndoOp::exec);
    CHECK(back->value == "a\x1f" "b");
}

TEST_CASE("krbd: a kernel without rbd is refused in one line, a mapping of the same image is kept on re-up")
{
    TempDir t;
    backing::Roots roots{t.root / "sys", t.root / "dev"};
    profile::Backstore b;
    b.name = "r";
    b.type = profile::BackstoreType::rbd;
    b.pool = "rbd";
    b.image = "img";
    b.loc = {"p.toml", 4};
    backing::RbdClient client{"10.99.0.1:6789", "admin", "KEY", ""};
    core::Transaction tx(t.root / "journal");
    auto none = backing::rbd_backing(b, roots, &tx, &client, std::nullopt);
    REQUIRE_FALSE(none);
    CHECK(none.error().what == "the kernel has no rbd (krbd)");
    CHECK(none.error().fix == "modprobe rbd, or use --vm");
    t.write("sys/bus/rbd/devices/3/pool", "rbd\n");
    t.write("sys/bus/rbd/devices/3/name", "img\n");
    t.write("sys/bus/rbd/devices/3/size", "33554432\n");
    auto kept = backing::rbd_backing(b, roots, nullptr, nullptr, 3);
    REQUIRE(kept);
    CHECK(kept->rbd == 3);
    CHECK(kept->path == (roots.dev / "rbd3").string());
    CHECK(kept->size == 33554432);
    b.image = "other";   // the recorded device now shows another image: not reused
    auto fresh = backing::rbd_backing(b, roots, nullptr, nullptr, 3);
    REQUIRE(fresh);
    CHECK(fresh->rbd == -1);
    tx.commit();
}
