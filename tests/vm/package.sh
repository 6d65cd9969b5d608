#!/usr/bin/env bash
# The Debian package in one VM boot (the host's root as an overlay, so dpkg changes only the guest's copy): dpkg -i,
# the installed devemu finds its guest init, brings up a shipped profile that an independent initiator reaches, takes
# it down; devemu@.service under the host's systemd as PID 1 (--systemd); dpkg -r leaves only the conffile, --purge nothing.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
src=$(readlink -f "$here/../..")
deb=$("$src/tools/package" --from "$(dirname "$(readlink -f "$devemu")")" "$state" 2>"$state/pkg.err")
[ -f "$deb" ] && ok "tools/package built $(basename "$deb")" || bad "tools/package: $(cat "$state/pkg.err")"
run_guest_suite --systemd --memory 2048 --timeout 750 -- "$here/package_guest.sh" "$deb"
finish
