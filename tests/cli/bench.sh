#!/usr/bin/env bash
# devemu bench natively (io_uring and zram work on this host): results, verify catching an injected corruption,
# refusal of a device with a filesystem, Ctrl-C, and no zram device left behind.
set -u
devemu=$1
passed=0 failed=0
ok()  { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
zrams() { ls /sys/block | grep -c zram; }
base=$(zrams)
dir=$(mktemp -d /tmp/devemu-bench.XXXXXX)
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

out=$("$devemu" bench zram:64M --rw=randread --runtime=1 --time_based --json) && ok "zram randread runs" || bad "zram randread: $out"
iops=$(field "int(d['jobs'][0]['read']['iops'])" <<<"$out")
[ "$iops" -gt 1000 ] && ok "it did I/O ($iops IOPS)" || bad "iops $iops"
p99=$(field "d['jobs'][0]['read']['lat_ns']['percentile']['99.000000']" <<<"$out")
[ "$p99" -gt 0 ] && ok "p99 latency reported ($p99 ns)" || bad "p99 $p99"
[ "$(zrams)" = "$base" ] && ok "the zram device is removed afterwards" || bad "zram left: $(ls /sys/block | grep zram)"

out=$("$devemu" bench "$dir/f" --size=16M --rw=write --verify --json); rc=$?
[ "$rc" = 0 ] && [ "$(field "d['devemu']['verify']['ok']" <<<"$out")" = True ] && ok "verify: write then check a fresh file" || bad "verify write: $rc $out"
"$devemu" bench "$dir/f" --rw=read --verify >/dev/null && ok "verify: a second, read-only pass finds the blocks intact" || bad "verify read pass"
printf 'garbage!' | dd of="$dir/f" bs=1 seek=$((1048576 + 100)) conv=notrunc status=none
out=$("$devemu" bench "$dir/f" --rw=read --verify 2>&1); rc=$?
[ "$rc" = 1 ] && ok "verify: an injected corruption fails the run (exit 1)" || bad "verify: exit $rc"
case "$out" in *"offset 1048576"*) ok "verify: the failure names the offset" ;; *) bad "verify: $out" ;; esac

err=$("$devemu" bench "$dir/f" --rw=sideways 2>&1); rc=$?
[ "$rc" = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && ok "a bad option: one line, exit 2" || bad "bad option: $rc $err"
err=$("$devemu" bench "$dir/absent" --rw=read 2>&1); rc=$?
[ "$rc" = 2 ] && ok "an absent file without --size is refused" || bad "absent: $rc"

# --fill: the target is written in full with random data before the reads, and the result says so.
truncate -s 8M "$dir/sparse"
out=$("$devemu" bench "$dir/sparse" --rw=randread --runtime=1 --time_based --fill --json 2>/dev/null); rc=$?
[ "$rc" = 0 ] && python3 -c "import json,sys; assert json.loads(sys.argv[1])['devemu']['filled'] is True" "$out" && ok "--fill runs and says filled" || bad "--fill: $rc $out"
python3 - "$dir/sparse" <<'PY' && ok "--fill left random data in every MiB (no zeros, no two MiB alike, incompressible)" || bad "--fill: the file is not random data"
import sys, zlib
d = open(sys.argv[1], 'rb').read()
mib = [d[i:i + 1048576] for i in range(0, len(d), 1048576)]
assert len(d) == 8 << 20 and d.count(0) < len(d) // 100 and len(set(mib)) == len(mib) and len(zlib.compress(d[:1 << 20])) > 1000000
PY
[ "$(du -k "$dir/sparse" | cut -f1)" -ge 8000 ] && ok "--fill allocated the sparse file's blocks" || bad "still sparse: $(du -k "$dir/sparse")"

truncate -s 16M "$dir/disk"
lo=$(losetup -f --show "$dir/disk")
mkfs.ext4 -q -F "$lo"
err=$("$devemu" bench "$lo" --rw=randwrite --runtime=1 --time_based 2>&1); rc=$?
[ "$rc" = 2 ] && ok "writing to a device with ext4 is refused" || bad "refusal: $rc $err"
case "$err" in *ext4*--force*) ok "the refusal says what and how" ;; *) bad "refusal text: $err" ;; esac
err=$("$devemu" bench "$lo" --rw=randread --fill --runtime=1 --time_based 2>&1); rc=$?
[ "$rc" = 2 ] && ok "--fill on a device with ext4 is refused (it writes the whole device)" || bad "--fill refusal: $rc $err"
"$devemu" bench "$lo" --rw=randread --runtime=1 --time_based >/dev/null && ok "reading it is fine" || bad "read of ext4 device"
blkid "$lo" | grep -q ext4 && ok "the filesystem is intact" || bad "filesystem damaged"
losetup -d "$lo"

