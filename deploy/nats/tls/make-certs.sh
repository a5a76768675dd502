#!/usr/bin/env bash
# Development certificates for the Zhibao NATS cluster (never for production:
# use your organisation's CA there). Creates, in OUT_DIR (default: this folder):
#   ca.pem / ca-key.pem          a throwaway CA
#   server.pem / server-key.pem  the nodes' certificate (server and route auth),
#                                SANs nats-1..3, nats, localhost, 127.0.0.1 (+ EXTRA_SANS)
#   client.pem / client-key.pem  a client certificate (for mutual TLS, e.g. the nats CLI)
# Private keys are git-ignored (.gitignore here); never commit them.
# Usage: bash deploy/nats/tls/make-certs.sh [OUT_DIR]
#        EXTRA_SANS="DNS:nats.example.org,IP:10.0.0.5" bash deploy/nats/tls/make-certs.sh
set -euo pipefail
out="${1:-$(cd "$(dirname "$0")" && pwd)}"
days="${DAYS:-825}"
sans="DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:nats,DNS:localhost,IP:127.0.0.1${EXTRA_SANS:+,$EXTRA_SANS}"
mkdir -p "$out"
cd "$out"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ ! -s ca.pem ] || [ ! -s ca-key.pem ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout ca-key.pem -out ca.pem -days "$days" -subj "/O=Zhibao dev/CN=Zhibao dev CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

issue() { # name subject extended-key-usage [subjectAltName]
    local name="$1" subject="$2" eku="$3" san="${4:-}"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
    } >"$tmp/$name.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$name-key.pem" -out "$tmp/$name.csr" -subj "$subject" 2>/dev/null
    openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -CAserial "$tmp/ca.srl" -out "$name.pem" -days "$days" -extfile "$tmp/$name.ext" 2>/dev/null
}

# Routes present the server certificate as clients too: serverAuth and clientAuth.
issue server "/O=Zhibao dev/CN=nats" "serverAuth,clientAuth" "$sans"
issue client "/O=Zhibao dev/CN=zhibao-client" "clientAuth"
# Certificates and the server key must be readable by the containers' users;
# the CA key stays private to whoever ran this script.
chmod 0644 ca.pem server.pem server-key.pem client.pem
chmod 0600 ca-key.pem client-key.pem
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
echo "certificates in $out: ca.pem server.pem client.pem (+ *-key.pem, keep them private)"
