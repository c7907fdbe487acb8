#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make-certs.sh DIR - throwaway certificates for the TLS tests, made with the
# openssl command at test time (none is ever committed).
#
#   ca.pem ca.key                 the test CA
#   server.pem server.key         server certificate for 127.0.0.1 / localhost
#   server2.pem server2.key       a second server pair (for reload tests)
#   server-expired.pem/.key       a server certificate that expired in 2020
#   client.pem client.key         client certificate "CN=proxy1" from the CA
#   client-expired.pem/.key       client certificate from the CA, expired
#   other-ca.pem other-ca.key     an unrelated CA
#   client-other.pem/.key         client certificate from the unrelated CA
#
# Exit status 0, or 77 (ctest's skip code) when openssl is missing.
set -euo pipefail
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl not installed" >&2; exit 77; }
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
D=$1
mkdir -p "$D"
cd "$D"
# Readable by Squid, which reads them as its unprivileged user.
chmod 755 .
umask 022

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # ca NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 30 -subj "/O=libicap test/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out "$1.pem" 2>/dev/null
}

# A minimal `openssl ca` setup: it is the openssl command that can set any
# start and end date, which an expired certificate needs.
ca_setup() {  # ca_setup CA
    rm -rf "db-$1"; mkdir -p "db-$1/new"
    : > "db-$1/index.txt"
    echo 1000 > "db-$1/serial"
    cat > "db-$1/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = db-$1
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
certificate = $1.pem
private_key = $1.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[ anything ]
commonName = supplied
organizationName = optional
[ server_ext ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[ client_ext ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
}

cert() {  # cert CA NAME CN server_ext|client_ext START END
    key "$2.key"
    openssl req -new -key "$2.key" -subj "/O=libicap test/CN=$3" -out "$2.csr" 2>/dev/null
    openssl ca -batch -config "db-$1/ca.cnf" -extensions "$4" -startdate "$5" -enddate "$6" \
        -in "$2.csr" -out "$2.pem.tmp" >/dev/null 2>&1
    # Keep only the PEM block (openssl ca prepends a text dump).
    sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$2.pem.tmp" > "$2.pem"
    rm -f "$2.csr" "$2.pem.tmp"
}

NOW=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
LATER=$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)
OLD1=20200101000000Z
OLD2=20200201000000Z

ca ca "libicap test CA"
ca other-ca "unrelated CA"
ca_setup ca
ca_setup other-ca
cert ca server "127.0.0.1" server_ext "$NOW" "$LATER"
cert ca server2 "127.0.0.1" server_ext "$NOW" "$LATER"
cert ca server-expired "127.0.0.1" server_ext "$OLD1" "$OLD2"
cert ca client "proxy1" client_ext "$NOW" "$LATER"
cert ca client-expired "proxy-old" client_ext "$OLD1" "$OLD2"
cert other-ca client-other "proxy-intruder" client_ext "$NOW" "$LATER"
rm -rf db-ca db-other-ca
chmod 644 ./*.pem ./*.key
echo "make-certs: certificates in $D"
