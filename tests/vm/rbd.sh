#!/usr/bin/env bash
# RBD end to end: devemu's local Ceph cluster (a mon and a bluestore OSD in a network namespace the test's state
# dir owns), targets/rbd-iscsi.toml in a VM (krbd -> LIO iblock -> iSCSI, portal on 127.0.0.1), a tcm_loop
# target whose bytes are compared with `rbd export` on the host, an OSD killed mid-write, the failures the issue
# lists (unreachable cluster, wrong key, missing pool, image in use), and nothing left after `down`.
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# A loopback target NAME on one rbd backstore NAME: image POOL/IMAGE of SIZE, on the cluster (and with the other
# backstore keys) that the TOML lines MORE give.
mk_loop() { # file name pool image size more
    cat > "$1" <<EOF
[[backstore]]
name = "$2"
type = "rbd"
pool = "$3"
image = "$4"
size = "$5"
$6
[[target]]
name = "$2"
fabric = "loopback"
[[target.lun]]
id = 0
backstore = "$2"
EOF
}
# The same on a cluster named by its monitors (a "real" one, to devemu).
mk_real() { # file keyring pool [mon_host]
    mk_loop "$1" real "$3" real 16M "mon_host = \"${4:-10.99.0.1:6789}\"
keyring = \"$2\""
}
ceph_left() { pgrep -f "$state/units/ceph" || true; }
for tool in ceph-mon ceph-osd rbd iscsi-test-cu; do
    command -v $tool >/dev/null || { bad "$tool is not installed (tools/setup installs it)"; finish; exit 1; }
done

# --- a cluster that does not answer: one line, exit 2, in seconds, nothing made -----------------------------
printf '[client.admin]\n\tkey = AQBfCiZpAAAAABAAbm90YXJlYWxrZXlub3RhcmVhbA==\n' > "$state/other.keyring"   # well-formed, wrong
mk_real "$state/unreachable.toml" "$state/other.keyring" rbd 127.0.0.1:1
t0=$(date +%s)
err=$("$devemu" up --vm "$state/unreachable.toml" 2>&1 >/dev/null); rc=$?
expect_eq "unreachable cluster: exit 2" 2 "$rc"
expect_contains "unreachable cluster: says so" "$err" "cannot reach the Ceph monitors at 127.0.0.1:1"
one_line "$err" && ok "unreachable cluster: one line" || bad "unreachable cluster: [$err]"
[ $(( $(date +%s) - t0 )) -le 30 ] && ok "unreachable cluster: fails within 30 s" || bad "took $(( $(date +%s) - t0 )) s"
expect_eq "unreachable cluster: no unit" "no units (state dir $state)" "$("$devemu" ls)"
[ -z "$(qemu_left)" ] && ok "unreachable cluster: no qemu" || bad "qemu left"

# --- the local cluster --------------------------------------------------------------------------------------
"$devemu" -q ceph up --store bluestore >/dev/null 2>"$state/err"; rc=$?
expect_eq "ceph up (bluestore)" 0 "$rc"
[ "$rc" = 0 ] || { cat "$state/err"; finish; exit 1; }
st=$("$devemu" ceph status --json)
expect_eq "ceph status: HEALTH_OK" HEALTH_OK "$(field "d['health']" <<<"$st")"
expect_eq "ceph status: osd up" 1 "$(field "d['osds_up']" <<<"$st")"
ns=$(field "d['netns']" <<<"$st")
conf=$(field "d['conf']" <<<"$st")
ip netns list | grep -q "^$ns" && ok "its namespace $ns exists" || bad "no namespace $ns"
expect_eq "keyring is 0600" 600 "$(stat -c %a "$(field "d['keyring']" <<<"$st")")"
pids=$(field "sorted(v['pid'] for v in d['daemons'].values())" <<<"$st")
"$devemu" -q ceph up >/dev/null 2>&1
expect_eq "ceph up again keeps the same daemons" "$pids" "$("$devemu" ceph status --json | field "sorted(v['pid'] for v in d['daemons'].values())")"
rbdc() { ip netns exec "$ns" rbd -c "$conf" "$@"; }

