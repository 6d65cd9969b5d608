# Helpers for the guest halves of VM tests (run inside `devemu vm run --host-root`): counting, and running a
# step that must pass (check) or must be refused (refuse), keeping the output of the last one.
set -u
export DEVEMU_STATE_DIR=/run/devemu-test
passed=0 failed=0
ok()  { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local name=$1; shift; [ $# -gt 0 ] || { bad "$name: no command to check"; return; }; if "$@" >/tmp/check.out 2>&1; then ok "$name"; else bad "$name: $(tail -3 /tmp/check.out | tr '\n' ' ')"; fi; }
refuse() { local name=$1; shift; if "$@" >/tmp/check.out 2>&1; then bad "$name: succeeded"; else ok "$name"; fi; cp /tmp/check.out /tmp/refused.out; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want [$2], got [$3]"; fi; }
