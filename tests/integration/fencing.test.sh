#!/usr/bin/env bash
# fencing.test.sh - a broker that lost a topic to another one can no longer append to it.
#
# One real ZooKeeper, two `magnetar bookie`s, two `magnetar broker`s A and B (both on
# conf/broker.yaml as a user runs them: managedLedgerStore bookkeeper, E=Qw=Qa=2, timeouts,
# keep-alive and load-report interval left at their defaults) on the same store, and
# pulsar-flex clients with a user's 30 s send timeout. A owns the topic's bundle
# by an ephemeral lease; the test stops A (SIGSTOP, well within its session timeout) and
# replaces that lease behind its back with one naming B, as in the moments before an expiry
# reaches A, so that B takes the bundle while A still believes it owns it (a running A would
# notice the change at once: it watches its keys). The ledger fencing of B's managed-ledger open is then what
# keeps the old writer out:
#   1. A durable subscription is created through A.
#   2. A pulsar-flex producer on A sends 1,000 messages (counters 0..999): all acknowledged.
#      It stays connected, paused (verify-produce.js --pause-after).
#   3. A is stopped, its lease is replaced in ZooKeeper and B takes the bundle (an
#      authoritative lookup at B); a producer on B sends 1,000 more (1000..1999): B loads the
#      topic, whose open recovers and fences A's ledger; all must be acknowledged, by B (its
#      log).
#   4. A's producer (the same one, same connection) sends 100 more (2000..2099) while A is
#      still stopped, then A continues: none may be
#      acknowledged, and the first must fail with an error (SEND_ERROR, the producer or the
#      connection closed by the broker), not by silence until the client's 30 s timeout:
#      every failed send of the test must be given up within 10 s of that resume (and none
#      of B's may fail: check_failed_sends).
#   5. A consumer through B receives every acknowledged message of A and B, in order, none
#      twice, nothing that was never sent; none of A's sends after the takeover is readable
#      (--forbid 2000-2099).
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure (logs printed).
#
# Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init fencing
need_bin

NA=1000
NB=1000
NA2=100
TOPIC="fencing-$$"
SUB=fencing-sub

bk_cluster_start 2
# B starts only once A owns the topic's bundle (else A's lookup could assign it to B).
start_broker() {
    start_zk_broker "broker$1" --set managedLedgerDefaultEnsembleSize=2 \
        --set managedLedgerDefaultWriteQuorum=2 --set managedLedgerDefaultAckQuorum=2 || exit 1
}
start_broker A
URLA="pulsar://127.0.0.1:$(port_of brokerA brokerServicePort)"

# ---- 1. subscription through A ------------------------------------------------------------
subscribe sub "$URLA" "$TOPIC" "$SUB"

# ---- 2. A's producer, then paused ------------------------------------------------------------
RESUME_START=$((NA + NB))
start_node producerA 300 lib/verify-produce.js --url "$URLA" --topic "$TOPIC" \
    --count $((NA + NA2)) --pause-after "$NA" --resume-file "$T/resume" \
    --resume-start "$RESUME_START" --no-recreate --send-timeout-ms 30000 --deadline-s 240 \
    --out "$T/produceA.json" --progress "$T/produceA.progress"
if wait_progress producerA "$T/produceA.progress" paused 1 120 \
    && [ "$(kv "$T/produceA.progress" acked)" = "$NA" ]; then
    pass "broker A acknowledged all $NA messages (producer paused, connection kept)"
else
    fail "broker A: $(cat "$T/produceA.progress" 2>/dev/null) (want acked=$NA paused=1)"
    exit 1
fi

# ---- 3. B takes the topic --------------------------------------------------------------------
start_broker B
URLB="pulsar://127.0.0.1:$(port_of brokerB brokerServicePort)"

# Broker A owns the topic's bundle through an ephemeral key in ZooKeeper. Take that lease
# away behind A's back (as when A's session is about to expire but A has not noticed): B
# is then free to take the bundle and load the topic, which recovers and fences the ledger
# A still has open. A must not be able to add to it any more.
# The key is replaced by one naming B (as B would write it); then an authoritative lookup
# at B (what a Pulsar client sends after a redirect to B) makes B take the bundle, whatever
# the load reports say (a non-authoritative one may hand the bundle to A again: B sees a key
# of its own URL that it does not hold, removes it as stale and assigns by load).
WA=$(port_of brokerA webServicePort)
WB=$(port_of brokerB webServicePort)
RANGE=$(curl -sf "http://127.0.0.1:$WA/lookup/v2/topic/persistent/public/default/$TOPIC/bundle")
zkcli() {
    java -cp "${ZK_CLASSPATH:-/usr/share/java/zookeeper.jar}" org.apache.zookeeper.ZooKeeperMain \
        -server "127.0.0.1:$ZK_PORT" "$@" >>"$T/zkcli.log" 2>&1
}
KEY="/namespace/public/default/$RANGE"
DATA="{\"nativeUrl\":\"$URLB\",\"httpUrl\":\"http://127.0.0.1:$WB\",\"disabled\":false,\"advertisedListeners\":{}}"
T_LEASE=$(now_ms)
kill -STOP "$(pid_of brokerA)"
if [ -n "$RANGE" ] && zkcli delete "$KEY" && zkcli create "$KEY" "$DATA"; then
    pass "A's lease on bundle $RANGE taken away behind its back (the key now names B)"
