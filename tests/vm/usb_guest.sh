#!/usr/bin/env bash
# Runs inside the VM (devemu vm run --host-root): USB gadgets on dummy_hcd. The guest's own host stack
# (usb-storage, sd_mod) and independent tools (dd, cmp, sg3-utils, sysfs) check what devemu built; `devemu check`
# is checked too, and must be able to fail.
devemu=$1
. "$(dirname "$(readlink -f "$0")")/guest_lib.sh"
repo=$2
ffsapp=$(dirname "$devemu")/ffs-loopback
G=/sys/kernel/config/usb_gadget
nothing_left() { # configfs empty, every UDC free, no FunctionFS mounted, zram back to the baseline
    # (a UDC's own `state` keeps its last value after unbind: "free" is no gadget bound and no device on its bus)
    local left; left="$(ls $G 2>/dev/null) $(grep functionfs /proc/mounts) $(ls /sys/bus/usb/devices | grep -E '^[0-9]+-[0-9]+$')"
    [ -z "$(echo "$left" | tr -d ' ')" ] && [ "$(ls /sys/block | grep -c zram)" = "$zram_base" ] || { echo "left: $left $(ls /sys/block | grep zram)"; return 1; }
}
disk_of() { "$devemu" ls --json | python3 -c "import json,sys; u=[x for x in json.load(sys.stdin) if x['name']=='$1'][0]; print(u['luns'][$2].get('disk',''))"; }
wait_for() { local i; for i in $(seq 100); do eval "$1" && return 0; sleep 0.1; done; return 1; }
modprobe loop 2>/dev/null; modprobe zram 2>/dev/null; zram_base=$(ls /sys/block | grep -c zram)
cd /tmp

# --- the shipped msc-file profile ----------------------------------------------------------------------
rm -f /tmp/devemu-msc0.img
check "msc-file: up" "$devemu" up "$repo/gadgets/msc-file.toml"
disk=$(disk_of msc0 0)
check "msc-file: the host side gave it a disk ($disk)" test -b "$disk"
check "msc-file: sysfs vendor is the gadget's INQUIRY" sh -c "grep -q Linux /sys/block/${disk#/dev/}/device/vendor"
check "msc-file: 64 MiB as the guest's sd sees it" sh -c "[ \$(cat /sys/block/${disk#/dev/}/size) = 131072 ]"
head -c 4M /dev/urandom > /tmp/pattern
check "msc-file: dd a pattern through $disk" dd if=/tmp/pattern of="$disk" bs=1M seek=8 oflag=direct conv=fsync status=none
check "msc-file: the backing file holds the pattern" cmp -n 4194304 -i 0:8388608 /tmp/pattern /tmp/devemu-msc0.img
check "msc-file: the pattern reads back through $disk" sh -c "dd if=$disk bs=1M skip=8 count=4 iflag=direct status=none | cmp - /tmp/pattern"
check "msc-file: rerun of up changes nothing" sh -c "\"$devemu\" up --json $repo/gadgets/msc-file.toml | grep -q '\"changes\": 0'"
check "msc-file: ls says healthy" sh -c "\"$devemu\" ls | grep msc0 | grep -q healthy"
check "msc-file: devemu check passes" "$devemu" check msc0
cp /tmp/check.out /tmp/msc-check.out
grep -q 'BOT case 13' /tmp/msc-check.out && ok "check ran the thirteen BOT cases" || bad "check ran the thirteen BOT cases"
check "msc-file: check --json says ok" sh -c "\"$devemu\" check --json --no-write msc0 | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ok\"] and len(d[\"checks\"]) > 15'"
disk=$(disk_of msc0 0)
check "msc-file: usb-storage is back after the check ($disk)" test -b "$disk"
check "msc-file: data intact after the checks" sh -c "dd if=$disk bs=1M skip=8 count=4 iflag=direct status=none | cmp - /tmp/pattern"
# check must be able to fail: a backing file shorter than what was recorded is reported.
check "check compares capacity with the backing file" sh -c "truncate -s 65M /tmp/devemu-msc0.img; \"$devemu\" check --no-write msc0; rc=\$?; truncate -s 64M /tmp/devemu-msc0.img; [ \$rc = 1 ]"

