#!/usr/bin/env bash
# LIO in one VM boot: the guest half (lio_guest.sh) runs the real devemu with the host's libiscsi and sg3-utils.
. "$(dirname "$0")/lib.sh"
out=$("$devemu" -q vm run --host-root --modules loop --timeout 900 --memory 1536 -- "$(dirname "$(readlink -f "$0")")/lio_guest.sh" "$(readlink -f "$devemu")" 2>&1); rc=$?
echo "$out"
summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
[ -n "$summary" ] && ok "guest suite ran: $summary" || bad "guest suite did not finish (exit $rc)"
expect_eq "guest suite exit" 0 "$rc"
finish
