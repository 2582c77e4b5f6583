#!/usr/bin/env bash
# bookie-tls-refresh.test.sh - the bookie link's certificates rotated under a live cluster
# (tlsCertFilesRefreshDurationSeconds on the bookie, bookkeeperTlsCertFilesRefreshDurationSeconds
# on the broker) and BookieAuthZFactory's authorizedRoles.
#
# A CA and certificates are made here with openssl (tests/lib/mkcert.sh; none committed).
# One ZooKeeper, one `magnetar bookie` requiring TLS and a client certificate with
# authorizedRoles=broker, and a `magnetar broker` (E=Qw=Qa=1) with the certificate CN=broker.
# tests/compat/lib/bk-start-tls.js is a second client: START_TLS, the handshake, v2 ADDs.
#   1. authorizedRoles: a certificate whose CN is broker has its ADDs answered EOK; one whose
#      CN is not listed completes the handshake and has every ADD answered EUA (rc 102), the
#      bookie logging why once; one whose OU carries BookKeeper's role "0:broker" (CN other)
#      is let in, as BookKeeper reads roles.
#   2. Rotation: while a pulsar-flex producer writes through the broker and a probe holds a
#      TLS connection open, the bookie's certificate files are replaced (rename). Within a
#      few refresh periods a new connection is served the new certificate (its serial) and
#      the bookie logs the reload; the held connection's next ADDs are answered EOK on the
#      old session; the producer's messages are all acknowledged.
#   3. The broker's side: its own certificate files are replaced by a certificate the bookie
#      refuses (CN intruder), the broker logs the reload, and a new bookie connection (the
#      bookie restarted) presents it: the broker's writes are refused by the bookie
#      (authorizedRoles), where before they went through.
#   4. Everything exits 0 on SIGTERM; no sanitizer report.
# Environment: MAGNETAR_BIN, COUNT (600).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-tls-refresh
need_bin
need_cmds openssl node
it_env COUNT=600
TOPIC="bk-refresh-$$"

# ---- certificates ---------------------------------------------------------------------------
P="$T/pki"
mkdir -p "$P" "$T/live" "$T/blive"
mk_cert() { sh "$IT_TOP/tests/lib/mkcert.sh" "$P" "$@"; } # mk_cert NAME SERIAL [CN]
mk_cert bookie-a 41 bookie && mk_cert bookie-b 42 bookie && mk_cert broker 43 &&
    mk_cert intruder 44 || { fail "openssl could not make the test certificates"; exit 1; }
# BookKeeper's roles are in the OU ("0:role,...;1:cluster"): CN other, role broker
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/ou.key" 2>/dev/null &&
    openssl req -new -key "$P/ou.key" -subj "/OU=0:broker;1:test/CN=other" -out "$P/ou.csr" 2>/dev/null &&
    openssl x509 -req -in "$P/ou.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -set_serial 45 -days 2 \
        -out "$P/ou.pem" 2>/dev/null || { fail "openssl could not make the OU certificate"; exit 1; }
cp "$P/bookie-a.pem" "$T/live/cert.pem" && cp "$P/bookie-a.key" "$T/live/key.pem"
cp "$P/broker.pem" "$T/blive/cert.pem" && cp "$P/broker.key" "$T/blive/key.pem"
# replace DIR NAME: DIR's cert.pem and key.pem become NAME's, each by a rename
replace() {
    cp "$P/$2.key" "$1/key.tmp" && cp "$P/$2.pem" "$1/cert.tmp" &&
        mv "$1/key.tmp" "$1/key.pem" && mv "$1/cert.tmp" "$1/cert.pem"
}

BK_ARGS=(--set tlsProviderFactoryClass=org.apache.bookkeeper.tls.TLSContextFactory
    --set tlsCertificatePath="$T/live/cert.pem" --set tlsKeyStore="$T/live/key.pem"
    --set tlsKeyStoreType=PEM --set tlsTrustStore="$P/ca.pem" --set tlsTrustStoreType=PEM
    --set tlsClientAuthentication=true
    --set bookieAuthProviderFactoryClass=org.apache.bookkeeper.tls.BookieAuthZFactory
    --set authorizedRoles=broker --set tlsCertFilesRefreshDurationSeconds=1)
bk_cluster_start 1 "${BK_ARGS[@]}"
BKP=$(port_of bk1 bookiePort)
start_zk_broker broker --set managedLedgerDefaultEnsembleSize=1 \
    --set managedLedgerDefaultWriteQuorum=1 --set managedLedgerDefaultAckQuorum=1 \
    --set bookkeeperTLSClientAuthentication=true \
    --set bookkeeperTLSCertificateFilePath="$T/blive/cert.pem" \
    --set bookkeeperTLSKeyFilePath="$T/blive/key.pem" \
    --set bookkeeperTLSTrustCertsFilePath="$P/ca.pem" \
    --set bookkeeperTlsCertFilesRefreshDurationSeconds=1 || exit 1
URL="pulsar://127.0.0.1:$(port_of broker brokerServicePort)"

# probe NAME CERT [ARGS...]: bk-start-tls.js with CERT's certificate; its JSON in $T/NAME.out
probe() {
    local name=$1 cert=$2
    shift 2
    run_node 60 "$name" lib/bk-start-tls.js --port "$BKP" --ca "$P/ca.pem" \
        --cert "$P/$cert.pem" --key "$P/$cert.key" "$@"
}
field() { json "$T/$1.out" "$2"; }

# ---- 1. authorizedRoles ---------------------------------------------------------------------
probe p-broker broker --adds 3 --ledger 101
[ "$(field p-broker rcs)" = "[0,0,0]" ] && pass "CN broker (listed): ADDs answered EOK: $(cat "$T/p-broker.out")" ||
    fail "CN broker: $(cat "$T/p-broker.out") $(cat "$T/p-broker.err")"
