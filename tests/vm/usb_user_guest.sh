#!/usr/bin/env bash
# Runs inside the VM (devemu vm run --host-root): devemu's own USB mass-storage function behind dummy_hcd. The
# guest's usb-storage and sd_mod are the host; dd/cmp, fio's crc32c verify, tshark and the kernel log judge.
devemu=$1
. "$(dirname "$(readlink -f "$0")")/guest_lib.sh"
repo=$2
G=/sys/kernel/config/usb_gadget
nothing_left() { # configfs empty, no FunctionFS mounted, no server, no device on a dummy bus, zram back to the baseline
    local left; left="$(ls $G 2>/dev/null) $(grep functionfs /proc/mounts) $(pgrep -f 'devemu usb-serve') $(ls /sys/bus/usb/devices | grep -E '^[0-9]+-[0-9]+$')"
    [ -z "$(echo "$left" | tr -d ' ')" ] && [ "$(ls /sys/block | grep -c zram)" = "$zram_base" ] || { echo "left: $left $(ls /sys/block | grep zram)"; return 1; }
}
unit_json() { "$devemu" ls --json | python3 -c "import json,sys; u=[x for x in json.load(sys.stdin) if x['name']=='$1'][0]; print(json.dumps(u))"; }
disk_of() { unit_json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['luns'][$2].get('disk',''))"; }
server() { unit_json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['servers']['$2'].get('$3', ''))"; }
wait_for() { local i; for i in $(seq "${2:-100}"); do eval "$1" && return 0; sleep 0.1; done; return 1; }
modprobe zram 2>/dev/null; zram_base=$(ls /sys/block | grep -c zram)
cd /tmp

# --- the shipped profile: a zram-backed stick devemu serves -------------------------------------------
check "msc-user: up" "$devemu" up "$repo/gadgets/msc-user.toml"
disk=$(disk_of msc-user 0)
check "the guest's usb-storage gave it a disk ($disk)" test -b "$disk"
check "256 MiB as sd sees it" sh -c "[ \$(cat /sys/block/${disk#/dev/}/size) = 524288 ]"
check "INQUIRY is devemu's SCSI core (vendor DEVEMU)" grep -q DEVEMU "/sys/block/${disk#/dev/}/device/vendor"
check "the function is FunctionFS, not f_mass_storage" sh -c "ls $G/msc-user/functions | grep -qx ffs.msc-user-ms0 && ! ls $G/msc-user/functions | grep -q mass_storage"
expect_eq "ls: the server is running" True "$(server msc-user ms0 running)"
zdev=$(unit_json msc-user | python3 -c "import json,sys; print(json.load(sys.stdin)['luns'][0]['file'])")
head -c 4M /dev/urandom > /tmp/pattern
check "dd a pattern through $disk" dd if=/tmp/pattern of="$disk" bs=1M seek=8 oflag=direct conv=fsync status=none
check "the pattern reads back through $disk" sh -c "dd if=$disk bs=1M skip=8 count=4 iflag=direct status=none | cmp - /tmp/pattern"
check "the backing ($zdev) holds the pattern" cmp -n 4194304 -i 0:8388608 /tmp/pattern "$zdev"
check "devemu check passes" "$devemu" check msc-user
cp /tmp/check.out /tmp/msc-check.out
expect_eq "check ran the thirteen BOT cases, all ok" 13 "$(grep -cE 'ok.*BOT case +[0-9]+ \(' /tmp/msc-check.out)"
check "sg_opcodes through usb-storage: the shared SCSI core's list (Read(16), Report supported operation codes)" sh -c "sg_opcodes $disk > /tmp/opc.out 2>&1 && grep -q 'Read(16)' /tmp/opc.out && grep -q 'Report supported operation codes' /tmp/opc.out"
disk=$(disk_of msc-user 0)
check "fio crc32c verify through $disk" fio --name=v --filename="$disk" --rw=randwrite --bs=4k-128k --size=16M --offset=64M --direct=1 \
    --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --output=/tmp/fio.out
check "... fio saw no error" sh -c "grep -q 'err= 0' /tmp/fio.out"

# --- usbmon capture: tshark counts the CBWs the server served ----------------------------------------------
"$devemu" capture msc-user -o /tmp/msc.pcapng > /tmp/capture.out 2>&1 & cap=$!
sleep 1.5
c0=$(server msc-user ms0 commands)
dd if="$disk" of=/dev/null bs=64k count=16 iflag=direct status=none
dd if=/tmp/pattern of="$disk" bs=64k count=8 seek=256 oflag=direct status=none
sleep 1.2
c1=$(server msc-user ms0 commands)
kill -INT $cap; wait $cap; rc=$?
check "capture stops on SIGINT with a complete file" sh -c "[ $rc = 0 ] && [ -s /tmp/msc.pcapng ] && [ ! -e /tmp/msc.pcapng.part ]"
cbws=$(tshark -r /tmp/msc.pcapng -Y usbms.dCBWSignature 2>/dev/null | wc -l) || true
echo "# capture: server commands $c0 -> $c1, tshark's USB mass-storage CBWs $cbws"
check "tshark reads the capture (SCSI inside USBMS)" sh -c "tshark -r /tmp/msc.pcapng 2>/dev/null | grep -q 'USBMS.*SCSI: Read(10)'"
check "tshark's CBW count ($cbws) equals the commands served ($((c1 - c0)))" sh -c "[ $((c1 - c0)) -gt 20 ] && [ '$cbws' = '$((c1 - c0))' ]"

