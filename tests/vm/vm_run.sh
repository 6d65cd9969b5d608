#!/usr/bin/env bash
# devemu vm run: exit status, output channels, timeout, host root, host binaries, modules and softdeps,
# port forwarding, shares, panics and kills. One boot per check, each a few seconds under TCG.
. "$(dirname "$0")/lib.sh"

kver=$(ls /var/cache/devemu/kernel 2>/dev/null | sort | tail -1)
[ -n "${DEVEMU_CACHE_DIR:-}" ] && kver=$(ls "$DEVEMU_CACHE_DIR/kernel" | sort | tail -1)

# 1. The command's stdout and exit status come back as they are; doctor names the accelerator the run used.
out=$("$devemu" vm run -- sh -c 'uname -r; exit 3' 2>"$state/accel"); rc=$?
used=$(grep -o 'devemu: vm: [a-z]*' "$state/accel" | head -1 | awk '{print $3}')
said=$("$devemu" doctor --json | python3 -c "import json,sys; print([c['detail'] for c in json.load(sys.stdin)['checks'] if c['name']=='accelerator'][0].split()[0].rstrip(','))")
expect_eq "doctor names the accelerator vm run uses" "$used" "$said"
expect_eq "uname in the guest is the VM kernel" "$kver" "$out"
expect_eq "exit status 3 relayed" 3 "$rc"

# 2. stdout and stderr stay separate; binary-safe bytes survive.
out=$("$devemu" -q vm run -- sh -c 'echo to-out; echo to-err >&2; printf "\001\002\377\n"' 2>"$state/err"); rc=$?
expect_eq "stdout separate" "$(printf 'to-out\n\001\002\377')" "$out"
expect_contains "stderr separate" "$(cat "$state/err")" "to-err"
expect_eq "exit 0" 0 "$rc"

# 3. Timeout: exit 124 within ~10 s, the last console lines shown, nothing left running.
start=$(date +%s)
"$devemu" vm run --timeout 5 -- sleep 100 2>"$state/err"; rc=$?
took=$(( $(date +%s) - start ))
expect_eq "timeout exits 124" 124 "$rc"
[ "$took" -le 10 ] && ok "timeout took ${took}s" || bad "timeout took ${took}s"
expect_contains "timeout shows the console" "$(cat "$state/err")" "Last console lines"
[ -z "$(qemu_left)" ] && ok "no qemu after timeout" || bad "qemu left after timeout"
expect_contains "the timeout says where the guest was" "$(cat "$state/err")" "the command had run for"

# 3b. A boot that hangs (here the kernel runs a shell that waits on the console instead of devemu-init) is killed
# after --boot-timeout and booted once more; hung twice, it is an error that says so, and nothing is left running.
start=$(date +%s)
"$devemu" vm run --boot-timeout 4 --append rdinit=/bin/sh -- true 2>"$state/err"; rc=$?
took=$(( $(date +%s) - start ))
[ "$rc" != 0 ] && ok "a boot that hangs fails (exit $rc)" || bad "a boot that hangs exited 0"
expect_contains "the first hang is booted again" "$(cat "$state/err")" "booting it again"
expect_contains "the second is an error naming the hang" "$(cat "$state/err")" "hung while booting, twice"
[ "$took" -le 30 ] && ok "two hung boots took ${took}s" || bad "two hung boots took ${took}s"
[ -z "$(qemu_left)" ] && ok "no qemu after a hung boot" || bad "qemu left after a hung boot"

# 4. Host root: the host's tools run in the guest, writes stay in the guest.
out=$("$devemu" -q vm run --host-root -- fio --version); rc=$?
expect_eq "host-root fio --version" "$(fio --version)" "$out"
"$devemu" -q vm run --host-root -- sh -c 'echo guest > /etc/devemu-overlay-test' ; rc=$?
expect_eq "host-root write succeeds in the guest" 0 "$rc"
[ ! -e /etc/devemu-overlay-test ] && ok "host-root writes do not reach the host" || { bad "host file written"; rm -f /etc/devemu-overlay-test; }
out=$("$devemu" -q vm run --host-root -- sh -c 'cat /proc/1/comm; uname -r'); 
expect_eq "host-root runs on the guest kernel" "$(printf 'init\n%s' "$kver")" "$out"

# 5. A host binary named as the command comes with its libraries (no host root).
out=$("$devemu" -q vm run -- sg_inq --version 2>&1); rc=$?
expect_eq "host binary copied in: sg_inq --version" "$(sg_inq --version 2>&1)" "$out"

# 6. Modules load in dependency order; soft dependencies come along (libcrc32c -> crc32c). dummy_hcd loaded at
# boot has the UDCs `devemu up` would give it (its own default is one: a second gadget would find none free).
out=$("$devemu" -q vm run --modules rbd,tcm_loop,dummy_hcd -- sh -c 'cut -d" " -f1 /proc/modules | sort | tr "\n" " "; ls /sys/kernel/config/target; mkdir /sys/kernel/config/target/loopback && cat /sys/kernel/config/target/loopback/version; echo "udcs=$(ls /sys/class/udc | wc -l)"'); rc=$?
expect_contains "dummy_hcd at boot: 4 UDCs" "$out" 'udcs=4'
expect_contains "rbd loaded" "$out" "rbd "
expect_contains "softdep crc32c_generic loaded" "$out" "crc32c_generic"
expect_contains "tcm_loop fabric answers in configfs" "$out" "TCM Loopback Fabric"
expect_contains "configfs mounted with LIO core" "$out" "core"

