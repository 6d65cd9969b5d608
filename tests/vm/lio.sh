#!/usr/bin/env bash
# LIO in one VM boot: the guest half (lio_guest.sh) runs the real devemu with the host's libiscsi and sg3-utils.
. "$(dirname "$0")/lib.sh"
run_guest_suite --modules loop --timeout 900 --memory 1536 -- "$(dirname "$(readlink -f "$0")")/lio_guest.sh" "$(readlink -f "$devemu")"
finish