# --- USB faults: what a host's error recovery must survive; each is seen in the kernel log, and I/O resumes ----
echo 5 > "/sys/block/${disk#/dev/}/device/timeout"   # no-csw waits for the SCSI timeout: 5 s, not 30
for f in bad-signature bad-tag bad-residue no-csw stall-status stall-data halt-in; do
    dmesg -C
    done0=$(server msc-user ms0 usb_faults_done)
    check "usb fault $f: armed" "$devemu" fault msc-user usb "$f"
    check "usb fault $f: the pattern reads back through the recovery" sh -c "timeout 60 dd if=$disk bs=64k skip=128 count=4 iflag=direct status=none | cmp - /tmp/pattern -n 262144"
    wait_for '[ "$(server msc-user ms0 usb_faults_done)" != "$done0" ]' 20; sleep 0.6
    expect_eq "usb fault $f: applied once" "$((done0 + 1))" "$(server msc-user ms0 usb_faults_done)"
    case $f in bad-signature|bad-tag|no-csw) check "usb fault $f: the kernel log shows usb-storage's reset" sh -c "dmesg | grep -q 'reset high-speed USB device'" ;; esac
done
check "usb faults: devemu check still passes" "$devemu" check --no-write msc-user
refuse "an unknown usb fault is refused" "$devemu" fault msc-user usb bad-crc
check "... naming it, exit 2" sh -c "\"$devemu\" fault msc-user usb bad-crc; [ \$? = 2 ] && grep -q bad-crc /tmp/refused.out"
dmesg -C
check "usb disconnect" "$devemu" fault msc-user usb disconnect
check "... the host sees the device go" wait_for "dmesg | grep -q 'USB disconnect'" 50
check "usb connect" "$devemu" fault msc-user usb connect
check "... the host enumerates it again" wait_for "dmesg | grep -q 'Attached SCSI disk'" 100
disk=$(sleep 0.5; ls /dev/sd? | head -1)
check "... and the data is there ($disk)" sh -c "dd if=$disk bs=1M skip=8 count=4 iflag=direct status=none | cmp - /tmp/pattern"
check "block fault at run time on a USB LUN" "$devemu" fault msc-user add id=bad type=error op=read lba=2048..2055
refuse "... a read there fails" dd if="$disk" of=/dev/null bs=4k skip=256 count=1 iflag=direct status=none
check "... cleared, it reads" sh -c "\"$devemu\" fault msc-user clear bad && dd if=$disk of=/dev/null bs=4k skip=256 count=1 iflag=direct status=none"


# --- supervised: killed, it is restarted and I/O resumes -----------------------------------------------------
check "a block fault added at run time before the kill" "$devemu" fault msc-user add id=kept type=error op=read lba=4096..4103
pid=$(server msc-user ms0 pid)
check "kill -9 the server ($pid)" kill -9 "$pid"
check "the supervisor restarts it" wait_for '[ "$(server msc-user ms0 restarts)" = 1 ] && [ "$(server msc-user ms0 pid)" != '"$pid"' ]' 100
check "the pattern still reads back (timeout 60 s)" sh -c "timeout 60 dd if=$disk bs=1M skip=8 count=4 iflag=direct status=none | cmp - /tmp/pattern"
refuse "the restarted server kept the run-time fault: a read there fails" dd if="$disk" of=/dev/null bs=4k skip=512 count=1 iflag=direct status=none
check "... cleared, it reads" sh -c "\"$devemu\" fault msc-user clear kept && dd if=$disk of=/dev/null bs=4k skip=512 count=1 iflag=direct status=none"
check "writes go on after the restart" sh -c "dd if=/tmp/pattern of=$disk bs=1M seek=100 oflag=direct status=none && cmp -n 4194304 -i 0:104857600 /tmp/pattern $zdev"
check "ls is healthy" sh -c "\"$devemu\" ls | grep msc-user | grep -q healthy"
check "the server never failed to halt an endpoint or stall ep0 (its log)" sh -c "! grep -E 'not halted|not stalled' $DEVEMU_STATE_DIR/units/msc-user/usb-ms0.log"
check "down" "$devemu" down msc-user
check "down leaves nothing: configfs, FunctionFS, server, zram" nothing_left

