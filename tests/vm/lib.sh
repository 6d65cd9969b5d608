# Shared helpers for VM tests: a private state dir per test file, pass/fail counting, a closing summary line.
set -u
devemu=$1
state=$(mktemp -d /tmp/devemu-vmtest.XXXXXX)
export DEVEMU_STATE_DIR=$state
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL - $*"; }
expect_eq() { # name want got
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want [$2], got [$3]"; fi
}
expect_contains() { # name haystack needle
    case "$2" in *"$3"*) ok "$1" ;; *) bad "$1: [$3] not in [$2]" ;; esac
}
qemu_left() { pgrep -f "qemu-system-x86_64.*$state" || true; }
finish() {
    [ -z "$(qemu_left)" ] && ok "no qemu left behind" || bad "qemu still running: $(qemu_left)"
    rm -rf "$state"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