# 6b. Any module of the distribution kernel, not only devemu's set: --modules resolves it with its dependencies
# (iscsi_tcp -> scsi_transport_iscsi, libiscsi), and the guest's /lib/modules/VERSION is the whole tree, so
# busybox's modprobe (no host root) and kmod's (host root) find modules no one named.
out=$("$devemu" -q vm run --modules iscsi_tcp -- sh -c 'cut -d" " -f1 /proc/modules | sort | tr "\n" " "; echo; modprobe dm-multipath && grep -c "^dm_multipath " /proc/modules; ls /lib/modules/$(uname -r)/kernel/drivers/md | grep -c "dm-flakey"'); rc=$?
expect_eq "--modules iscsi_tcp: exit 0" 0 "$rc"
expect_contains "--modules iscsi_tcp loads it" "$out" "iscsi_tcp "
expect_contains "... with scsi_transport_iscsi" "$out" "scsi_transport_iscsi "
expect_contains "... and libiscsi" "$out" "libiscsi "
expect_eq "busybox modprobe finds dm-multipath, the tree is whole" "1 1" "$(printf '%s\n' "$out" | tail -2 | tr '\n' ' ' | sed 's/ $//')"
# Without --modules and without the host root the tree is mounted by the guest's /sbin/modprobe at its first call
# (boots that load nothing pay nothing for it); busybox's own applet then sees it too.
out=$("$devemu" -q vm run -- sh -c '/sbin/modprobe dm-flakey && grep -c "^dm_flakey " /proc/modules; modprobe dm-log-writes && grep -c "^dm_log_writes " /proc/modules'); rc=$?
expect_eq "lazy tree: /sbin/modprobe dm-flakey, then the applet, exit 0" 0 "$rc"
expect_eq "lazy tree: both loaded" "1 1" "$(printf '%s\n' "$out" | tr '\n' ' ' | sed 's/ $//')"
out=$("$devemu" -q vm run --host-root -- sh -c 'modprobe usbmon && modprobe dm-delay && cut -d" " -f1 /proc/modules | sort | tr "\n" " "'); rc=$?
expect_eq "host-root modprobe usbmon, dm-delay: exit 0" 0 "$rc"
expect_contains "host-root: usbmon loaded" "$out" "usbmon "
expect_contains "host-root: dm_delay loaded" "$out" "dm_delay "

# 7. A module the kernel does not have: one clear line, exit 2, no VM started.
err=$("$devemu" vm run --modules no_such_module_xyz -- true 2>&1 >/dev/null); rc=$?
expect_eq "missing module exits 2" 2 "$rc"
expect_contains "missing module named" "$err" "no_such_module_xyz"
expect_eq "missing module: one line" 1 "$(printf '%s\n' "$err" | grep -vc '^devemu: vm: ')"

# 8. Port forwarding to 127.0.0.1 only.
port=$((20000 + RANDOM % 20000))
# Probe only once the guest says its network is up: a SYN that slirp forwards before eth0 is up is dropped and
# retried later by slirp itself, after the probe has given up, and nc's one connection would be that stale one.
"$devemu" -q vm run --fwd "$port:9000" --timeout 60 -- sh -c 'echo listening; echo hello-from-guest | nc -l -p 9000' > "$state/fwd.out" &
vmpid=$!
for _ in $(seq 1 100); do grep -q listening "$state/fwd.out" 2>/dev/null && break; sleep 0.5; done
got=""
for _ in $(seq 1 60); do
    got=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && cat <&3" 2>/dev/null) && [ -n "$got" ] && break
    sleep 0.5
done
wait $vmpid
expect_eq "forwarded port answers on 127.0.0.1" "hello-from-guest" "$got"
ss -ltn | grep -q "0.0.0.0:$port" && bad "port bound on 0.0.0.0" || ok "port not bound on 0.0.0.0"

# 9. Shares: a host directory, read-write.
mkdir -p "$state/share" && echo from-host > "$state/share/in"
"$devemu" -q vm run --share "$state/share:/mnt/s" -- sh -c 'cat /mnt/s/in > /mnt/s/out; echo from-guest >> /mnt/s/out'
expect_eq "share read and written" "$(printf 'from-host\nfrom-guest')" "$(cat "$state/share/out" 2>/dev/null)"

# 10. A kernel panic is an error, not a hang and not success.
err=$("$devemu" vm run --timeout 120 -- sh -c 'echo c > /proc/sysrq-trigger' 2>&1); rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] && ok "panic is an error (exit $rc)" || bad "panic gave exit $rc"
expect_contains "panic explained" "$err" "without reporting an exit status"

# 11. kill -9 of devemu takes qemu with it.
"$devemu" -q vm run -- sleep 100 &
vmpid=$!
for _ in $(seq 1 50); do [ -n "$(qemu_left)" ] && break; sleep 0.1; done
[ -n "$(qemu_left)" ] && ok "qemu running" || bad "qemu never started"
kill -9 $vmpid; wait $vmpid 2>/dev/null
sleep 1
[ -z "$(qemu_left)" ] && ok "qemu gone after kill -9 of devemu" || bad "qemu survived kill -9 of devemu"

finish
