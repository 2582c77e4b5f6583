#!/usr/bin/env bash
# broker-https.test.sh - brokers that call each other over HTTPS only (brokerClientTlsEnabled,
# brokerClientTrustCertsFilePath), with the plain web port off on both.
#
# A CA and a certificate for 127.0.0.1 are made here with openssl (tests/lib/mkcert.sh; none
# committed). One ZooKeeper, 2 bookies and 2 `magnetar broker`s with webServicePort empty
# (off), webServicePortTls on and requiring a client certificate
# (tlsRequireTrustedClientCertOnConnect), brokerClientTlsEnabled=true, the CA as
# brokerClientTrustCertsFilePath and a certificate of it as brokerClientCertificateFilePath
# and brokerClientKeyFilePath:
#   1. Both start (before brokerClientTlsEnabled a broker without the plain web port
#      refused to start).
#   2. A partitioned topic of PARTS partitions, looked up through both brokers until each
#      broker owns at least one partition.
#   3. An HTTPS request for a partition's stats sent to the broker that does not own it is
#      redirected (307) to the owner's HTTPS URL.
#   4. partitioned-stats through each broker over HTTPS: 200 with every partition's stats (the
#      fan-out's sub-requests went over HTTPS to both brokers, the owners' certificates
#      verified against the CA, the broker's client certificate shown to them).
#   5. A third broker trusting another CA answers partitioned-stats 503 (its sub-requests'
#      handshakes fail, logged with OpenSSL's reason; before, an unanswered sub-request counted as an empty success and
#      the answer was 200 with empty stats), while the first two go on.
#   6. That third broker keeps its plain web port too; an HTTPS request to br1 for a topic it
#      owns is redirected to its HTTPS URL (webServiceUrlTls/httpUrlTls), not to the plain
#      one, as Pulsar redirects an HTTPS request.
#   7. Everything exits 0 on SIGTERM; no sanitizer report.
# Environment: MAGNETAR_BIN, PARTS (6).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init broker-https
need_bin
need_cmds openssl curl
it_env PARTS=6
TOPIC="https-$$"

mkdir -p "$T/pki" "$T/rogue"
sh "$IT_TOP/tests/lib/mkcert.sh" "$T/pki" broker 21 && sh "$IT_TOP/tests/lib/mkcert.sh" "$T/rogue" rogue 22 ||
    { fail "openssl could not make the test certificates"; exit 1; }

bk_cluster_start 2
start_https_broker() { # start_https_broker NAME TRUST-CA [WEB-PORT]
    mkdir -p "$T/$1"
    start_magnetar "$1" broker "brokerServicePort webServicePortTls" 60 -- \
        --config "$IT_TOP/conf/broker.yaml" --set bindAddress=127.0.0.1 \
        --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL" \
        --set dataDirectory="$T/$1" --set brokerServicePort=0 --set webServicePort="${3:-}" \
        --set webServicePortTls=0 --set tlsCertificateFilePath="$T/pki/broker.pem" \
        --set tlsKeyFilePath="$T/pki/broker.key" --set tlsTrustCertsFilePath="$T/pki/ca.pem" \
        --set tlsRequireTrustedClientCertOnConnect=true --set brokerClientTlsEnabled=true \
        --set brokerClientTrustCertsFilePath="$2" \
        --set brokerClientCertificateFilePath="$T/pki/broker.pem" \
        --set brokerClientKeyFilePath="$T/pki/broker.key" --set keepAliveIntervalSeconds=2
}
for b in br1 br2; do start_https_broker "$b" "$T/pki/ca.pem" || exit 1; done
pass "2 brokers up with webServicePort off and brokerClientTlsEnabled=true"
web() { echo "https://127.0.0.1:$(port_of "$1" webServicePortTls)"; }
W1=$(web br1) W2=$(web br2)
# (every broker requires a client certificate: curl shows the CA's broker certificate)
hcurl() { curl -s --max-time 40 --cacert "$T/pki/ca.pem" --cert "$T/pki/broker.pem" --key "$T/pki/broker.key" "$@"; }

# ---- 2. a partitioned topic whose partitions both brokers own ----------------------------
T_PATH="persistent/public/default/$TOPIC"
code=$(hcurl -o "$T/body" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data "$PARTS" "$W1/admin/v2/$T_PATH/partitions")
[ "$code" = 204 ] && pass "partitioned topic of $PARTS partitions created over HTTPS" ||
    { fail "create partitioned topic: $code $(cat "$T/body")"; exit 1; }
# owner_of K: the HTTPS URL of the broker owning partition K (HTTP lookup through br1/br2 in turn)
owner_of() {
    local via=$1 k=$2
    hcurl -L -o "$T/lookup" "$via/lookup/v2/topic/$T_PATH-partition-$k" &&
        sed -n 's/.*"httpUrlTls":"\([^"]*\)".*/\1/p' "$T/lookup"
}
declare -A OWNER
for k in $(seq 0 $((PARTS - 1))); do
    via=$W1
    [ $((k % 2)) = 1 ] && via=$W2
    OWNER[$k]=$(owner_of "$via" "$k")
