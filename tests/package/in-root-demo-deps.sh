#!/bin/bash
# Runs inside a fresh minbase Debian 12 root (debian-root.sh demo-deps): `deps.sh demo`
# installs the demo set and nothing of the test set's services, leaves nginx disabled and
# no policy-rc.d behind, and a second run installs nothing. (debian-root.sh then checks
# that no process was left running in the root.)
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
export HOME=/root

fail() {
    echo "in-root-demo-deps.sh: FAILED: $*" >&2
    exit 1
}

# The build needs cargo, which comes from rustup, not from Debian: deps.sh only checks
# that it is there.
printf '#!/bin/sh\necho "cargo 1.85.0 (stand-in for the demo dependency test)"\n' >/usr/local/bin/cargo
chmod 0755 /usr/local/bin/cargo

echo "== deps.sh demo"
/tmp/deps.sh demo >/tmp/deps.log 2>&1 || fail "deps.sh demo: $(tail -20 /tmp/deps.log)"
grep '^deps.sh:' /tmp/deps.log

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
for pkg in nginx swtpm curl build-essential libtss2-dev; do
    installed "$pkg" || fail "deps.sh demo did not install $pkg"
done
for pkg in apache2 strongswan openssh-server libtpm2-pkcs11-1 tpm2-abrmd; do
    if installed "$pkg"; then fail "deps.sh demo installed $pkg (a test dependency)"; fi
done
[ ! -e /usr/sbin/policy-rc.d ] || fail "deps.sh left /usr/sbin/policy-rc.d behind"
enabled=$(find /etc/systemd/system -name 'nginx.service' -path '*.wants/*'; ls /etc/rc[2-5].d/S*nginx 2>/dev/null || true)
[ -z "$enabled" ] || fail "nginx is enabled: $enabled"
echo "nginx installed, not enabled; no apache2, strongswan, openssh-server, tpm2-pkcs11, tpm2-abrmd"

echo "== deps.sh demo again"
/tmp/deps.sh demo >/tmp/deps2.log 2>&1 || fail "second deps.sh demo: $(cat /tmp/deps2.log)"
if grep -q 'installing' /tmp/deps2.log; then fail "second run installed again: $(cat /tmp/deps2.log)"; fi
cat /tmp/deps2.log
echo "in-root-demo-deps.sh: PASSED"
