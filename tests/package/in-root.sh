#!/bin/bash
# Runs inside the fresh Debian 12 root (debian-root.sh): installs the package's
# dependencies, then `dpkg -i`, HTTPS through nginx from a TPM key with only the packaged
# files (run as the example unit runs it), the PKCS#11 module through p11-kit, then
# `dpkg -r` and `dpkg -P`, comparing the file list before and after.
#
#   in-root.sh DEB TCTI PORT      (PORT: a free loopback port for nginx)
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
export DEBIAN_FRONTEND=noninteractive
# Per-user files of the client programs (opensc caches in ~/.cache) are not the package's.
export HOME=/tmp/home
mkdir -p "$HOME"
deb=$1
tcti=$2
port=$3

step() { echo "== $*"; }
fail() {
    echo "in-root.sh: FAILED: $*" >&2
    exit 1
}

nginx_pid_file=/run/nginx-tpmkey/nginx.pid
stop_nginx() {
    if [ -f "$nginx_pid_file" ]; then
        kill -QUIT "$(cat "$nginx_pid_file")" 2>/dev/null || true
        for _ in $(seq 50); do [ -f "$nginx_pid_file" ] || break; sleep 0.1; done
    fi
}
trap stop_nginx EXIT

# Every path with owner, group and mode, except what any command changes (logs, caches,
# dpkg's own backups) and the places this test works in.
snapshot() {
    find / -xdev \( -path /proc -o -path /dev -o -path /tmp -o -path /run -o -path /var/log \
        -o -path /var/cache -o -path /var/lib/apt/lists -o -name '*-old' \) -prune \
        -o -printf '%p %u %g %m\n' | sort
}

# Fails unless the file list is the one taken before dpkg -i; $1 says after what.
same_as_before() {
    local after
    after=$(snapshot)
    if [ "$before" != "$after" ]; then
        diff <(echo "$before") <(echo "$after") >&2 || true
        fail "the file list after $1 differs from the one before dpkg -i (above: < before, > after)"
    fi
}

step "installing the package's dependencies (its Depends field)"
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/[[:space:]]//g' | grep .)
# shellcheck disable=SC2086 # one package name per word
if ! apt-get install -y --no-install-recommends $depends >/tmp/apt.log 2>&1; then
    apt-get update >/tmp/apt-update.log 2>&1 || fail "apt-get update: $(tail -5 /tmp/apt-update.log)"
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $depends >/tmp/apt.log 2>&1 \
        || fail "installing $depends: $(tail -10 /tmp/apt.log)"
fi
echo "installed: $(tr '\n' ' ' <<<"$depends")"
getent group tss >/dev/null || fail "no tss group after installing the dependencies (tpm-udev)"

before=$(snapshot)

step "dpkg -i"
dpkg -i "$deb"
dpkg -s tpmkey | grep -qx 'Status: install ok installed' || fail "tpmkey not installed"
mapfile -t files < <(dpkg -L tpmkey | while read -r f; do [ -d "$f" ] || echo "$f"; done)
echo "${#files[@]} files installed"
for f in "${files[@]}"; do [ -e "$f" ] || fail "$f listed by dpkg -L but missing"; done
modules_dir=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"/\1/p')
[ -f "$modules_dir/tpmkey.so" ] || fail "no tpmkey.so in $modules_dir ('openssl version -m')"
[ "$(stat -c '%U %G %a' /var/lib/tpmkey)" = "root tss 1770" ] \
    || fail "/var/lib/tpmkey is $(stat -c '%U %G %a' /var/lib/tpmkey 2>&1), expected root tss 1770"

step "TCTI in /etc/tpmkey/tpmkey.conf: $tcti"
sed -i "s|^tcti = .*|tcti = $tcti|" /etc/tpmkey/tpmkey.conf
grep -qx "tcti = $tcti" /etc/tpmkey/tpmkey.conf || fail "could not set tcti"

