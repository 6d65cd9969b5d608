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
one_line() { [ "$(printf '%s\n' "$1" | grep -c .)" = 1 ]; }
# Prints a failed command's stderr (a file) and, when it names a VM console devemu kept, that console's end.
show_failure() {
    cat "$1"
    local kept
    kept=$(grep -o 'kept in [^ )]*' "$1" | head -1 | cut -c9-)
    [ -n "$kept" ] && [ -f "$kept" ] && { echo "--- the end of $kept:"; tail -40 "$kept"; }
    return 0
}
# Boots one VM (`vm run --host-root` plus the options given before --) to run a guest half (the script after --,
# with its arguments); prints its output and judges it by its closing "N passed, M failed" line and exit status.
# Its --timeout stays well under the ctest TIMEOUT: a guest that hangs is then ended by devemu, which prints what
# the guest printed so far and the console's last lines, where ctest's kill would print nothing.
run_guest_suite() {
    local opts=() out rc summary
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    out=$("$devemu" -q vm run --host-root "${opts[@]}" -- "$@" 2>&1); rc=$?
    echo "$out"
    summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
    [ -n "$summary" ] && ok "guest suite ran: $summary" || bad "guest suite did not finish (exit $rc)"
    expect_eq "guest suite exit" 0 "$rc"
}
finish() {
    [ -z "$(qemu_left)" ] && ok "no qemu left behind" || bad "qemu still running: $(qemu_left)"
    rm -rf "$state"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