# --- media change --------------------------------------------------------------------------------------
check "eject" "$devemu" gadget eject msc0
check "after eject the host sees no medium" sh -c "for i in 1 2 3; do sg_readcap $disk >/dev/null 2>&1 && exit 1; done; sg_turs -v $disk 2>&1 | grep -qi 'medium not present'"
check "check reports no medium, and passes" sh -c "\"$devemu\" check --no-write msc0 | grep -q 'no medium'"
truncate -s 32M /tmp/other.img
check "insert another image" "$devemu" gadget insert msc0 /tmp/other.img
check "the host sees the new medium's 32 MiB" sh -c "for i in 1 2 3 4 5; do sg_readcap $disk 2>/dev/null | grep -q 'Last LBA=65535' && exit 0; sleep 0.2; done; exit 1"
check "ls is healthy after the media change" sh -c "\"$devemu\" ls | grep msc0 | grep -q healthy"
refuse "insert of a missing file is refused" "$devemu" gadget insert msc0 /tmp/nope.img
check "... with exit 2 and the path" sh -c "\"$devemu\" gadget insert msc0 /tmp/nope.img; [ \$? = 2 ] && grep -q /tmp/nope.img /tmp/refused.out"
check "down" "$devemu" down msc0
check "down leaves configfs empty and the UDC free" nothing_left
check "down again is a no-op" "$devemu" down msc0

# --- zram-backed, two LUNs, one read-only --------------------------------------------------------------
truncate -s 16M /tmp/ro.img
head -c 1M /dev/urandom > /tmp/ro-head; dd if=/tmp/ro-head of=/tmp/ro.img conv=notrunc status=none
cat > two.toml <<'EOF'
[[backstore]]
name = "z"
type = "zram"
size = "32M"
[[backstore]]
name = "r"
type = "fileio"
path = "/tmp/ro.img"
[[gadget]]
name = "two"
product_id = 0x0110
[[gadget.function]]
type = "mass_storage"
name = "ms"
[[gadget.function.lun]]
backstore = "z"
[[gadget.function.lun]]
backstore = "r"
readonly = true
EOF
check "zram + read-only: up" "$devemu" up two.toml
d0=$(disk_of two 0); d1=$(disk_of two 1)
check "two LUNs, two disks ($d0 $d1)" sh -c "[ -b '$d0' ] && [ -b '$d1' ] && [ '$d0' != '$d1' ]"
check "LUN 0 is the 32 MiB zram" sh -c "[ \$(cat /sys/block/${d0#/dev/}/size) = 65536 ]"
zdev=$("$devemu" ls --json | python3 -c "import json,sys; print([x for x in json.load(sys.stdin) if x['name']=='two'][0]['luns'][0]['file'])")
check "zram pattern through the gadget reaches $zdev" sh -c "dd if=/tmp/pattern of=$d0 bs=1M oflag=direct status=none && cmp -n 4194304 /tmp/pattern $zdev"
check "the read-only LUN is read-only to the host" sh -c "[ \$(cat /sys/block/${d1#/dev/}/ro) = 1 ]"
check "a raw SCSI write to the read-only LUN gets DATA PROTECT" sh -c "sg_raw -R -s 512 -i /tmp/ro-head $d1 2a 00 00 00 00 00 00 00 01 00 2>&1 | grep -qi 'data protect'"
check "the read-only data is unchanged" cmp -n 1048576 /tmp/ro-head /tmp/ro.img
check "devemu check passes on both LUNs (refused write included)" sh -c "\"$devemu\" check two > /tmp/two.out && grep -q 'LUN 1: WRITE(10) refused (read-only) — DATA PROTECT 27/00' /tmp/two.out && grep -q 'Get Max LUN — 2 LUN' /tmp/two.out"
check "eject on a non-removable LUN is refused" sh -c "\"$devemu\" gadget eject two; [ \$? = 2 ]"
check "down" "$devemu" down two
check "down removed the zram device and everything else" nothing_left