step "a TPM key and a certificate (the README's commands)"
openssl genpkey -provider tpmkey -provider default -algorithm EC -pkeyopt group:P-256 \
    -out /etc/tpmkey/nginx-key.pem
head -1 /etc/tpmkey/nginx-key.pem | grep -qx -- '-----BEGIN TSS2 PRIVATE KEY-----' \
    || fail "the key file is not a TSS2 PRIVATE KEY"
openssl req -provider tpmkey -provider default -new -x509 -key /etc/tpmkey/nginx-key.pem \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 7 -out /etc/tpmkey/nginx-cert.pem
chgrp www-data /etc/tpmkey/nginx-key.pem
chmod 0640 /etc/tpmkey/nginx-key.pem

step "nginx as the example unit runs it: www-data with group tss, its OPENSSL_CONF"
unit=/usr/share/doc/tpmkey/examples/nginx-tpmkey.service
unit_value() { sed -n "s/^$1=//p" "$unit"; }
[ "$(unit_value User)" = www-data ] && [ "$(unit_value SupplementaryGroups)" = tss ] \
    || fail "$unit: expected User=www-data, SupplementaryGroups=tss"
openssl_conf=$(unit_value Environment | sed -n 's/^OPENSSL_CONF=//p')
state_dir=$(unit_value Environment | sed -n 's/^TPMKEY_STATE=//p')
case "$state_dir" in "/var/lib/$(unit_value StateDirectory)"/*) ;; *) fail "$unit: TPMKEY_STATE=$state_dir is not in its StateDirectory" ;; esac
[ "$openssl_conf" = /usr/share/tpmkey/openssl-tpmkey.cnf ] || fail "$unit: OPENSSL_CONF=$openssl_conf"
exec_start_pre=$(unit_value ExecStartPre)
exec_start=$(unit_value ExecStart)
# What systemd makes for the unit: RuntimeDirectory, LogsDirectory, StateDirectory.
for d in "/run/$(unit_value RuntimeDirectory)" "/var/log/$(unit_value LogsDirectory)" \
    "/var/lib/$(unit_value StateDirectory)"; do
    install -d -o www-data -g www-data -m 0755 "$d"
done
mkdir -p /tmp/www
echo "Hello from a TPM key, packaged" >/tmp/www/index.html
sed -e "s|listen 443 ssl;|listen 127.0.0.1:$port ssl;|" -e "s|root /var/www/html;|root /tmp/www;|" \
    /usr/share/doc/tpmkey/examples/nginx-tpmkey.conf >/etc/nginx/tpmkey.conf
as_unit() {
    setpriv --reuid=www-data --regid=www-data --groups=tss --inh-caps=-all \
        env -i PATH="$PATH" OPENSSL_CONF="$openssl_conf" TPMKEY_STATE="$state_dir" "$@"
}
# shellcheck disable=SC2086 # the unit's command lines
as_unit $exec_start_pre || fail "the unit's ExecStartPre ($exec_start_pre) failed"
# shellcheck disable=SC2086
as_unit $exec_start \
    || fail "nginx did not start: $(cat /var/log/nginx-tpmkey/error.log 2>/dev/null)"
for _ in $(seq 100); do [ -f "$nginx_pid_file" ] && break; sleep 0.1; done
[ "$(stat -c %U "/proc/$(cat "$nginx_pid_file")")" = www-data ] || fail "nginx master is not www-data"

step "fetching a page over HTTPS (curl and openssl s_client without tpmkey)"
page=$(curl --silent --show-error --retry 20 --retry-connrefused --retry-delay 0 \
    --cacert /etc/tpmkey/nginx-cert.pem --resolve "localhost:$port:127.0.0.1" \
    "https://localhost:$port/") || fail "curl: $(cat /var/log/nginx-tpmkey/error.log)"
[ "$page" = "Hello from a TPM key, packaged" ] || fail "unexpected page: $page"
handshake=$(openssl s_client -brief -connect "127.0.0.1:$port" -servername localhost \
    -CAfile /etc/tpmkey/nginx-cert.pem </dev/null 2>&1) || true
grep -q "Verification: OK" <<<"$handshake" || fail "s_client: $handshake"
grep -q "Signature type: ECDSA" <<<"$handshake" || fail "s_client: $handshake"
echo "served: $page"
grep -E "Protocol version|Signature type" <<<"$handshake"
stop_nginx
[ ! -f "$nginx_pid_file" ] || fail "nginx did not stop"

step "the system-wide openssl.cnf merge the man page gives"
cp -p /etc/ssl/openssl.cnf /tmp/openssl.cnf.orig
sed -i 's|^openssl_conf = openssl_init|openssl_conf = tpmkey_openssl_init|' /etc/ssl/openssl.cnf
echo ".include /usr/share/tpmkey/openssl-tpmkey.cnf" >>/etc/ssl/openssl.cnf
providers=$(openssl list -providers)
cp -p /tmp/openssl.cnf.orig /etc/ssl/openssl.cnf
grep -A3 '^  tpmkey' <<<"$providers" | grep -q 'status: active' || fail "tpmkey not active: $providers"
echo "tpmkey active through /etc/ssl/openssl.cnf"

step "PKCS#11: p11-kit lists the module, pkcs11-tool finds it through p11-kit's proxy"
modules=$(p11-kit list-modules)
grep -q '^tpmkey: .*libtpmkey_pkcs11.so' <<<"$modules" || fail "p11-kit list-modules: $modules"
grep -A6 '^tpmkey:' <<<"$modules" | grep -E 'library-|token:' || true
proxy=$(dirname "$(dpkg -L tpmkey | grep '/libtpmkey_pkcs11\.so$')")/p11-kit-proxy.so
[ -f "$proxy" ] || proxy=$(find /usr/lib -name p11-kit-proxy.so | head -1)
module=$(dpkg -L tpmkey | grep '/libtpmkey_pkcs11\.so$')
pkcs11-tool --module "$module" --init-token --label pkgtest --so-pin 12345678 >/tmp/p11.log 2>&1 \
    || fail "init-token: $(cat /tmp/p11.log)"
pkcs11-tool --module "$proxy" --token-label pkgtest --login --so-pin 12345678 --init-pin \
    --pin 87654321 >/tmp/p11.log 2>&1 || fail "init-pin through p11-kit: $(cat /tmp/p11.log)"
pkcs11-tool --module "$proxy" --token-label pkgtest --login --pin 87654321 --keypairgen \
    --key-type EC:prime256v1 --label pkgkey >/tmp/p11.log 2>&1 \
    || fail "keypairgen through p11-kit: $(cat /tmp/p11.log)"
slots=$(pkcs11-tool --module "$proxy" -L)
grep -q 'token label *: pkgtest' <<<"$slots" || fail "pkcs11-tool -L through p11-kit: $slots"
echo "through $proxy:"
grep -E 'token label|token manufacturer|token model' <<<"$slots" | grep -B1 -A1 pkgtest
objects=$(pkcs11-tool --module "$proxy" --token-label pkgtest --login --pin 87654321 -O 2>&1)
grep -q 'label: *pkgkey' <<<"$objects" || fail "pkcs11-tool -O: $objects"
# Token directories hold a `token` file (the store also holds root's state, storage-keys/).
mapfile -t tokens < <(find /var/lib/tpmkey -mindepth 2 -maxdepth 2 -name token -printf '%h\n')
[ "${#tokens[@]}" -eq 1 ] && [ "$(stat -c '%U %a' "${tokens[0]}")" = "root 700" ] \
    || fail "expected one token directory root 0700 in /var/lib/tpmkey: $(ls -la /var/lib/tpmkey)"

step "dpkg -r: the files go, the conffile and the store stay"
# What an administrator would remove: the test's key, certificate and nginx files.
rm -f /etc/tpmkey/nginx-key.pem /etc/tpmkey/nginx-cert.pem /etc/nginx/tpmkey.conf
rm -rf /var/lib/nginx-tpmkey
dpkg -r tpmkey
dpkg -s tpmkey | grep -qx 'Status: deinstall ok config-files' || fail "$(dpkg -s tpmkey | grep Status)"
for f in "${files[@]}"; do
    if [ "$f" = /etc/tpmkey/tpmkey.conf ]; then
        [ -f "$f" ] || fail "dpkg -r removed the conffile $f"
    elif [ -e "$f" ]; then
        fail "dpkg -r left $f"
    fi
done
[ -d "${tokens[0]}" ] || fail "dpkg -r removed the token store"

step "dpkg -P with a token left: the token stays, tpmkey's state and configuration go"
dpkg -P tpmkey 2>/tmp/purge.err || fail "dpkg -P: $(cat /tmp/purge.err)"
grep -q "/var/lib/tpmkey kept: it holds PKCS#11 tokens" /tmp/purge.err || fail "no note on the kept store: $(cat /tmp/purge.err)"
[ -f "${tokens[0]}/token" ] || fail "dpkg -P deleted the token"
left=$(find /var/lib/tpmkey -mindepth 1 -maxdepth 1)
[ "$left" = "${tokens[0]}" ] || fail "dpkg -P left more than the token in /var/lib/tpmkey: $left"
[ ! -e /etc/tpmkey ] || fail "dpkg -P left /etc/tpmkey: $(ls -la /etc/tpmkey)"
# The administrator deletes the token; the directory is then empty.
rm -rf "${tokens[0]}"
rmdir /var/lib/tpmkey
same_as_before "dpkg -P"
echo "file list after dpkg -P (and the token deleted) equals the one before dpkg -i ($(wc -l <<<"$before") paths)"

step "dpkg -i and dpkg -P again: the empty store goes with the package"
dpkg -i "$deb" >/dev/null
[ -d /var/lib/tpmkey ] || fail "dpkg -i made no /var/lib/tpmkey"
dpkg -P tpmkey >/dev/null
same_as_before "the second dpkg -P"
echo "file list after dpkg -i, dpkg -P equals the one before"

step "make install's script on the same root: the package's files; make uninstall: nothing left"
p11_dir=$(dirname "$module")
P11_MODULE_PATH=$p11_dir P11_MODULE_CONFIGS=/usr/share/p11-kit/modules \
    /tmp/src/packaging/install-files.sh install >/tmp/install.log || fail "$(cat /tmp/install.log)"
mapfile -t installed < <(comm -13 <(echo "$before" | cut -d' ' -f1) \
    <(snapshot | cut -d' ' -f1) | while read -r f; do [ -d "$f" ] || echo "$f"; done)
if [ "$(printf '%s\n' "${installed[@]}" | sort)" != "$(printf '%s\n' "${files[@]}" | sort)" ]; then
    diff <(printf '%s\n' "${files[@]}" | sort) <(printf '%s\n' "${installed[@]}" | sort) >&2 || true
    fail "make install's files differ from the package's (above: < package, > make install)"
fi
[ "$(stat -c '%U %G %a' /var/lib/tpmkey)" = "root tss 1770" ] || fail "make install: store $(stat -c '%U %G %a' /var/lib/tpmkey 2>&1)"
P11_MODULE_PATH=$p11_dir P11_MODULE_CONFIGS=/usr/share/p11-kit/modules \
    /tmp/src/packaging/install-files.sh uninstall >/tmp/uninstall.log || fail "$(cat /tmp/uninstall.log)"
same_as_before "make uninstall"
echo "make install put the package's ${#installed[@]} files in place; make uninstall left the file list as it was"
echo "in-root.sh: PASSED"
