#!/usr/bin/env bash
# Faults in the userspace data path, in one VM boot: the guest half (fault_guest.sh) puts a `user` backstore behind
# tcm_loop with faults from a profile and from `devemu fault` at run time, and judges them with the kernel's own
# sd driver (EIO exactly where the bad range is), sg3-utils (the sense and its INFORMATION field) and fio (latency
# and IOPS).
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
run_guest_suite --memory 1536 --timeout 750 -- "$here/fault_guest.sh" "$(readlink -f "$devemu")"
finish
