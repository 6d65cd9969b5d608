# bash completion for devemu: commands, each command's options (from its own --help), profile files for up/plan/
# profile check, unit names (devemu ls --names) where a command takes a unit. Self-contained: no helper of the
# bash-completion package is needed, so it also works when sourced by hand.
_devemu_units() {
    devemu "${_devemu_globals[@]}" ls --names 2>/dev/null
}

_devemu_files() { # $1: extension (toml, json) or empty for any file; directories always, to walk into
    local cur=$1 ext=$2 f
    local IFS=$'\n'
    for f in $(compgen -d -- "$cur"); do COMPREPLY+=("$f/"); done
    if [[ -n $ext ]]; then
        for f in $(compgen -f -X "!*.$ext" -- "$cur"); do [[ -d $f ]] || COMPREPLY+=("$f"); done
    else
        for f in $(compgen -f -- "$cur"); do [[ -d $f ]] || COMPREPLY+=("$f"); done
    fi
}

_devemu() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmds="doctor profile vm ls up down plan check gadget capture fault failover bench ceph import export"
    local i cmd="" cmd_at=0
    _devemu_globals=()
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --state-dir|--cache-dir|--kernel|--config) _devemu_globals+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; cmd_at=$i; break ;;
        esac
    done
    case $prev in
        --state-dir|--cache-dir) _devemu_files "$cur" none; COMPREPLY=($(printf '%s\n' "${COMPREPLY[@]}" | grep '/$')); compopt -o nospace 2>/dev/null; return ;;
        --config|--kernel|--svg|-o|--output|--exec|--ceph-local|--mpath-disk) _devemu_files "$cur" ""; compopt -o nospace 2>/dev/null; return ;;
    esac
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--help --version --verbose --quiet --state-dir --cache-dir --kernel --config" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        local sub=()
        [[ $cmd == vm || $cmd == ceph ]] && ((COMP_CWORD > cmd_at + 1)) && sub=("${COMP_WORDS[cmd_at+1]}")
        COMPREPLY=($(compgen -W "$(devemu "$cmd" "${sub[@]}" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9_-]*' | sort -u)" -- "$cur"))
        return
    fi
    case $cmd in
        up|plan) _devemu_files "$cur" toml; compopt -o nospace 2>/dev/null ;;
        profile)
            if ((COMP_CWORD == cmd_at + 1)); then COMPREPLY=($(compgen -W "check" -- "$cur"))
            else _devemu_files "$cur" toml; compopt -o nospace 2>/dev/null; fi ;;
        import) _devemu_files "$cur" json; compopt -o nospace 2>/dev/null ;;
        down|check|capture|fault|failover|export|ls)
            [[ $cmd == ls ]] && return
            COMPREPLY=($(compgen -W "$(_devemu_units)" -- "$cur")) ;;
        vm)
            if ((COMP_CWORD == cmd_at + 1)); then COMPREPLY=($(compgen -W "run exec image" -- "$cur"))
            elif [[ ${COMP_WORDS[cmd_at+1]} == exec ]] && ((COMP_CWORD == cmd_at + 2)); then COMPREPLY=($(compgen -W "$(_devemu_units)" -- "$cur")); fi ;;
        ceph) ((COMP_CWORD == cmd_at + 1)) && COMPREPLY=($(compgen -W "up down status" -- "$cur")) ;;
        gadget)
            if ((COMP_CWORD == cmd_at + 1)); then COMPREPLY=($(compgen -W "eject insert" -- "$cur"))
            else COMPREPLY=($(compgen -W "$(_devemu_units)" -- "$cur")); fi ;;
        bench)
            if [[ $prev == --paths ]]; then
                COMPREPLY=($(compgen -W "all raw fileio iblock user iscsi iscsi-user tgt-rdwr tgt-aio usb usb-user" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "zram: ext4:" -- "$cur")); _devemu_files "$cur" ""; compopt -o nospace 2>/dev/null
            fi ;;
    esac
}
complete -F _devemu devemu
