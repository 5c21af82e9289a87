#!/usr/bin/env bash
# Installs, removes or lists what packaging/manifest names: the one list behind
# `make install`, `make uninstall` and `make deb`.
#
#   install-files.sh install   [DESTDIR]           make install (keeps an existing conffile)
#   install-files.sh uninstall [DESTDIR]           make uninstall
#   install-files.sh stage     ROOT DBGROOT        make deb: the package tree, and the split
#                                                  debug symbols under DBGROOT/usr/lib/debug
#   install-files.sh list | conffiles | dirs       resolved destinations, one per line
#
# Libraries are installed stripped (as dh_strip does); `stage` keeps their debug symbols
# in DBGROOT/usr/lib/debug/.build-id/xx/yyyy.debug. Directories are created 0755 root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

MANIFEST=packaging/manifest
TMPFILES=/usr/lib/tmpfiles.d/tpmkey.conf
STORE=/var/lib/tpmkey

die() {
    echo "install-files.sh: ERROR: $*" >&2
    exit 1
}

resolve_dirs() {
    if [ -z "${OPENSSL_MODULESDIR:-}" ]; then
        OPENSSL_MODULESDIR=$(openssl version -m 2>/dev/null | sed -n 's/^MODULESDIR: "\(.*\)"/\1/p') || true
        [ -n "$OPENSSL_MODULESDIR" ] || die "'openssl version -m' printed no MODULESDIR (is OpenSSL 3 installed? make deps)"
    fi
    if [ -z "${P11_MODULE_PATH:-}" ] || [ -z "${P11_MODULE_CONFIGS:-}" ]; then
        P11_MODULE_PATH=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null) || true
        P11_MODULE_CONFIGS=$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null) || true
        [ -n "$P11_MODULE_PATH" ] && [ -n "$P11_MODULE_CONFIGS" ] \
            || die "pkg-config knows no p11-kit-1 module directories (libp11-kit-dev; make deps)"
    fi
}

