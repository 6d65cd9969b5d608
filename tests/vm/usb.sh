#!/usr/bin/env bash
# USB gadgets in one VM boot: the guest half (usb_guest.sh) runs the real devemu against dummy_hcd, with the
# guest's own usb-storage, sd_mod and sg3-utils as the independent host side.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
out=$("$devemu" -q vm run --host-root --timeout 900 -- "$here/usb_guest.sh" "$(readlink -f "$devemu")" "$(readlink -f "$here/../..")" 2>&1); rc=$?
echo "$out"
summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
[ -n "$summary" ] && ok "guest suite ran: $summary" || bad "guest suite did not finish (exit $rc)"
expect_eq "guest suite exit" 0 "$rc"
finish
