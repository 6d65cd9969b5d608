#!/usr/bin/env bash
# Multipath in one VM boot: the guest half (mpath_guest.sh) brings up a loopback target with two paths and
# dm-multipath over them (`multipath = true`), cuts and restores paths under fio's crc32c verify, takes every path
# down past no_path_retry, and judges it with multipath-tools (multipath -ll, multipathd) and the kernel's dm status;
# then an iSCSI target with two portals: open-iscsi sessions on both (ACL initiator, CHAP, devemu's timeouts), 10 cuts;
# then the VM's own two QEMU paths to one file (vm run --mpath-disk): 4 cuts with QMP drive_del, each restore a new disk.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
# and the guest's two virtio-scsi paths to one file (vm run --mpath-disk), cut with QMP drive_del
truncate -s 64M "$state/qemu-paths.img"
run_guest_suite --memory 1536 --timeout 1100 --mpath-disk "$state/qemu-paths.img" -- "$here/mpath_guest.sh" "$(readlink -f "$devemu")"
finish