# Prints "kind source destination mode flags" per manifest entry, variables expanded.
entries() {
    local kind src dest mode flags
    while read -r kind src dest mode flags; do
        case "$kind" in '' | '#'*) continue ;; esac
        [ -n "$flags" ] || die "$MANIFEST: incomplete line: $kind $src $dest $mode"
        dest=${dest//'${OPENSSL_MODULESDIR}'/$OPENSSL_MODULESDIR}
        dest=${dest//'${P11_MODULE_PATH}'/$P11_MODULE_PATH}
        dest=${dest//'${P11_MODULE_CONFIGS}'/$P11_MODULE_CONFIGS}
        case "$dest" in /*) ;; *) die "$MANIFEST: destination not absolute: $dest" ;; esac
        case "$dest" in *'${'*) die "$MANIFEST: unknown variable in $dest" ;; esac
        echo "$kind $src $dest $mode $flags"
    done <"$MANIFEST"
}

# The p11-kit module file must name the library where the manifest puts it.
check_module_file() {
    local module dest
    module=$(sed -n 's/^module:[[:space:]]*//p' conf/tpmkey.module)
    dest=$(awk '$2 ~ /libtpmkey_pkcs11\.so$/ {print $3}' <<<"$ENTRIES")
    case "$module" in
        /*) [ "$module" = "$dest" ] ;;
        *) [ "$P11_MODULE_PATH/$module" = "$dest" ] ;;
    esac || die "conf/tpmkey.module says 'module: $module' but the manifest installs the module as $dest"
}

# Installs $src as $dest with $mode, processed as $flags says. DBGROOT set: split debug.
put() {
    local src=$1 dest=$2 mode=$3 flags=$4 tmp
    [ -f "$src" ] || die "$src does not exist (make build first)"
    install -d -m 0755 "$(dirname "$dest")"
    tmp=$(mktemp)
    case "$flags" in
        strip)
            if [ -n "${DBGROOT:-}" ]; then
                local id
                id=$(readelf -n "$src" | sed -n 's/^[[:space:]]*Build ID: \([0-9a-f]*\)$/\1/p')
                [ -n "$id" ] || die "$src has no GNU build id"
                install -d -m 0755 "$DBGROOT/usr/lib/debug/.build-id/${id:0:2}"
                objcopy --only-keep-debug --compress-debug-sections "$src" \
                    "$DBGROOT/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
                chmod 0644 "$DBGROOT/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
            fi
            strip --remove-section=.comment --remove-section=.note --strip-unneeded \
                -o "$tmp" "$src"
            ;;
        gzip) gzip -9nc "$src" >"$tmp" ;;
        - | conffile) cp "$src" "$tmp" ;;
        *) die "$MANIFEST: unknown flag '$flags' for $src" ;;
    esac
    install -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
}

do_install() {
    local destdir=$1 stage=$2 kind src dest mode flags
    check_module_file
    while read -r kind src dest mode flags; do
        if [ "$kind" = dir ]; then
            install -d -m "$mode" "$destdir$dest"
        elif [ "$flags" = conffile ] && [ "$stage" = no ] && [ -e "$destdir$dest" ]; then
            if cmp -s "$src" "$destdir$dest"; then
                echo "  $dest (unchanged)"
            else
                echo "  $dest kept (it differs from $src; compare them yourself)"
            fi
        else
            put "$src" "$destdir$dest" "$mode" "$flags"
            echo "  $dest"
        fi
    done <<<"$ENTRIES"
    # The store directory (tmpfiles.d entry), as the package's postinst creates it.
    if [ "$stage" = no ] && [ -z "$destdir" ]; then
        if command -v systemd-tmpfiles >/dev/null 2>&1; then
            systemd-tmpfiles --create "$TMPFILES"
            echo "  $STORE (systemd-tmpfiles --create $TMPFILES)"
        else
            echo "  $STORE not created: no systemd-tmpfiles (the core creates it 0700 on first use)"
        fi
    fi
}

do_uninstall() {
    local destdir=$1 kind src dest mode flags
    local -a dirs=()
    while read -r kind src dest mode flags; do
        if [ "$kind" = dir ]; then
            dirs=("$destdir$dest" "${dirs[@]}")
        elif [ ! -e "$destdir$dest" ]; then
            continue
        elif [ "$flags" = conffile ] && ! cmp -s "$src" "$destdir$dest"; then
            echo "  $dest kept: it was changed after installation (remove it yourself)"
        else
            rm -f "$destdir$dest"
            echo "  removed $dest"
        fi
    done <<<"$ENTRIES"
    for d in "${dirs[@]}"; do
        if [ -d "$d" ]; then rmdir --ignore-fail-on-non-empty "$d"; fi
    done
    # Under a staging DESTDIR, install made the parent directories too: remove the empty
    # ones on the way up from each destination (never DESTDIR itself).
    if [ -n "$destdir" ] && [ "$(realpath -m "$destdir")" != / ]; then
        while read -r kind src dest mode flags; do
            d=$(dirname "$dest")
            while [ "$d" != / ] && rmdir "$destdir$d" 2>/dev/null; do
                d=$(dirname "$d")
            done
        done <<<"$ENTRIES"
    fi
    if [ -z "$destdir" ] && [ -d "$STORE" ]; then
        if rmdir "$STORE" 2>/dev/null; then
            echo "  removed $STORE (empty)"
        else
            echo "  $STORE kept: it holds tokens (their keys work on this TPM only) or pinned storage keys"
        fi
    fi
}

# DESTDIR=/ is the system itself.
destdir() {
    if [ -n "$1" ] && [ "$(realpath -m "$1")" = / ]; then echo ""; else echo "${1%/}"; fi
}

cmd=${1:-}
# Read once: a manifest error stops the script here, not inside a loop's input.
resolve_dirs
ENTRIES=$(entries) || exit 1
case "$cmd" in
    install) do_install "$(destdir "${2:-}")" no ;;
    uninstall) do_uninstall "$(destdir "${2:-}")" ;;
    stage)
        [ $# -eq 3 ] || die "usage: $0 stage ROOT DBGROOT"
        DBGROOT=$3 do_install "$2" yes
        ;;
    list) awk '$1 == "file" {print $3}' <<<"$ENTRIES" ;;
    dirs) awk '$1 == "dir" {print $3}' <<<"$ENTRIES" ;;
    conffiles) awk '$5 == "conffile" {print $3}' <<<"$ENTRIES" ;;
    *) die "usage: $0 install|uninstall [DESTDIR] | stage ROOT DBGROOT | list | dirs | conffiles" ;;
esac
