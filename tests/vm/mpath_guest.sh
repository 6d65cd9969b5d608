#!/usr/bin/env bash
# Runs inside the VM (devemu vm run --host-root): dm-multipath over two tcm_loop paths to one fileio backstore.
devemu=$1
. "$(dirname "$(readlink -f "$0")")/guest_lib.sh"
cd /tmp
map=devemu-mp-0
mdev=/dev/mapper/$map
# multipathd's own view of the paths: "sdX <dm state> <checker state>"
mstates() { multipathd show paths format '%d %t %T' 2>/dev/null | tail -n +2; }
nstate() { mstates | grep -c "$1"; }
cat > mp.toml <<'P'
[[backstore]]
name = "m0"
type = "fileio"
path = "/tmp/m0.img"
size = "64M"
[[target]]
name = "mp"
fabric = "loopback"
paths = 2
multipath = true
no_path_retry = 2
polling_interval = 1
[[target.lun]]
backstore = "m0"
P
"$devemu" up mp.toml > /tmp/up.out 2>&1; rc=$?
[ $rc = 0 ] && ok "up: a loopback target with two paths and dm-multipath over them" || bad "up: exit $rc $(cat /tmp/up.out)"
check "up prints the map and both paths active" grep -qE "multipath  LUN 0: /dev/mapper/$map \(sd[a-z] active, sd[a-z] active\)" /tmp/up.out
check "the map's device exists ($mdev, or its dm node)" sh -c "dmsetup info $map >/dev/null"
[ -e "$mdev" ] || mdev=$(python3 -c "import json,subprocess; d=json.loads(subprocess.check_output(['$devemu','ls','--json'])); print([u for u in d if u['name']=='mp'][0]['access']['multipath']['maps']['0']['dm'])")
check "multipath -ll: two paths, both active ready" sh -c "[ \$(multipath -ll $map | grep -c 'active ready running') = 2 ]"
n=$(multipathd show paths format '%d %c' 2>/dev/null | grep -c ' directio')
[ "$n" = 2 ] && ok "multipathd checks both paths with directio (the generated config; 0.9.4's default for LIO is tur)" \
    || bad "checker: $(multipathd show paths format '%d %c' 2>&1 | tr '\n' '|') $(multipathd show wildcards 2>&1 | grep -i check | tr '\n' '|')"
check "... and the map has the profile's no_path_retry" sh -c "multipathd show config local | grep -A4 'alias \"$map\"' | grep -q 'no_path_retry 2' || grep -A4 'alias $map' /etc/multipath/conf.d/devemu-mp.conf | grep -q 'no_path_retry 2'"
check "ls: healthy" sh -c "\"$devemu\" ls | grep -q '^mp  target  up  healthy'"

# --- a path cut and restored: multipath fails it, I/O goes on over the other, multipathd reinstates it --------
check "fault mp path 2 down" "$devemu" fault mp path 2 down
check "I/O through the map goes on" dd if="$mdev" of=/dev/null bs=4096 count=64 iflag=direct status=none
for _ in $(seq 1 50); do [ "$(nstate 'failed faulty')" = 1 ] && break; sleep 0.2; done
[ "$(nstate 'failed faulty')" = 1 ] && [ "$(nstate 'active ready')" = 1 ] && ok "multipathd: one path failed faulty, one active ready" || bad "after the cut: $(mstates | tr '\n' '|')"
check "ls says path 2 is down and the map's path failed" sh -c "\"$devemu\" ls | grep -q 'its path 2 is down (devemu fault mp path 2 up)' && \"$devemu\" ls | grep -q 'multipath map $map: path sd[a-z] is failed'"
check "fault mp path 2 up" "$devemu" fault mp path 2 up
for _ in $(seq 1 150); do [ "$(nstate 'active ready')" = 2 ] && break; sleep 0.2; done
[ "$(nstate 'active ready')" = 2 ] && ok "multipathd reinstates it (both active ready again)" || bad "after restore: $(mstates | tr '\n' '|')"
"$devemu" fault mp path 3 down > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -q "has 2 paths, not 3" /tmp/bad.out && ok "fault path 3: exit 2, the target has 2" || bad "path 3: exit $rc $(cat /tmp/bad.out)"
"$devemu" fault mp path down > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -q "has 2 paths: say which" /tmp/bad.out && ok "fault path down without a number: exit 2, say which" || bad "path without K: exit $rc $(cat /tmp/bad.out)"

