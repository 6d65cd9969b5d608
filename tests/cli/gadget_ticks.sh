#!/usr/bin/env bash
# gadget-ticks (tools/trace-gadget's reader) on a made-up trace of two 4k reads, in ftrace's own line format:
# its counts and times must come out as worked by hand; no trace at all is exit 2.
set -u
bin=$1
fail() { echo "FAIL: $*"; exit 1; }
trace=$(cat <<'TXT'
# tracer: nop
          <idle>-0       [001] ..s1.     1.000000: hrtimer_expire_entry: hrtimer=000000000fad8f77 function=dummy_timer [dummy_hcd] now=1
          <idle>-0       [001] d.s1.     1.000010: usb_gadget_giveback_request: ep2out-bulk: req 00000000be2d4589 length 31/1024 sgs 0/0 stream 0 zsI status 0 --> 0
          <idle>-0       [001] d.h1.     1.000020: hrtimer_expire_entry: hrtimer=00000000ff20952e function=tick_sched_timer now=2
          <idle>-0       [001] dNs1.     1.000070: sched_wakeup: comm=devemu pid=200 prio=120 target_cpu=000
          devemu-200     [000] d..1.     1.000210: usb_ep_queue: ep1in-bulk: req 000000009aa39b30 length 0/4109 sgs 0/0 stream 0 zsI status -115 --> 0
          <idle>-0       [001] ..s1.     1.000300: hrtimer_expire_entry: hrtimer=000000000fad8f77 function=dummy_timer [dummy_hcd] now=3
          <idle>-0       [001] ..s1.     1.000600: hrtimer_expire_entry: hrtimer=000000000fad8f77 function=dummy_timer [dummy_hcd] now=4
          <idle>-0       [001] d.s1.     1.000610: usb_gadget_giveback_request: ep1in-bulk: req 000000009aa39b30 length 4109/4109 sgs 0/0 stream 0 zsI status 0 --> 0
          devemu-200     [000] d..1.     1.000700: usb_ep_queue: ep2out-bulk: req 00000000be2d4589 length 0/1024 sgs 0/0 stream 0 zsI status -115 --> 0
          <idle>-0       [001] ..s1.     1.001000: hrtimer_expire_entry: hrtimer=000000000fad8f77 function=dummy_timer [dummy_hcd] now=5
          <idle>-0       [001] d.s1.     1.001005: usb_gadget_giveback_request: ep2out-bulk: req 00000000be2d4589 length 31/1024 sgs 0/0 stream 0 zsI status 0 --> 0
          <idle>-0       [001] dNs1.     1.001045: sched_wakeup: comm=devemu pid=200 prio=120 target_cpu=000
    kworker/0:1-44       [000] d..1.     1.001050: usb_ep_queue: ep2out-bulk: req 00000000aaaaaaaa length 0/512 sgs 0/0 stream 0 zsI status -115 --> 0
          devemu-200     [000] d..1.     1.001105: usb_ep_queue: ep1in-bulk: req 000000009aa39b30 length 0/4109 sgs 0/0 stream 0 zsI status -115 --> 0
          <idle>-0       [001] ..s1.     1.001200: hrtimer_expire_entry: hrtimer=000000000fad8f77 function=dummy_timer [dummy_hcd] now=6
          <idle>-0       [001] ..s1.     1.001400: hrtimer_expire_entry: hrtimer=000000000fad8f77 function=dummy_timer [dummy_hcd] now=7
TXT
)
out=$(printf '%s\n' "$trace" | "$bin" usb-user) || fail "exit $? on a good trace"
echo "$out"
# 2 CBWs and 6 scheduler runs over 1.4 ms: 1429 commands/s, 3.00 runs each, 4286 runs/s; replies 200 and 100 µs
# after their CBWs (p50 and p90 of two: the larger), wake-ups 60 and 40.
read -r label cmds ticks r50 _ r90 w50 _ w90 tps <<<"$out"
[ "$label" = usb-user ] || fail "label '$label'"
[ "$cmds" = 1429 ] || fail "cmds/s $cmds, not 1429"
[ "$ticks" = 3.00 ] || fail "ticks/cmd $ticks, not 3.00"
[ "$r50/$r90" = 200/200 ] || fail "reply $r50/$r90, not 200/200"
[ "$w50/$w90" = 60/60 ] || fail "wake $w50/$w90, not 60/60"
[ "$tps" = 4286 ] || fail "ticks/s $tps, not 4286"
printf '# tracer: nop\n' | "$bin" x > /dev/null 2>&1
[ $? = 2 ] || fail "an empty trace is not exit 2"
echo "ok"
