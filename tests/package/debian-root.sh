#!/usr/bin/env bash
# Runs tpmkey's install paths in a fresh Debian 12 root:
#
#   debian-root.sh package DEB TCTI PORT   the .deb through install, use and purge, and
#                                          make install/uninstall (in-root.sh); PORT: a
#                                          free loopback port for nginx
#   debian-root.sh demo-deps               scripts/deps.sh demo (in-root-demo-deps.sh)
#
# The roots are `debootstrap --variant=minbase bookworm` (for demo-deps), and that plus
# what a user brings (nginx, openssl, curl, opensc, systemd-tmpfiles, binutils; for
# package), each made once and cached as a tarball under target/package-test/ (a new one
# when its recipe changes); every run unpacks a fresh copy. Downloaded .debs are cached
# too. The root shares this machine's network, so its programs reach the swtpm named by
# TCTI on 127.0.0.1; proc is mounted in a private mount namespace, so nothing stays
# mounted. Processes left in the root are stopped by pid (and make demo-deps fail: it
# must start none).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" LC_ALL=C

die() {
    echo "debian-root.sh: ERROR: $*" >&2
    exit 1
}

mode=${1:-}
case "$mode" in
    package) [ $# -eq 4 ] || die "usage: $0 package DEB TCTI PORT" ;;
    demo-deps) [ $# -eq 1 ] || die "usage: $0 demo-deps" ;;
    *) die "usage: $0 package DEB TCTI PORT | demo-deps" ;;
esac
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)"
for prog in debootstrap chroot unshare tar sha256sum flock; do
    command -v "$prog" >/dev/null 2>&1 || die "'$prog' not found (scripts/deps.sh test)"
done

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a user has on the machine besides the package: the programs the test drives.
# binutils: make install strips the libraries it installs (in-root.sh runs its script).
BASE_PACKAGES=(nginx openssl curl opensc systemd-standalone-tmpfiles binutils)
# A new root when what goes into it changes (bump BASE_RECIPE when the way it is made does).
BASE_RECIPE=2
cache=$(realpath -m ../../target/package-test)
mkdir -p "$cache/apt-archives/partial"
minbase="$cache/bookworm-minbase-$(printf '%s\n' "$BASE_RECIPE" "$MIRROR" | sha256sum | cut -c1-12).tar"
with_tools="$cache/bookworm-tools-$(printf '%s\n' "$BASE_RECIPE" "$MIRROR" "${BASE_PACKAGES[*]}" \
    | sha256sum | cut -c1-12).tar"

# Inside a private mount namespace: proc mounted, the apt cache bound, then the command.
in_root() {
    local root=$1
    shift
    unshare --mount --propagation private -- /bin/sh -c '
        root=$1 cache=$2; shift 2
        mount -t proc proc "$root/proc"
        mount --bind "$cache" "$root/var/cache/apt/archives"
        exec chroot "$root" "$@"' sh "$root" "$cache/apt-archives" "$@"
}

# Pids of the processes whose root directory is $1.
processes_in() {
    local link pid
    for link in /proc/[0-9]*/root; do
        pid=${link#/proc/}
        pid=${pid%/root}
        if [ "$(readlink "$link" 2>/dev/null)" = "$1" ]; then echo "$pid"; fi
    done
}

stop_processes_in() {
    local pid
    for pid in $(processes_in "$1"); do kill -9 "$pid" 2>/dev/null || true; done
}

# Makes tarball $1 from a root that $2 (a function) prepares; one maker at a time.
make_base() {
    local tarball=$1 prepare=$2 build
    [ -f "$tarball" ] && return
    build=$(mktemp -d "$cache/base.XXXXXX")
    trap 'stop_processes_in "$build/root"; rm -rf "$build"' EXIT
    mkdir "$build/root"
    "$prepare" "$build"
    tar -C "$build/root" -cf "$build/base.tar" .
    mv "$build/base.tar" "$tarball"
    stop_processes_in "$build/root"
    rm -rf "$build"
    trap - EXIT
}

debootstrap_root() {
    echo "== making the Debian 12 root (debootstrap --variant=minbase bookworm, $MIRROR)"
    if ! debootstrap --variant=minbase bookworm "$1/root" "$MIRROR" >"$1/debootstrap.log" 2>&1; then
        tail -20 "$1/debootstrap.log" >&2
        die "debootstrap of bookworm from $MIRROR failed (log above)"
    fi
}

tools_root() {
    echo "== adding ${BASE_PACKAGES[*]} to the Debian 12 root"
    tar -C "$1/root" -xf "$minbase"
    # No service may start inside this root (it shares this machine's network).
    printf '#!/bin/sh\nexit 101\n' >"$1/root/usr/sbin/policy-rc.d"
    chmod 0755 "$1/root/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$1/root/etc/resolv.conf"
    in_root "$1/root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${BASE_PACKAGES[@]}" >"$1/apt.log" 2>&1 \
        || { tail -20 "$1/apt.log" >&2; die "installing ${BASE_PACKAGES[*]} in the root failed"; }
}

exec 9>"$cache/base.lock"
flock 9
make_base "$minbase" debootstrap_root
[ "$mode" = package ] && make_base "$with_tools" tools_root
# Older recipes' tarballs.
for old in "$cache"/bookworm-*.tar; do
    [ "$old" = "$minbase" ] || [ "$old" = "$with_tools" ] || rm -f "$old"
done
flock -u 9

run=$(mktemp -d "$cache/run.XXXXXX")
root="$run/root"
cleanup() {
    stop_processes_in "$root"
    rm -rf "$run"
}
trap cleanup EXIT
mkdir "$root"
cp /etc/resolv.conf "$run/resolv.conf"

if [ "$mode" = package ]; then
    deb=$(realpath "$2")
    [ -f "$deb" ] || die "$deb not found"
    tar -C "$root" -xf "$with_tools"
    cp "$run/resolv.conf" "$root/etc/resolv.conf"
    cp "$deb" "$root/tmp/tpmkey.deb"
    install -m 0755 in-root.sh "$root/tmp/in-root.sh"
    # What `make install` reads, for the same cycle without the package.
    (cd ../.. && tar -cf - packaging conf man include target/release/libtpmkey_provider.so \
        target/release/libtpmkey_pkcs11.so target/release/tpmkey target/man/tpmkey.1) \
        | (mkdir "$root/tmp/src" && tar -C "$root/tmp/src" -xf -)
    in_root "$root" /tmp/in-root.sh /tmp/tpmkey.deb "$3" "$4"
else
    tar -C "$root" -xf "$minbase"
    cp "$run/resolv.conf" "$root/etc/resolv.conf"
    install -m 0755 ../../scripts/deps.sh "$root/tmp/deps.sh"
    install -m 0755 in-root-demo-deps.sh "$root/tmp/in-root-demo-deps.sh"
    in_root "$root" /tmp/in-root-demo-deps.sh
    left=$(processes_in "$root" | while read -r pid; do
        echo "$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    done)
    [ -z "$left" ] || die "processes left running in the root after deps.sh demo: $left"
    echo "no process left running in the root"
fi