probe p-intruder intruder --adds 3 --ledger 102
[ "$(field p-intruder rcs)" = "[102,102,102]" ] &&
    pass "CN intruder (not listed): handshake done, every ADD answered EUA: $(cat "$T/p-intruder.out")" ||
    fail "CN intruder: $(cat "$T/p-intruder.out") $(cat "$T/p-intruder.err")"
if wait_log bk1 'client certificate not authorized \(CN intruder not in authorizedRoles\)' 10 &&
    [ "$(grep -c 'no role of authorizedRoles' "$T/bk1.log")" = 1 ]; then
    pass "the bookie logged the refusal once: $(grep -m1 -o 'client certificate not authorized.*' "$T/bk1.log")"
else
    fail "the bookie's refusal lines: $(grep -c 'authorizedRoles' "$T/bk1.log")"
fi
probe p-ou ou --adds 2 --ledger 103
[ "$(field p-ou rcs)" = "[0,0]" ] && pass "OU 0:broker (BookKeeper's role), CN other: let in: $(cat "$T/p-ou.out")" ||
    fail "OU role: $(cat "$T/p-ou.out") $(cat "$T/p-ou.err")"
[ "$(field p-broker serial)" = 29 ] || fail "the bookie served serial $(field p-broker serial), want 29 (bookie-a)"

# ---- 2. the bookie's certificate rotated under live connections --------------------------------
start_node produce 200 lib/verify-produce.js --url "$URL" --topic "$TOPIC" --count "$COUNT" \
    --rate 100 --send-timeout-ms 30000 --deadline-s 150 --out "$T/produce.json" --progress "$T/produce.progress"
start_node held 60 lib/bk-start-tls.js --port "$BKP" --ca "$P/ca.pem" --cert "$P/broker.pem" \
    --key "$P/broker.key" --adds 2 --ledger 104 --hold-ms 6000
deadline=$((SECONDS + 30))
until [ "$(kv "$T/produce.progress" acked)" -gt 50 ] 2>/dev/null || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
replace "$T/live" bookie-b
# the files are looked at, at most once a second, when a connection starts (as BookKeeper's
# TLSContextFactory): new connections until one is served the new certificate, within 15 s
deadline=$((SECONDS + 15)) tries=0
while :; do
    tries=$((tries + 1))
    probe p-new broker --adds 1 --ledger $((200 + tries))
    [ "$(field p-new serial)" = 2A ] || [ $SECONDS -ge $deadline ] && break
    sleep 0.3
done
[ "$(field p-new serial)" = 2A ] && [ "$(field p-new rcs)" = "[0]" ] &&
    pass "a new connection is served the new certificate (serial 2A, connection $tries after the rename) and its ADD answered EOK" ||
    fail "new connection after the rotation: $(cat "$T/p-new.out") $(cat "$T/p-new.err")"
grep -q 'bookie TLS: TLS certificate files reloaded' "$T/bk1.log" &&
    pass "the bookie logged the reload: $(grep -m1 -o 'bookie TLS: TLS certificate files reloaded.*' "$T/bk1.log")" ||
    fail "no reload in the bookie's log"
wait_pid "$(pid_of held)" 60
[ "$(field held serial)" = 29 ] && [ "$(field held rcs)" = "[0,0,0,0]" ] &&
    pass "the connection opened before the rotation kept its session (serial 29): ADDs after it answered EOK" ||
    fail "held connection: $(cat "$T/held.out") $(cat "$T/held.err")"
wait_pid "$(pid_of produce)" 200
PA=$(json "$T/produce.json" ackedCount)
[ "${PA:-0}" = "$COUNT" ] && pass "producer through the broker across the rotation: $PA of $COUNT acknowledged" ||
    fail "producer across the rotation: ${PA:-?} of $COUNT acknowledged ($(json "$T/produce.json" firstError))"
grep -qE 'TLS handshake failed' "$T/broker.log" "$T/bk1.log" &&
    fail "a handshake failed: $(grep -hm2 'TLS handshake failed' "$T/broker.log" "$T/bk1.log")"

# ---- 3. the broker's certificate rotated: new bookie connections present the new one ------------
replace "$T/blive" intruder
stop_clean 20 bk1
mv "$T/bk1.log" "$T/bk1-before.log" # the restarted bookie's lines alone in bk1.log
start_bookie 1 "${BK_ARGS[@]}" --set bookiePort="$BKP" || exit 1 # the same id: the broker reconnects
run_node 60 produce2 lib/verify-produce.js --url "$URL" --topic "$TOPIC-2" --count 1 \
    --send-timeout-ms 8000 --deadline-s 20 --out "$T/produce2.json"
if [ "$(json "$T/produce2.json" ackedCount)" = 0 ] &&
    wait_log broker 'TLS to bookies: TLS certificate files reloaded' 5 &&
    wait_log bk1 'CN intruder not in authorizedRoles' 20; then
    pass "the broker reloaded its certificate: new bookie connections present CN intruder, refused by the bookie"
else
    fail "broker rotation: acked $(json "$T/produce2.json" ackedCount); broker log: $(grep -m1 'TLS to bookies' "$T/broker.log"); bookie: $(grep -m1 'authorizedRoles' "$T/bk1.log")"
fi
alive bk1 || fail "the bookie died"
alive broker || fail "the broker died"

stop_clean 20 broker bk1
check_sanitizers
echo "SUMMARY: bookie-tls-refresh acknowledged=${PA:-0}"
exit "$IT_FAILED"