# --- the shipped profile: iSCSI over rbd, checked by the host's libiscsi tools --------------------------------
out=$("$devemu" -q up --vm --json "$src/targets/rbd-iscsi.toml" 2>"$state/err"); rc=$?
expect_eq "up --vm targets/rbd-iscsi.toml" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
if [ "$rc" = 0 ]; then
    url=$(field "d[0]['access']['urls'][0]" <<<"$out")
    case "$url" in iscsi://127.0.0.1:*) ok "portal forwarded to 127.0.0.1 ($url)" ;; *) bad "url $url" ;; esac
    iscsi-test-cu -t SCSI.Read10 -t SCSI.Write10 "$url" >"$state/cu" 2>&1 \
        && ok "iscsi-test-cu SCSI.Read10 + SCSI.Write10 pass" || bad "iscsi-test-cu: $(tail -8 "$state/cu" | tr '\n' ' ')"
    rbdc ls rbd | grep -qx devemu-rbd0 && ok "the image was made on the cluster" || bad "no image devemu-rbd0: $(rbdc ls rbd)"
    expect_eq "the VM maps it with krbd" "devemu-rbd0" "$("$devemu" vm exec rbd0 -- cat /sys/bus/rbd/devices/0/name | tr -d '\r')"

    # The same image for a second unit while the first maps it: refused on the host, nothing made.
    sed -e 's/name = "rbd0"/name = "rbd0b"/' -e 's/backstore = "rbd0"/backstore = "rbd0b"/' -e 's/:rbd0"/:rbd0b"/' \
        "$src/targets/rbd-iscsi.toml" > "$state/twice.toml"
    err=$("$devemu" up --vm "$state/twice.toml" 2>&1 >/dev/null); rc=$?
    expect_eq "image open elsewhere: exit 2" 2 "$rc"
    expect_contains "image open elsewhere: says so" "$err" "rbd image rbd/devemu-rbd0 is open elsewhere"
    one_line "$err" && ok "image open elsewhere: one line" || bad "[$err]"
    "$devemu" ls | grep -q rbd0b && bad "a unit rbd0b was left" || ok "image open elsewhere: no unit left"

    "$devemu" -q down rbd0 >/dev/null; expect_eq "down rbd0" 0 "$?"
    rbdc ls rbd | grep -qx devemu-rbd0 && bad "ephemeral image still there" || ok "down removed the ephemeral image it made"
    "$devemu" ceph status >/dev/null && ok "the cluster stays up (down did not start it)" || bad "cluster gone after down rbd0"
fi

# --- tcm_loop over rbd: 16 MiB written in the VM, read back there, and the same bytes from `rbd export` ------
mk_loop "$state/loop.toml" rbdl rbd loop-img 96M 'cluster = "local"'
# --exec makes it a host-root VM: the host's tools (and rbd, for the no---vm path below) run in it.
out=$("$devemu" -q up --vm --json --exec "sleep 100000" "$state/loop.toml" 2>"$state/err"); rc=$?
expect_eq "up --vm a tcm_loop target over rbd" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
if [ "$rc" = 0 ]; then
    dev=$(field "list(d[0]['access']['devices'].values())[0]" <<<"$out")
    got=$("$devemu" vm exec rbdl -- sh -c "head -c 16777216 /dev/urandom > /tmp/a && dd if=/tmp/a of=$dev bs=1M oflag=direct 2>/dev/null && dd if=$dev of=/tmp/b bs=1M count=16 iflag=direct 2>/dev/null && cmp /tmp/a /tmp/b && sha256sum < /tmp/a" | tr -d '\r')
    sum=${got%% *}
    [ ${#sum} = 64 ] && ok "16 MiB through tcm_loop read back equal in the VM" || bad "write/read in the VM: [$got]"
    expect_eq "rbd export on the host gives the same 16 MiB" "$sum" "$(rbdc export rbd/loop-img - 2>/dev/null | head -c 16777216 | sha256sum | cut -d' ' -f1)"

    # Kill the OSD mid-write and restart it: the write completes (krbd resends) or fails cleanly, and every byte
    # dd reported written is there afterwards.
    log=$state/kill.out   # vm exec streams the guest's output as it comes
    "$devemu" vm exec rbdl -- sh -c "head -c 33554432 /dev/urandom > /tmp/c; echo WRITING; dd if=/tmp/c of=$dev bs=8k seek=2048 oflag=direct 2>/tmp/dd; echo \"dd exit \$?\"; cat /tmp/dd" >"$state/kill.out" 2>&1 &
    writer=$!
    for _ in $(seq 1 600); do grep -q WRITING "$log" 2>/dev/null && break; sleep 0.05; done
    sleep 0.5
    osd=$("$devemu" ceph status --json | field "d['daemons']['osd.0']['pid']")
    grep -q "dd exit" "$log" && bad "the write was over before the kill (make it longer)" || ok "the write is still running"

    kill -9 "$osd" && ok "killed osd.0 (pid $osd) while the VM writes"
    sleep 3
    "$devemu" -q ceph up >/dev/null 2>"$state/err"; expect_eq "ceph up restarts the dead OSD" 0 "$?"
    wait $writer
    res=$(tr -d '\r' < "$state/kill.out")
    echo "     writer said: $(tr "\r\n" "  " <<<"$res")"
    case "$res" in *"dd exit 0"*) ok "the write completed across the OSD restart" ;;
                   *"dd exit 1"*"I/O error"*) ok "the write failed cleanly (I/O error)" ;;
                   *) bad "writer: [$res]" ;; esac
    n=$(sed -n 's/^\([0-9]*\)+[0-9]* records out/\1/p' <<<"$res")
    [ -n "$n" ] && [ "$n" -gt 0 ] && ok "dd acknowledged $n blocks of 8 KiB" || bad "no records out in [$res]"
    [ -n "$n" ] || n=0
    chk=$("$devemu" vm exec rbdl -- sh -c "dd if=$dev bs=8k skip=2048 count=$n iflag=direct 2>/dev/null > /tmp/d; head -c \$(($n * 8192)) /tmp/c | cmp - /tmp/d && echo SAME" | tr -d '\r')
    [ "$n" -gt 0 ] && expect_eq "what was acknowledged reads back after the restart" SAME "$chk"
    expect_eq "the first 16 MiB are untouched" "$sum" "$(rbdc export rbd/loop-img - 2>/dev/null | head -c 16777216 | sha256sum | cut -d' ' -f1)"
    # The same kind of profile without --vm, on a kernel with rbd (the VM's, devemu run there as on a host):
    # devemu makes the image itself with the rbd tool, maps it, and removes it at down (ephemeral).
    mk_loop "$state/inner.toml" inner rbd inner-img 32M 'cluster = "local"
