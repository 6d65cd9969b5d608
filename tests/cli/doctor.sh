#!/usr/bin/env bash
# doctor tells the truth about this kernel: each native path matches what /proc and /sys say.
set -u
devemu=$1
fails=0
json=$("$devemu" doctor --json) || { echo "FAIL doctor --json exited $?"; exit 1; }
check() { # name expected actual
    if [ "$2" != "$3" ]; then echo "FAIL $1: doctor says $3, the system says $2"; fails=$((fails + 1)); fi
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(str(d$1).lower())" <<<"$json"; }
lio=false; grep -qw configfs /proc/filesystems && [ -d /sys/module/target_core_mod -o -d /lib/modules/$(uname -r)/kernel/drivers/target ] && lio=true
check native.lio "$lio" "$(field "['native']['lio']")"
zram=false; [ -d /sys/class/zram-control ] && zram=true
check native.zram "$zram" "$(field "['native']['zram']")"
qemu=false; command -v qemu-system-x86_64 >/dev/null && qemu=true
check qemu "$qemu" "$(python3 -c "import json,sys; print(str([c['ok'] for c in json.load(sys.stdin)['checks'] if c['name']=='qemu-system-x86_64'][0]).lower())" <<<"$json")"
libiscsi=false; ldconfig -p | grep -q 'libiscsi\.so\.7 ' && libiscsi=true
check libiscsi "$libiscsi" "$(python3 -c "import json,sys; print(str([c['ok'] for c in json.load(sys.stdin)['checks'] if c['name']=='libiscsi (devemu check)'][0]).lower())" <<<"$json")"
# Human output says how each kernel path is reached.
"$devemu" doctor | grep -q "^LIO targets: \(native\|need --vm\)" || { echo "FAIL summary line"; fails=$((fails + 1)); }
echo "$((4 - fails)) passed, $fails failed"
[ "$fails" = 0 ]
