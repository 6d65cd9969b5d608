// targetcli-fb's saveconfig.json (the fixture rtslib-fb wrote, tests/data/saveconfig) read into profile objects:
// every storage object, target, LUN, ACL with its CHAP user and portal; what devemu does not take is reported.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/process.hpp"
#include "core/text.hpp"
#include "lio/saveconfig.hpp"

using nlohmann::json;
using namespace devemu;

namespace {
// The fixture's block storage object names the guest's /dev/zram1; validation wants a block device that exists, so
// it is pointed at a loop device of this machine (as the safety test in bench_test.cpp uses).
struct Fixture {
    // One image per process: ctest -j runs this file's cases at once, and one's cleanup must not take another's file.
    const std::string img = "/tmp/devemu-saveconfig-test-" + std::to_string(::getpid()) + ".img";
    std::string loop;
    json doc;
    Fixture()
    {
        std::ifstream in(std::string(DEVEMU_SOURCE_DIR) + "/tests/data/saveconfig/targetcli-fb.json");
        doc = json::parse(in);
        core::run({"truncate", "-s", "1M", img}).value();
        loop = std::string(core::trim(core::run({"losetup", "-f", "--show", img}).value().out));
        for (auto& so : doc["storage_objects"])
            if (so["plugin"] == "block") so["dev"] = loop;
    }
    ~Fixture()
    {
        (void)core::run({"losetup", "-d", loop});
        std::filesystem::remove(img);
    }
};
}  // namespace

TEST_CASE("saveconfig.json in: storage objects, targets, LUNs, ACLs with CHAP and portals become profile objects")
{
    Fixture f;
    REQUIRE(f.loop.starts_with("/dev/loop"));
    auto im = lio::from_saveconfig(f.doc, "fixture.json");
    REQUIRE(im);
    const auto& p = im->profile;
    REQUIRE(p.backstores.size() == 3);
    auto* disk0 = p.backstore("disk0");
    REQUIRE(disk0);
    CHECK(disk0->type == profile::BackstoreType::fileio);
    CHECK(disk0->path == "/tmp/devemu-fixture-disk0.img");
    CHECK(disk0->size == 64u << 20);
    REQUIRE(p.backstore("blk0"));
    CHECK(p.backstore("blk0")->type == profile::BackstoreType::block);
    CHECK(p.backstore("blk0")->path == f.loop);
    REQUIRE(p.targets.size() == 2);
    const auto& t = p.targets[0].fabric == profile::Fabric::iscsi ? p.targets[0] : p.targets[1];
    CHECK(t.wwn == "iqn.2026-11.org.devemu:fixture");
    CHECK(t.portal.address == "127.0.0.1");
    CHECK(t.portal.port == 3260);
    REQUIRE(t.luns.size() == 2);
    for (auto& l : t.luns) CHECK(((l.id == 0 && l.backstore == "disk0") || (l.id == 1 && l.backstore == "blk0")));
    REQUIRE(t.acls.size() == 1);
    CHECK(t.acls[0].initiator == "iqn.2026-11.org.devemu:client");
    CHECK(t.acls[0].chap_user == "devemu");
    CHECK_FALSE(t.acls[0].chap_secret.empty());   // the fixture's own secret, kept
    const auto& loop = &t == &p.targets[0] ? p.targets[1] : p.targets[0];
    CHECK(loop.fabric == profile::Fabric::loopback);
    CHECK(loop.wwn == "naa.5001405aaaaaaaa1");
}

