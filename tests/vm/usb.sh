#!/usr/bin/env bash
# USB gadgets in one VM boot: the guest half (usb_guest.sh) runs the real devemu against dummy_hcd, with the
# guest's own usb-storage, sd_mod and sg3-utils as the independent host side.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
run_guest_suite --timeout 750 -- "$here/usb_guest.sh" "$(readlink -f "$devemu")" "$(readlink -f "$here/../..")"
finish
