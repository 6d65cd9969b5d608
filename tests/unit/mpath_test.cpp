// Several paths to one target's LUNs (the LIO model) and the multipath side: the config devemu writes for LIO and
// the parser of the kernel's multipath status.
#include <catch2/catch.hpp>

#include <algorithm>

#include "lio/initiator.hpp"
#include "lio/model.hpp"
#include "lio/mpath.hpp"
#include "vm/qemu_paths.hpp"

using namespace devemu;

namespace {
bool has(const std::vector<core::Node>& nodes, const std::string& path, const std::string& value = "")
{
    return std::any_of(nodes.begin(), nodes.end(), [&](const core::Node& n) { return n.path == path && (value.empty() || n.value == value); });
}

struct Fixture {
    profile::Backstore bs;
    profile::Target t;
    lio::TargetModel m;
    Fixture(profile::Fabric fabric)
    {
        bs.name = "m0";
        bs.type = profile::BackstoreType::fileio;
        bs.alua = {{"left", 1, profile::AluaState::active_optimized, {}}, {"right", 2, profile::AluaState::standby, {}}};
        t.name = "mp";
        t.fabric = fabric;
        t.luns = {{0, "m0", "", {}}};
        t.paths = {{"left", std::nullopt, {}}, {"right", std::nullopt, {}}};
        m.spec = &t;
        m.backstores = {{&bs, "fileio_1", backing::Backing{backing::Kind::file, "/tmp/m0.img", 1 << 26, -1, -1}, "fileio", "serial-1"}};
        m.wwn = fabric == profile::Fabric::iscsi ? "iqn.2026-11.org.devemu:mp" : "naa.5001405000000001";
        m.initiator_wwn = "naa.5001405000000002";
        if (fabric == profile::Fabric::iscsi) {
            m.paths = {{m.wwn, "", 1, "127.0.0.1", 3260, "left"}, {m.wwn, "", 2, "127.0.0.1", 3261, "right"}};
        } else {
            m.paths = {{m.wwn, m.initiator_wwn, 1, "", 0, "left"}, {"naa.5001405000000003", "naa.5001405000000004", 1, "", 0, "right"}};
        }
    }
};
}  // namespace

TEST_CASE("two loopback paths: two tcm_loop targets, each with its nexus and the same backstore, in their ALUA groups")
{
    Fixture f(profile::Fabric::loopback);
    const auto nodes = f.m.nodes();
    CHECK(has(nodes, "core/fileio_1/m0/wwn/vpd_unit_serial", "serial-1"));
    CHECK(has(nodes, "core/fileio_1/m0/alua/right/alua_access_state", "2"));
    for (auto [w, i] : {std::pair{"naa.5001405000000001", "naa.5001405000000002"}, {"naa.5001405000000003", "naa.5001405000000004"}}) {
        const std::string tpg = std::string("loopback/") + w + "/tpgt_1";
        CHECK(has(nodes, tpg + "/nexus", i));
        CHECK(has(nodes, tpg + "/lun/lun_0/m0", "core/fileio_1/m0"));
    }
    CHECK(has(nodes, "loopback/naa.5001405000000001/tpgt_1/lun/lun_0/alua_tg_pt_gp", "left"));
    CHECK(has(nodes, "loopback/naa.5001405000000003/tpgt_1/lun/lun_0/alua_tg_pt_gp", "right"));
    // the nexus comes before the LUN on each path (tcm_loop makes no disk otherwise)
    auto at = [&](const std::string& p) { return std::find_if(nodes.begin(), nodes.end(), [&](const core::Node& n) { return n.path == p; }) - nodes.begin(); };
    CHECK(at("loopback/naa.5001405000000003/tpgt_1/nexus") < at("loopback/naa.5001405000000003/tpgt_1/lun/lun_0"));
}

TEST_CASE("two iSCSI paths: one IQN, tpgt_1 and tpgt_2 on their own portals, each enabled")
{
    Fixture f(profile::Fabric::iscsi);
    const auto nodes = f.m.nodes();
    CHECK(std::count_if(nodes.begin(), nodes.end(), [](const core::Node& n) { return n.path == "iscsi/iqn.2026-11.org.devemu:mp"; }) == 1);
    CHECK(has(nodes, "iscsi/iqn.2026-11.org.devemu:mp/tpgt_1/np/127.0.0.1:3260"));
    CHECK(has(nodes, "iscsi/iqn.2026-11.org.devemu:mp/tpgt_2/np/127.0.0.1:3261"));
    CHECK(has(nodes, "iscsi/iqn.2026-11.org.devemu:mp/tpgt_2/enable", "1"));
    CHECK(has(nodes, "iscsi/iqn.2026-11.org.devemu:mp/tpgt_2/lun/lun_0/alua_tg_pt_gp", "right"));
}

