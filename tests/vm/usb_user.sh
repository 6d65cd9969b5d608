#!/usr/bin/env bash
# devemu's own USB mass-storage function (FunctionFS, engine = "user") in one VM boot: the guest half
# (usb_user_guest.sh) judges it with the guest's own usb-storage, sd_mod, dd, fio's verify and tshark.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
run_guest_suite --memory 1536 --timeout 750 -- "$here/usb_user_guest.sh" "$(readlink -f "$devemu")" "$(readlink -f "$here/../..")"
finish
