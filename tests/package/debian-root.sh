#!/usr/bin/env bash
# Takes a tpmkey .deb through install, use and purge in a fresh Debian 12 root:
#
#   debian-root.sh DEB TCTI PORT     (PORT: a free loopback port for nginx)
#
# The root is `debootstrap --variant=minbase bookworm` plus what a user brings (nginx,
# openssl, curl, opensc, systemd-tmpfiles), made once and cached as a tarball under
# target/package-test/ (a new one when its recipe changes); every run unpacks a fresh copy.
# The package's own dependencies are installed from its Depends field in each run (their
# .debs are cached). The root shares this machine's network, so its programs reach the
# swtpm named by TCTI on 127.0.0.1. in-root.sh does the work inside; proc is mounted in a
# private mount namespace, so nothing stays mounted. Processes left in the root are
# stopped by pid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" LC_ALL=C

die() {
    echo "debian-root.sh: ERROR: $*" >&2
    exit 1
}

[ $# -eq 3 ] || die "usage: $0 DEB TCTI PORT"
deb=$(realpath "$1")
tcti=$2
port=$3
[ -f "$deb" ] || die "$deb not found"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)"
for prog in debootstrap chroot unshare tar sha256sum; do
    command -v "$prog" >/dev/null 2>&1 || die "'$prog' not found (scripts/deps.sh test)"
done

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a user has on the machine besides the package: the programs the test drives.
# binutils: make install strips the libraries it installs (in-root.sh runs its script).
BASE_PACKAGES=(nginx openssl curl opensc systemd-standalone-tmpfiles binutils)
cache=$(realpath -m ../../target/package-test)
mkdir -p "$cache/apt-archives/partial"
# A new root when what goes into it changes (bump BASE_RECIPE when the way it is made does).
BASE_RECIPE=1
recipe=$(printf '%s\n' "$BASE_RECIPE" "$MIRROR" "${BASE_PACKAGES[*]}" | sha256sum | cut -c1-12)
base="$cache/bookworm-minbase-$recipe.tar"

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

# Stops, by pid, every process whose root directory is inside $1.
stop_processes_in() {
    local root=$1 pid link
    for link in /proc/[0-9]*/root; do
        pid=${link#/proc/}
        pid=${pid%/root}
        if [ "$(readlink "$link" 2>/dev/null)" = "$root" ]; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}

if [ ! -f "$base" ]; then
    echo "== making the Debian 12 root (debootstrap --variant=minbase bookworm, $MIRROR)"
    rm -f "$cache"/bookworm-minbase-*.tar
    build=$(mktemp -d "$cache/base.XXXXXX")
    trap 'stop_processes_in "$build/root"; rm -rf "$build"' EXIT
    if ! debootstrap --variant=minbase bookworm "$build/root" "$MIRROR" >"$build/debootstrap.log" 2>&1; then
        tail -20 "$build/debootstrap.log" >&2
        die "debootstrap of bookworm from $MIRROR failed (log above)"
    fi
    # No service may start inside the root (it shares this machine's network).
    printf '#!/bin/sh\nexit 101\n' >"$build/root/usr/sbin/policy-rc.d"
    chmod 0755 "$build/root/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$build/root/etc/resolv.conf"
    in_root "$build/root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${BASE_PACKAGES[@]}" >"$build/apt.log" 2>&1 \
        || { tail -20 "$build/apt.log" >&2; die "installing ${BASE_PACKAGES[*]} in the root failed"; }
    tar -C "$build/root" -cf "$build/base.tar" .
    mv "$build/base.tar" "$base"
    stop_processes_in "$build/root"
    rm -rf "$build"
    trap - EXIT
fi

run=$(mktemp -d "$cache/run.XXXXXX")
root="$run/root"
cleanup() {
    stop_processes_in "$root"
    rm -rf "$run"
}
trap cleanup EXIT
mkdir "$root"
tar -C "$root" -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/tpmkey.deb"
install -m 0755 in-root.sh "$root/tmp/in-root.sh"
# What `make install` reads, for the same cycle without the package.
(cd ../.. && tar -cf - packaging conf man include target/release/libtpmkey_provider.so \
    target/release/libtpmkey_pkcs11.so) | (mkdir "$root/tmp/src" && tar -C "$root/tmp/src" -xf -)
in_root "$root" /tmp/in-root.sh /tmp/tpmkey.deb "$tcti" "$port"