TEST_CASE("the multipath.conf snippet: LIO-ORG with the directio checker, one alias and no_path_retry per LUN")
{
    lio::mpath::Want w{"mp", "5", {{0, {"/dev/sda", "/dev/sdb"}}, {3, {"/dev/sdc", "/dev/sdd"}}}};
    const auto text = lio::mpath::conf_text(w, {"36001405aaa", "36001405bbb"});
    CHECK(text.find("vendor \"LIO-ORG\"") != std::string::npos);
    CHECK(text.find("path_checker directio") != std::string::npos);
    CHECK(text.find("detect_checker no") != std::string::npos);   // else multipath autodetects tur for ALUA devices
    CHECK(text.find("wwid 36001405aaa\n        alias devemu-mp-0\n        no_path_retry 5") != std::string::npos);
    CHECK(text.find("wwid 36001405bbb\n        alias devemu-mp-3\n") != std::string::npos);
    CHECK(text.find("polling_interval") == std::string::npos);   // multipathd's default unless asked
    w.polling_interval = 1;
    CHECK(lio::mpath::conf_text(w, {"36001405aaa", "36001405bbb"}).find("defaults {\n    polling_interval 1\n}") != std::string::npos);
    CHECK(text.find("fast_io_fail_tmo") == std::string::npos);   // multipath-tools' default (5) unless iSCSI asks
    w.fast_io_fail = 2;
    const auto iscsi = lio::mpath::conf_text(w, {"36001405aaa", "36001405bbb"});
    CHECK(iscsi.find("failback immediate\n        fast_io_fail_tmo 2\n    }") != std::string::npos);   // in LIO-ORG's device section
}

TEST_CASE("QEMU's two paths to one file: both disks one LU, the file shared, the relay and the monitor on devemu's sockets")
{
    const auto a = vm::mpath_disk_args("/tmp/a,b.img", "/run/x");
    auto has_arg = [&](const std::string& s) { return std::find(a.begin(), a.end(), s) != a.end(); };
    CHECK(has_arg("if=none,id=mpd1,file=/tmp/a,,b.img,format=raw,file.locking=off"));   // a comma in the name doubled
    CHECK(has_arg("if=none,id=mpd2,file=/tmp/a,,b.img,format=raw,file.locking=off"));
    CHECK(has_arg("scsi-hd,bus=mps.0,channel=0,scsi-id=1,lun=0,drive=mpd1,id=mpp1,serial=devemu-mpath,wwn=0x5001405d0e0e0001,share-rw=on"));
    CHECK(has_arg("scsi-hd,bus=mps.0,channel=0,scsi-id=2,lun=0,drive=mpd2,id=mpp2,serial=devemu-mpath,wwn=0x5001405d0e0e0001,share-rw=on"));
    CHECK(has_arg("virtserialport,bus=vser.0,chardev=paths,name=org.devemu.paths"));
    CHECK(has_arg("socket,id=qmp,path=/run/x/qmp.sock"));
    CHECK(has_arg("chardev=qmp,mode=control"));
    lio::mpath::Want w{"qemu-paths", "10", {{0, {"/dev/sda", "/dev/sdb"}}}, 1, 0, true};
    const auto conf = lio::mpath::conf_text(w, {"35001405d0e0e0001"});
    CHECK(conf.find("vendor \"QEMU\"\n        product \"QEMU HARDDISK\"") != std::string::npos);
    CHECK(conf.find("path_grouping_policy multibus") != std::string::npos);   // both paths carry I/O
    CHECK(conf.find("alua") == std::string::npos);                            // scsi-hd has no ALUA
}

TEST_CASE("open-iscsi logins: portal names as iscsiadm takes them, and the two timeout sets")
{
    CHECK(lio::initiator::portal_arg({"0.0.0.0", 3261, 2}) == "127.0.0.1:3261,2");   // a portal on every address: reached on loopback
    CHECK(lio::initiator::portal_arg({"192.0.2.7", 3260, 1}) == "192.0.2.7:3260,1");
    CHECK(lio::initiator::portal_arg({"fd00::5", 3260, 1}) == "[fd00::5]:3260,1");
    CHECK(lio::initiator::iface_of("mi") == "devemu-mi");
    const lio::initiator::Timeouts fast{true}, dist{false};
    CHECK(fast.replacement() == 2);
    CHECK(fast.fast_io_fail() == 2);
    CHECK(fast.noop_interval() == 2);
    CHECK(dist.replacement() == 120);   // open-iscsi's iscsid.conf
    CHECK(dist.fast_io_fail() == 5);    // multipath-tools'
    CHECK(dist.noop_timeout() == 5);
}

