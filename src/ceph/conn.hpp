#pragma once
// How devemu reaches a Ceph cluster: devemu's own local mini-cluster (a network namespace, a ceph.conf and a
// keyring under the state dir) or a real one (monitor addresses, a user, and a keyring or a secret file).
// The ceph and rbd command-line tools get bounded timeouts: a wrong address must fail in seconds, not hang for
// the five minutes librados waits by default.
#include <string>
#include <vector>

#include "core/error.hpp"
#include "profile/profile.hpp"

namespace devemu::ceph {

struct Conn {
    std::string mon_host;      // "10.99.0.1:6789" or "a:6789,b:6789"
    std::string user = "admin";
    std::string keyring;       // a keyring file ("[client.USER]" / "key = …")
    std::string secret_file;   // or a file holding the bare secret
    std::string conf;          // a ceph.conf (the local cluster); empty: none
    std::string netns;         // network namespace name (the local cluster); empty: this one
    std::string where;         // profile file:line or the cluster's dir, for error messages

    // The cephx secret; never logged or printed.
    [[nodiscard]] core::Result<std::string> secret() const;
    // Arguments for `ceph` / `rbd` that select the cluster and the identity and bound every wait.
    [[nodiscard]] std::vector<std::string> cli_args(int timeout_s = 10) const;
};

// The connection of an rbd backstore of a real cluster (mon_host, user, keyring or secret file).
[[nodiscard]] Conn conn_of(const profile::Backstore& b);

// Runs `tool` (ceph | rbd) against the cluster; returns its stdout. A failure becomes one line that says what
// is wrong in the user's terms (unreachable monitors, a refused key, a missing pool) and what to check.
[[nodiscard]] core::Result<std::string> cli(const Conn& c, const std::string& tool, const std::vector<std::string>& args, int timeout_s = 10);

}  // namespace devemu::ceph
