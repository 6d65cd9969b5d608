#!/usr/bin/env bash
# devemu up --vm from the host, as a user on a kernel without LIO would: every shipped target profile comes up,
# answers host-side libiscsi tools through the 127.0.0.1 forward, and goes down leaving nothing.
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# A shipped profile's backing file (/tmp/devemu-*.img) is made on the host by up --vm and stays after down; the ones
# this test made go at its end.
made_files=()
host_files() { grep -o '^path = "/[^"]*"' "$1" | cut -d'"' -f2; }
for prof in "$src"/targets/*.toml "$src"/gadgets/*.toml; do
    for f in $(host_files "$prof"); do [ -e "$f" ] || made_files+=("$f"); done
done
for prof in "$src"/targets/*.toml; do
    name=$(basename "$prof" .toml)
    out=$("$devemu" -q up --vm --json "$prof" 2>"$state/err"); rc=$?
    expect_eq "$name: up --vm" 0 "$rc"
    [ "$rc" = 0 ] || { show_failure "$state/err"; continue; }
    unit=$(field "d[0]['vm']" <<<"$out")
    fabric=$(field "d[0]['access']['fabric']" <<<"$out")
    if [ "$fabric" = iscsi ]; then
        portal=$(field "d[0]['access']['portal']" <<<"$out")
        case "$portal" in 127.0.0.1:*) ok "$name: portal on 127.0.0.1 ($portal)" ;; *) bad "$name: portal $portal" ;; esac
        iscsi-ls "iscsi://$portal" 2>/dev/null | grep -q "Portal:$portal," && ok "$name: SendTargets through the forward lists $portal" || bad "$name: discovery: $(iscsi-ls "iscsi://$portal" 2>&1 | head -3)"
        url=$(field "d[0]['access']['urls'][0]" <<<"$out")
        initiator=$(field "d[0]['access'].get('initiator', 'iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test')" <<<"$out")
        case "$url" in *SECRET@*)
            secret=$("$devemu" ls --secrets --json | field "[u for u in d if u['name']=='$unit'][0]['secrets']['chap:$initiator']")
            url=${url/SECRET/$secret}
            refusal=$(iscsi-inq -i "$initiator" "${url/$secret/not-the-secret}" 2>&1) && bad "$name: wrong CHAP secret accepted" || ok "$name: wrong CHAP secret refused"
            ;;
        esac
        iscsi-inq -i "$initiator" "$url" >/dev/null 2>&1 && ok "$name: host iscsi-inq" || bad "$name: host iscsi-inq $url"
        if iscsi-test-cu -f -s -d -i "$initiator" -t SCSI.Read10.Simple,SCSI.Write10.Simple,SCSI.ReadCapacity16.Simple "$url" >"$state/cu" 2>&1; then
            ok "$name: host iscsi-test-cu Read10/Write10/ReadCapacity16"
        else bad "$name: iscsi-test-cu: $(tail -5 "$state/cu" | tr '\n' ' ')"; fi
        url2=$(field "([p['urls'][0] for p in d[0]['access'].get('paths', [])[1:] if p.get('urls')] + [''])[0]" <<<"$out")
        if grep -q '^paths = ' "$prof"; then
            # every portal is forwarded: libiscsi's multipath suite, one URL per path to the same LU
            case "$url2" in iscsi://*127.0.0.1:*) ok "$name: path 2's own forwarded portal (${url2%%/iqn*})" ;; *) bad "$name: no URL for path 2: $url2" ;; esac
            if iscsi-test-cu -f -d -i "$initiator" -t ALL.MultipathIO "$url" "$url2" >"$state/cu-mp" 2>&1 && grep -qE "tests +4 +4 +4 +0" "$state/cu-mp" \
                && grep -q "found matching LU device identifier for all (2) paths" "$state/cu-mp"; then
                ok "$name: host iscsi-test-cu ALL.MultipathIO through both forwarded portals (the same LU on both; 4 of 4 passed)"
            else bad "$name: MultipathIO: $(tail -8 "$state/cu-mp" | tr '\n' ' ')"; fi
            "$devemu" failover "$unit" --flaps 2 --down-for 3000 --json >"$state/fo" 2>&1 \
                && field "d['io_errors'] == 0 and d['verify_mismatches'] == 0 and len(d['events']) == 2" <"$state/fo" | grep -q True \
                && ok "$name: devemu failover through the VM: 2 cuts, no error, no mismatch" || bad "$name: failover: $(head -c 400 "$state/fo")"
        fi
        if grep -q '^\[\[backstore.fault\]\]' "$prof" && grep -q '^type = "error"' "$prof"; then
            # libiscsi through the forward reads on from LBA 0 until the profile's bad sectors: MEDIUM ERROR,
            # unrecovered read error (sense key 3, ASC/ASCQ 11/00), as the guest's sd saw it in vm.fault.
            iscsi-perf -i "$initiator" -b 256 -m 4 -t 120 "$url" >"$state/perf" 2>&1; rc=$?
            # (Debian's iscsi-perf prints "Read16 failed with SENSE KEY:(null)(3) ASCQ:(null)(0x1100)", then exits 1)
            if [ "$rc" != 0 ] && grep -qE "SENSE KEY:.*\(3\) ASCQ:.*\(0x1100\)" "$state/perf"; then
                ok "$name: host iscsi-perf reading on hits the bad sectors: MEDIUM ERROR 03/11/00"
            else bad "$name: iscsi-perf exit $rc: $(tr '\r' '\n' <"$state/perf" | tail -3 | tr '\n' ' ')"; fi
            "$devemu" fault "$unit" ls 2>&1 | grep -qE '\(([1-9][0-9]*) events\)' && ok "$name: devemu fault ls counts the errors it injected" \
                || bad "$name: fault ls: $("$devemu" fault "$unit" ls 2>&1)"
        fi
    else
        dev=$(field "list(d[0]['access']['devices'].values())[0]" <<<"$out")
        case "$dev" in /dev/sd*) ok "$name: loopback LUN is $dev in the VM" ;; *) bad "$name: device [$dev]" ;; esac
    fi
    "$devemu" ls | grep -q "^$unit  vm  up  healthy" && ok "$name: ls shows it healthy" || bad "$name: ls: $("$devemu" ls)"
    if [ -n "$(host_files "$prof")" ]; then   # export asks the VM; a backstore on a host file names the host's file
        "$devemu" export "$unit" >"$state/export.json" 2>"$state/export.err"; rc=$?
        expect_eq "$name: export of a VM's target" 0 "$rc"
        expect_eq "$name: ... its storage object names the host's file, its target is there" "$(host_files "$prof" | head -1) 1" \
            "$(field "' '.join([s.get('dev', '') for s in d['storage_objects']]) + ' ' + str(len(d['targets']))" <"$state/export.json" 2>&1)"
    fi
    "$devemu" -q down "$unit" >/dev/null; expect_eq "$name: down" 0 "$?"
    for f in $(host_files "$prof"); do [ -s "$f" ] && ok "$name: its backing file $f is on the host after down" || bad "$name: no $f on the host"; done
    [ -z "$(qemu_left)" ] && ok "$name: no qemu after down" || bad "$name: qemu left"
    # Nothing else either: a local Ceph cluster `up` started (rbd profiles) goes with the unit.
    expect_eq "$name: no unit left" "no units (state dir $state)" "$("$devemu" ls)"
    [ -z "$(pgrep -f "$state/units/ceph" || true)" ] && ok "$name: no ceph daemon left" || bad "$name: ceph daemons left"
    ns=$("$devemu" ceph status --json | field "d['netns']")
    ip netns list | grep -q "^$ns" && bad "$name: namespace $ns is left" || ok "$name: no namespace left"
    if [ "$fabric" = iscsi ] && [ -s "$state/export.json" ] && [ -z "${imported:-}" ]; then
        # What export wrote comes back with import --vm (targetcli's format, on a host without LIO), the same.
        imported=1
        out=$("$devemu" import --vm --json "$state/export.json" 2>"$state/err"); rc=$?
        expect_eq "$name: import --vm of its export" 0 "$rc"
        [ "$rc" = 0 ] || show_failure "$state/err"
        "$devemu" check "$unit" >"$state/check" 2>&1 && ok "$name: ... the imported target passes check through its forward" || bad "$name: ... check: $(tail -3 "$state/check")"
        "$devemu" export "$unit" >"$state/export2.json" 2>&1
        cmp -s "$state/export.json" "$state/export2.json" && ok "$name: ... and exports as it was exported" || bad "$name: ... export differs: $(diff "$state/export.json" "$state/export2.json" | head -5)"
        again=$("$devemu" import --vm "$state/export.json" 2>&1); rc=$?
        expect_eq "$name: ... imported again into the running VM: exit 0, up to date" "0 1" "$rc $(grep -c '(up to date)' <<<"$again")"
        "$devemu" -q down "$unit" >/dev/null; expect_eq "$name: ... down" 0 "$?"
        [ -z "$(qemu_left)" ] && ok "$name: ... no qemu after down" || bad "$name: ... qemu left"
    fi
done

# Every shipped gadget profile: up --vm, then the host's `devemu check` runs the libusb checker in the VM.
app=$(dirname "$(readlink -f "$devemu")")/ffs-loopback
for prof in "$src"/gadgets/*.toml; do
    name=$(basename "$prof" .toml)
    exec_args=()
    grep -q '^type = "ffs"' "$prof" && exec_args=(--exec "$app /dev/usb-ffs/app")
    out=$("$devemu" -q up --vm --json "${exec_args[@]}" "$prof" 2>"$state/err"); rc=$?
    expect_eq "$name: up --vm" 0 "$rc"
    [ "$rc" = 0 ] || { show_failure "$state/err"; continue; }
    unit=$(field "d[0]['vm']" <<<"$out")
    gunit=$(field "d[0]['unit']" <<<"$out")   # the gadget's unit in the guest
    bus=$(field "d[0]['gadget']['host']['bus']" <<<"$out")
    [ "$bus" -ge 1 ] 2>/dev/null && ok "$name: enumerated on bus $bus in the VM" || bad "$name: not enumerated: $out"
    "$devemu" check --json "$unit" >"$state/check" 2>&1; rc=$?
    expect_eq "$name: devemu check passes" 0 "$rc"
    field "d['ok'] and len(d['checks']) >= 1" <"$state/check" | grep -q True && ok "$name: check --json says ok" || bad "$name: check: $(head -c 600 "$state/check")"
    if [ "$name" = msc-user ]; then
        # Capture from the host: the guest's usbmon, the file written through the VM's share, complete on the host.
        disk=$(field "d[0]['gadget']['luns'][0]['disk']" <<<"$out")
        "$devemu" -q capture "$unit" -o "$state/cap.pcapng" --duration 4 --json >"$state/cap.json" 2>"$state/cap.err" &
        cap=$!
        sleep 1.5
        "$devemu" vm exec "$unit" -- dd if="$disk" of=/dev/null bs=64k count=64 iflag=direct >/dev/null 2>&1
        wait $cap; expect_eq "$name: capture --duration 4 of the VM's gadget, from the host" 0 "$?"
        [ -s "$state/cap.pcapng" ] && [ ! -e "$state/cap.pcapng.part" ] && ok "$name: the pcapng is on the host, complete" || bad "$name: capture: $(cat "$state/cap.err")"
        cbws=$(tshark -r "$state/cap.pcapng" -Y usbms.dCBWSignature 2>/dev/null | wc -l)
        [ "$cbws" -ge 64 ] && ok "$name: tshark on the host reads $cbws CBWs (64 reads of 64 KiB were sent)" || bad "$name: tshark saw $cbws CBWs"
        expect_eq "$name: capture --json counts the packets tshark reads" "$(tshark -r "$state/cap.pcapng" 2>/dev/null | wc -l)" "$(field "d['packets']" <"$state/cap.json")"
        # Ctrl-C: the guest's capture is interrupted the same way and completes its file.
        "$devemu" -q capture "$unit" -o "$state/int.pcapng" >/dev/null 2>"$state/int.err" &
        cap=$!
        sleep 3
        kill -INT $cap; wait $cap; expect_eq "$name: capture until SIGINT exits 0" 0 "$?"
        tshark -r "$state/int.pcapng" >/dev/null 2>&1 && ok "$name: the interrupted capture is a complete pcapng" || bad "$name: int.pcapng: $(cat "$state/int.err")"
        # A capture killed in the VM: the host notices (it polls every 5 s) and says so, instead of waiting forever.
        "$devemu" -q capture "$unit" -o "$state/dead.pcapng" >/dev/null 2>"$state/dead.err" &
        cap=$!
        sleep 2
        "$devemu" vm exec "$unit" -- sh -c 'kill -9 $(cat /devemu/capture/*.pid)' >/dev/null 2>&1
        for _ in $(seq 1 150); do kill -0 $cap 2>/dev/null || break; sleep 0.1; done
        kill -0 $cap 2>/dev/null && { bad "$name: capture still waits on a dead guest capture"; kill $cap; } || ok "$name: a capture killed in the VM ends the host's within 15 s"
        wait $cap; rc=$?
        [ "$rc" = 2 ] && grep -q "ended without a result" "$state/dead.err" && [ ! -e "$state/dead.pcapng" ] && ok "$name: ... exit 2, says so, no file" || bad "$name: dead capture: $rc $(cat "$state/dead.err")"
        [ -d "$state/units/$unit/capture" ] && [ -z "$(ls "$state/units/$unit/capture")" ] && ok "$name: nothing left in the VM's capture share" || bad "$name: left: $(ls "$state/units/$unit/capture")"
        # Several commands in the VM at once (its exec ports): a fault or a second exec while a long one runs answers
        # at once with its own output only; the long one streams its output as it comes and gets its own.
        "$devemu" vm exec "$unit" -- sh -c 'echo long-started; sleep 6; echo long-done' >"$state/long.out" 2>&1 &
        long=$!
        for _ in $(seq 1 100); do grep -q long-started "$state/long.out" && break; sleep 0.1; done
        grep -q long-started "$state/long.out" && ok "$name: vm exec streams the guest's output as it comes" || bad "$name: nothing streamed: $(cat "$state/long.out")"
        t0=$(date +%s%N)
        fault_out=$("$devemu" fault "$unit" ls 2>&1); rc=$?
        second=$("$devemu" vm exec "$unit" -- sh -c 'echo second; echo second-err >&2' 2>&1)
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        expect_eq "$name: devemu fault ls during a running vm exec" 0 "$rc"
        [ "$ms" -lt 4000 ] && kill -0 $long 2>/dev/null && ok "$name: fault ls and a second vm exec took $ms ms while the first still ran" \
            || bad "$name: fault ls and a second vm exec took $ms ms (the first still running: $(kill -0 $long 2>/dev/null && echo yes || echo no))"
        expect_eq "$name: the second exec printed its own output only" "second second-err" "$(echo $second)"
        case "$fault_out" in *long*) bad "$name: fault ls printed another command's output: $fault_out" ;; *) ok "$name: fault ls printed its own output only" ;; esac
        wait $long; expect_eq "$name: the long exec's status" 0 "$?"
        expect_eq "$name: the long exec's output, all of it, its own" "long-started long-done" "$(echo $(cat "$state/long.out"))"
        # stdin: a script for the guest's shell, and 3 MB of random bytes that arrive whole.
        got=$(printf 'echo from-stdin\nexit 4\n' | "$devemu" vm exec "$unit" -- sh -s); rc=$?
        expect_eq "$name: a script on vm exec's stdin runs in the VM" "from-stdin 4" "$got $rc"
        head -c 3000000 /dev/urandom >"$state/blob"
        expect_eq "$name: 3 MB on vm exec's stdin arrive whole (md5sum in the VM)" "$(md5sum <"$state/blob" | cut -d' ' -f1)" \
            "$("$devemu" vm exec "$unit" -- md5sum <"$state/blob" | cut -d' ' -f1)"
        # Ctrl-C on the host ends the command in the VM.
        timeout -s INT 2 "$devemu" vm exec "$unit" -- sleep 61 >/dev/null 2>&1
        sleep 0.5
        left=$("$devemu" vm exec "$unit" -- sh -c 'ps | grep "sleep 6[1]" || true')
        [ -z "$left" ] && ok "$name: a vm exec interrupted on the host ends its command in the VM" || bad "$name: left running in the VM: $left"
        # ls asks the guest: its units, their health against the guest's configfs, the server's counters.
        cmds=$("$devemu" ls --json | field "[g for u in d if u['name']=='$unit' for g in u['guest'] if g['name']=='$gunit'][0]['servers']['ms0']['commands']")
        [ "$cmds" -gt 0 ] 2>/dev/null && ok "$name: ls --json shows the guest's unit and the commands its server served ($cmds)" || bad "$name: ls --json guest: $cmds"
    fi
    lun=$(field "([l['lun'] for l in d[0]['gadget']['luns'] if l['removable'] and l['file']] + [''])[0]" <<<"$out")
    if [ -n "$lun" ]; then   # a removable LUN with a medium: eject it through the VM
        "$devemu" -q gadget eject --lun "$lun" "$unit" >/dev/null; expect_eq "$name: eject LUN $lun through the VM" 0 "$?"
        "$devemu" check --no-write "$unit" 2>&1 | grep -q "LUN $lun: TEST UNIT READY — no medium" && ok "$name: check sees no medium" || bad "$name: medium still there"
    fi
    if [ -n "$lun" ] && [ -n "$(host_files "$prof")" ]; then
        # A host file inserted as the medium: plugged into the running VM as a disk, read and written there, the
        # host's after down; the profile's own file goes back in as the same disk.
        "$devemu" -q gadget eject --lun "$lun" "$unit" >/dev/null
        head -c 4194304 /dev/urandom >"$state/my medium.img"
        "$devemu" -q gadget insert --lun "$lun" "$unit" "$state/my medium.img" >/dev/null; expect_eq "$name: insert a host file as the medium" 0 "$?"
        disk=$(field "[l['disk'] for l in d[0]['gadget']['luns'] if str(l['lun']) == '$lun'][0]" <<<"$out")
        expect_eq "$name: ... the VM's usb-storage reads the host file's data" "$(md5sum <"$state/my medium.img" | cut -d' ' -f1)" \
            "$("$devemu" vm exec "$unit" -- md5sum "$disk" | cut -d' ' -f1)"
        head -c 1048576 /dev/urandom >"$state/mblob"
        "$devemu" vm exec "$unit" -- dd of="$disk" bs=1M seek=1 oflag=direct iflag=fullblock <"$state/mblob" >/dev/null 2>&1
        expect_eq "$name: ... a write to it in the VM" 0 "$?"
        "$devemu" ls | grep -q "data: the host's $state/my medium.img plugged in" && ok "$name: ... ls names it" || bad "$name: ... ls: $("$devemu" ls)"
        "$devemu" -q gadget eject --lun "$lun" "$unit" >/dev/null; expect_eq "$name: ... ejected" 0 "$?"
        # Out of the LUN, it is unplugged: the VM has no such disk, qemu has let go of the file, the write is in it now.
        "$devemu" ls | grep -q "my medium.img" && bad "$name: ... still plugged in after the eject: $("$devemu" ls)" || ok "$name: ... unplugged at the eject (ls)"
        expect_eq "$name: ... the VM's virtio disks: the profile's only" "devemu-0" "$("$devemu" vm exec "$unit" -- sh -c 'cat /sys/block/vd*/serial' | tr -d '\n')"
        expect_eq "$name: ... the write is in the host's file at the eject" "$(md5sum <"$state/mblob" | cut -d' ' -f1)" \
            "$(dd if="$state/my medium.img" bs=1M skip=1 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
        own=$(host_files "$prof" | head -1)
        "$devemu" -q gadget insert --lun "$lun" "$unit" "$own" >/dev/null; expect_eq "$name: ... the profile's own file back in" 0 "$?"
        expect_eq "$name: ... as the disk it was (nothing plugged in)" 0 "$("$devemu" ls --json | field "len([u for u in d if u['name']=='$unit'][0].get('media', {}))")"
    fi
    "$devemu" ls | grep -q "^$unit  vm  up  healthy  .*in the VM: $gunit gadget healthy" && ok "$name: ls shows it healthy, in the VM too" || bad "$name: ls: $("$devemu" ls)"
    if [ "$name" = msc-file ]; then   # drift in the guest's configfs is the unit's drift on the host
        "$devemu" vm exec "$unit" -- sh -c "echo '' > /sys/kernel/config/usb_gadget/$gunit/UDC"
        "$devemu" ls | grep -A1 "^$unit  vm  up  drift" | grep -q "in the VM, $gunit: .*/UDC: asked for" && ok "$name: ls on the host shows the guest's drift (UDC unbound there)" \
            || bad "$name: ls after unbinding in the VM: $("$devemu" ls)"
    fi
    "$devemu" -q down "$unit" >/dev/null; expect_eq "$name: down" 0 "$?"
    for f in $(host_files "$prof"); do [ -s "$f" ] && ok "$name: its backing file $f is on the host after down" || bad "$name: no $f on the host"; done
    if [ -s "$state/mblob" ]; then
        expect_eq "$name: the write to the inserted medium is in the host's file after down" "$(md5sum <"$state/mblob" | cut -d' ' -f1)" \
            "$(dd if="$state/my medium.img" bs=1M skip=1 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
        rm -f "$state/mblob"
    fi
    [ -z "$(qemu_left)" ] && ok "$name: no qemu after down" || bad "$name: qemu left"
    [ -z "$(pgrep -f "$state/units/ceph" || true)" ] && ok "$name: no ceph daemon left" || bad "$name: ceph daemons left"