ephemeral = true'
    inner() { "$devemu" vm exec rbdl -- "$devemu" --state-dir /run/devemu-inner "$@"; }
    got=$(inner -q up --json --ceph-local /devemu/ceph-local.json "$state/inner.toml" 2>&1 | tr -d '\r')
    case "$got" in *'"/dev/sd'*) ok "without --vm: up maps the image and exports it ($(grep -o '/dev/sd[a-z]*' <<<"$got"))" ;; *) bad "inner up: [$got]" ;; esac
    rbdc ls rbd | grep -qx inner-img && ok "without --vm: devemu made the image" || bad "no inner-img"
    expect_eq "without --vm: krbd maps it" inner-img "$("$devemu" vm exec rbdl -- cat /sys/bus/rbd/devices/1/name | tr -d '\r')"
    inner -q down --all >/dev/null 2>&1; expect_eq "without --vm: down" 0 "$?"
    rbdc ls rbd | grep -qx inner-img && bad "inner-img left after down" || ok "without --vm: down removed the ephemeral image"
    "$devemu" vm exec rbdl -- sh -c 'ls /sys/bus/rbd/devices' | tr -d '\r' | grep -qx 1 && bad "inner mapping left" || ok "without --vm: down unmapped it"

    "$devemu" -q down rbdl >/dev/null; expect_eq "down rbdl" 0 "$?"
    rbdc ls rbd | grep -qx loop-img && ok "a non-ephemeral image stays after down" || bad "loop-img was removed"
fi