# --- paths flapping under fio's crc32c verify: no application error, no mismatch ------------------------------
fio --name=mp --filename="$mdev" --rw=randwrite --bs=4k --size=32M --ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c \
    --verify_backlog=128 --verify_fatal=1 --time_based --runtime=45 --output=/tmp/fio-mp.out --eta=never &
fiopid=$!
flaps=0
while kill -0 $fiopid 2>/dev/null && [ $flaps -lt 20 ]; do
    k=$(( flaps % 2 + 1 ))
    "$devemu" -q fault mp path $k down >/dev/null && sleep 0.5 && "$devemu" -q fault mp path $k up >/dev/null && flaps=$((flaps + 1))
    # the next cut only once multipathd has reinstated this path (never both down: no_path_retry is for that below)
    for _ in $(seq 1 100); do [ "$(nstate 'active ready')" = 2 ] && break; sleep 0.1; done
done
wait $fiopid; rc=$?
[ $rc = 0 ] && [ $flaps -ge 5 ] && grep -q "err= 0" /tmp/fio-mp.out && ok "fio randwrite + crc32c verify with $flaps path cuts meanwhile: no error, no mismatch" \
    || bad "fio under flaps: exit $rc after $flaps flaps $(grep -E 'err=|verify' /tmp/fio-mp.out | head -3)"

# --- devemu failover: the same, measured: each cut's gap and stall, and the path states over time --------------
# (polling_interval = 1: multipathd checks each path every second, so a path is back about a second after its restore)
"$devemu" failover mp --flaps 50 --down-for 300 --between 100 --svg /tmp/mp.svg --json > /tmp/fo.json 2>/tmp/fo.err; rc=$?
fo() { python3 -c "import json,sys; j=json.load(open('/tmp/fo.json')); print($1)"; }
[ $rc = 0 ] && ok "devemu failover --flaps 50: exit 0 ($(fo "j['ios']") I/Os in $(fo "round(j['runtime_s'])") s)" || bad "failover: exit $rc $(head -c 400 /tmp/fo.err) $(head -c 400 /tmp/fo.json)"
check "... 50 events, alternating paths 1 and 2, each back after its restore" sh -c "[ \"\$(python3 -c \"import json; j=json.load(open('/tmp/fo.json')); print([e['path'] for e in j['events']] == [1, 2] * 25, all(e['back_s'] >= e['restored_s'] for e in j['events']))\")\" = 'True True' ]"
check "... no application error and no verify mismatch" sh -c "[ \"\$(python3 -c \"import json; j=json.load(open('/tmp/fo.json')); print(j['io_errors'], j['verify_mismatches'], j['fio_total_err'])\")\" = '0 0 0' ]"
# (failover, not its speed: an I/O completed after each cut the map saw, before multipathd had the cut path back; how
# soon is the benchmark's to judge, tools/bench-failover. A stall of a loaded TCG guest (CI saw one of 14 s) sends no
# I/O to a path cut meanwhile, and the map never fails it: such cuts fail over nothing, and most cuts must be seen.)
seen=$(fo "sum(e['failed_in_map'] for e in j['events'])")
[ "${seen:-0}" -ge 20 ] && ok "... the map failed the cut path in $seen of 50 cuts (at least 20)" || bad "... the map failed the cut path in only ${seen:-none} of 50 cuts"
late=$(fo "' '.join('#%d(path %d, cut at %.1f s: next I/O %s ms, back at %.1f s)' % (i + 1, e['path'], e['cut_s'], round(e['next_completion_ms']), e['back_s']) for i, e in enumerate(j['events']) if e['failed_in_map'] and not 0 <= e['next_completion_ms'] < (e['back_s'] - e['cut_s']) * 1000)")
# With polling_interval = 1 a cut path is back ~1-2 s after the cut, so one TCG stall of that length (seen in CI: one
# cut of 50 whose next I/O came 26 ms after its path was back) makes a cut late without any failover going wrong: up
# to a tenth of the seen cuts may be late; a map that does not fail over makes every one of them late.
nlate=$(fo "sum(1 for e in j['events'] if e['failed_in_map'] and not 0 <= e['next_completion_ms'] < (e['back_s'] - e['cut_s']) * 1000)")
if [ "${nlate:-99}" -eq 0 ]; then ok "... each cut the map saw: I/O went on while the cut path was out (a completion before it was back)"
elif [ "$((nlate * 10))" -le "${seen:-0}" ]; then ok "... I/O went on while the cut path was out in all but $nlate of the $seen cuts the map saw (at most a tenth): $late"
else bad "... I/O did not go on during $nlate of $seen cut(s): $late"; fi
unseen=$(fo "' '.join('#%d(next I/O %d ms)' % (i + 1, round(e['next_completion_ms'])) for i, e in enumerate(j['events']) if not e['failed_in_map'])")
[ -z "$unseen" ] || echo "note: cuts the map never saw (no I/O failed on the path while it was down): $unseen"
slow=$(fo "' '.join('#%d:%d ms' % (i + 1, round(e['next_completion_ms'])) for i, e in enumerate(j['events']) if e['next_completion_ms'] >= 1000)")
[ -z "$slow" ] || echo "note: cuts whose next I/O came 1 s or more after the cut: $slow"
check "... the timeline shows each cut path failed, then active" sh -c "python3 -c \"import json,sys; j=json.load(open('/tmp/fo.json')); t=j['timeline']; sys.exit(0 if any(not s['active'][0] for s in t) and any(not s['active'][1] for s in t) and all(t[-1]['active']) else 1)\""
check "... and an SVG a browser opens" sh -c "head -c 200 /tmp/mp.svg | grep -q '<svg' && tail -c 20 /tmp/mp.svg | grep -q '</svg>'"
python3 -c "import json; j=json.load(open('/tmp/fo.json')); l=j['lines']; print('\n'.join(l[:6] + ['  ...'] + l[-2:]))"
# (a cut lasts until multipathd has the path back: 1-4 s under TCG in CI, up to 7 s seen: 20 s leaves room for at least two)
"$devemu" failover mp --flaps 1000 --duration 20 --down-for 300 --between 100 --json > /tmp/fo3.json 2>/dev/null; rc=$?
[ $rc = 0 ] && python3 -c "import json,sys; j=json.load(open('/tmp/fo3.json')); e=j['events']; sys.exit(0 if 2 <= len(e) < 1000 and all(x['cut_s'] < 20.5 for x in e) else 1)" \
    && ok "failover --duration 20: cuts until 20 s from the start, then stops ($(python3 -c "import json; print(len(json.load(open('/tmp/fo3.json'))['events']))") cuts)" \
    || bad "duration: exit $rc $(head -c 300 /tmp/fo3.json)"