done

# Backstores on the host's files and devices: the VM gets each as a virtio disk, so a user's image is served as it is
# (a filesystem in it too) and what initiators write lands in the host's file, there after down.
mkdir -p "$state/fsroot" && echo "from the host" >"$state/fsroot/hello"
mkfs.ext4 -q -F -d "$state/fsroot" "$state/fs.img" 16M >/dev/null 2>&1
head -c 8388608 /dev/urandom >"$state/data.img"
head_md5=$(head -c 2097152 "$state/data.img" | md5sum)
printf '[[backstore]]\nname = "data"\ntype = "user"\nhandler = "uring"\nbacking = "%s"\n[[backstore]]\nname = "fs"\ntype = "fileio"\npath = "%s"\n[[target]]\nname = "hd0"\nfabric = "loopback"\n[[target.lun]]\nbackstore = "data"\n[[target.lun]]\nbackstore = "fs"\n' \
    "$state/data.img" "$state/fs.img" >"$state/hd.toml"
out=$("$devemu" -q up --vm --json "$state/hd.toml" 2>"$state/err"); rc=$?
expect_eq "host files behind a VM's LUNs: up --vm" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
expect_eq "... up --json names the host file of each" "$state/data.img $state/fs.img" "$(field "d[0]['host_disks']['data'] + ' ' + d[0]['host_disks']['fs']" <<<"$out")"
dev0=$(field "d[0]['access']['devices']['0']" <<<"$out"); dev1=$(field "d[0]['access']['devices']['1']" <<<"$out")
expect_eq "... the LUN reads what the host file holds (md5sum in the VM)" "$(md5sum <"$state/data.img" | cut -d' ' -f1)" \
    "$("$devemu" vm exec hd0 -- md5sum "$dev0" | cut -d' ' -f1)"
