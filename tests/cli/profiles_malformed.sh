#!/usr/bin/env bash
# Every malformed profile: exit 2, exactly one line on stderr, naming file:line and the problem; nothing on stdout.
set -u
devemu=$1 dir=$2
fails=0 n=0
while read -r file line phrase; do
    case "$file" in ''|'#'*) continue ;; esac
    n=$((n + 1))
    out=$("$devemu" profile check "$dir/$file" 2>/tmp/devemu-bad.$$ >/dev/null); rc=$?
    err=$(cat /tmp/devemu-bad.$$)
    where="$dir/$file:$line:"
    [ "$line" = 0 ] && where="$dir/$file:"
    if [ "$rc" != 2 ]; then echo "FAIL $file: exit $rc, want 2"; fails=$((fails + 1)); continue; fi
    if [ "$(printf '%s\n' "$err" | wc -l)" != 1 ]; then echo "FAIL $file: want one line, got: $err"; fails=$((fails + 1)); continue; fi
    case "$err" in *"$where"*) ;; *) echo "FAIL $file: no '$where' in: $err"; fails=$((fails + 1)); continue ;; esac
    case "$err" in *"$phrase"*) ;; *) echo "FAIL $file: no '$phrase' in: $err"; fails=$((fails + 1)); continue ;; esac
    [ -z "$out" ] || { echo "FAIL $file: printed on stdout"; fails=$((fails + 1)); }
done < "$dir/EXPECT"
# A rule a flag lifts is lifted by the same flag as for up: --insecure accepts an open portal.
for f in 32-open-portal.toml 33-any-portal-no-chap.toml; do
    n=$((n + 1))
    if "$devemu" profile check --insecure "$dir/$f" >/dev/null 2>/tmp/devemu-bad.$$; then :; else
        echo "FAIL $f with --insecure: $(cat /tmp/devemu-bad.$$)"; fails=$((fails + 1)); fi
done
rm -f /tmp/devemu-bad.$$
count=$(ls "$dir"/*.toml | wc -l)
[ "$n" = "$((count + 2))" ] || { echo "FAIL: EXPECT lists $n cases, $count files exist"; fails=$((fails + 1)); }
[ "$n" -ge 20 ] || { echo "FAIL: only $n cases"; fails=$((fails + 1)); }
echo "$((n - fails)) passed, $fails failed"
[ "$fails" = 0 ]