"$devemu" failover mp --flaps 0 --all-down 14000 --json > /tmp/fo2.json 2>/dev/null; rc=$?
[ $rc = 1 ] && [ "$(python3 -c "import json; print(json.load(open('/tmp/fo2.json'))['io_errors'] > 0)")" = True ] \
    && ok "failover --all-down 14 s (well past no_path_retry = 2 checks of 1 s): the application saw I/O errors, and failover says so (exit 1)" \
    || bad "all-down: exit $rc $(head -c 300 /tmp/fo2.json)"
for _ in $(seq 1 150); do [ "$(nstate 'active ready')" = 2 ] && break; sleep 0.2; done

# --- every path down past no_path_retry: the application gets EIO; what it wrote before reads back intact ---------
head -c 1048576 /dev/urandom > /tmp/pat
check "a pattern written (acknowledged) through the map" dd if=/tmp/pat of="$mdev" bs=1M count=1 seek=8 oflag=direct status=none
check "both paths down" sh -c "\"$devemu\" -q fault mp path 1 down && \"$devemu\" -q fault mp path 2 down"
t0=$(date +%s)
dd if="$mdev" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/tmp/eio.out; rc=$?
t1=$(date +%s)
[ $rc != 0 ] && grep -q "Input/output error" /tmp/eio.out && ok "a read with no path fails with EIO after $((t1 - t0)) s (no_path_retry = 2)" || bad "no path: dd exit $rc after $((t1 - t0)) s $(cat /tmp/eio.out)"
check "both paths up" sh -c "\"$devemu\" -q fault mp path 1 up && \"$devemu\" -q fault mp path 2 up"
for _ in $(seq 1 150); do [ "$(nstate 'active ready')" = 2 ] && break; sleep 0.2; done
check "the pattern reads back intact" sh -c "dd if=$mdev bs=1M count=1 skip=8 iflag=direct status=none | cmp -s - /tmp/pat"

# --- down: the map, the config, multipathd and udevd (started for it) go, then the paths -------------------------
check "down" "$devemu" down mp
check "... no map left" sh -c "! dmsetup ls | grep -q devemu-mp"
check "... no config snippet left" test ! -e /etc/multipath/conf.d/devemu-mp.conf
check "... multipathd stopped (devemu started it)" sh -c "! multipathd show daemon 2>/dev/null | grep -q '^pid '"
check "... no loopback target left" sh -c "[ -z \"\$(ls /sys/kernel/config/target/loopback 2>/dev/null | grep naa)\" ]"

