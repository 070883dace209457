#!/usr/bin/env bash
# selfsigned.sh -- a test certificate for localhost, made with the openssl CLI.
#
#   scripts/selfsigned.sh DIR
#
# Creates, only if they do not exist yet:
#   DIR/ca.pem       a test CA (self-signed, valid 10 years); trust it in
#                    clients: curl --cacert DIR/ca.pem, requests verify=...
#   DIR/ca-key.pem   its private key (kept to sign more test certificates)
#   DIR/cert.pem     the server's chain: a leaf for localhost, 127.0.0.1 and
#                    ::1 (valid 1 year) signed by the CA, then the CA itself
#   DIR/key.pem      the leaf's private key, PEM, not encrypted (mode 0600)
# Keys are ECDSA P-256. When DIR/cert.pem and DIR/key.pem already exist the
# script changes nothing. For tests and local runs only: never use this CA
# for anything else.
set -euo pipefail

usage() {
    sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
    exit "${1:-2}"
}

[ $# -eq 1 ] || usage
case "$1" in -h | --help) usage 0 ;; esac
dir=$1

command -v openssl >/dev/null || {
    echo "selfsigned.sh: the openssl command is missing (apt-get install openssl)" >&2
    exit 1
}

mkdir -p "$dir"
if [ -e "$dir/cert.pem" ] && [ -e "$dir/key.pem" ]; then
    echo "selfsigned.sh: $dir/cert.pem and $dir/key.pem exist; nothing to do" >&2
    exit 0
fi
if [ -e "$dir/cert.pem" ] || [ -e "$dir/key.pem" ]; then
    echo "selfsigned.sh: only one of $dir/cert.pem and $dir/key.pem exists;" \
        "remove it or give both (make run-https CERT=... KEY=...)" >&2
    exit 1
fi

umask 077
tmp=$(mktemp -d "$dir/.selfsigned.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The CA: reuse an existing one (ca.pem + ca-key.pem), else make one.
if [ -e "$dir/ca.pem" ] && [ -e "$dir/ca-key.pem" ]; then
    cp "$dir/ca.pem" "$tmp/ca.pem"
    cp "$dir/ca-key.pem" "$tmp/ca-key.pem"
else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca-key.pem" 2>/dev/null
    openssl req -x509 -new -key "$tmp/ca-key.pem" -sha256 -days 3650 \
        -subj "/CN=grace test CA (selfsigned.sh)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$tmp/ca.pem"
fi

# The leaf for localhost, signed by the CA.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/key.pem" 2>/dev/null
openssl req -new -key "$tmp/key.pem" -subj "/CN=localhost" -out "$tmp/leaf.csr"
cat >"$tmp/leaf.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
serial=0x$(openssl rand -hex 16)
openssl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
    -set_serial "$serial" -sha256 -days 365 -extfile "$tmp/leaf.ext" \
    -out "$tmp/leaf.pem" 2>/dev/null
cat "$tmp/leaf.pem" "$tmp/ca.pem" >"$tmp/cert.pem"
openssl verify -CAfile "$tmp/ca.pem" "$tmp/leaf.pem" >/dev/null

# Into place: the key before the certificate, each by rename.
chmod 644 "$tmp/ca.pem" "$tmp/cert.pem"
[ -e "$dir/ca.pem" ] || mv "$tmp/ca.pem" "$dir/ca.pem"
[ -e "$dir/ca-key.pem" ] || mv "$tmp/ca-key.pem" "$dir/ca-key.pem"
mv "$tmp/key.pem" "$dir/key.pem"
mv "$tmp/cert.pem" "$dir/cert.pem"
echo "selfsigned.sh: created $dir/cert.pem (localhost, 127.0.0.1, ::1; chain leaf + CA)," \
    "$dir/key.pem; clients trust $dir/ca.pem" >&2
