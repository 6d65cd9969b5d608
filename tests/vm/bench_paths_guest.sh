#!/usr/bin/env bash
# Runs inside the VM (devemu vm run --host-root), where the kernel has every path: a --paths run leaves nothing
# behind, finished or stopped with Ctrl-C in the middle of a measurement.
devemu=$1
. "$(dirname "$(readlink -f "$0")")/guest_lib.sh"
T=/sys/kernel/config/target G=/sys/kernel/config/usb_gadget
modprobe zram 2>/dev/null; zram_base=$(ls /sys/block | grep -c zram)
nothing_left() { # no LIO object, no gadget, no session, no tgtd, no server or handler, no zram, no unit
    local left
    left="$(ls $T/core 2>/dev/null | grep -v '^alua$') $(ls $T/loopback $T/iscsi 2>/dev/null | grep -E '^(naa|iqn)\.') $(ls $G 2>/dev/null)"
    left="$left $(iscsiadm -m session 2>/dev/null) $(pgrep -a tgtd) $(pgrep -af 'devemu (usb|tcmu)-serve')"
    left="$left $(ls "$DEVEMU_STATE_DIR/bench-paths/units" 2>/dev/null) $(grep bench-paths /proc/mounts)"
    [ -z "$(echo "$left" | tr -d ' \n')" ] && [ "$(ls /sys/block | grep -c zram)" = "$zram_base" ] || { echo "left: $left $(ls /sys/block | grep zram)"; return 1; }
}
cd /tmp

paths=fileio,iblock,user,iscsi,tgt-aio,usb,usb-user
check "a short matrix on $paths" sh -c "'$devemu' -q bench --paths $paths zram:64M --case read:64k:4 --runtime 1 --repeat 2 --json > /tmp/m.json"
check "it printed a result for every path" python3 -c "
import json; d = json.load(open('/tmp/m.json'))
assert [p['path'] for p in d['cases'][0]['paths']] == '$paths'.split(','), d
assert all(len(p['runs_iops']) == 2 and p['total_ios'] > 0 for p in d['cases'][0]['paths']), d"
check "nothing left after it" nothing_left

# Ctrl-C while a path is being measured: the run ends (non-zero, says so) and tears everything down. On an
# ext4:SIZE backing (a file on ext4 on zram: its mount goes too).
paths=fileio,user,iscsi-user,tgt-aio,usb,usb-user
"$devemu" bench --paths $paths ext4:64M --case randread:4k:8 --runtime 30 --repeat 1 >/tmp/int.out 2>&1 &
pid=$!
for _ in $(seq 600); do [ -e "$DEVEMU_STATE_DIR/bench-paths/units/bench-login-tgt-aio.journal" ] && break; sleep 0.1; done
sleep 3   # into the first 30 s measurement
check "tgtd, the gadgets and the ext4 backing are up mid-run" sh -c "pgrep tgtd && ls $G | grep -q bench-usb && grep -q bench-paths/mnt /proc/mounts"
kill -INT $pid
wait $pid; rc=$?
[ "$rc" != 0 ] && grep -q interrupted /tmp/int.out && ok "Ctrl-C: exit $rc, says it was interrupted" || bad "Ctrl-C: exit $rc: $(tail -3 /tmp/int.out)"
check "nothing left after Ctrl-C" nothing_left
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