"$devemu" bench zram:64M --rw=randread --runtime=30 --time_based > "$dir/int" 2>&1 &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid; rc=$?
[ "$rc" = 0 ] && grep -q "interrupted: partial result" "$dir/int" && ok "Ctrl-C stops cleanly with a partial result" || bad "Ctrl-C: $rc $(cat "$dir/int")"
[ "$(zrams)" = "$base" ] && ok "Ctrl-C removes the zram device" || bad "zram left after Ctrl-C"

# zram takes no non-blocking I/O (io_uring hands every I/O to its workers). --async=on (with nothing registered) lets
# several workers run at once, --async=off leaves them to one; --async=auto probes both and takes the faster.
# Counted, not assumed: the io_uring worker threads (iou-wrk) seen in the process during each run.
workers() { # bench args...: prints the JSON's async/target_nowait/fixedbufs/registerfiles and the most iou-wrk seen
    "$devemu" bench "$@" --rw=randread --runtime=2 --time_based --json > "$dir/w.json" 2>/dev/null &
    local pid=$! most=0 n
    while kill -0 $pid 2>/dev/null; do
        n=$(cat /proc/$pid/task/*/comm 2>/dev/null | grep -c '^iou-wrk')
        [ "$n" -gt "$most" ] && most=$n
        sleep 0.1
    done
    wait $pid || { echo "failed"; return; }
    echo "$(field "d['devemu']['async'], d['devemu']['target_nowait'], d['devemu']['fixedbufs'], d['devemu']['registerfiles']" < "$dir/w.json") $most"
}
w=$(workers zram:64M --async=on --fixedbufs=0 --registerfiles=0)
case "$w" in "True False False False "*) ok "zram, --async=on: async, nothing registered, no nowait ($w)" ;; *) bad "zram async=on: $w" ;; esac
on=${w##* }
[ "$on" -ge 2 ] && ok "zram, --async=on: several io_uring workers ran at once ($on)" || bad "zram async=on: $on worker(s)"
w=$(workers zram:64M --async=off)
case "$w" in "False False True True "*) ok "--async=off: plain ring, registered ($w)" ;; *) bad "async=off: $w" ;; esac
# (a second worker appears now and then, when the first blocks for a moment)
[ "${w##* }" -lt "$on" ] && ok "--async=off: fewer io_uring workers (${w##* } against $on)" || bad "async=off: ${w##* } workers, on $on"
w=$(workers zram:64M --fill)
python3 - "$dir/w.json" <<'PY' && ok "--async=auto on zram: probed both rings and ran the faster ($w)" || bad "auto: $w $(cat "$dir/w.json")"
import json, sys
d = json.load(open(sys.argv[1]))['devemu']
p = d['async_probe']
assert p['plain_ios'] > 0 and p['async_ios'] > 0, p
assert d['async'] == (p['async_ios'] > p['plain_ios']) and d['fixedbufs'] == (not d['async']), d
PY
head -c 8M /dev/urandom > "$dir/nw"
w=$(workers "$dir/nw" --direct=0)
case "$w" in "False True True True "*) ok "a cached file takes non-blocking I/O: no probe, no async ($w)" ;; *) bad "file: $w" ;; esac
python3 -c "import json,sys; assert 'async_probe' not in json.load(open(sys.argv[1]))['devemu']" "$dir/w.json" && ok "no probe on a file that takes non-blocking I/O" || bad "probe on a file"
err=$("$devemu" bench zram:64M --async=sometimes 2>&1); rc=$?
[ "$rc" = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && ok "--async=sometimes: one line, exit 2" || bad "async bad value: $rc $err"
[ "$(zrams)" = "$base" ] && ok "no zram left after the async runs" || bad "zram left after async runs"

out=$("$devemu" bench zram:64M --rw=randread --runtime=1 --time_based --compare-fio --repeat=1 --json) && ok "--compare-fio runs fio on the same target" || bad "compare: $out"
r=$(field "d['ratio']['iops']" <<<"$out")
python3 -c "import sys; sys.exit(0 if $r > 0 else 1)" && ok "--compare-fio reports an IOPS ratio ($r)" || bad "ratio $r"
c=$(field "d['devemu']['cpu_us_per_io'] > 0 and d['fio']['cpu_us_per_io'] > 0 and 0 < d['fio']['startup_cpu_seconds'] < 5" <<<"$out")
[ "$c" = True ] && ok "--compare-fio: CPU per I/O on both sides, fio's start-up measured and taken off" || bad "compare CPU: $out"
[ "$(zrams)" = "$base" ] && ok "no zram left after the comparison" || bad "zram left after compare"

out=$("$devemu" bench zram:64M --rw=randread --sweep bs=4k,16k iodepth=1,8 --runtime=0.5 --svg "$dir/s.svg" 2>/dev/null); rc=$?
[ "$rc" = 0 ] && [ "$(printf '%s\n' "$out" | grep -c 'KiB')" = 4 ] && ok "--sweep runs the 2x2 matrix" || bad "sweep: $rc $out"
[ "$(grep -c '<polyline' "$dir/s.svg")" = 4 ] && ok "--svg plots a line per block size in both panels" || bad "svg: $(head -c 300 "$dir/s.svg")"
[ "$(zrams)" = "$base" ] && ok "no zram left after the sweep" || bad "zram left after sweep"

# --paths: what is refused before anything is made (one line, exit 2, no VM booted, nothing left)
one_line_2() { # name cmd...: exit 2 with one line on stderr
    local name=$1 err rc; shift
    err=$("$@" 2>&1 >/dev/null); rc=$?
    [ "$rc" = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && ok "$name: one line, exit 2 ($err)" || bad "$name: exit $rc: $err"
}
one_line_2 "--paths with an unknown path" "$devemu" bench --paths raw,floppy zram:64M
one_line_2 "--paths with a malformed --case" "$devemu" bench --paths raw zram:64M --case randread:4k
one_line_2 "--paths with a case of no such pattern" "$devemu" bench --paths raw zram:64M --case sideways:4k:8
one_line_2 "--paths without a backing" "$devemu" bench --paths raw
one_line_2 "--paths in a VM with a host file as backing" "$devemu" bench --paths fileio "$dir/f"
one_line_2 "--paths iblock on a file" "$devemu" bench --paths raw,iblock "$dir/f" --in-vm
[ -z "$(pgrep -f "qemu-system-x86_64.*devemu" || true)" ] && ok "no VM was started for refused input" || bad "a qemu is running"
# raw alone needs nothing of the kernel: it runs here, the same table and JSON as every path.
out=$("$devemu" bench --paths raw zram:64M --case randread:4k:8 --runtime=0.5 --repeat=2 --json 2>/dev/null); rc=$?
[ "$rc" = 0 ] && [ "$(field "d['cases'][0]['paths'][0]['total_ios'] > 0 and len(d['cases'][0]['paths'][0]['runs_iops']) == 2" <<<"$out")" = True ] &&
    ok "--paths raw runs on this host: 2 rounds, I/O counted" || bad "--paths raw: $rc $out"
[ "$(zrams)" = "$base" ] && ok "no zram left after --paths raw" || bad "zram left after --paths raw"

rm -rf "$dir"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
