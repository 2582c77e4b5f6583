#!/bin/sh
# mkcert.sh DIR NAME SERIAL [CN] - test certificates, made with openssl when a test runs (none
# are committed). The first call on DIR makes a CA (DIR/ca.pem, DIR/ca.key); each call makes
# NAME's key and certificate (DIR/NAME.key, DIR/NAME.pem) signed by that CA, with serial
# SERIAL, subject CN (default NAME) and subjectAltName IP:127.0.0.1, DNS:localhost.
# Shared by the shell tests (tests/integration/lib/common.sh: it_cert) and the Check programs
# (tests/lib/tl.c: tl_make_cert). Exit status non-zero when openssl fails.
set -e
dir=$1 name=$2 serial=$3 cn=${4:-$2}
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
if [ ! -f "$dir/ca.pem" ]; then
    key "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.pem" -days 2 \
        -subj "/CN=magnetar-test-ca-$$" 2>/dev/null
fi
key "$dir/$name.key"
openssl req -new -key "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/$name.ext"
openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "$serial" -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
rm -f "$dir/$name.csr" "$dir/$name.ext"