# --- a block device that holds a filesystem: refused unless --force ------------------------------------
truncate -s 32M /tmp/blk.img; mkfs.ext4 -q /tmp/blk.img; loopdev=$(losetup -f --show /tmp/blk.img)
printf '[[backstore]]\nname = "b"\ntype = "block"\npath = "%s"\n[[gadget]]\nname = "blk"\n[[gadget.function]]\ntype = "mass_storage"\nname = "ms"\n[[gadget.function.lun]]\nbackstore = "b"\n' "$loopdev" > blk.toml
"$devemu" up blk.toml > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && ok "block device with ext4: refused, exit 2" || bad "block device with ext4: exit $rc"
check "... saying why and how" sh -c "grep -q 'ext4' /tmp/bad.out && grep -q -- '--force' /tmp/bad.out"
check "... nothing left" nothing_left
check "with --force it comes up" "$devemu" up --force blk.toml
check "the host sees the filesystem through the gadget" sh -c "blkid \$(\"$devemu\" ls --json | python3 -c \"import json,sys; print([x for x in json.load(sys.stdin) if x['name']=='blk'][0]['luns'][0]['disk'])\") | grep -q ext4"
check "down" "$devemu" down blk
losetup -d "$loopdev"

# --- a composite gadget: mass storage + CDC ACM serial ---------------------------------------------------
cat > acm.toml <<'EOF'
[[backstore]]
name = "s"
type = "zram"
size = "16M"
[[gadget]]
name = "combo"
product_id = 0x0111
[[gadget.function]]
type = "mass_storage"
name = "ms"
[[gadget.function.lun]]
backstore = "s"
[[gadget.function]]
type = "acm"
name = "ser"
EOF
combo() { "$devemu" ls --json | python3 -c "import json,sys; u=[x for x in json.load(sys.stdin) if x['name']=='combo'][0]; print($1)"; }
check "msc + acm: up" "$devemu" up acm.toml
tty=$(combo "u['host']['ttys'].get('ser','')"); cdisk=$(combo "u['luns'][0].get('disk','')")
check "msc + acm: the host side has a tty ($tty) and a disk ($cdisk)" sh -c "[ -c '$tty' ] && [ -b '$cdisk' ]"
stty -F "$tty" raw -echo 2>/dev/null; stty -F /dev/ttyGS0 raw -echo 2>/dev/null
(timeout 5 head -c 5 "$tty" > /tmp/acm.out) & reader=$!
sleep 0.5; printf hello > /dev/ttyGS0; wait $reader
check "msc + acm: bytes written on the gadget's ttyGS0 arrive on $tty" test "$(cat /tmp/acm.out)" = hello
check "msc + acm: check passes" "$devemu" check --no-write combo
check "msc + acm: down" "$devemu" down combo
check "msc + acm: nothing left" nothing_left

# --- FunctionFS: the example app ----------------------------------------------------------------------
cat > ffs.toml <<'EOF'
[[gadget]]
name = "ffs0"
product_id = 0x0105
[[gadget.function]]
type = "ffs"
name = "app"
mount = "/tmp/ffs/app"
EOF
"$devemu" up --timeout 60 ffs.toml > /tmp/ffs-up.out 2>&1 &
uppid=$!
check "up mounts FunctionFS and waits for the app" wait_for "[ -e /tmp/ffs/app/ep0 ]"
grep -q 'start your app on /tmp/ffs/app' /tmp/ffs-up.out && ok "up says where to start the app" || bad "up says where to start the app: $(cat /tmp/ffs-up.out)"
check "not bound before the app wrote its descriptors" sh -c "[ -z \"\$(cat $G/ffs0/UDC)\" ]"
"$ffsapp" /tmp/ffs/app 2>/tmp/ffsapp.err &
apppid=$!
wait $uppid; rc=$?
[ $rc = 0 ] && ok "up finished once the app was there" || bad "up finished once the app was there: exit $rc $(cat /tmp/ffs-up.out)"
check "the host enumerated it" sh -c "grep -qx 0105 /sys/bus/usb/devices/*/idProduct"
check "devemu check: loopback round trip of random data" sh -c "\"$devemu\" check ffs0 | grep -q '\\[ ok \\] bulk loopback round trip'"
check "check by VID:PID works too" "$devemu" check 1d6b:0105
kill $apppid; wait $apppid 2>/dev/null
check "down after the app stopped" "$devemu" down ffs0
check "nothing left" nothing_left

