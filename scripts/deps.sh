#!/usr/bin/env bash
# Installs (idempotently) what tpmkey needs on Debian 12, as root, for one or more sets:
#
#   deps.sh build   compiling, make install, make deb
#   deps.sh demo    build + what make demo runs (swtpm, nginx, curl); starts and enables
#                   no service: services of packages it installs stay stopped and disabled
#   deps.sh test    everything the tests use (the default; make test, make deps)
#
# Fast when everything is present: it only asks dpkg, then checks the programs.
set -euo pipefail

BUILD_PACKAGES=(
    build-essential pkg-config libssl-dev libtss2-dev libp11-kit-dev openssl
)
DEMO_PACKAGES=(
    "${BUILD_PACKAGES[@]}" swtpm nginx curl iproute2
)
# Packages of the demo set whose services Debian starts and enables on installation: when
# deps.sh installs them for the demo, they stay stopped and disabled.
DEMO_SERVICES=(nginx-common)
TEST_PACKAGES=(
    "${BUILD_PACKAGES[@]}"
    swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus
    tpm2-openssl nginx curl opensc gnutls-bin p11-kit
    openssh-server openssh-client apache2 strongswan
    # pki, swanctl and the pkcs11 plugin are not in the strongswan metapackage on Debian 12;
    # the openssl plugin (ECDSA in the IKEv2 test) is in the standard plugins
    strongswan-pki strongswan-swanctl libstrongswan-extra-plugins libstrongswan-standard-plugins
    libtpm2-pkcs11-1 libengine-pkcs11-openssl iproute2 procps iputils-ping
    # the package test (tests/package): a Debian 12 root, lintian, man pages, unit checks;
    # systemd-measure: signed PCR policies of a fake UKI (core/tests/policy_trial.rs)
    debootstrap lintian man-db systemd
    # an independent CBOR decoder for the ACME attestation object test (core/tests/attest.rs)
    python3-cbor2
    # building latchset pkcs11-provider from ../shared/peers for tests/interop/tests/pkcs11_provider.rs
    meson ninja-build
    # kills a store writer at its n-th rename or fsync (pkcs11/tests/kill_during_writes.rs)
    strace
)

die() {
    echo "deps.sh: ERROR: $*" >&2
    exit 1
}

# sbin directories are missing from some non-login root PATHs.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

sets=("$@")
[ "${#sets[@]}" -gt 0 ] || sets=(test)
want_demo=no
want_test=no
packages=()
for set in "${sets[@]}"; do
    case "$set" in
        build) packages+=("${BUILD_PACKAGES[@]}") ;;
        demo) packages+=("${DEMO_PACKAGES[@]}") want_demo=yes ;;
        test) packages+=("${TEST_PACKAGES[@]}") want_test=yes ;;
        *) die "unknown set '$set' (build, demo or test)" ;;
    esac
done

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

installed_packages() {
    dpkg-query -W -f='${Package} ${Status}\n' | awk '$NF == "installed" {print $1}' | sort
}