expect_eq "... the filesystem in the host's image mounts in the VM, its file there" "from the host" \
    "$("$devemu" vm exec hd0 -- sh -c "/sbin/modprobe ext4 && mount -o ro $dev1 /mnt && cat /mnt/hello; umount /mnt" 2>&1)"
head -c 1048576 /dev/urandom >"$state/blob"
"$devemu" vm exec hd0 -- dd of="$dev0" bs=1M seek=2 oflag=direct iflag=fullblock <"$state/blob" >/dev/null 2>&1
expect_eq "... a write in the VM" 0 "$?"
"$devemu" ls | grep -q "^hd0  vm  up  healthy  data: data on the host's $state/data.img  data: fs on the host's $state/fs.img" \
    && ok "... ls names the host files" || bad "... ls: $("$devemu" ls)"
# up --vm again on the running VM's profile: the guest applies the difference (a LUN on a new host file, plugged in;
# a new iSCSI target, its portal forwarded), and the same text again changes nothing.
head -c 4194304 /dev/urandom >"$state/more.img"
cp "$state/hd.toml" "$state/hd.orig"
printf '[[backstore]]\nname = "more"\ntype = "fileio"\npath = "%s"\n[[target.lun]]\nbackstore = "more"\n[[backstore]]\nname = "z"\ntype = "zram"\nsize = "16M"\n[[target]]\nname = "hd0i"\niqn = "iqn.2026-11.org.devemu:hd0i"\n[[target.lun]]\nbackstore = "z"\n[[backstore]]\nname = "zl"\ntype = "zram"\nsize = "16M"\n[[target]]\nname = "hd0l"\nfabric = "loopback"\n[[target.lun]]\nbackstore = "zl"\n' \
    "$state/more.img" >>"$state/hd.toml"
