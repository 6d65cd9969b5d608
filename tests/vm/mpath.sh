#!/usr/bin/env bash
# Multipath in one VM boot: the guest half (mpath_guest.sh) brings up a loopback target with two paths and
# dm-multipath over them (`multipath = true`), cuts and restores paths under fio's crc32c verify, takes every path
# down past no_path_retry, and judges it with multipath-tools (multipath -ll, multipathd) and the kernel's dm status;
# then an iSCSI target with two portals: open-iscsi sessions on both (ACL initiator, CHAP, devemu's timeouts), 10 cuts.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
run_guest_suite --memory 1536 --timeout 1100 -- "$here/mpath_guest.sh" "$(readlink -f "$devemu")"
finish