# --- iSCSI: open-iscsi logs in on both portals (as the ACL's initiator, with its CHAP), dm-multipath on top ---------
cat > mi.toml <<'P'
[[backstore]]
name = "i0"
type = "fileio"
path = "/tmp/i0.img"
size = "64M"
[[target]]
name = "mi"
paths = 2
multipath = true
no_path_retry = 2
polling_interval = 1
[[target.lun]]
backstore = "i0"
[[target.acl]]
initiator = "iqn.2026-11.org.devemu:mpath-host"
chap_user = "mpuser"
P
imap=devemu-mi-0
"$devemu" up mi.toml > /tmp/up-i.out 2>&1; rc=$?
[ $rc = 0 ] && ok "up: an iSCSI target with two portals, logged in on both, dm-multipath over them" || bad "iscsi up: exit $rc $(cat /tmp/up-i.out)"
check "up prints the second portal, the sessions and the map with both paths active" sh -c "grep -q 'path 2     portal 0*[0-9.]*:3261 (tpgt 2)' /tmp/up-i.out && grep -q 'sessions   open-iscsi on 2 portals (iface devemu-mi), fast timeouts' /tmp/up-i.out && grep -qE 'multipath  LUN 0: /dev/mapper/$imap \(sd[a-z] active, sd[a-z] active\)' /tmp/up-i.out"
check "iscsiadm: two sessions, on portals 3260 and 3261, through iface devemu-mi" sh -c "[ \$(iscsiadm -m session | grep -c 'iqn.2026-11.org.devemu:mi') = 2 ] && iscsiadm -m session | grep -q ':3260,1 ' && iscsiadm -m session | grep -q ':3261,2 ' && [ \$(iscsiadm -m session -P 1 | grep -c 'Iface Name: devemu-mi') = 2 ]"
check "... logged in as the ACL's initiator (the kernel's session attribute)" sh -c "[ \$(cat /sys/class/iscsi_session/session*/initiatorname | grep -c '^iqn.2026-11.org.devemu:mpath-host$') = 2 ]"
check "... with CHAP (the session's username is the ACL's)" sh -c "[ \$(cat /sys/class/iscsi_session/session*/username | grep -c '^mpuser$') = 2 ]"
check "... each session gives up a dead connection after 2 s (recovery_tmo; open-iscsi's default is 120)" sh -c "[ \"\$(cat /sys/class/iscsi_session/session*/recovery_tmo | sort -u)\" = 2 ]"
check "... and sends NOP-Outs every 2 s (the node records)" sh -c "[ \$(iscsiadm -m node -I devemu-mi -T iqn.2026-11.org.devemu:mi -p 127.0.0.1:3261 | grep -c 'noop_out_interval = 2') = 1 ]"
check "multipath -ll: two paths, both active ready, checked with directio" sh -c "[ \$(multipath -ll $imap | grep -c 'active ready running') = 2 ] && [ \$(multipathd show paths format '%d %c' | grep -c directio) -ge 2 ]"
"$devemu" failover mi --flaps 10 --down-for 3000 --between 500 --json > /tmp/fo-i.json 2>/tmp/fo-i.err; rc=$?
[ $rc = 0 ] && ok "devemu failover mi --flaps 10 (each path down 3 s, past the 2 s recovery_tmo): exit 0" || bad "iscsi failover: exit $rc $(head -c 400 /tmp/fo-i.err) $(head -c 400 /tmp/fo-i.json)"
check "... no application error and no verify mismatch over 10 iSCSI cuts" sh -c "[ \"\$(python3 -c \"import json; j=json.load(open('/tmp/fo-i.json')); print(len(j['events']), j['io_errors'], j['verify_mismatches'], j['fio_total_err'])\")\" = '10 0 0 0' ]"
check "... every cut path failed (multipath saw it) and came back after its restore" sh -c "python3 -c \"import json,sys; j=json.load(open('/tmp/fo-i.json')); t=j['timeline']; sys.exit(0 if any(not s['active'][0] for s in t) and any(not s['active'][1] for s in t) and all(e['back_s'] >= e['restored_s'] for e in j['events']) else 1)\""
check "... the slowest I/O of every cut is under 5 s (the goal with devemu's timeouts)" sh -c "python3 -c \"import json,sys; j=json.load(open('/tmp/fo-i.json')); sys.exit(0 if all(e['max_latency_ms'] < 5000 for e in j['events']) else 1)\""
python3 -c "import json; j=json.load(open('/tmp/fo-i.json')); l=j['lines']; print('\n'.join(l[:4] + ['  ...'] + l[-1:]))"
check "a second unit (the loopback one) comes up beside it and shares multipathd" sh -c "\"$devemu\" -q up mp.toml >/dev/null && [ \$(multipath -ll $map | grep -c 'active ready running') = 2 ]"
check "down mi" "$devemu" down mi
check "... multipathd still runs for mp, whose map still has both paths active" sh -c "multipathd show daemon | grep -q '^pid ' && [ \$(multipath -ll $map | grep -c 'active ready running') = 2 ]"
check "down mp: the last unit stops the multipathd and udevd devemu started" sh -c "\"$devemu\" -q down mp && ! multipathd show daemon 2>/dev/null | grep -q '^pid ' && ! pgrep -x systemd-udevd >/dev/null && [ ! -e /run/devemu-multipathd.started ]"
check "... no session, no node record, no iface of devemu's left" sh -c "! iscsiadm -m session 2>/dev/null | grep -q devemu:mi && [ -z \"\$(ls /etc/iscsi/nodes 2>/dev/null)\" ] && [ ! -e /etc/iscsi/ifaces/devemu-mi ]"
check "... the iscsid devemu started is stopped, and no map is left" sh -c "! pgrep -x iscsid && ! dmsetup ls | grep -q devemu-mi"
sed 's/^no_path_retry = 2/path_timeouts = "slow"\nno_path_retry = 2/' mi.toml > bad-tmo.toml
"$devemu" up bad-tmo.toml > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -qE 'bad-tmo.toml:[0-9]+' /tmp/bad.out && grep -q 'path_timeouts is "fast"' /tmp/bad.out && ! iscsiadm -m session 2>/dev/null | grep -q devemu \
    && ok "path_timeouts = \"slow\": exit 2 with file:line, nothing logged in" || bad "bad path_timeouts: exit $rc $(cat /tmp/bad.out)"