out=$("$devemu" -q up --vm --json "$state/hd.toml" 2>"$state/err"); rc=$?
expect_eq "up --vm of a running VM's changed profile" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
expect_eq "... one qemu still: the same VM" 1 "$(qemu_left | wc -l)"
dev2=$(field "[u for u in d if u['unit'] == 'hd0'][0]['access']['devices']['2']" <<<"$out" 2>&1)
expect_eq "... the new LUN reads the new host file (md5sum in the VM)" "$(md5sum <"$state/more.img" | cut -d' ' -f1)" \
    "$("$devemu" vm exec hd0 -- md5sum "$dev2" | cut -d' ' -f1)"
expect_eq "... the LUNs it had are the same devices" "$dev0 $dev1" "$(field "' '.join([u for u in d if u['unit'] == 'hd0'][0]['access']['devices'][k] for k in ('0', '1'))" <<<"$out" 2>&1)"
url=$(field "[u for u in d if u['unit'] == 'hd0i'][0]['access']['urls'][0]" <<<"$out" 2>&1)
iscsi-inq "$url" >/dev/null 2>&1 && ok "... the new target answers the host's iscsi-inq through its new forward ($url)" || bad "... iscsi-inq $url"
"$devemu" ls | grep -q "^hd0  vm  up  healthy  hd0i@127.0.0.1:.*data: more on the host's $state/more.img.*in the VM: hd0i target healthy" \
    && ok "... ls lists the new target and file" || bad "... ls: $("$devemu" ls)"