# --exec: devemu starts the app and tears everything down when it exits.
"$devemu" up --exec "exec $ffsapp /tmp/ffs/app" ffs.toml > /tmp/exec.out 2>&1 &
uppid=$!
check "--exec: the gadget comes up with the app devemu started" wait_for "\"$devemu\" ls 2>/dev/null | grep ffs0 | grep -q healthy"
check "--exec: round trip" "$devemu" check ffs0
pkill -f "ffs-loopback /tmp/ffs/app"
wait $uppid
check "--exec: devemu up returned when the app exited" sh -c "! kill -0 $uppid 2>/dev/null"
check "--exec: everything torn down" nothing_left
check "--exec: the state dir is empty" sh -c "[ -z \"\$(\"$devemu\" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or \"\")')\" ]"

# --exec apps that are more than one process: `down` from elsewhere stops the whole tree (its process group) within
# a bound, SIGKILL for what ignores SIGTERM, before FunctionFS goes; up --exec then returns.
app_procs() { pgrep -f "ffs-loopback /tmp/ffs/app|sleep 7777|cat-devemu-pipe" | grep -vx "$uppid" | wc -l; }   # not up --exec itself
i=0
for cmd in "$ffsapp /tmp/ffs/app & sleep 7777" \
           "$ffsapp /tmp/ffs/app 2>&1 | bash -c 'exec -a cat-devemu-pipe cat'" \
           "trap '' TERM; $ffsapp /tmp/ffs/app"; do
    i=$((i + 1))
    case $i in 1) what="an app that forks a child" ;; 2) what="an app in a shell pipeline" ;; 3) what="an app that ignores SIGTERM" ;; esac
    "$devemu" up --exec "$cmd" ffs.toml > /tmp/exec.out 2>&1 &
    uppid=$!
    check "$what: up --exec brings the gadget up" wait_for "\"$devemu\" ls 2>/dev/null | grep ffs0 | grep -q healthy"
    check "$what: its processes run ($(app_procs))" sh -c "[ \$(pgrep -f 'ffs-loopback /tmp/ffs/app' | wc -l) -ge 1 ]"
    start=$(date +%s%N)
    "$devemu" down ffs0 > /tmp/down.out 2>&1; rc=$?
    took=$(( ($(date +%s%N) - start) / 1000000 ))
    expect() { [ "$2" ] && ok "$what: $1" || bad "$what: $1"; }
    expect "down exits 0 (exit $rc)" "$([ $rc = 0 ] && echo y)"
    expect "down took ${took} ms (bounded: 5 s grace, then SIGKILL)" "$([ $took -lt 9000 ] && echo y)"
    expect "no process of the app's tree is left ($(app_procs))" "$([ "$(app_procs)" = 0 ] && echo y)"
    expect "down does not warn that the app holds FunctionFS" "$(grep -q 'still has' /tmp/down.out || echo y)"
    wait_for "! kill -0 $uppid 2>/dev/null"
    expect "up --exec returned once the app was stopped" "$(kill -0 $uppid 2>/dev/null || echo y)"
    wait $uppid 2>/dev/null
    check "$what: nothing left" nothing_left
done

# A FunctionFS app that never comes: a timeout with the path, exit 124, nothing left.
check "no app: up times out naming the mount" sh -c "\"$devemu\" up --timeout 2 ffs.toml 2>&1 | grep -q 'no FunctionFS app wrote its descriptors within 2 s'"
check "no app: nothing left" nothing_left