# --- block faults on a USB LUN: a bad range gives EIO there through /dev/sdX, not elsewhere -----------------
truncate -s 64M /tmp/faulty.img
cat > faulty.toml <<'EOT'
[[backstore]]
name = "fd"
type = "user"
handler = "uring"
path = "/tmp/faulty.img"
[[backstore.fault]]
id = "bad"
type = "error"
op = "read"
lba = "65536..65663"
[[gadget]]
name = "fusb"
product_id = 0x0130
[[gadget.function]]
type = "mass_storage"
name = "ms"
[[gadget.function.lun]]
backstore = "fd"
EOT
check "faulty USB stick: up" "$devemu" up faulty.toml
fdisk=$(disk_of fusb 0)
refuse "a read of the bad range fails" dd if="$fdisk" of=/dev/null bs=4k skip=8192 count=1 iflag=direct status=none
check "... with a medium error in the kernel log" sh -c "dmesg | grep -i -E 'Medium Error|Unrecovered read error' | grep -q ${fdisk#/dev/}"
check "a read elsewhere works" dd if="$fdisk" of=/dev/null bs=4k skip=100 count=16 iflag=direct status=none
# GET LBA STATUS through usb-storage (16-byte CDBs over BOT): the sparse file's holes are deallocated, what is written
# is mapped, and an UNMAP (sg_unmap: sd does not discard on usb-storage) punches a hole again.
check "a 1 MiB pattern written at 16 MiB" dd if=/tmp/pattern of="$fdisk" bs=1M count=1 seek=16 oflag=direct status=none
check "sg_get_lba_status: LBA 0 to 32767 deallocated (never written)" sh -c "sg_get_lba_status -b $fdisk | grep -q -E '^0x0+ +0x8000 +1 '"
check "sg_get_lba_status: LBA 32768 on mapped, 2048 blocks" sh -c "sg_get_lba_status -b --lba=32768 $fdisk | grep -q -E '^0x0*8000 +0x800 +0 '"
check "sg_unmap the first 1024 of them" sg_unmap --force --lba=32768 --num=1024 "$fdisk"
check "sg_get_lba_status: LBA 32768 deallocated again, from LBA 0 (33792 blocks)" sh -c "sg_get_lba_status -b $fdisk | grep -q -E '^0x0+ +0x8400 +1 '"
check "... and LBA 33792 still mapped (1024 blocks)" sh -c "sg_get_lba_status -b --lba=33792 $fdisk | grep -q -E '^0x0*8400 +0x400 +0 '"
check "ls counts the errors (the stats file is rewritten twice a second)" wait_for '[ "$(server fusb ms errors)" -ge 1 ] 2>/dev/null' 30
check "down" "$devemu" down fusb

# --- USB/IP: exported through usbip-vudc and usbipd, attached on this same guest with vhci-hcd ------------------
sed 's/^product_id = 0x0130/product_id = 0x0131\nudc = "usbip"/; s/name = "fusb"/name = "iusb"/' faulty.toml | grep -v -E '^\[\[backstore.fault|^id =|^type = "error"|^op =|^lba =' > usbip.toml
refuse "udc = usbip without --insecure is refused (usbipd has no authentication)" "$devemu" up usbip.toml
check "... naming the gadget's line, exit 2" sh -c "\"$devemu\" up usbip.toml; [ \$? = 2 ] && grep -q 'usbip.toml:' /tmp/refused.out"
check "USB/IP gadget: up --insecure" "$devemu" up --insecure usbip.toml
check "ls prints the attach command" sh -c "\"$devemu\" ls iusb | grep -q 'usbip attach -r THIS_HOST -d usbip-vudc.0'"
check "usbip list -r 127.0.0.1 lists it" sh -c "usbip list -r 127.0.0.1 | grep -q usbip-vudc.0"
modprobe vhci-hcd
check "usbip attach -r 127.0.0.1 -d usbip-vudc.0" usbip attach -r 127.0.0.1 -d usbip-vudc.0
check "... the attached disk appears" wait_for "grep -l DEVEMU /sys/block/sd*/device/vendor >/dev/null 2>&1" 150
idisk=/dev/$(basename "$(dirname "$(dirname "$(grep -l DEVEMU /sys/block/sd*/device/vendor | head -1)")")")
check "data round-trips through USB/IP ($idisk)" sh -c "dd if=/tmp/pattern of=$idisk bs=1M oflag=direct status=none && dd if=$idisk bs=1M count=4 iflag=direct status=none | cmp - /tmp/pattern && cmp -n 4194304 /tmp/pattern /tmp/faulty.img"
check "usbip detach" sh -c "usbip detach -p \$(usbip port | sed -n 's/^Port \([0-9]*\):.*/\1/p' | head -1)"
check "down" "$devemu" down iusb
check "down stops usbipd" sh -c "! pgrep -x usbipd"

# --- bad input: one line, exit 2, nothing left --------------------------------------------------------------
sed 's/name = "ms"/name = "ms"\nengine = "kernel"/' faulty.toml > kernel-user.toml
refuse "engine = kernel with a user backstore is refused" "$devemu" up kernel-user.toml
check "... exit 2 naming file:line" sh -c "\"$devemu\" up kernel-user.toml; [ \$? = 2 ] && grep -q 'kernel-user.toml:' /tmp/refused.out"
printf '[[gadget.function.lun]]\nremovable = true\n' | cat faulty.toml - > nomedia.toml
refuse "an empty removable LUN on devemu's function is refused" "$devemu" up nomedia.toml
refuse "capture of a unit that is not up is refused" "$devemu" capture nope -o /tmp/x.pcapng
check "nothing left after the refusals" nothing_left
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