again=$("$devemu" up --vm "$state/hd.toml" 2>&1); rc=$?
expect_eq "... the same profile again: exit 0" 0 "$rc"
expect_eq "... and nothing changes" "3 3" "$(grep -c '(up to date)' <<<"$again") $(grep -c 'up in VM hd0 ' <<<"$again")"
# The VM's targets by their own names from the host: a loopback LUN is checked in the VM, an iSCSI target through its
# forward; `check hd0` checks them all, --json one document. `down` of one target takes it out of the VM, which stays.
out=$("$devemu" check hd0l 2>&1); rc=$?
expect_eq "a target in the VM, checked by its own name: exit 0" 0 "$rc"
expect_contains "... its loopback LUN verified in the VM" "$out" "hd0l LUN 0: write-read-verify"
j=$("$devemu" check hd0 --json 2>"$state/err"); rc=$?
expect_eq "check of the VM's unit: exit 0" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
expect_eq "... --json: one document with every target's LUNs" "True hd0 LUN 0,hd0 LUN 1,hd0 LUN 2,hd0i,hd0l LUN 0" \
    "$(field "str(d['ok']) + ' ' + ','.join(sorted(u['unit'] for u in d['units']))" <<<"$j" 2>&1)"
out=$("$devemu" down hd0i 2>&1); rc=$?
expect_eq "down of one target in the VM: exit 0" 0 "$rc"
expect_contains "... the VM stays up" "$out" "hd0i: down (in hd0, which stays up)"
"$devemu" check hd0i >/dev/null 2>&1; expect_eq "... the target is gone (check: no such unit)" 2 "$?"
expect_eq "... one qemu still" 1 "$(qemu_left | wc -l)"
lsout=$("$devemu" ls)
grep -q "^hd0  vm  up  healthy  data: " <<<"$lsout" && ! grep -q hd0i <<<"$lsout" && ok "... ls: hd0 healthy, without it or its forward" || bad "... ls: $lsout"
out=$("$devemu" up --vm "$state/hd.toml" 2>&1); rc=$?
expect_eq "... up --vm brings it back: exit 0" 0 "$rc"
expect_contains "... made again" "$out" "target hd0i: up in VM hd0 ("
iscsi-inq "$url" >/dev/null 2>&1 && ok "... through the same forward ($url)" || bad "... iscsi-inq $url after it came back"
err=$("$devemu" up --vm --exec true "$state/hd.toml" 2>&1 >/dev/null); rc=$?
expect_eq "... --exec on a running VM: exit 2" 2 "$rc"
expect_contains "... saying how" "$err" "devemu down hd0, then up --vm again"
cp "$state/hd.orig" "$state/hd.toml"
sed 's/name = "hd0"/name = "hd1"/' "$state/hd.toml" >"$state/hd1.toml"
err=$("$devemu" up --vm "$state/hd1.toml" 2>&1 >/dev/null); rc=$?
expect_eq "... a second VM on the same file: refused, exit 2" 2 "$rc"
expect_contains "... naming the unit that serves it" "$err" "the VM of unit 'hd0' serves this file already"
expect_eq "... no second qemu" 1 "$(qemu_left | wc -l)"
"$devemu" -q down hd0 >/dev/null; expect_eq "... down" 0 "$?"
expect_eq "... the write is in the host's file after down" "$(md5sum <"$state/blob" | cut -d' ' -f1)" \
    "$(dd if="$state/data.img" bs=1M skip=2 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
