#!/usr/bin/env bash
# Runs inside the VM booted with the host's systemd as PID 1 (devemu vm run --host-root --systemd): the package
# installed, its units under a real systemd, and the package removed.
deb=$1
. "$(dirname "$(readlink -f "$0")")/guest_lib.sh"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset DEVEMU_STATE_DIR   # the service's devemu uses the default state dir; so do we, to see what it left
T=/sys/kernel/config/target G=/sys/kernel/config/usb_gadget
# systemctl start/stop waits for its job; bounded here so that a job that hangs fails its step by name.
sysctl_job() { timeout 200 systemctl "$@"; }
wait_for() { local i; for i in $(seq "${2:-100}"); do eval "$1" && return 0; sleep 0.2; done; return 1; }
nothing_left() { # no LIO target, no gadget, no unit record
    local left="$(ls $T/iscsi $T/loopback 2>/dev/null | grep -E '^(iqn|naa)\.') $(ls $G 2>/dev/null) $(devemu ls --names)"
    [ -z "$(echo "$left" | tr -d ' \n')" ] || { echo "left: $left"; return 1; }
}
expect_eq "PID 1 is systemd" systemd "$(ps -p 1 -o comm=)"
files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|')

# --- the package --------------------------------------------------------------------------------------------
# man-db's dpkg trigger rebuilds the whole manual index (the overlay's copy of the host's): measured 487 s for
# dpkg -i and 184 s for dpkg -r under TCG, 4 s and 3 s without it. It is not what this suite tests.
rm -f /var/lib/man-db/auto-update
check "dpkg -i" dpkg -i "$deb"
systemctl daemon-reload; udevadm control --reload
expect_eq "devemu on PATH is the package's" /usr/bin/devemu "$(command -v devemu)"
check "doctor: the installed devemu finds its guest init under /usr/lib/devemu" sh -c "devemu doctor --json | python3 -c \"
import json, sys
c = [x for x in json.load(sys.stdin)['checks'] if x['name'] == 'devemu-init'][0]
assert c['ok'] and c['detail'] == '/usr/lib/devemu/devemu-init', c\""
out=$(DEVEMU_CACHE_DIR=/tmp/empty-cache devemu vm run -- true 2>&1)
case "$out" in *"run /usr/lib/devemu/fetch-kernel"*) ok "without a kernel in the cache, --vm names the installed fetch-kernel" ;; *) bad "no-kernel error: $out" ;; esac
check "devemu up /usr/share/devemu/targets/zram-iscsi.toml" devemu up /usr/share/devemu/targets/zram-iscsi.toml
check "iscsi-inq (libiscsi) reaches its LUN" sh -c "iscsi-inq iscsi://127.0.0.1:3260/iqn.2026-11.org.devemu:zram0/0 | grep -q LIO-ORG"
check "devemu down --profile" devemu down --profile /usr/share/devemu/targets/zram-iscsi.toml
check "nothing left" nothing_left

# --- devemu@.service ------------------------------------------------------------------------------------------
mkdir -p /etc/devemu
cp /usr/share/devemu/targets/zram-iscsi.toml /etc/devemu/zram-iscsi.toml
check "systemctl start devemu@zram-iscsi" sysctl_job start devemu@zram-iscsi
expect_eq "the unit is active" active "$(systemctl is-active devemu@zram-iscsi)"
check "its target is reachable (iscsi-inq)" sh -c "iscsi-inq iscsi://127.0.0.1:3260/iqn.2026-11.org.devemu:zram0/0 | grep -q LIO-ORG"
check "systemctl stop devemu@zram-iscsi" sysctl_job stop devemu@zram-iscsi
check "nothing left after stop" nothing_left

# A portal whose address appears 3 s after the start: waited for, then up.
modprobe dummy
ip link add devemu-test0 type dummy
cat > /etc/devemu/late.toml <<EOT
[[backstore]]
name = "late"
type = "zram"
size = "16M"
[[target]]
name = "late"
iqn = "iqn.2026-11.org.devemu:late"
portal = "10.99.0.1:3260"
[[target.lun]]
backstore = "late"
[[target.acl]]
initiator = "iqn.2026-11.org.devemu:client"
chap_user = "devemu"
EOT
(sleep 3; ip addr add 10.99.0.1/24 dev devemu-test0; ip link set devemu-test0 up) &
start=$(date +%s)
check "devemu@late starts although its address comes 3 s later" sysctl_job start devemu@late
took=$(( $(date +%s) - start ))
[ "$took" -ge 3 ] && ok "it waited for the address (${took} s)" || bad "it did not wait: ${took} s"
check "the portal is on 10.99.0.1:3260" test -d "$T/iscsi/iqn.2026-11.org.devemu:late/tpgt_1/np/10.99.0.1:3260"
check "systemctl stop devemu@late" sysctl_job stop devemu@late
check "nothing left after stop" nothing_left
ip addr flush dev devemu-test0
out=$(devemu up --wait-address 1 /etc/devemu/late.toml 2>&1; echo "rc=$?")
case "$out" in *"portal 10.99.0.1:3260"*"not on this machine after 1 s"*"rc=2") ok "an address that never comes: one line naming the portal, exit 2" ;;
    *) bad "absent address: $out" ;; esac
