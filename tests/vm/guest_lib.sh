# Helpers for the guest halves of VM tests (run inside `devemu vm run --host-root`): counting, and running a
# step that must pass (check) or must be refused (refuse), keeping the output of the last one.
set -u
export DEVEMU_STATE_DIR=/run/devemu-test
passed=0 failed=0
ok()  { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
# A step that took 30 s or more says so: the host sees the guest's output only when the VM ends, so a suite that
# runs into its timeout is read from these lines.
step_time() { local t=$((SECONDS - $1)); [ "$t" -ge 30 ] && echo " (took $t s)"; return 0; }
check() { local name=$1 t0=$SECONDS; shift; [ $# -gt 0 ] || { bad "$name: no command to check"; return; }; if "$@" >/tmp/check.out 2>&1; then ok "$name$(step_time $t0)"; else bad "$name$(step_time $t0): $(tail -3 /tmp/check.out | tr '\n' ' ')"; fi; }
refuse() { local name=$1 t0=$SECONDS; shift; if "$@" >/tmp/check.out 2>&1; then bad "$name$(step_time $t0): succeeded"; else ok "$name$(step_time $t0)"; fi; cp /tmp/check.out /tmp/refused.out; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want [$2], got [$3]"; fi; }