TEST_CASE("dmsetup status of a multipath map: each path's device and state")
{
    // two paths in one group (service-time: 2 selector args per path), the second failed
    auto p = lio::mpath::parse_status("0 131072 multipath 2 0 1 0 1 1 A 0 2 2 8:0 A 0 0 1 8:16 F 1 0 1\n");
    REQUIRE(p);
    REQUIRE(p->size() == 2);
    CHECK((*p)[0].device == "8:0");
    CHECK((*p)[0].active);
    CHECK((*p)[1].device == "8:16");
    CHECK_FALSE((*p)[1].active);
    // two groups (group_by_prio), one path each
    auto g = lio::mpath::parse_status("0 2048 multipath 2 0 0 0 2 1 A 0 1 2 8:32 A 0 0 1 E 0 1 2 8:48 A 0 0 1");
    REQUIRE(g);
    REQUIRE(g->size() == 2);
    CHECK((*g)[1].device == "8:48");
    CHECK_FALSE(lio::mpath::parse_status("0 2048 linear 8:0 0"));
}

#include "lio/failover.hpp"

TEST_CASE("failover: fio's completion log, and each event's gap, stall and slowest I/O from it")
{
    const auto done = lio::parse_lat_log("1000, 500000, 1, 4096, 0\n1010, 1500000, 1, 4096, 4096\n900, 100000, 1, 4096, 8192\nnot a line\n"
                                         "1500, 400000000, 1, 4096, 0\n1520, 200000, 0, 4096, 0\n");
    REQUIRE(done.size() == 5);
    CHECK(done.front().first == 900);          // sorted by completion time
    CHECK(done[1].second == Approx(0.5));      // ns -> ms
    lio::FailoverEvent e;
    lio::measure_event(e, done, 1005, 1600);   // cut at 1005 ms, back at 1600 ms
    CHECK(e.next_completion_ms == Approx(5));  // 1010
    CHECK(e.longest_stall_ms == Approx(490));  // 1010 -> 1500
    CHECK(e.max_latency_ms == Approx(400));    // the I/O that completed at 1500 took 400 ms
    lio::FailoverEvent late;
    lio::measure_event(late, done, 2000, 2500);   // nothing completed after the cut
    CHECK(late.next_completion_ms == -1);
    CHECK(late.longest_stall_ms == Approx(500));
}

TEST_CASE("failover: an event counts as failed in the map only when the timeline shows its path failed before it was back")
{
    const std::vector<std::pair<double, std::vector<bool>>> tl = {
        {1.0, {true, true}}, {1.1, {true, false}}, {2.0, {true, true}}, {3.0, {true, true}}, {3.5, {false, true}}, {4.0, {true, true}}};
    lio::FailoverEvent seen;
    seen.path = 2, seen.cut_s = 1.05, seen.back_s = 2.0;
    CHECK(lio::failed_in_map(seen, tl));
    lio::FailoverEvent other = seen;   // path 1 was fine then
    other.path = 1;
    CHECK_FALSE(lio::failed_in_map(other, tl));
    lio::FailoverEvent unseen;         // cut at 2.5 s, back at 3.0 s: path 2 never failed (path 1 failing later is not it)
    unseen.path = 2, unseen.cut_s = 2.5, unseen.back_s = 3.0;
    CHECK_FALSE(lio::failed_in_map(unseen, tl));
    lio::FailoverEvent all;            // every path: any failed one counts; never back: up to the end
    all.path = 0, all.cut_s = 3.2, all.back_s = -1;
    CHECK(lio::failed_in_map(all, tl));
    all.cut_s = 3.8;
    CHECK_FALSE(lio::failed_in_map(all, tl));
}

TEST_CASE("failover options: what the CLI and a relayed guest pass, read back the same, refusals")
{
    auto o = lio::FailoverOptions::from_json({{"flaps", 1000}, {"duration_s", 30}, {"down_for_ms", 7000}, {"rw", "write"}});
    REQUIRE(o);
    CHECK(o->duration == std::chrono::seconds(30));
    CHECK(o->down_for == std::chrono::milliseconds(7000));
    auto again = lio::FailoverOptions::from_json(o->to_json());   // the guest's copy of the host's options
    REQUIRE(again);
    CHECK(again->duration == o->duration);
    CHECK(again->flaps == 1000);
    CHECK(again->rw == "write");
    CHECK_FALSE(lio::FailoverOptions::from_json({{"rw", "randread"}}));   // a verified run writes
    CHECK_FALSE(lio::FailoverOptions::from_json({{"flaps", 0}}));         // nothing to do
}
