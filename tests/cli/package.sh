#!/usr/bin/env bash
# tools/package (with the binaries under test): the .deb holds what a user expects, with the right metadata; its
# man page renders and has a section per command made from that command's --help; its bash completion completes
# commands, options, profile files and unit names.
set -u
devemu=$(readlink -f "$1") src=$(readlink -f "$2")
passed=0 failed=0
ok()  { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want [$2], got [$3]"; fi; }
dir=$(mktemp -d /tmp/devemu-pkg-test.XXXXXX)
trap 'rm -rf "$dir"' EXIT

deb=$("$src/tools/package" --from "$(dirname "$devemu")" "$dir" 2>"$dir/err"); rc=$?
expect_eq "tools/package exits 0" 0 "$rc"
[ -f "$deb" ] && ok "it built $(basename "$deb")" || { bad "no .deb: $(cat "$dir/err")"; echo "$passed passed, $failed failed"; exit 1; }
files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/devemu /usr/lib/devemu/devemu-init /usr/lib/devemu/ffs-loopback /usr/lib/devemu/devemu-udc /usr/lib/devemu/fetch-kernel \
         /usr/share/devemu/targets/zram-iscsi.toml /usr/share/devemu/gadgets/msc-user.toml /usr/share/man/man1/devemu.1.gz \
         /usr/share/bash-completion/completions/devemu /etc/devemu.conf /lib/systemd/system/devemu@.service \
         /lib/systemd/system/devemu-udc@.service /lib/udev/rules.d/70-devemu.rules /usr/share/doc/devemu/copyright; do
    grep -qx "$f" <<<"$files" && ok "ships $f" || bad "missing $f"
done
expect_eq "every shipped profile is in it" "$(ls "$src"/targets/*.toml "$src"/gadgets/*.toml | wc -l)" "$(grep -c '^/usr/share/devemu/.*\.toml$' <<<"$files")"
expect_eq "/etc/devemu.conf is a conffile" /etc/devemu.conf "$(dpkg-deb -I "$deb" conffiles)"
deps=$(dpkg-deb -f "$deb" Depends)
for d in libc6 libusb-1.0-0 liburing2 libkmod2 libboost-program-options; do
    grep -q "$d" <<<"$deps" && ok "Depends names $d (from the binary's libraries)" || bad "Depends lacks $d: $deps"
done
grep -q qemu-system-x86 <<<"$(dpkg-deb -f "$deb" Recommends)" && ok "the VM layer's qemu is a Recommends" || bad "Recommends: $(dpkg-deb -f "$deb" Recommends)"
lint=$(lintian "$deb" 2>&1 | grep -E '^(E|W): ')
expect_eq "lintian: no error or warning (the one override is explained in tools/debian/lintian-overrides)" "" "$lint"
expect_eq "the version is the binary's" "$("$devemu" --version | awk '{print $2}')" "$(dpkg-deb -f "$deb" Version)"

dpkg-deb -x "$deb" "$dir/root"
man=$(MANWIDTH=120 man -l "$dir/root/usr/share/man/man1/devemu.1.gz" 2>"$dir/man.err"); rc=$?
expect_eq "man -l renders the page" 0 "$rc"
[ -z "$(grep -v '^$' "$dir/man.err")" ] && ok "man reports no warnings" || bad "man warnings: $(head -3 "$dir/man.err")"
for c in doctor up down bench check fault failover capture ceph import export; do
    first=$("$devemu" "$c" --help | head -1 | sed 's/ *$//')
    grep -qF -- "$first" <<<"$man" && ok "man: the $c section is its --help (\"${first:0:40}…\")" || bad "man: no \"$first\""
done
grep -qF -- "--paths LIST" <<<"$man" && ok "man: bench --paths is documented" || bad "man lacks bench --paths"

# Completion, in a bash with the packaged script loaded and the packaged binary first on PATH.
mkdir -p "$dir/state/units" "$dir/cwd/targets" "$dir/cwd/other"
echo '{"kind": "target", "name": "zram0"}' > "$dir/state/units/zram0.json"
echo '{"kind": "gadget", "name": "msc0"}' > "$dir/state/units/msc0.json"
touch "$dir/cwd/targets/zram-iscsi.toml" "$dir/cwd/targets/file-iscsi.toml" "$dir/cwd/targets/notes.txt" "$dir/cwd/a.toml"
comp() { # words… -> what TAB offers, space-separated
    (cd "$dir/cwd" && PATH="$dir/root/usr/bin:$PATH" DEVEMU_STATE_DIR="$dir/state" bash -c '
        source "$0"; COMP_WORDS=("${@}"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _devemu; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' \
        "$dir/root/usr/share/bash-completion/completions/devemu" "$@")
}
expect_eq "complete -p: devemu is completed by _devemu" "complete -F _devemu devemu" \
    "$(bash -c 'source "$0"; complete -p devemu' "$dir/root/usr/share/bash-completion/completions/devemu")"
expect_eq "devemu u<TAB>: the command" "up " "$(comp devemu u)"
expect_eq "devemu up <TAB>: profile files and directories, not other files" "a.toml other/ targets/ " "$(comp devemu up '')"
expect_eq "devemu up targets/<TAB>: the profiles in it" "targets/file-iscsi.toml targets/zram-iscsi.toml " "$(comp devemu up targets/)"
expect_eq "devemu down <TAB>: unit names from devemu ls --names" "msc0 zram0 " "$(comp devemu down '')"
expect_eq "devemu up --wa<TAB>: the command's options, from its --help" "--wait-address " "$(comp devemu up --wa)"
expect_eq "devemu bench --paths <TAB>: the path names" "all " "$(comp devemu bench --paths al)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