check "nothing left after it" nothing_left

# Any object that does not come up fails the unit, named in the journal; what did come up is taken down again.
truncate -s 16M /tmp/fs.img && mkfs.ext4 -q /tmp/fs.img && loop=$(losetup -f --show /tmp/fs.img)
cat > /etc/devemu/broken.toml <<EOT
[[backstore]]
name = "good"
type = "zram"
size = "16M"
[[backstore]]
name = "holds-a-filesystem"
type = "block"
path = "$loop"
[[target]]
name = "good"
fabric = "loopback"
[[target.lun]]
backstore = "good"
[[target]]
name = "broken"
fabric = "loopback"
[[target.lun]]
backstore = "holds-a-filesystem"
EOT
refuse "systemctl start devemu@broken fails" sysctl_job start devemu@broken
expect_eq "the unit is failed" failed "$(systemctl is-active devemu@broken)"
journal=$(journalctl -b -u devemu@broken --no-pager -o cat)
case "$journal" in *"$loop"*) ok "the journal names the broken LUN's device ($loop)" ;; *) bad "journal: $journal" ;; esac
check "the target that did come up was taken down (ExecStopPost)" nothing_left
losetup -d "$loop"

# A gadget profile that names its UDC starts when that UDC appears (udev), not before and not on another.
modprobe dummy_hcd num=1
cat > /etc/devemu/gad.toml <<EOT
[[gadget]]
name = "gad"
udc = "dummy_udc.1"
[[gadget.function]]
type = "acm"
name = "a"
EOT
systemctl enable devemu@gad 2>/dev/null
sysctl_job start devemu@gad
expect_eq "with only dummy_udc.0 present, devemu@gad is skipped (inactive, not failed)" inactive "$(systemctl is-active devemu@gad)"
expect_eq "no gadget was made" "" "$(ls $G 2>/dev/null)"
rmmod dummy_hcd && modprobe dummy_hcd num=2
check "dummy_udc.1 appears: udev starts devemu@gad" wait_for '[ "$(systemctl is-active devemu@gad)" = active ]' 150
expect_eq "the gadget is on the UDC it named" dummy_udc.1 "$(cat $G/gad/UDC 2>/dev/null)"
check "systemctl stop devemu@gad" sysctl_job stop devemu@gad
check "nothing left after stop" nothing_left
systemctl disable devemu@gad 2>/dev/null

# A FunctionFS profile names its app: started with the unit in a session of its own, stopped with it.
cat > /etc/devemu/ffs.toml <<EOT
[[gadget]]
name = "ffs0"
[[gadget.function]]
type = "ffs"
name = "app"
app = "exec /usr/lib/devemu/ffs-loopback \$DEVEMU_FFS"
EOT
check "systemctl start devemu@ffs (the profile starts its app)" sysctl_job start devemu@ffs
pid=$(pgrep -f "ffs-loopbac[k] /dev/usb-ffs/app" | head -1)
[ -n "$pid" ] && ok "the app runs (pid $pid)" || bad "no app running"
[ -n "$pid" ] && [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] && ok "in a session of its own" || bad "app session: $(ps -o pid,sid -p "$pid")"
check "the host side enumerated the FunctionFS gadget" sh -c "devemu ls --json | grep -q '\"udc\"'"
check "systemctl stop devemu@ffs" sysctl_job stop devemu@ffs
check "the app is gone" sh -c "! pgrep -f 'ffs-loopbac[k] /dev/usb-ffs/app'"
check "nothing left after stop" nothing_left

# --- removal --------------------------------------------------------------------------------------------------
rm -f /etc/devemu/*.toml
check "dpkg -r devemu" dpkg -r devemu
left=""; for f in $files; do [ -e "$f" ] && left="$left $f"; done
expect_eq "dpkg -r leaves only the conffile (Debian keeps conffiles until purge)" " /etc/devemu.conf" "$left"
check "dpkg --purge devemu" dpkg --purge devemu
left=""; for f in $files /etc/devemu /usr/lib/devemu /usr/share/devemu; do [ -e "$f" ] && left="$left $f"; done
expect_eq "after --purge no file of the package is left" "" "$left"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