# --- $(devemu up ...) returns for every shipped gadget profile (nothing left holding the caller's stdout) -----------
for prof in "$repo"/gadgets/*.toml; do
    name=$(basename "$prof" .toml)
    if grep -q '^type = "ffs"' "$prof"; then   # the app writes its descriptors, then up binds and returns
        mnt=$(python3 -c "import tomllib; print([f.get('mount', '/dev/usb-ffs/' + f['name']) for g in tomllib.load(open('$prof','rb'))['gadget'] for f in g['function'] if f['type'] == 'ffs'][0])")
        (wait_for "[ -e $mnt/ep0 ]" && exec "$ffsapp" "$mnt") 2>/dev/null &
        apppid=$!
    fi
    # 300 s: rbd-usb starts a Ceph cluster in this TCG guest (its OSD took over 80 s on a slow machine of our kind);
    # what is checked is that up returns, not how fast.
    timeout 300 bash -c "out=\$(\"$devemu\" up --json --timeout 60 \"$prof\"); printf '%s' \"\$out\" > /tmp/subst.json"; rc=$?
    [ $rc = 0 ] && ok "$name: \$(devemu up) returns (exit 0)" || bad "$name: \$(devemu up) exit $rc (124: it hung)"
    unit=$(python3 -c "import json; print(json.load(open('/tmp/subst.json'))[0]['unit'])" 2>/dev/null)
    check "$name: down" "$devemu" down "${unit:-$name}"
    if grep -q '^type = "ffs"' "$prof"; then kill $apppid 2>/dev/null; wait $apppid 2>/dev/null; fi
    check "$name: nothing left" nothing_left
done

# --- bad input: exit 2, one clear line, nothing left ----------------------------------------------------
sed 's/^name = "msc0"$/name = "msc0"\nudc = "dummy_udc.7"/' "$repo/gadgets/msc-file.toml" > badudc.toml
"$devemu" up badudc.toml > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && ok "missing UDC: exit 2" || bad "missing UDC: exit $rc"
check "missing UDC: names it and what there is" grep -q "names UDC 'dummy_udc.7', which this kernel does not have (it has: dummy_udc.0" /tmp/bad.out
check "missing UDC: one line" sh -c "[ \$(wc -l < /tmp/bad.out) = 1 ]"
check "missing UDC: nothing left" nothing_left

printf '[[backstore]]\nname = "gone"\ntype = "fileio"\npath = "/tmp/absent.img"\n[[gadget]]\nname = "g2"\n[[gadget.function]]\ntype = "mass_storage"\nname = "ms"\n[[gadget.function.lun]]\nbackstore = "gone"\n' > absent.toml
"$devemu" up absent.toml > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && ok "absent backing file: exit 2" || bad "absent backing file: exit $rc"
check "absent backing file: names the file and the fix" sh -c "grep -q '/tmp/absent.img' /tmp/bad.out && grep -q 'size' /tmp/bad.out"
check "absent backing file: nothing left" nothing_left

"$devemu" up --timeout 60 ffs.toml > /tmp/bad.out 2>&1 &
uppid=$!
wait_for "[ -e /tmp/ffs/app/ep0 ]"
"$ffsapp" /tmp/ffs/app --maxpacket 64 2>/dev/null &
apppid=$!
wait $uppid; rc=$?
kill $apppid 2>/dev/null; wait $apppid 2>/dev/null
[ $rc = 2 ] && ok "wrong maxpacket: exit 2" || bad "wrong maxpacket: exit $rc $(cat /tmp/bad.out)"
check "wrong maxpacket: says the descriptors were refused" grep -q "descriptors were refused" /tmp/bad.out
check "wrong maxpacket: nothing left" nothing_left

# UDC busy, and a gadget devemu did not make.
sed 's/^name = "msc0"$/name = "msc0"\nudc = "dummy_udc.0"/' "$repo/gadgets/msc-file.toml" > pinned.toml
check "pinned to dummy_udc.0: up" "$devemu" up pinned.toml
sed -e 's/"msc0"/"other"/' -e 's/msc0-disk/other-disk/' -e 's/devemu-msc0/devemu-other/' pinned.toml > other.toml
"$devemu" up other.toml > /tmp/bad.out 2>&1; rc=$?
[ $rc = 2 ] && ok "UDC busy: exit 2" || bad "UDC busy: exit $rc"
check "UDC busy: names the gadget holding it" grep -q "UDC dummy_udc.0 is busy: gadget 'msc0' is bound to it" /tmp/bad.out
check "UDC busy: msc0 untouched" sh -c "\"$devemu\" ls | grep msc0 | grep -q healthy"
check "down msc0" "$devemu" down msc0
mkdir $G/foreign
sed 's/^name = "msc0"$/name = "foreign"/' "$repo/gadgets/msc-file.toml" > foreign.toml
refuse "a gadget devemu did not make is refused" "$devemu" up foreign.toml
check "... saying so, naming it" sh -c "grep -q \"a gadget named 'foreign' exists that devemu did not create\" /tmp/refused.out && grep -q '$G/foreign' /tmp/refused.out"
check "... and left alone" test -d $G/foreign
rmdir $G/foreign

# --- a crash at any step of up, then down --------------------------------------------------------------
for step in 1 5 12 20 24; do
    DEVEMU_CRASH_AFTER_STEP=$step "$devemu" up "$repo/gadgets/msc-file.toml" >/dev/null 2>&1
    check "crash after step $step, then down" "$devemu" down msc0
    check "crash after step $step: nothing left" nothing_left
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
