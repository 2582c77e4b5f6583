#!/usr/bin/env bash
# bookie-tls.test.sh - broker to bookie TLS as BookKeeper does it (START_TLS in v3, then the
# TLS handshake on the same socket, then the broker's v2 framing), in a ZooKeeper cluster.
#
# A CA and certificates are made here with openssl (tests/lib/mkcert.sh; none committed).
# One real ZooKeeper, BOOKIES `magnetar bookie`s with BookKeeper's TLS keys that require TLS
# and a client certificate (tlsProviderFactoryClass, tlsCertificatePath, tlsKeyStore,
# tlsTrustStore, *Type=PEM, tlsClientAuthentication=true,
# bookieAuthProviderFactoryClass=org.apache.bookkeeper.tls.BookieAuthZFactory), and a
# `magnetar broker` with Pulsar's bookkeeperTLS* keys (E=Qw=3, Qa=2):
#   1. A pulsar-flex producer's COUNT messages are all acknowledged (each stored on bookies
#      that answer nothing but EUA to plain text, so through TLS) and a consumer receives
#      every one, in order, once.
#   2. A plain-text client's v2 ADDs on one connection to a bookie are each answered EUA
#      (rc 102), the bookie logs that once for the connection, and keeps serving the broker.
#   3. The broker still stores messages; then, alone in its place, a broker trusting another
#      CA stores none (its handshakes fail with "certificate verify failed", logged) and the
#      bookies go on.
#   4. Everything exits 0 on SIGTERM; no sanitizer report.
# Environment: MAGNETAR_BIN, BOOKIES (3), COUNT (1000).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-tls
need_bin
command -v openssl >/dev/null 2>&1 || it_skip "openssl not found"
it_env BOOKIES=3 COUNT=1000
TOPIC="bookie-tls-$$"

# ---- certificates: a CA with the bookies' and the broker's, another CA with a rogue one ----
mkdir -p "$T/pki" "$T/rogue"
mk_cert() { sh "$IT_TOP/tests/lib/mkcert.sh" "$@"; } # mk_cert DIR NAME SERIAL
mk_cert "$T/pki" bookie 11 && mk_cert "$T/pki" broker 12 && mk_cert "$T/rogue" rogue 13 ||
    { fail "openssl could not make the test certificates"; exit 1; }

bk_cluster_start "$BOOKIES" \
    --set tlsProviderFactoryClass=org.apache.bookkeeper.tls.TLSContextFactory \
    --set tlsCertificatePath="$T/pki/bookie.pem" --set tlsKeyStore="$T/pki/bookie.key" \
    --set tlsKeyStoreType=PEM --set tlsTrustStore="$T/pki/ca.pem" --set tlsTrustStoreType=PEM \
    --set tlsClientAuthentication=true \
    --set bookieAuthProviderFactoryClass=org.apache.bookkeeper.tls.BookieAuthZFactory
for i in $(seq 1 "$BOOKIES"); do
    grep -q "TLS required" "$T/bk$i.log" || fail "bookie $i does not say it requires TLS"
done

start_tls_broker() { # start_tls_broker NAME TRUST-CA
    start_zk_broker "$1" --set managedLedgerDefaultEnsembleSize=3 \
        --set managedLedgerDefaultWriteQuorum=3 --set managedLedgerDefaultAckQuorum=2 \
        --set bookkeeperTLSClientAuthentication=true \
        --set bookkeeperTLSCertificateFilePath="$T/pki/broker.pem" \
        --set bookkeeperTLSKeyFilePath="$T/pki/broker.key" \
        --set bookkeeperTLSTrustCertsFilePath="$2" --set bookkeeperUseV2WireProtocol=true
}
start_tls_broker broker "$T/pki/ca.pem" || exit 1
URL="pulsar://127.0.0.1:$(port_of broker brokerServicePort)"

# ---- 1. produce and consume through TLS ------------------------------------------------------
subscribe sub "$URL" "$TOPIC" s
produce_all produce "$T/produce.json" 240 "$COUNT" "producer through the broker (bookies over TLS)" \
    --url "$URL" --topic "$TOPIC" --send-timeout-ms 30000 --deadline-s 200
if run_node 180 consume lib/verify-consume.js --url "$URL" --topic "$TOPIC" --sub s \
    --expect "$T/produce.json" --out "$T/consume.json" --deadline-s 150; then
    pass "consumer: every acknowledged message received, in order, once: $(cat "$T/consume.out")"
else
    fail "consumer: $(cat "$T/consume.out") $(tail -n 3 "$T/consume.err")"