TEST_CASE("saveconfig.json in: what devemu does not take is listed, and a broken document is one clear error")
{
    Fixture f;
    json doc = f.doc;
    doc["bogus"] = 1;
    doc["storage_objects"].push_back({{"name", "r"}, {"plugin", "ramdisk"}, {"size", 1024}});
    auto im = lio::from_saveconfig(doc, "odd.json");
    REQUIRE(im);
    bool bogus = false, ramdisk = false;
    for (auto& n : im->notes) bogus = bogus || n.find("'bogus'") != std::string::npos, ramdisk = ramdisk || n.find("'ramdisk'") != std::string::npos;
    CHECK(bogus);
    CHECK(ramdisk);
    // A LUN on a storage object devemu skips is skipped too, named; the rest of the target comes up.
    json odd = f.doc;
    odd["storage_objects"].push_back({{"name", "r"}, {"plugin", "ramdisk"}, {"size", 1024}});
    odd["storage_objects"].push_back({{"name", "ceph"}, {"plugin", "user"}, {"config", "rbd/pool/img"}, {"size", 1 << 20}});
    odd["storage_objects"].push_back({{"name", "tf"}, {"plugin", "user"}, {"config", "file//tmp/devemu-saveconfig-tf.img"}, {"size", 1 << 20}});
    auto& luns = odd["targets"][0]["tpgs"][0]["luns"];
    const auto before = luns.size();
    luns.push_back({{"index", 7}, {"storage_object", "/backstores/ramdisk/r"}});
    luns.push_back({{"index", 8}, {"storage_object", "/backstores/user/ceph"}});
    luns.push_back({{"index", 9}, {"storage_object", "/backstores/user/tf"}});
    auto some = lio::from_saveconfig(odd, "odd.json");
    REQUIRE(some);
    const auto& first = some->profile.targets[0];
    CHECK(first.luns.size() == before + 1);   // tcmu-runner's file handler's LUN is served by devemu's
    auto* tf = some->profile.backstore("tf");
    REQUIRE(tf);
    CHECK(tf->handler == "uring");
    CHECK(tf->path == "/tmp/devemu-saveconfig-tf.img");
    CHECK_FALSE(some->profile.backstore("ceph"));
    int skipped_luns = 0;
    bool rbd_named = false;
    for (auto& n : some->notes) {
        if (n.find("which is skipped; so is the LUN") != std::string::npos) ++skipped_luns;
        rbd_named = rbd_named || n.find("handler 'rbd'") != std::string::npos;
    }
    CHECK(skipped_luns == 2);
    CHECK(rbd_named);
    auto bad = lio::from_saveconfig(json::array(), "x.json");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().where == "x.json");
    json dangling = f.doc;
    dangling["targets"][0]["tpgs"][0]["luns"][0]["storage_object"] = "/backstores/fileio/nope";
    CHECK_FALSE(lio::from_saveconfig(dangling, "d.json"));
}

TEST_CASE("saveconfig merge: a VM's export joins the host's, its disks named by the host's files")
{
    using nlohmann::json;
    json whole = {{"fabric_modules", json::array()}, {"storage_objects", {{{"plugin", "fileio"}, {"name", "a"}, {"dev", "/srv/a.img"}}}},
                  {"targets", {{{"wwn", "iqn.2026-11.org.devemu:a"}, {"fabric", "iscsi"}}}}};
    const json part = {{"fabric_modules", {{{"name", "iscsi"}}}},
                       {"storage_objects", {{{"plugin", "fileio"}, {"name", "f"}, {"dev", "/dev/vda"}},
                                            {{"plugin", "user"}, {"name", "u"}, {"config", "uring//dev/vdb"}},
                                            {{"plugin", "block"}, {"name", "z"}, {"dev", "/dev/zram0"}}}},
                       {"targets", {{{"wwn", "iqn.2026-11.org.devemu:f"}, {"fabric", "iscsi"}}}}};
    REQUIRE(devemu::lio::merge_saveconfig(whole, part, {{"f", "/tmp/f.img"}, {"u", "/tmp/u.img"}}, "vm0"));
    REQUIRE(whole["storage_objects"].size() == 4);
    CHECK(whole["storage_objects"][1]["dev"] == "/tmp/f.img");
    CHECK(whole["storage_objects"][2]["config"] == "uring//tmp/u.img");
    CHECK(whole["storage_objects"][3]["dev"] == "/dev/zram0");   // made in the VM: left as the VM named it
    CHECK(whole["targets"].size() == 2);
    CHECK(whole["fabric_modules"].size() == 1);
    REQUIRE(devemu::lio::merge_saveconfig(whole, {{"fabric_modules", {{{"name", "iscsi"}}}}}, {}, "vm1"));
    CHECK(whole["fabric_modules"].size() == 1);   // one of each

    auto twice = devemu::lio::merge_saveconfig(whole, part, {}, "vm2");
    REQUIRE_FALSE(twice);
    CHECK(twice.error().what == "two units have a fileio backstore named 'f'");
    CHECK(twice.error().where == "vm2");
    CHECK_FALSE(devemu::lio::merge_saveconfig(whole, json::array(), {}, "vm3"));
}
