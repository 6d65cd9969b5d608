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
mask_of() { taskset -p "$1" 2>/dev/null | awk '{print $NF}'; }   # a task's CPU mask, as hex
cd /tmp

paths=fileio,iblock,user,iscsi,tgt-aio,usb,usb-user
check "a short matrix on $paths" sh -c "'$devemu' -q bench --paths $paths zram:64M --case read:64k:4 --runtime 1 --repeat 2 --json > /tmp/m.json"
check "it printed a result for every path" python3 -c "
import json; d = json.load(open('/tmp/m.json'))
assert [p['path'] for p in d['cases'][0]['paths']] == '$paths'.split(','), d
assert all(len(p['runs_iops']) == 2 and p['total_ios'] > 0 for p in d['cases'][0]['paths']), d"
check "... and how much of the zram device was in the page cache: none after the O_DIRECT fill, some after fileio's reads" python3 -c "
import json; pc = json.load(open('/tmp/m.json'))['page_cache']
assert pc['file'].startswith('/dev/zram') and pc['before'] < 0.05 and pc['after'] > pc['before'], pc"
check "nothing left after it" nothing_left

# ext4:SIZE: the file is filled through the page cache, so the runs read it from there, and the JSON says how much of
# it was there before and after (a fill with O_DIRECT left it all on zram: the first rounds measured zram).
check "an ext4 backing's file is in the page cache when the runs start" sh -c "'$devemu' -q bench --paths raw,fileio ext4:32M --case randread:4k:4 --runtime 1 --repeat 1 --json > /tmp/e.json"
check "... all of it (page_cache.before), and the JSON says so after too" python3 -c "
import json; d = json.load(open('/tmp/e.json')); pc = d['page_cache']
assert pc['file'].endswith('/disk.img') and pc['before'] >= 0.99 and 0 <= pc['after'] <= 1, pc"

# --split-cpus: during the measured runs devemu's USB server and TCMU handler (every thread), f_mass_storage's
# thread and LIO iSCSI's threads are on the device's CPU (1), the engine on CPU 0; the JSON lists them; one CPU is refused.
paths=usb,usb-user,user,iscsi
"$devemu" -q bench --paths $paths zram:64M --case randread:4k:4 --runtime 3 --repeat 1 --split-cpus --json >/tmp/s.json 2>/tmp/s.err &
pid=$!
masks=""
for _ in $(seq 900); do   # sample the masks while a path is measured
    if [ "$(mask_of $pid)" = 1 ]; then
        for p in $(pgrep -f 'devemu (usb|tcmu)-serve') $(pgrep -x file-storage) $(pgrep -x iscsi_trx); do
            for t in /proc/$p/task/*; do masks="$masks $(cat $t/comm 2>/dev/null | tr -d ' '):$(mask_of ${t##*/})"; done
        done
        break
    fi
    sleep 0.1
done
wait $pid; rc=$?
expect_rc() { [ "$rc" = 0 ] && ok "$1" || bad "$1: exit $rc: $(tail -2 /tmp/s.err)"; }
expect_rc "--split-cpus run on $paths"
[ -n "$masks" ] && ! echo "$masks" | tr ' ' '\n' | grep -v '^$' | grep -qv ':2$' && echo "$masks" | grep -q 'file-storage:2' \
    && echo "$masks" | grep -q 'iscsi_trx:2' && echo "$masks" | grep -q 'devemu:2' \
    && ok "mid-run: the engine on CPU 0 (mask 1), the device's side on CPU 1 (mask 2)" || bad "mid-run masks: [$masks]"
check "the JSON names the device's tasks" python3 -c "
import json; d = json.load(open('/tmp/s.json')); s = d['split_cpus']
assert s['host_cpus'] == '0' and s['device_cpus'] == '1', s
comms = {t['comm'] for t in s['device_tasks']}
assert {'devemu', 'file-storage', 'iscsi_trx', 'iscsi_ttx'} <= comms, comms
assert all(p['total_ios'] > 0 for p in d['cases'][0]['paths']), d"
check "nothing left after it" nothing_left
taskset -c 0 "$devemu" bench --paths usb zram:64M --runtime 1 --repeat 1 --split-cpus >/tmp/s1.out 2>&1; rc=$?
[ "$rc" = 2 ] && grep -q 'needs two CPUs' /tmp/s1.out && ok "one CPU: exit 2, says --split-cpus needs two" || bad "one CPU: exit $rc: $(cat /tmp/s1.out)"
check "nothing made for it" nothing_left

# Ctrl-C while a path is being measured: the run ends (non-zero, says so) and tears everything down. On an
# ext4:SIZE backing (a file on ext4 on zram: its mount goes too). With --split-cpus, and another gadget up beside the
# run: that gadget's f_mass_storage thread is moved for the measurement too, and put back after the Ctrl-C.
src=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
other() { DEVEMU_STATE_DIR=/run/devemu-other "$devemu" -q "$@"; }
other up "$src/gadgets/msc-file.toml" >/dev/null 2>/tmp/other.err || bad "another gadget up: $(cat /tmp/other.err)"
fs_other=$(pgrep -x file-storage | head -1)
mask_before=$(mask_of "$fs_other")
paths=fileio,user,iscsi-user,tgt-aio,usb,usb-user
"$devemu" bench --paths $paths ext4:64M --case randread:4k:8 --runtime 30 --repeat 1 --split-cpus >/tmp/int.out 2>&1 &
pid=$!
for _ in $(seq 600); do [ -e "$DEVEMU_STATE_DIR/bench-paths/units/bench-login-tgt-aio.journal" ] && break; sleep 0.1; done
sleep 3   # into the first 30 s measurement
check "tgtd, the gadgets and the ext4 backing are up mid-run" sh -c "pgrep tgtd && ls $G | grep -q bench-usb && grep -q bench-paths/mnt /proc/mounts"
expect_eq "mid-run: the other gadget's file-storage thread (mask $mask_before before) is on the device's CPU" 2 "$(mask_of "$fs_other")"
kill -INT $pid
wait $pid; rc=$?
[ "$rc" != 0 ] && grep -q interrupted /tmp/int.out && ok "Ctrl-C: exit $rc, says it was interrupted" || bad "Ctrl-C: exit $rc: $(tail -3 /tmp/int.out)"
expect_eq "after Ctrl-C: its mask is put back" "$mask_before" "$(mask_of "$fs_other")"
other down msc0 >/dev/null 2>&1 || bad "another gadget down"
check "nothing left after Ctrl-C" nothing_left
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