# Leaves the services of the given packages stopped and disabled.
quiet_services() {
    local pkg unit
    for pkg in "$@"; do
        while read -r unit; do
            if command -v deb-systemd-helper >/dev/null 2>&1; then
                deb-systemd-helper disable "$(basename "$unit")" >/dev/null 2>&1 || true
            fi
            if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
                systemctl disable --now "$(basename "$unit")" >/dev/null 2>&1 || true
            fi
            echo "deps.sh: $(basename "$unit") (from $pkg) left stopped and disabled"
        done < <(dpkg -L "$pkg" | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.(service|socket|timer)$' || true)
        while read -r unit; do
            if command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d "$(basename "$unit")" disable >/dev/null 2>&1 || true
            fi
        done < <(dpkg -L "$pkg" | grep -E '^/etc/init\.d/[^/]+$' || true)
    done
}

missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root to install them"
    echo "deps.sh: installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Only the test set may start services; the others forbid it for the installation.
    policy=/usr/sbin/policy-rc.d
    own_policy=no
    if [ "$want_test" = no ] && [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# deps.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=yes
        trap 'rm -f "$policy"' EXIT
    fi
    before=$(installed_packages)
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        installed "$pkg" || die "package $pkg is still not installed after apt-get install"
    done
    if [ "$want_test" = no ]; then
        mapfile -t new < <(comm -13 <(echo "$before") <(installed_packages) \
            | grep -Fx -f <(printf '%s\n' "${DEMO_SERVICES[@]}") || true)
        quiet_services "${new[@]}"
    fi
    if [ "$own_policy" = yes ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

# cargo: rustup installs it in ~/.cargo/bin (/root/.cargo/bin on these machines).
if ! command -v cargo >/dev/null 2>&1 \
    && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ] && [ ! -x /root/.cargo/bin/cargo ]; then
    die "cargo not found (not in PATH, ~/.cargo/bin or /root/.cargo/bin); install Rust with rustup: https://rustup.rs"
fi

fail=0
need() {
    local prog
    for prog in "$@"; do
        if ! command -v "$prog" >/dev/null 2>&1; then
            echo "deps.sh: ERROR: required program '$prog' not found" >&2
            fail=1
        fi
    done
}
need cc pkg-config openssl dpkg-deb dpkg-shlibdeps objcopy strip
if [ "$want_demo" = yes ]; then
    need swtpm nginx curl ss
fi
if [ "$want_test" = no ]; then
    [ "$fail" -eq 0 ] || die "required programs are missing (see above)"
    echo "deps.sh: all dependencies of ${sets[*]} present"
    exit 0
fi

# Every program the tests run must exist.
for prog in swtpm swtpm_setup tpm2_startup tpm2_getrandom tpm2_dictionarylockout tpm2-abrmd \
    dbus-daemon openssl nginx curl pkcs11-tool p11tool p11-kit ssh ssh-keygen sshd pki swanctl \
    ss pgrep ip ping mount debootstrap lintian man systemd-analyze unshare chroot meson ninja; do
    if ! command -v "$prog" >/dev/null 2>&1; then
        echo "deps.sh: ERROR: required program '$prog' not found" >&2
        fail=1
    fi
done
if ! command -v apache2 >/dev/null 2>&1 && [ ! -x /usr/sbin/apache2 ]; then
    echo "deps.sh: ERROR: required program 'apache2' not found" >&2
    fail=1
fi
for plugin in pkcs11 kernel-libipsec openssl curve25519; do
    if [ ! -f "/usr/lib/ipsec/plugins/libstrongswan-$plugin.so" ]; then
        echo "deps.sh: ERROR: strongSwan $plugin plugin not found (libstrongswan-*-plugins)" >&2
        fail=1
    fi
done
if [ ! -x /usr/lib/systemd/systemd-measure ]; then
    echo "deps.sh: ERROR: /usr/lib/systemd/systemd-measure not found (systemd)" >&2
    fail=1
fi
if [ ! -x /usr/lib/ipsec/charon ]; then
    echo "deps.sh: ERROR: /usr/lib/ipsec/charon not found (strongswan-charon)" >&2
    fail=1
fi
if [ ! -c /dev/net/tun ]; then
    echo "deps.sh: ERROR: /dev/net/tun missing (the IKEv2 test's kernel-libipsec needs TUN)" >&2
    fail=1
fi
[ "$fail" -eq 0 ] || die "required programs are missing (see above)"

# The tpm2 OpenSSL provider must load. Its init talks to a TPM, so give it a throw-away
# swtpm on a free loopback port (never the default 2321).
modules_dir=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
[ -f "$modules_dir/tpm2.so" ] || die "tpm2 OpenSSL provider not found at $modules_dir/tpm2.so (package tpm2-openssl)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpmkey-deps.XXXXXX")
swtpm_pid=
cleanup() {
    if [ -n "$swtpm_pid" ]; then
        kill "$swtpm_pid" 2>/dev/null || true
        wait "$swtpm_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port_free() {
    ! ss -Htan "( sport = :$1 or sport = :$(($1 + 1)) )" | grep -q .
}
port=
for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 12000))
    if port_free "$candidate"; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || die "no free loopback port pair found for the provider check"

swtpm socket --tpmstate dir="$tmp" --tpm2 \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear >"$tmp/swtpm.log" 2>&1 </dev/null &
swtpm_pid=$!
for _ in $(seq 200); do
    ss -Htln "( sport = :$port )" | grep -q . && break
    kill -0 "$swtpm_pid" 2>/dev/null || die "swtpm failed to start: $(cat "$tmp/swtpm.log")"
    sleep 0.01
done

if ! out=$(TPM2OPENSSL_TCTI="swtpm:host=127.0.0.1,port=$port" \
    openssl list -providers -provider tpm2 2>&1) || ! grep -q "status: active" <<<"$out"; then
    die "'openssl list -providers -provider tpm2' failed:
$out
swtpm log: $(cat "$tmp/swtpm.log")"
fi

echo "deps.sh: all dependencies present"