done
owned_by() { local k n=0; for k in "${!OWNER[@]}"; do [ "${OWNER[$k]}" = "$1" ] && n=$((n + 1)); done; echo $n; }
N1=$(owned_by "$W1") N2=$(owned_by "$W2")
if [ "$N1" -ge 1 ] && [ "$N2" -ge 1 ] && [ $((N1 + N2)) = "$PARTS" ]; then
    pass "partitions owned by both brokers: br1 $N1, br2 $N2 (HTTP lookups answer httpUrlTls)"
else
    fail "partition owners: br1 $N1, br2 $N2 of $PARTS: ${OWNER[*]}"
fi

# ---- 3. a 307 from the non-owner names the owner's HTTPS URL -----------------------------
for k in "${!OWNER[@]}"; do
    own=${OWNER[$k]}
    other=$W1
    [ "$own" = "$W1" ] && other=$W2
    code=$(hcurl -o /dev/null -w '%{http_code} %{redirect_url}' "$other/admin/v2/$T_PATH-partition-$k/stats")
    if [ "${code%% *}" = 307 ] && case ${code#* } in "$own/admin/v2/$T_PATH-partition-$k/stats"*) true ;; *) false ;; esac; then
        pass "stats of partition $k asked of the non-owner over HTTPS: 307 to ${code#* }"
    else
        fail "stats of partition $k at the non-owner $other: '$code' (want 307 to $own/...)"
    fi
    break
done

# ---- 4. the fan-out over HTTPS ---------------------------------------------------------------
for b in br1 br2; do
    code=$(hcurl -o "$T/pstats-$b" -w '%{http_code}' "$(web "$b")/admin/v2/$T_PATH/partitioned-stats?perPartition=true")
    got=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
                   const p = Object.values(j.partitions || {});
                   console.log(p.filter((s) => "msgRateIn" in s).length)' "$T/pstats-$b" 2>/dev/null)
    if [ "$code" = 200 ] && [ "${got:-0}" = "$PARTS" ]; then
        pass "partitioned-stats through $b over HTTPS: 200 with the stats of all $got partitions"
    else
        fail "partitioned-stats through $b: $code, partitions ${got:-?}: $(head -c 300 "$T/pstats-$b")"
    fi
done

# ---- 5. a broker that does not trust the brokers' CA ------------------------------------------
start_https_broker rogue "$T/rogue/ca.pem" 0 || exit 1 # its plain web port on
RW=$(web rogue)
code=$(hcurl -o "$T/pstats-rogue" -w '%{http_code}' "$(web rogue)/admin/v2/$T_PATH/partitioned-stats")
if [ "$code" = 503 ] && wait_log rogue 'no answer for the sub-request .*certificate verify failed' 10; then
    pass "partitioned-stats through a broker trusting another CA: 503 ($(head -c 120 "$T/pstats-rogue")), logged: $(grep -m1 -o 'no answer for the sub-request.*' "$T/rogue.log")"
else
    fail "partitioned-stats through the rogue broker: $code $(head -c 200 "$T/pstats-rogue")"
fi
code=$(hcurl -o "$T/pstats-again" -w '%{http_code}' "$W1/admin/v2/$T_PATH/partitioned-stats")
[ "$code" = 200 ] && pass "br1 still answers partitioned-stats: 200" || fail "br1 after the rogue: $code"

# ---- 6. an HTTPS request redirected to a broker with both ports: to its HTTPS URL ----------
# (a new namespace: its bundles go to the least loaded broker, the rogue)
hcurl -o /dev/null -X PUT "$W1/admin/v2/namespaces/public/https-ns"
ROGUE_TOPIC=""
for i in $(seq 1 8); do
    hcurl -L -o "$T/lookup" "$RW/lookup/v2/topic/persistent/public/https-ns/t$i"
    if grep -q "\"httpUrlTls\":\"$RW\"" "$T/lookup"; then ROGUE_TOPIC=t$i; break; fi
done
if [ -z "$ROGUE_TOPIC" ]; then
    fail "no topic of public/https-ns owned by the rogue broker: $(cat "$T/lookup")"
else
    code=$(hcurl -o /dev/null -w '%{http_code} %{redirect_url}' "$W1/admin/v2/persistent/public/https-ns/$ROGUE_TOPIC/stats")
    case "$code" in
    "307 $RW/admin/v2/persistent/public/https-ns/$ROGUE_TOPIC/stats"*)
        pass "HTTPS request to a non-owner: 307 to the owner's HTTPS URL, not its plain one: ${code#* }" ;;
    *) fail "HTTPS request for a topic of the rogue (plain web on port $(port_of rogue webServicePort)): '$code' (want 307 to $RW/...)" ;;
    esac
fi

for n in br1 br2 rogue; do alive "$n" || fail "broker $n died"; done
stop_clean 30 rogue br1 br2 bk1 bk2
check_sanitizers
[ "$IT_FAILED" -eq 0 ] && pass "brokers over HTTPS only"
exit "$IT_FAILED"