expect_eq "... the rest of it untouched" "$head_md5" "$(head -c 2097152 "$state/data.img" | md5sum)"
# Ctrl-C while up --vm waits for its VM: exit 130, and nothing is left (no qemu, no record, no journal).
set -m   # a background job of a script ignores SIGINT without job control
"$devemu" up --vm "$state/hd.toml" >/dev/null 2>"$state/err" & upid=$!
for _ in $(seq 1 200); do [ -n "$(qemu_left)" ] && break; sleep 0.05; done
sleep 0.5
kill -INT "$upid"; wait "$upid"; rc=$?
set +m
expect_eq "Ctrl-C during up --vm: exit 130" 130 "$rc"
expect_contains "... saying what it did" "$(cat "$state/err")" "interrupted: the VM is stopped and nothing of it is left"
sleep 0.5
[ -z "$(qemu_left)" ] && ok "... no qemu left" || bad "... qemu left: $(qemu_left)"
expect_eq "... no record, journal or run dir of it left" "" "$(ls -A "$state/units" | grep hd0)"
expect_eq "... ls: no unit" "no units (state dir $state)" "$("$devemu" ls 2>&1)"
# A host device that holds a filesystem is refused on the host, before any VM, unless --force.
loopdev=$(losetup -f --show "$state/fs.img")
printf '[[backstore]]\nname = "dev"\ntype = "block"\npath = "%s"\n[[target]]\nname = "hd2"\nfabric = "loopback"\n[[target.lun]]\nbackstore = "dev"\n' "$loopdev" >"$state/dev.toml"
err=$("$devemu" up --vm "$state/dev.toml" 2>&1 >/dev/null); rc=$?
expect_eq "a host device holding ext4 behind up --vm: exit 2" 2 "$rc"
expect_contains "... says why and how to mean it" "$err" "holds a ext4 filesystem"
[ -z "$(qemu_left)" ] && ok "... no qemu" || bad "... qemu left"
losetup -d "$loopdev"
expect_eq "... no unit left" "no units (state dir $state)" "$("$devemu" ls)"

