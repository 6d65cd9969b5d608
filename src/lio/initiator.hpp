#pragma once
// The iSCSI initiator side of a target with `multipath = true`, on the same kernel: open-iscsi logs in on every
// portal (one session per path), through an iface of the unit's own (devemu-UNIT: the first ACL's initiator name,
// its CHAP on the node records), so the user's own node records and sessions are never touched. iscsid is started
// when it is not running (a VM) and stopped by the last unit's `down`. Every step is journaled before it acts: `down` (also after
// a crash) logs out and deletes the node records, then the iface, then stops iscsid — after the multipath maps are
// flushed (they are journaled later) and before LIO removes the portals.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/transaction.hpp"

namespace devemu::lio::initiator {

// How fast a dead path is given up. `fast` (devemu's): the session's replacement_timeout and multipath's
// fast_io_fail_tmo 2 s, NOP-Out every 2 s with a 2 s timeout (a silent path is noticed in ~4 s). `distribution`:
// nothing set — open-iscsi's and multipath-tools' own defaults apply (Debian 12: replacement_timeout 120 s, which
// multipathd lowers to its fast_io_fail_tmo of 5 s; NOP-Out 5/5 s), what a user gets without tuning; the
// values below are those defaults, for display.
struct Timeouts {
    bool fast = true;
    [[nodiscard]] unsigned replacement() const { return fast ? 2 : 120; }
    [[nodiscard]] unsigned noop_interval() const { return fast ? 2 : 5; }
    [[nodiscard]] unsigned noop_timeout() const { return fast ? 2 : 5; }
    [[nodiscard]] unsigned fast_io_fail() const { return fast ? 2 : 5; }
};

struct Portal {
    std::string address;   // where the initiator connects (0.0.0.0 becomes 127.0.0.1)
    std::uint16_t port = 3260;
    std::uint16_t tpgt = 1;
};

struct Want {
    std::string unit;
    std::string iqn;
    std::vector<Portal> portals;        // one session each, in path order
    std::vector<std::uint32_t> luns;
    std::string initiator_name;         // "" : iscsid's own (/etc/iscsi/initiatorname.iscsi)
    std::string chap_user, chap_secret, mutual_user, mutual_secret;
    Timeouts timeouts;
};

// The disks of each session: result[k][lun] = "/dev/sdX" for portal k.
using Disks = std::vector<std::map<std::uint32_t, std::string>>;

[[nodiscard]] core::Result<Disks> up(const Want& w, core::Transaction& tx);

// The iface name a unit's sessions use.
[[nodiscard]] std::string iface_of(const std::string& unit);
// "ADDR:PORT,TPGT" as iscsiadm names a portal (IPv6 in brackets).
[[nodiscard]] std::string portal_arg(const Portal& p);

// Journal steps: "iscsi_logout" (path: iface, value: IQN \x1f PORTAL), "iscsi_iface" (path: iface), and
// "iscsid_stop": the iscsid devemu started (named by the pid file in its command line), shared by every unit that
// finds it running, stopped when no session is left.
void register_undo_ops();

}  // namespace devemu::lio::initiator