# --- QEMU paths (vm run --mpath-disk): Rapido's mpath_local, each cut a QMP drive_del, each restore a new disk ---
attached0=$(dmesg | grep -c 'Attached SCSI disk')
"$devemu" failover --qemu-paths --flaps 4 --down-for 2000 --between 500 --json > /tmp/fo-q.json 2>/tmp/fo-q.err; rc=$?
[ $rc = 0 ] && ok "devemu failover --qemu-paths --flaps 4: exit 0" || bad "qemu paths: exit $rc $(head -c 400 /tmp/fo-q.err) $(head -c 400 /tmp/fo-q.json)"
check "... 4 cuts, alternating paths, no application error and no verify mismatch" sh -c "[ \"\$(python3 -c \"import json; j=json.load(open('/tmp/fo-q.json')); print([e['path'] for e in j['events']], j['io_errors'], j['verify_mismatches'], j['fio_total_err'])\")\" = '[1, 2, 1, 2] 0 0 0' ]"
check "... every cut path failed in the map and its new disk was active after the restore" sh -c "python3 -c \"import json,sys; j=json.load(open('/tmp/fo-q.json')); t=j['timeline']; sys.exit(0 if any(not s['active'][0] for s in t) and any(not s['active'][1] for s in t) and all(e['back_s'] >= e['restored_s'] for e in j['events']) else 1)\""
attached=$(( $(dmesg | grep -c 'Attached SCSI disk') - attached0 ))
[ "$attached" -ge 6 ] && ok "the guest's kernel attached $attached disks meanwhile (2 at the start, 1 per restore: each restore was a new device)" || bad "disks attached: $attached; $(dmesg | grep -E 'sd [0-9]+:0:[12]:0' | tail -5)"
check "... the map is removed at the end, and no multipathd is left" sh -c "! dmsetup ls | grep -q devemu-qemu-paths && ! multipathd show daemon 2>/dev/null | grep -q '^pid '"
python3 -c "import json; j=json.load(open('/tmp/fo-q.json')); print('\n'.join(j['lines']))"

# --- bad profiles --------------------------------------------------------------------------------------------
sed 's/paths = 2/paths = 1/' mp.toml > one.toml
"$devemu" up one.toml > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -qE 'one.toml:[0-9]+' /tmp/bad.out && grep -q "multipath needs two paths or more" /tmp/bad.out && ok "multipath with one path: exit 2 with file:line" || bad "one path: exit $rc $(cat /tmp/bad.out)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
