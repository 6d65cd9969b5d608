#!/usr/bin/env bash
# The io_uring TCMU handler in one VM boot: the guest half (tcmu_guest.sh) runs the real devemu behind tcm_loop and
# iSCSI, with fio, sg3-utils and libiscsi's iscsi-test-cu as independent judges, and kills the handler mid-run.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
run_guest_suite --memory 1536 --timeout 1200 -- "$here/tcmu_guest.sh" "$(readlink -f "$devemu")"
finish
