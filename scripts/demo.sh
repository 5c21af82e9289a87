#!/usr/bin/env bash
# make demo: a TPM key serving HTTPS through nginx, end to end, on this machine.
# Installs what is missing, builds, uses /dev/tpmrm0 or starts a swtpm in a temporary
# directory, creates a TPM P-256 key and a certificate, serves HTTPS with nginx on a
# loopback port, fetches a page with curl, shows what was negotiated and that the key
# lives in the TPM, then stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:/root/.cargo/bin:$PATH:/usr/sbin:/sbin"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing what is missing"
scripts/deps.sh demo

say "Building"
cargo build --release -p tpmkey-provider
module="$PWD/target/release/libtpmkey_provider.so"

work=$(mktemp -d /tmp/tpmkey-demo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    sleep 0.5
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port pair below the kernel's ephemeral range (busy machines fill that
# range with TIME_WAIT sockets, and the swtpm TCTI opens a connection per command).
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 10000))
        if ! ss -Htan "( sport = :$p or sport = :$((p + 1)) )" | grep -q .; then
            echo "$p"
            return
        fi
    done
    echo "no free port" >&2
    exit 1
}

if [ -c /dev/tpmrm0 ]; then
    tcti=device:/dev/tpmrm0
    say "Using the TPM at /dev/tpmrm0"
else
    port=$(free_port)
    mkdir -p "$work/tpm"
    swtpm socket --tpmstate dir="$work/tpm" --tpm2 \
        --server type=tcp,port="$port",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
        --flags not-need-init,startup-clear --pid file="$work/tpm/pid" &
    pids+=($!)
    for _ in $(seq 50); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done
    tcti="swtpm:host=127.0.0.1,port=$port"
    say "No TPM device: started swtpm ($tcti) in $work/tpm"
fi

cat > "$work/openssl.cnf" <<CNF
openssl_conf = init
[init]
providers = providers
[providers]
default = default_sect
tpmkey = tpmkey_sect
[default_sect]
activate = 1
[tpmkey_sect]
module = $module
activate = 1
tcti = $tcti
# this demo's own swtpm: pin its storage key in the demo's directory, not /var/lib/tpmkey
state = $work/state
CNF
export OPENSSL_CONF="$work/openssl.cnf" TPMKEY_CONF=/dev/null

say "Creating a P-256 key inside the TPM and a certificate for it"
# provider=tpmkey (no '?'): a TPM key or an error, never a software key.
openssl genpkey -algorithm EC -pkeyopt group:P-256 -propquery 'provider=tpmkey' -out "$work/key.pem"
head -1 "$work/key.pem" | grep -qx -- '-----BEGIN TSS2 PRIVATE KEY-----' \
    || { echo "demo: $work/key.pem is not a TPM key" >&2; exit 1; }
openssl req -new -x509 -key "$work/key.pem" -subj /CN=localhost -days 7 \
    -addext subjectAltName=DNS:localhost -out "$work/cert.pem"
head -1 "$work/key.pem"
openssl pkey -in "$work/key.pem" -text -noout | head -4

say "Serving HTTPS with nginx (2 workers) from the TPM key"
http_port=$(free_port)
mkdir -p "$work/html" "$work/logs"
echo "Hello from a TPM-backed nginx" > "$work/html/index.html"
cat > "$work/nginx.conf" <<NGINX
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 64; }
http {
    access_log $work/logs/access.log;
    server {
        listen 127.0.0.1:$http_port ssl;
        server_name localhost;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        # nginx before 1.23.4 leaves TLS 1.3 out of its default protocols.
        ssl_protocols TLSv1.2 TLSv1.3;
        root $work/html;
    }
}
NGINX
nginx -p "$work" -c "$work/nginx.conf"
for _ in $(seq 50); do ss -Hltn "sport = :$http_port" | grep -q . && break; sleep 0.1; done

say "Fetching a page with curl"
# The clients are ordinary OpenSSL clients: they do not load tpmkey.
env -u OPENSSL_CONF curl --silent --show-error --cacert "$work/cert.pem" \
    --resolve "localhost:$http_port:127.0.0.1" "https://localhost:$http_port/"

say "What was negotiated"
env -u OPENSSL_CONF openssl s_client -brief -connect "127.0.0.1:$http_port" -servername localhost \
    -CAfile "$work/cert.pem" </dev/null 2>&1 | grep -E "Protocol|Ciphersuite|Peer signature|Verification" || true

say "The private key lives in the TPM"
echo "The key file holds only a TPM-wrapped blob (TSS2 PRIVATE KEY), loadable by this TPM alone."
if openssl pkey -in "$work/key.pem" -traditional -out /dev/null 2>"$work/export.err"; then
    echo "UNEXPECTED: the private key was exported" >&2
    exit 1
fi
echo "Exporting the private key is refused:"
sed -n 's/^[^:]*:error:[^:]*:\([^:]*:[^:]*\):.*key type = \(.*\)$/  \1 (\2)/p;s/^[^:]*:error:[^:]*:\([^:]*:[^:]*\):.*$/  \1/p' "$work/export.err" | head -2

say "Done: stopping nginx${pids:+ and swtpm}"