else
    fail "could not replace A's ownership of ${RANGE:-?}: $(tail -n 3 "$T/zkcli.log")"
fi
LOOKUP=$(curl -sf --max-time 30 "http://127.0.0.1:$WB/lookup/v2/topic/persistent/public/default/$TOPIC?authoritative=true")
if [[ "$LOOKUP" == *"\"brokerUrl\":\"$URLB\""* ]] && wait_log brokerB "bundle public/default/$RANGE acquired" 30; then
    pass "broker B took bundle $RANGE on an authoritative lookup"
else
    fail "broker B did not take bundle $RANGE: lookup answered '$LOOKUP'"
fi

run_node 200 producerB lib/verify-produce.js --url "$URLB" --topic "$TOPIC" --start "$NA" \
    --count "$NB" --send-timeout-ms 30000 --deadline-s 150 --out "$T/produceB.json"
rc=$?
AB=$(json "$T/produceB.json" ackedCount)
if [ $rc -eq 0 ] && [ "${AB:-0}" = "$NB" ] \
    && grep -qE "producer [0-9]+ '.*' on persistent://public/default/$TOPIC\$" "$T/brokerB.log"; then
    pass "broker B (after loading the topic A has open) acknowledged all $NB messages"
else
    fail "broker B: exit $rc, ${AB:-?} of $NB acknowledged: $(cat "$T/producerB.out") $(tail -n 3 "$T/producerB.err")"
fi
[ -s "$T/produceB.json" ] || echo '{"acked":[]}' >"$T/produceB.json"

# ---- 4. A's producer again --------------------------------------------------------------------
# Its sends are written to A's socket while A is still stopped, then A continues: whether A
# first hears that its key changed (it drops the bundle and closes the producer) or first
# reads the sends (the adds are fenced), none of them may be acknowledged.
T_RESUME=$(now_ms)
touch "$T/resume"
wait_progress producerA "$T/produceA.progress" sent $((NA + NA2)) 60 \
    || fail "A's producer did not send its $NA2 messages while A was stopped"
note "SIGCONT A after $(($(now_ms) - T_LEASE)) ms"
kill -CONT "$(pid_of brokerA)"

wait_exit producerA 120
rc=$?
[ $rc -eq 0 ] || fail "producer on A exit code $rc"
R=$(json "$T/produceA.json" resumed)
note "A's producer after the takeover: $R"
RACKED=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(r.acked)' "$R" 2>/dev/null)
RFAILED=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(r.failed)' "$R" 2>/dev/null)
RERR=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(r.firstError || "")' "$R" 2>/dev/null)
if [ "$RACKED" = 0 ] && [ "${RFAILED:-0}" -ge 1 ]; then
    pass "A's producer got no receipt after B took the topic ($RFAILED send(s) failed)"
else
    fail "A's producer after B took the topic: ${RACKED:-?} of its sends acknowledged, ${RFAILED:-?} failed (want 0 acknowledged)"
fi
case "$RERR" in
"") fail "A's producer saw no error" ;;
"no receipt within"*) fail "A's send was neither acknowledged nor refused (silence until the client timeout: $RERR)" ;;
*) pass "A's send was refused: $RERR" ;;
esac
check_failed_sends "failed sends" "takeover@$T_LEASE-$T_RESUME:$NA2" "$NA2" "$T/produceA.json,$T/produceB.json"

# ---- 5. everything acknowledged is readable through B ---------------------------------------------
if run_node 200 consumer lib/verify-consume.js --url "$URLB" --topic "$TOPIC" --sub "$SUB" \
    --out "$T/consume.json" --expect "$T/produceA.json,$T/produceB.json" \
    --forbid "$RESUME_START-$((RESUME_START + NA2 - 1))" --deadline-s 120; then
    pass "through B: every message acknowledged by A or B received, in order, once; nothing unsent, none of A's after the takeover: $(cat "$T/consumer.out")"
else
    fail "through B: $(cat "$T/consumer.out") $(tail -n 3 "$T/consumer.err")"
fi
LAST=$(json "$T/consume.json" last)
if [ -n "$LAST" ] && [ "$LAST" != null ] && [ "$LAST" -lt "$RESUME_START" ]; then
    pass "none of A's sends after the takeover is readable"
else
    fail "a message A sent after the takeover is readable (last counter read: ${LAST:-none})"
fi

for b in A B; do alive "broker$b" || fail "broker $b died"; done
stop_clean 20 brokerA brokerB bk1 bk2
check_sanitizers

summary=$(echo "fencing acknowledged_by_A=$(json "$T/produceA.json" ackedCount) acknowledged_by_B=${AB:-0}" \
    "A_after_takeover: sent=$(node -e 'console.log(JSON.parse(process.argv[1]).sent)' "$R" 2>/dev/null)" \
    "acknowledged=${RACKED:-?} failed=${RFAILED:-?} error=\"$RERR\"" \
    "found=$(json "$T/consume.json" unique) missing=$(json "$T/consume.json" missing)" \
    "duplicates=$(json "$T/consume.json" dups) out_of_order=$(json "$T/consume.json" disorder)" \
    "ledgers_read=$(json "$T/consume.json" ledgers)")
echo "SUMMARY: $summary"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: fencing test: $summary" || echo "FAIL: fencing test: $summary"
exit "$IT_FAILED"