# A profile the guest refuses (a clash of two LUN numbers is caught on the host; an unloadable setting in the guest):
printf '[[backstore]]\nname = "bad"\ntype = "zram"\nsize = "16M"\ncomp_algorithm = "no-such-algo"\n[[target]]\nname = "bad"\n[[target.lun]]\nbackstore = "bad"\n' > "$state/bad.toml"
err=$("$devemu" up --vm "$state/bad.toml" 2>&1 >/dev/null); rc=$?
expect_eq "guest-side refusal exits 2" 2 "$rc"
expect_contains "guest-side refusal names the setting" "$err" "no-such-algo"
[ -z "$(qemu_left)" ] && ok "guest-side refusal leaves no qemu" || bad "qemu left after refusal"
expect_eq "guest-side refusal leaves no unit" "no units (state dir $state)" "$("$devemu" ls)"

# The VM dies while up --vm waits for the guest: one line naming the console devemu kept (the run directory goes),
# and nothing else left.
rm -rf "$state/logs"
"$devemu" -q up --vm "$src/targets/zram-iscsi.toml" >/dev/null 2>"$state/died.err" &
pid=$!
for _ in $(seq 1 600); do grep -qs "SeaBIOS" "$state"/units/*/console.log && break; sleep 0.1; done
pkill -9 -f "qemu-system-x86_64.*$state"
wait $pid; rc=$?
[ "$rc" != 0 ] && ok "the VM killed during up --vm: up fails (exit $rc)" || bad "up --vm returned 0 with its VM killed"
err=$(cat "$state/died.err")
one_line "$err" && ok "... in one line" || bad "... not one line: [$err]"
kept=$(ls "$state"/logs/*.console.log 2>/dev/null | head -1)
[ -n "$kept" ] && expect_contains "... naming the VM's console it kept" "$err" "kept in $kept" || bad "no console kept in $state/logs: [$err]"
[ -n "$kept" ] && grep -q "SeaBIOS" "$kept" && ok "... which holds what the VM printed" || bad "kept console lacks the boot: $(head -c 300 "$kept" 2>/dev/null)"
[ -n "$kept" ] && expect_eq "... readable by its owner only" 600 "$(stat -c %a "$kept")"
[ -z "$(qemu_left)" ] && ok "... no qemu left" || bad "qemu left after its VM died"
expect_eq "... no unit left" "no units (state dir $state)" "$("$devemu" ls)"

# kill -9 of devemu while up --vm waits for the guest: `down --all` still reaps the VM (journal).
"$devemu" -q up --vm "$src/targets/zram-iscsi.toml" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -n "$(qemu_left)" ] && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
[ -n "$(qemu_left)" ] && ok "the VM outlives a killed devemu (it is meant to be long-lived)" || bad "no qemu after kill"
"$devemu" -q down --all >/dev/null 2>&1
sleep 1
[ -z "$(qemu_left)" ] && ok "down --all reaps it" || bad "qemu left after down --all"
rm -f "${made_files[@]}"
finish
