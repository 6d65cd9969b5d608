#!/usr/bin/env bash
# The io_uring TCMU handler in one VM boot: the guest half (tcmu_guest.sh) runs the real devemu behind tcm_loop and
# iSCSI, with fio, sg3-utils and libiscsi's iscsi-test-cu as independent judges, and kills the handler mid-run.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
out=$("$devemu" -q vm run --host-root --memory 1536 --timeout 1200 -- "$here/tcmu_guest.sh" "$(readlink -f "$devemu")" 2>&1); rc=$?
echo "$out"
summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
[ -n "$summary" ] && ok "guest suite ran: $summary" || bad "guest suite did not finish (exit $rc)"
expect_eq "guest suite exit" 0 "$rc"
finish