fi
if grep -qE 'TLS handshake failed|START_TLS refused|refused \(EUA\)' "$T"/broker.log "$T"/bk*.log; then
    fail "a TLS failure or refusal on the good broker's links: $(grep -hE 'TLS handshake failed|START_TLS refused|refused \(EUA\)' "$T"/broker.log "$T"/bk*.log | head -n 2)"
else
    pass "no handshake failure or refusal between the broker and the bookies"
fi

# ---- 2. a plain-text client's ADDs --------------------------------------------------------
# plain_adds PORT N: N v2 ADDs (ledger 77, entries 0..N-1) on one plain-text connection;
# prints the rc of each answer, one per line (28 bytes each: length, header, rc, ledger, entry)
plain_adds() {
    local port=$1 n=$2 i e frames="" rcs
    for i in $(seq 0 $((n - 1))); do
        e=$(printf '\\x%02x' "$i")
        # [len 61][v2 ADD header][master key][entry header: ledger, entry, lac, length]["hello"]
        frames+='\x00\x00\x00\x3d\x02\x01\x00\x00kkkkkkkkkkkkkkkkkkkk'
        frames+='\x00\x00\x00\x00\x00\x00\x00\x4d\x00\x00\x00\x00\x00\x00\x00'"$e"
        frames+='\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x05hello'
    done
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf "$frames" >&3
    rcs=$(timeout 10 head -c $((28 * n)) <&3 | od -An -v -tx1 -w28)
    exec 3>&-
    while read -r _ _ _ _ _ _ _ _ a b c d _; do
        [ -n "${d:-}" ] && echo $((0x$a$b$c$d))
    done <<<"$rcs"
}
N_PLAIN=5
BKP=$(port_of bk1 bookiePort)
RCS=$(plain_adds "$BKP" "$N_PLAIN" | tr '\n' ' ')
if [ "$RCS" = "$(printf '102 %.0s' $(seq 1 "$N_PLAIN"))" ]; then
    pass "a plain-text client's $N_PLAIN ADDs answered EUA (rc 102) each"
else
    fail "plain-text ADDs answered '$RCS' (want rc 102 x $N_PLAIN)"
fi
if wait_log bk1 'v2 ADD refused \(EUA\): this bookie requires TLS' 10 &&
    [ "$(grep -c 'refused (EUA)' "$T/bk1.log")" = 1 ]; then
    pass "bookie 1 logged the refusal once for that connection: $(grep -m1 -o 'v2 ADD refused.*START_TLS' "$T/bk1.log")"
else
    fail "bookie 1's refusal lines: $(grep -c 'refused (EUA)' "$T/bk1.log") (want 1)"
fi

# ---- 3. a broker that does not trust the bookies' CA -------------------------------------------
# (alone, so that it owns every bundle: with the good broker up its lookups could redirect)
produce_all produce2 "$T/produce2.json" 120 100 "the good broker still stores messages" \
    --url "$URL" --topic "$TOPIC-2" --send-timeout-ms 30000 --deadline-s 100
stop_clean 20 broker
start_tls_broker rogue "$T/rogue/ca.pem" || exit 1
RURL="pulsar://127.0.0.1:$(port_of rogue brokerServicePort)"
run_node 60 rogue-produce lib/verify-produce.js --url "$RURL" --topic "rogue-$$" --count 1 \
    --send-timeout-ms 5000 --deadline-s 30 --out "$T/rogue-produce.json"
RA=$(json "$T/rogue-produce.json" ackedCount)
if [ "${RA:-0}" = 0 ] && wait_log rogue 'TLS handshake failed: .*certificate verify failed' 30; then
    pass "a broker trusting another CA stored nothing: $(grep -m1 -o 'bookie .*TLS handshake failed: [^;]*' "$T/rogue.log")"
else
    fail "broker with the wrong CA: ${RA:-?} acknowledged; log: $(grep -m1 'TLS' "$T/rogue.log")"
fi
for i in $(seq 1 "$BOOKIES"); do alive "bk$i" || fail "bookie $i died"; done

# ---- 4. clean stop --------------------------------------------------------------------------
stop_names=(rogue)
for i in $(seq 1 "$BOOKIES"); do stop_names+=("bk$i"); done
stop_clean 20 "${stop_names[@]}"
check_sanitizers
echo "SUMMARY: bookie-tls bookies=$BOOKIES acknowledged=${PRODUCE_ACKED:-0} plain_rcs=\"$RCS\""
exit "$IT_FAILED"
