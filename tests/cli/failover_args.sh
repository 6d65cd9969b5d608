#!/usr/bin/env bash
# devemu failover and vm run --mpath-disk refuse what they cannot do, on the host, with one line and exit 2,
# before touching anything (no module loaded, no VM booted).
set -u
devemu=$1
state=$(mktemp -d /tmp/devemu-cli.XXXXXX)
export DEVEMU_STATE_DIR=$state
fails=0 n=0
expect() {   # expect "what" "phrase" cmd...
    local what=$1 phrase=$2; shift 2
    n=$((n + 1))
    "$@" >/tmp/devemu-fo.$$ 2>&1; rc=$?
    if [ "$rc" = 2 ] && [ "$(wc -l </tmp/devemu-fo.$$)" = 1 ] && grep -qF -- "$phrase" /tmp/devemu-fo.$$; then echo "ok   - $what"
    else echo "FAIL - $what: exit $rc: $(cat /tmp/devemu-fo.$$)"; fails=$((fails + 1)); fi
}
expect "failover without a target" "say which target" "$devemu" failover
expect "failover with a target and --qemu-paths" "a target or --qemu-paths, not both" "$devemu" failover t --qemu-paths
expect "failover --qemu-paths outside a vm run --mpath-disk guest" "has no QEMU paths to cut" "$devemu" failover --qemu-paths
expect "failover of a unit that is not there" "no such unit" "$devemu" failover nosuch
expect "vm run --mpath-disk of a missing file" "--mpath-disk takes an existing regular file" "$devemu" vm run --mpath-disk "$state/none.img" -- true
truncate -s 4K "$state/small.img"
expect "vm run --mpath-disk of a file under 1 MiB" "smaller than 1 MiB" "$devemu" vm run --mpath-disk "$state/small.img" -- true
expect "vm run --mpath-disk of a block device" "--mpath-disk takes an existing regular file" "$devemu" vm run --mpath-disk /dev/null -- true
[ -z "$(ls "$state/vm" 2>/dev/null)" ] && echo "ok   - no VM run directory left" || { echo "FAIL - left: $(ls "$state/vm")"; fails=$((fails + 1)); }
rm -rf "$state" /tmp/devemu-fo.$$
echo "$((n - fails)) passed, $fails failed"
[ "$fails" = 0 ]