# --- a USB disk on rbd: the kernel's mass-storage function and devemu's own, one image each, in one VM ----------
cat > "$state/usb.toml" <<EOF
[[backstore]]
name = "usbk"
type = "rbd"
cluster = "local"
pool = "rbd"
image = "usb-k"
size = "48M"
[[backstore]]
name = "usbu"
type = "rbd"
cluster = "local"
pool = "rbd"
image = "usb-u"
size = "48M"
ephemeral = true
[[gadget]]
name = "rbdusb"
product_id = 0x0120
[[gadget.function]]
type = "mass_storage"
name = "k"
[[gadget.function.lun]]
backstore = "usbk"
[[gadget.function]]
type = "mass_storage"
name = "u"
engine = "user"
[[gadget.function.lun]]
backstore = "usbu"
EOF
out=$("$devemu" -q up --vm --json --exec "sleep 100000" "$state/usb.toml" 2>"$state/err"); rc=$?
expect_eq "up --vm a gadget with two rbd LUNs (kernel function, devemu's own)" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
if [ "$rc" = 0 ]; then
    for fn in k u; do
        dev=$(field "[l['disk'] for l in d[0]['gadget']['luns'] if l['function'] == '$fn'][0]" <<<"$out")
        file=$(field "[l['file'] for l in d[0]['gadget']['luns'] if l['function'] == '$fn'][0]" <<<"$out")
        case "$file" in /dev/rbd*) ok "LUN of function $fn is served from $file (as $dev)" ;; *) bad "function $fn: file [$file]" ;; esac
        got=$("$devemu" vm exec rbdusb -- sh -c "head -c 8388608 /dev/urandom > /tmp/$fn && dd if=/tmp/$fn of=$dev bs=1M seek=4 oflag=direct conv=fsync 2>/dev/null && dd if=$dev of=/tmp/$fn.b bs=1M skip=4 count=8 iflag=direct 2>/dev/null && cmp /tmp/$fn /tmp/$fn.b && sha256sum < /tmp/$fn" | tr -d '\r')
        sum=${got%% *}
        [ ${#sum} = 64 ] && ok "function $fn: 8 MiB through $dev read back equal in the VM" || bad "function $fn: write/read in the VM: [$got]"
        expect_eq "function $fn: rbd export on the host gives the same 8 MiB" "$sum" \
            "$(rbdc export "rbd/usb-$fn" - 2>/dev/null | tail -c +4194305 | head -c 8388608 | sha256sum | cut -d' ' -f1)"
    done
    "$devemu" check rbdusb >"$state/check" 2>&1; rc=$?
    expect_eq "devemu check rbdusb passes (both functions)" 0 "$rc"
    [ "$rc" = 0 ] || grep -v '^\[ ok \]' "$state/check"
    grep -q "LUN 0:0: BOT case 13" "$state/check" && grep -q "LUN 1:0: BOT case 13" "$state/check" \
        && ok "check ran on both mass-storage interfaces" || bad "check: $(grep -c . "$state/check") lines, not both interfaces"
    "$devemu" -q down rbdusb >/dev/null; expect_eq "down rbdusb" 0 "$?"
    rbdc ls rbd | grep -qx usb-u && bad "the ephemeral usb-u is left" || ok "down removed the ephemeral image usb-u"
    rbdc ls rbd | grep -qx usb-k && ok "the non-ephemeral usb-k stays" || bad "usb-k was removed"
fi

# --- a wrong key and a missing pool, against the cluster as a "real" one (mon_host), from inside its namespace --
mk_real "$state/wrongkey.toml" "$state/other.keyring" rbd
err=$(ip netns exec "$ns" "$devemu" up --vm "$state/wrongkey.toml" 2>&1 >/dev/null); rc=$?
expect_eq "wrong key: exit 2" 2 "$rc"
expect_contains "wrong key: says so" "$err" "refused the key of client.admin"
one_line "$err" && ok "wrong key: one line" || bad "[$err]"
printf '[client.admin]\n\tkey = not-base64\n' > "$state/malformed.keyring"
mk_real "$state/malformed.toml" "$state/malformed.keyring" rbd
err=$(ip netns exec "$ns" "$devemu" up --vm "$state/malformed.toml" 2>&1 >/dev/null); rc=$?
expect_eq "malformed keyring: exit 2" 2 "$rc"
expect_contains "malformed keyring: says so" "$err" "could not be read from $state/malformed.keyring"
mk_real "$state/nopool.toml" "$(field "d['keyring']" <<<"$st")" nopool
err=$(ip netns exec "$ns" "$devemu" up --vm "$state/nopool.toml" 2>&1 >/dev/null); rc=$?
expect_eq "missing pool: exit 2" 2 "$rc"
expect_contains "missing pool: says so" "$err" "pool 'nopool' does not exist"
one_line "$err" && ok "missing pool: one line" || bad "[$err]"
expect_eq "refusals leave no unit but the cluster" "ceph  ceph  up  healthy" "$("$devemu" ls)"
[ -z "$(qemu_left)" ] && ok "refusals leave no qemu" || bad "qemu left"
grep -q "AQBfCiZpAAAAABAA" <<<"$err" && bad "a key was printed" || ok "no key in the messages"

# --- down: no daemon, no namespace (and with it no bridge or tap) --------------------------------------------
"$devemu" -q ceph down >/dev/null; expect_eq "ceph down" 0 "$?"
[ -z "$(ceph_left)" ] && ok "no ceph daemon left" || bad "ceph processes left: $(ceph_left)"
ip netns list | grep -q "^$ns" && bad "namespace $ns left" || ok "namespace gone (bridge and taps with it)"
[ ! -e "$state/units/ceph" ] && ok "cluster files removed" || bad "$state/units/ceph left"
finish
