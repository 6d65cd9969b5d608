// The access lines `up` and `ls` print for a target: URLs per LUN, CHAP secrets redacted unless asked for, mutual
// CHAP as libiscsi's URL parameters, iscsiadm lines, a portal on 0.0.0.0 reached on 127.0.0.1, a forward swapped in.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "lio/access.hpp"
#include "profile/profile.hpp"

using nlohmann::json;
using namespace devemu::lio;

namespace {
json record(bool mutual)
{
    json rec = {{"name", "t"},
                {"info", {{"fabric", "iscsi"}, {"portal", "0.0.0.0:3260"}, {"wwn", "iqn.2026-11.org.devemu:t"},
                          {"luns", json::array({{{"lun", 0}}, {{"lun", 3}}})},
                          {"acls", json::array({{{"initiator", "iqn.2026-11.org.example:host"}, {"chap_user", "devemu"}}})}}},
                {"chap", {{"iqn.2026-11.org.example:host", {{"user", "devemu"}, {"secret", "s3cretS3cret"}}}}}};
    if (mutual) rec["chap"]["iqn.2026-11.org.example:host"].update({{"mutual_user", "tgt"}, {"mutual_secret", "m0tualM0tual"}});
    return rec;
}
}  // namespace

TEST_CASE("access lines: one URL per LUN, the secret hidden unless asked for, iscsiadm lines on the reachable address")
{
    auto hidden = access_info(record(false), "", false);
    CHECK(hidden["portal"] == "127.0.0.1:3260");   // 0.0.0.0 listens everywhere; the host reaches it on loopback
    CHECK(hidden["urls"] == json::array({"iscsi://devemu%SECRET@127.0.0.1:3260/iqn.2026-11.org.devemu:t/0",
                                         "iscsi://devemu%SECRET@127.0.0.1:3260/iqn.2026-11.org.devemu:t/3"}));
    CHECK_FALSE(hidden.contains("chap_secret"));
    CHECK(hidden.dump().find("s3cretS3cret") == std::string::npos);
    CHECK(hidden["initiator"] == "iqn.2026-11.org.example:host");
    CHECK(hidden["iscsiadm"] == json::array({"iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260",
                                             "iscsiadm -m node -T iqn.2026-11.org.devemu:t -p 127.0.0.1:3260 --login"}));
    auto shown = access_info(record(false), "", true);
    CHECK(shown["urls"][0] == "iscsi://devemu%s3cretS3cret@127.0.0.1:3260/iqn.2026-11.org.devemu:t/0");
    CHECK(shown["chap_secret"] == "s3cretS3cret");
}

TEST_CASE("access lines: mutual CHAP in the URL, redacted too, a forward replaces the portal")
{
    auto m = access_info(record(true), "127.0.0.1:40123", false);
    CHECK(m["urls"][0] == "iscsi://devemu%SECRET@127.0.0.1:40123/iqn.2026-11.org.devemu:t/0?target_user=tgt&target_password=SECRET");
    CHECK(m.dump().find("m0tualM0tual") == std::string::npos);
    CHECK(access_info(record(true), "", true)["urls"][0].get<std::string>().ends_with("target_user=tgt&target_password=m0tualM0tual"));
    CHECK(with_portal("iscsi://u%s@10.0.2.15:3260/iqn.x:y/0", "127.0.0.1:5555") == "iscsi://u%s@127.0.0.1:5555/iqn.x:y/0");
    CHECK(with_portal("iscsi://10.0.2.15:3260/iqn.x:y/0", "127.0.0.1:5555") == "iscsi://127.0.0.1:5555/iqn.x:y/0");
    CHECK(with_portal("iscsi://10.0.2.15:3260/iqn.x:y/0", "") == "iscsi://10.0.2.15:3260/iqn.x:y/0");
}

TEST_CASE("access lines: a loopback target is its disks, unchanged")
{
    json rec = {{"info", {{"fabric", "loopback"}, {"wwn", "naa.5001405000000001"}, {"devices", {{"0", "/dev/sda"}}}}}};
    CHECK(access_info(rec, "", false) == rec["info"]);
}

TEST_CASE("an up --vm target's portals: each path's portal and the key of its forward")
{
    devemu::profile::Target t;
    t.name = "mi";
    t.portal = {"127.0.0.1", 3260, {}};
    t.paths.resize(3);
    t.paths[2].portal = devemu::profile::Portal{"127.0.0.1", 4000, {}};
    CHECK(t.path_portal(0).port == 3260);
    CHECK(t.path_portal(1).port == 3261);   // the target's port + K - 1
    CHECK(t.path_portal(2).port == 4000);   // its table's
    CHECK(forward_key("mi", 0) == "mi");
    CHECK(forward_key("mi", 1) == "mi/2");
}
