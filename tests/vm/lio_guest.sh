#!/usr/bin/env bash
# Runs inside the VM (devemu vm run --host-root): every backstore x fabric, CHAP, reconcile, clashes, safety,
# crash recovery. Independent clients check the result: libiscsi's tools, sg3-utils, dd, configfs itself.
devemu=$1
. "$(dirname "$(readlink -f "$0")")/guest_lib.sh"
T=/sys/kernel/config/target
ours_gone() { # no devemu-made objects left: no iscsi/loopback targets, no HBAs, no zram devices beyond the baseline
    local left; left=$(ls $T/iscsi 2>/dev/null | grep -v -e discovery_auth -e lio_version -e cpus_allowed_list; ls $T/loopback 2>/dev/null | grep naa; ls $T/core | grep -v alua)
    [ -z "$left" ] && [ "$(ls /sys/block | grep -c zram)" = "$zram_base" ] || { echo "left: $left $(ls /sys/block | grep zram)"; return 1; }
}
modprobe zram 2>/dev/null; zram_base=$(ls /sys/block | grep -c zram)
cd /tmp

# --- backing stores -----------------------------------------------------------------------------------
truncate -s 64M /tmp/loopdisk.img
loopdev=$(losetup -f --show /tmp/loopdisk.img)
backstore() { # name type -> profile lines
    case $2 in
    fileio) printf '[[backstore]]\nname = "%s"\ntype = "fileio"\npath = "/tmp/%s.img"\nsize = "64M"\n' "$1" "$1" ;;
    block)  printf '[[backstore]]\nname = "%s"\ntype = "block"\npath = "%s"\n' "$1" "$loopdev" ;;
    zram)   printf '[[backstore]]\nname = "%s"\ntype = "zram"\nsize = "64M"\n' "$1" ;;
    esac
}
for type in fileio block zram; do
    # iSCSI
    n=i$type
    { backstore "$n" $type; printf '[[target]]\nname = "%s"\niqn = "iqn.2026-11.org.devemu:%s"\n[[target.lun]]\nbackstore = "%s"\n' "$n" "$n" "$n"; } > $n.toml
    check "$type+iscsi: up" "$devemu" up $n.toml
    url=iscsi://127.0.0.1:3260/iqn.2026-11.org.devemu:$n/0
    check "$type+iscsi: iscsi-inq" iscsi-inq "$url"
    check "$type+iscsi: readcapacity16 says 64 MiB" sh -c "iscsi-readcapacity16 $url | grep -q 'Total size:67108864'"
    check "$type+iscsi: iscsi-test-cu Read10 Write10 ReadCapacity16" iscsi-test-cu -f -s -d -t SCSI.Read10.Simple,SCSI.Write10.Simple,SCSI.ReadCapacity16.Simple "$url"
    check "$type+iscsi: plan is empty after up" sh -c "$devemu plan $n.toml | grep -q 'up to date'"
    check "$type+iscsi: rerun of up changes nothing" sh -c "$devemu up --json $n.toml | grep -q '\"changes\": 0'"
    check "$type+iscsi: down" "$devemu" down $n
    check "$type+iscsi: nothing left" ours_gone
    # loopback
    n=l$type
    { backstore "$n" $type; printf '[[target]]\nname = "%s"\nfabric = "loopback"\n[[target.lun]]\nbackstore = "%s"\n' "$n" "$n"; } > $n.toml
    check "$type+loopback: up" "$devemu" up --json $n.toml
    dev=$(grep -o '"/dev/sd[a-z]*"' /tmp/check.out | tr -d '"' | head -1)
    [ -b "$dev" ] && ok "$type+loopback: became $dev" || bad "$type+loopback: no /dev/sdX in: $(cat /tmp/check.out)"
    check "$type+loopback: sg_inq sees LIO" sh -c "sg_inq $dev | grep -q LIO-ORG"
    head -c 4M /dev/urandom > /tmp/pattern.$type
    check "$type+loopback: dd write then read back compares" sh -c "dd if=/tmp/pattern.$type of=$dev bs=1M oflag=direct 2>/dev/null && dd if=$dev of=/tmp/back bs=1M count=4 iflag=direct 2>/dev/null && cmp /tmp/pattern.$type /tmp/back"
    if [ "$type" = zram ]; then   # devemu bench through LIO's tcm_loop: the block layer, SCSI, LIO and back
        # iblock hands zram's one-page optimal_io_size to sd as OPTIMAL TRANSFER LENGTH; up lifts sd's 4 KiB cap
        q=/sys/block/${dev#/dev/}/queue
        check "zram+loopback: requests not capped at zram's 4 KiB optimal size ($(cat $q/optimal_io_size) / $(cat $q/max_sectors_kb) KiB)" sh -c "[ \$(cat $q/max_sectors_kb) -gt 4 ]"
        check "bench on the tcm_loop LUN" "$devemu" bench "$dev" --rw=randrw --runtime=1 --time_based
        check "bench by unit name (the disk its loopback target exposes)" sh -c "$devemu bench $n --rw=randread --runtime=1 --time_based | grep -q '^$dev '"
        check "bench --verify through the tcm_loop LUN" "$devemu" bench "$dev" --rw=write --size=8M --verify
        dd if=/dev/urandom of="$dev" bs=4096 count=1 seek=256 oflag=direct status=none
        "$devemu" bench "$dev" --rw=read --size=8M --verify >/tmp/verify.out 2>&1; rc=$?
        [ "$rc" = 1 ] && grep -q "offset 1048576" /tmp/verify.out && ok "bench --verify catches a block changed behind its back" || bad "verify: exit $rc $(cat /tmp/verify.out)"
    fi
    check "$type+loopback: down" "$devemu" down $n
    check "$type+loopback: nothing left" ours_gone
done
check "fileio data survived down (the file is user data)" sh -c "cmp -n 4194304 /tmp/pattern.fileio /tmp/lfileio.img"

# --- CHAP and ACLs ------------------------------------------------------------------------------------
cat > chap.toml <<'P'
[[backstore]]
name = "c0"
type = "zram"
size = "16M"
[[target]]
name = "chap0"
iqn = "iqn.2026-11.org.devemu:chap0"
[[target.lun]]
backstore = "c0"
[[target.acl]]
initiator = "iqn.2026-11.org.devemu:client"
chap_user = "devemu"
P
check "chap: up" "$devemu" up chap.toml
secret=$("$devemu" ls --secrets --json | python3 -c 'import json,sys; print([u for u in json.load(sys.stdin) if u["name"]=="chap0"][0]["secrets"]["chap:iqn.2026-11.org.devemu:client"])')
[ ${#secret} -ge 12 ] && ok "chap: a generated secret of ${#secret} characters" || bad "chap: secret [$secret]"
check "chap: state record is 0600" sh -c "stat -c %a $DEVEMU_STATE_DIR/units/chap0.json | grep -qx 600"
check "chap: right secret logs in" iscsi-inq -i iqn.2026-11.org.devemu:client "iscsi://devemu%$secret@127.0.0.1:3260/iqn.2026-11.org.devemu:chap0/0"
refuse "chap: wrong secret refused" iscsi-inq -i iqn.2026-11.org.devemu:client "iscsi://devemu%wrongwrongwrong@127.0.0.1:3260/iqn.2026-11.org.devemu:chap0/0"
refuse "chap: unknown initiator refused" iscsi-inq -i iqn.2026-11.org.devemu:stranger "iscsi://devemu%$secret@127.0.0.1:3260/iqn.2026-11.org.devemu:chap0/0"
refuse "chap: no credentials refused" iscsi-inq -i iqn.2026-11.org.devemu:client "iscsi://127.0.0.1:3260/iqn.2026-11.org.devemu:chap0/0"
check "chap: down" "$devemu" down chap0

# Mutual CHAP: the initiator also authenticates the target (libiscsi: target_user/target_password in the URL).
cat > mutual.toml <<'P'
[[backstore]]
name = "m0"
type = "zram"
size = "16M"
[[target]]
name = "mutual0"
iqn = "iqn.2026-11.org.devemu:mutual0"
[[target.lun]]
backstore = "m0"
[[target.acl]]
initiator = "iqn.2026-11.org.devemu:client"
chap_user = "devemu"
chap_secret = "initiator-secret-1"
mutual_user = "target1"
mutual_secret = "target-secret-12"
P
check "mutual chap: up" "$devemu" up mutual.toml
murl=iscsi://devemu%initiator-secret-1@127.0.0.1:3260/iqn.2026-11.org.devemu:mutual0/0
check "mutual chap: both secrets right: logs in" iscsi-inq -i iqn.2026-11.org.devemu:client "$murl?target_user=target1&target_password=target-secret-12"
refuse "mutual chap: the target proving a secret the initiator does not expect is refused" iscsi-inq -i iqn.2026-11.org.devemu:client "$murl?target_user=target1&target_password=not-the-target-secret"
refuse "mutual chap: wrong initiator secret refused" iscsi-inq -i iqn.2026-11.org.devemu:client "iscsi://devemu%wrong-secret-99@127.0.0.1:3260/iqn.2026-11.org.devemu:mutual0/0?target_user=target1&target_password=target-secret-12"
check "mutual chap: the URL devemu prints carries the target's credentials" sh -c "\"$devemu\" ls --secrets --json | grep -q 'target_user=target1&target_password=target-secret-12'"
check "mutual chap: devemu check logs in with both" "$devemu" check mutual0
check "mutual chap: down" "$devemu" down mutual0


# --- reconcile: editing one LUN touches one LUN -------------------------------------------------------
{ backstore r0 zram; backstore r1 zram; printf '[[target]]\nname = "rec"\niqn = "iqn.2026-11.org.devemu:rec"\n[[target.lun]]\nbackstore = "r0"\n'; } > rec.toml
check "reconcile: up with one LUN" "$devemu" up rec.toml
printf '[[target.lun]]\nbackstore = "r1"\n' >> rec.toml
"$devemu" plan rec.toml > /tmp/plan.out
# every create is the new backstore (its own HBA dir, its attributes) or the new LUN; lun_0 and r0 are untouched
check "reconcile: the plan creates only the new LUN and its backstore" sh -c "grep create /tmp/plan.out | grep -v -e '/r1' -e 'lun_1' -e 'create  core/iblock_[0-9]*\$' | grep -q . && exit 1; grep -q 'lun/lun_1' /tmp/plan.out && ! grep -q -e 'lun_0' -e '/r0' /tmp/plan.out"
check "reconcile: the plan removes nothing" sh -c "! grep -q remove /tmp/plan.out"
check "reconcile: up applies it" "$devemu" up rec.toml
check "reconcile: LUN 1 answers" iscsi-inq iscsi://127.0.0.1:3260/iqn.2026-11.org.devemu:rec/1
check "reconcile: ls says healthy" sh -c "$devemu ls | grep rec | grep -q healthy"
rmdir $T/iscsi/iqn.2026-11.org.devemu:rec/tpgt_1/np/127.0.0.1:3260
check "reconcile: ls notices a portal removed behind our back" sh -c "$devemu ls | grep rec | grep -q drift"
check "reconcile: up repairs it" sh -c "$devemu plan rec.toml | grep -q 'repair' && $devemu up rec.toml && iscsi-inq iscsi://127.0.0.1:3260/iqn.2026-11.org.devemu:rec/0"
check "reconcile: down" "$devemu" down rec
check "reconcile: nothing left" ours_gone

# --- objects devemu did not create -------------------------------------------------------------------
mkdir -p "$T/iscsi/iqn.2026-11.org.devemu:izram"
refuse "clash: an IQN someone else made is refused" "$devemu" up izram.toml
check "clash: one line naming the path" sh -c "grep -c . /tmp/refused.out | grep -qx 1 && grep -q 'iqn.2026-11.org.devemu:izram' /tmp/refused.out"
check "clash: the foreign target is untouched" test -d "$T/iscsi/iqn.2026-11.org.devemu:izram"
rmdir "$T/iscsi/iqn.2026-11.org.devemu:izram"
check "clash: nothing of ours left behind" ours_gone

# --- safety ------------------------------------------------------------------------------------------
mkfs.ext4 -q "$loopdev"
refuse "safety: a device with a filesystem is refused" "$devemu" up iblock.toml
check "safety: the refusal names the filesystem and --force" sh -c "grep -q 'ext4' /tmp/refused.out && grep -q -- '--force' /tmp/refused.out"
check "safety: --force exports it" "$devemu" up --force iblock.toml
check "safety: down" "$devemu" down iblock
printf '[[backstore]]\nname = "w"\ntype = "zram"\nsize = "16M"\n[[target]]\nname = "wide"\nportal = "0.0.0.0:3260"\n[[target.lun]]\nbackstore = "w"\n' > wide.toml
refuse "security: 0.0.0.0 portal without CHAP refused" "$devemu" up wide.toml
check "security: ... in one line, at the portal's line, with the fix" sh -c "grep -c . /tmp/refused.out | grep -qx 1 && grep -q 'wide.toml:7: .*listens on 0.0.0.0 but not every initiator needs CHAP and an ACL' /tmp/refused.out && grep -q -- '--insecure' /tmp/refused.out"
check "security: with --insecure it comes up" "$devemu" up --insecure wide.toml
check "security: down" "$devemu" down wide
busybox nc -l -p 3260 >/dev/null 2>&1 & ncpid=$!
for _ in $(seq 1 50); do grep -q ':0CBC 00000000:0000 0A' /proc/net/tcp && break; sleep 0.1; done
refuse "port in use: refused" "$devemu" up izram.toml
check "port in use: the refusal names the portal and says it is taken (LIO itself says only EINVAL)" sh -c "grep -q 'portal 127.0.0.1:3260 is taken: another program listens there' /tmp/refused.out"
check "port in use: nothing of ours left behind" ours_gone
kill $ncpid 2>/dev/null; wait $ncpid 2>/dev/null

# --- crash at any step of up, then down --------------------------------------------------------------
for step in 0 3 6 9 12 15; do
    DEVEMU_CRASH_AFTER_STEP=$step "$devemu" up lzram.toml >/dev/null 2>&1
    "$devemu" down lzram >/dev/null 2>&1
    if ours_gone >/dev/null; then ok "crash after step $step: down removes everything"; else bad "crash after step $step: $(ours_gone)"; fi
done
check "down of a unit that is not there is fine" "$devemu" down nothing-here

# --- rbd: a cluster that does not answer fails in bounded time, clearly, leaving nothing ---------------
printf '[client.admin]\n\tkey = AQBfCiZpAAAAABAAbm90YXJlYWxrZXlub3RhcmVhbA==\n' > /tmp/ceph.keyring   # well-formed
printf '[[backstore]]\nname = "r"\ntype = "rbd"\npool = "rbd"\nimage = "img"\nmon_host = "127.0.0.1:6789"\nkeyring = "/tmp/ceph.keyring"\n[[target]]\nname = "rbd0"\nfabric = "loopback"\n[[target.lun]]\nbackstore = "r"\n' > rbd.toml
start=$(date +%s)
refuse "rbd: an unreachable cluster is refused" "$devemu" up rbd.toml
took=$(( $(date +%s) - start ))
[ "$took" -le 60 ] && ok "rbd: refused in ${took}s (bounded, not minutes)" || bad "rbd: took ${took}s"
check "rbd: one line naming the monitor, without the secret" sh -c "grep -c . /tmp/refused.out | grep -qx 1 && grep -q '127.0.0.1:6789' /tmp/refused.out && ! grep -q AQBfCiZp /tmp/refused.out"
check "rbd: nothing left of ours" ours_gone
check "rbd: no rbd device mapped" sh -c "! ls /sys/bus/rbd/devices/ 2>/dev/null | grep -q ."

# --- devemu check ------------------------------------------------------------------------------------
check "check: up" "$devemu" up izram.toml
check "check: passes on a healthy target" "$devemu" check izram
check "check: --json says ok" sh -c "$devemu check --json izram | grep -q '\"ok\": true'"
rmdir "$T/iscsi/iqn.2026-11.org.devemu:izram/tpgt_1/np/127.0.0.1:3260"
"$devemu" check izram >/tmp/check-fail.out 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q 'FAIL.*login' /tmp/check-fail.out && ok "check: a target without its portal fails (exit 1)" || bad "check: exit $rc: $(cat /tmp/check-fail.out)"
check "check: down" "$devemu" down izram

# --- targetcli saveconfig.json: import a fixture rtslib-fb wrote, export, compare --------------------------
fixture=$(dirname "$0")/../data/saveconfig/targetcli-fb.json
zdev=$(cat /sys/class/zram-control/hot_add); echo $((64 << 20)) > /sys/block/zram$zdev/disksize
sed "s|/dev/zram1|/dev/zram$zdev|" "$fixture" > /tmp/fixture.json
check "import: targetcli-fb's saveconfig.json comes up" "$devemu" import /tmp/fixture.json
check "import: LUN 0 answers with the fixture's CHAP" iscsi-inq -i iqn.2026-11.org.devemu:client "iscsi://devemu%fixture-secret-1234@127.0.0.1:3260/iqn.2026-11.org.devemu:fixture/0"
check "import: LUN 1 (block on zram) answers" iscsi-inq -i iqn.2026-11.org.devemu:client "iscsi://devemu%fixture-secret-1234@127.0.0.1:3260/iqn.2026-11.org.devemu:fixture/1"
check "import: check passes" "$devemu" check fixture
check "import: rerun changes nothing" sh -c "$devemu import --json /tmp/fixture.json | grep -q '\"changes\": 0' && ! $devemu import --json /tmp/fixture.json | grep -q '\"changes\": [1-9]'"
check "export: writes saveconfig.json" "$devemu" export -o /tmp/export.json
check "export: 0600" sh -c "stat -c %a /tmp/export.json | grep -qx 600"
check "round trip: export equals the fixture (storage objects with all attributes, targets, ACLs, CHAP)" python3 "$(dirname "$0")/../data/saveconfig/compare.py" /tmp/fixture.json /tmp/export.json
check "import: down all" "$devemu" down --all
echo $zdev > /sys/class/zram-control/hot_remove
check "import: nothing left" ours_gone
printf '{"storage_objects": [{"name": "x", "plugin": "ramdisk", "size": 1024}], "targets": [], "bogus": 1}' > /tmp/odd.json
"$devemu" import /tmp/odd.json >/dev/null 2>/tmp/odd.err
check "import: unknown keys and plugins are reported" sh -c "grep -q \"key 'bogus'\" /tmp/odd.err && grep -q \"plugin 'ramdisk'\" /tmp/odd.err"

# --- the guest kernel's own initiator: open-iscsi logs in with the lines `up` printed ---------------------------
# (iscsi_tcp and its dependencies come from the kernel's module tree, which the VM now has whole.)
printf '[[backstore]]\nname = "oi"\ntype = "zram"\nsize = "64M"\n[[target]]\nname = "oi"\niqn = "iqn.2026-11.org.devemu:oi"\n[[target.lun]]\nbackstore = "oi"\n' > oi.toml
check "open-iscsi: up" sh -c "\"$devemu\" up --json oi.toml > /tmp/oi.json"
grep -q '^InitiatorName=' /etc/iscsi/initiatorname.iscsi 2>/dev/null || echo "InitiatorName=$(iscsi-iname)" > /etc/iscsi/initiatorname.iscsi
modprobe sd_mod; mkdir -p /run/lock/iscsi
setsid iscsid -f >/tmp/iscsid.log 2>&1 &   # own session: on SIGTERM iscsid signals its whole process group
iscsid_pid=$!
python3 -c "import json; [print(l) for l in json.load(open('/tmp/oi.json'))[0]['access']['iscsiadm']]" > /tmp/oi.lines
check "open-iscsi: up printed two iscsiadm lines (discovery, login)" sh -c "[ \$(grep -c '^iscsiadm ' /tmp/oi.lines) = 2 ]"
n=0; while read -r line; do n=$((n + 1)); check "open-iscsi: line $n as printed: $line" sh -c "$line"; done < /tmp/oi.lines
disk=""
for _ in $(seq 1 50); do disk=$(iscsiadm -m session -P 3 2>/dev/null | awk '/Attached scsi disk/{print $4}' | head -1); [ -n "$disk" ] && [ -b "/dev/$disk" ] && break; sleep 0.1; done
[ -b "/dev/$disk" ] && ok "open-iscsi: the session has a disk (/dev/$disk)" || bad "open-iscsi: no disk: $(iscsiadm -m session -P 3 2>&1 | tail -5)"
head -c 4M /dev/urandom > /tmp/oi.pat
check "open-iscsi: 4 MiB written through /dev/$disk read back equal" sh -c "dd if=/tmp/oi.pat of=/dev/$disk bs=1M oflag=direct status=none && dd if=/dev/$disk of=/tmp/oi.back bs=1M count=4 iflag=direct status=none && cmp /tmp/oi.pat /tmp/oi.back"
check "open-iscsi: logout" iscsiadm -m node -T iqn.2026-11.org.devemu:oi -p 127.0.0.1:3260 --logout
kill "$iscsid_pid" 2>/dev/null; wait "$iscsid_pid" 2>/dev/null
check "open-iscsi: down" "$devemu" down oi
check "open-iscsi: nothing left" ours_gone

losetup -d "$loopdev"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
