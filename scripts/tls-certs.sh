#!/usr/bin/env bash
# Makes a local certificate authority and the certificates a TLS demo needs,
# with openssl:
#
#   scripts/tls-certs.sh DIR
#
#   DIR/ca.crt, ca.key          the CA (trust ca.crt in clients: --cacert)
#   DIR/server.crt, server.key  a node's (or the coordinator's) certificate,
#                               for localhost and 127.0.0.1 (tls_cert_file,
#                               tls_key_file); usable as a client certificate
#                               too, as members of a TLS cluster present it
#                               to each other
#   DIR/client.crt, client.key  a client certificate signed by the same CA,
#                               for nodes with tls_ca_cert_file set
#                               (keycafe-cli --cert/--key, redis-cli too)
#
# Keys are EC P-256, certificates valid for 365 days. Existing files in DIR
# are replaced. The keys are written readable by their owner only. This CA is
# for a demo or a test machine: anyone holding ca.key can mint certificates
# every node and client trusts. Tests make their own certificates in Rust
# (keycafe_core::tls::test_pki) and do not need this script.
set -euo pipefail
if [[ $# -ne 1 ]]; then
    echo "usage: $(basename "$0") DIR" >&2
    exit 2
fi
command -v openssl >/dev/null || {
    echo "$(basename "$0") needs openssl (Debian: apt-get install openssl)" >&2
    exit 1
}
DIR=$1
mkdir -p "$DIR"
cd "$DIR"
umask 077
DAYS=365

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA: self-signed, allowed to sign certificates and nothing else.
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$DAYS" -subj "/CN=Keycafe local CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt

# leaf NAME USAGE: a certificate for localhost and 127.0.0.1 signed by the CA.
leaf() {
    local name=$1 usage=$2 ext
    ext=$(mktemp)
    cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=$usage
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
    key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=localhost" -out "$name.csr"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -sha256 -days "$DAYS" -extfile "$ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$ext"
}
leaf server serverAuth,clientAuth
leaf client clientAuth
rm -f ca.srl
# Certificates are public; only the keys stay private.
chmod 644 ca.crt server.crt client.crt
openssl verify -CAfile ca.crt server.crt client.crt >/dev/null
echo "$(basename "$0"): wrote ca.crt, server.crt/.key and client.crt/.key to $PWD"
