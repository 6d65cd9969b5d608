#!/usr/bin/env bash
# devemu bench --paths. On this host (no LIO, no dummy_hcd) the command boots a VM of the distribution kernel by
# itself, as it does for a user: every path moves data and passes verify, the JSON and the SVG land on the host.
# Then one guest suite (bench_paths_guest.sh) checks that a run -- finished or stopped with Ctrl-C -- leaves nothing.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$(readlink -f "$0")")
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

out=$("$devemu" -q bench --paths all zram:128M --case randread:4k:8 --case write:64k:4 --runtime 1 --repeat 1 --verify --json \
      --svg "$state/paths.svg" 2>"$state/err"); rc=$?
expect_eq "bench --paths all (in the VM it booted) exits 0" 0 "$rc"
[ "$rc" = 0 ] || show_failure "$state/err"
expect_eq "ten paths" "raw fileio iblock user iscsi iscsi-user tgt-rdwr tgt-aio usb usb-user" \
    "$(field "' '.join(p['path'] for p in d['paths'])" <<<"$out" 2>/dev/null)"
expect_eq "every path has its own disk" 10 "$(field "len(set(p['device'] for p in d['paths']))" <<<"$out" 2>/dev/null)"
for c in 0 1; do
    name=$(field "d['cases'][$c]['case']" <<<"$out" 2>/dev/null)
    expect_eq "$name: every path moved data (I/Os counted)" "" \
        "$(field "' '.join(p['path'] for p in d['cases'][$c]['paths'] if not p['total_ios'] > 0 or not p['iops'] > 0)" <<<"$out" 2>/dev/null)"
    expect_eq "$name: ratios to raw" "" "$(field "' '.join(p['path'] for p in d['cases'][$c]['paths'] if not p.get('ratio', 0) > 0)" <<<"$out" 2>/dev/null)"
done
expect_eq "verify passed on every path" "raw fileio iblock user iscsi iscsi-user tgt-rdwr tgt-aio usb usb-user" \
    "$(field "' '.join(p['path'] for p in d['paths'] if d['verify'][p['path']]['ok'] and d['verify'][p['path']]['blocks'] > 0)" <<<"$out" 2>/dev/null)"
expect_eq "the SVG is on the host: a bar per path and case" 20 "$(grep -c '<title>' "$state/paths.svg" 2>/dev/null)"
expect_eq "the zram backing was filled (data really there)" True "$(field "d['filled']" <<<"$out" 2>/dev/null)"

run_guest_suite --memory 1536 --timeout 750 -- "$here/bench_paths_guest.sh" "$(readlink -f "$devemu")"
finish
