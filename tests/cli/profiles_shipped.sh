#!/usr/bin/env bash
# Every shipped profile validates and starts with a comment header saying what it gives and how to check it.
set -u
devemu=$1 src=$2
fails=0 n=0
for f in "$src"/targets/*.toml "$src"/gadgets/*.toml; do
    n=$((n + 1))
    if ! "$devemu" profile check "$f" >/dev/null; then echo "FAIL $f does not validate"; fails=$((fails + 1)); fi
    head -1 "$f" | grep -q '^# ' || { echo "FAIL $f has no comment header"; fails=$((fails + 1)); }
    grep -q '^# Check it:' "$f" || { echo "FAIL $f does not say how to check it"; fails=$((fails + 1)); }
done
for want in targets/zram-iscsi.toml targets/file-iscsi.toml targets/loopback-local.toml gadgets/msc-file.toml gadgets/ffs-app.toml; do
    [ -f "$src/$want" ] || { echo "FAIL $want is missing"; fails=$((fails + 1)); }
done
"$devemu" profile check --json "$src"/targets/zram-iscsi.toml | grep -q '"ok": true' || { echo "FAIL --json"; fails=$((fails + 1)); }
# plan changes nothing, also with --vm (it used to bring the VM up): exit 2, one line, no qemu, no unit.
n=$((n + 1))
sd=$(mktemp -d)
err=$("$devemu" --state-dir "$sd" plan --vm "$src/targets/zram-iscsi.toml" 2>&1 >/dev/null); rc=$?
if [ "$rc" != 2 ] || [ "$(printf '%s\n' "$err" | wc -l)" != 1 ] || [ -n "$(pgrep -f "qemu-system-x86_64.*$sd" || true)" ] \
    || [ -n "$(ls -A "$sd/units" 2>/dev/null)" ]; then
    echo "FAIL plan --vm: exit $rc, $err"; fails=$((fails + 1)); pkill -f "qemu-system-x86_64.*$sd"
fi
# --wait-address is for a portal of this machine: with --vm it was taken and ignored.
err=$("$devemu" --state-dir "$sd" up --vm --wait-address 5 "$src/targets/zram-iscsi.toml" 2>&1 >/dev/null); rc=$?
if [ "$rc" != 2 ] || [ "$(printf '%s\n' "$err" | wc -l)" != 1 ] || [ -n "$(pgrep -f "qemu-system-x86_64.*$sd" || true)" ] \
    || [ -n "$(ls -A "$sd/units" 2>/dev/null)" ]; then
    echo "FAIL up --vm --wait-address: exit $rc, $err"; fails=$((fails + 1)); pkill -f "qemu-system-x86_64.*$sd"
fi
rm -rf "$sd"
echo "$((n - fails)) passed, $fails failed"
[ "$fails" = 0 ]
