#!/usr/bin/env bash
# cluster.test.sh - durability of acknowledged messages while bookies fail.
#
# One real ZooKeeper (zk.sh), four `magnetar bookie` processes and one `magnetar broker`,
# all on conf/broker.yaml and conf/bookie.yaml as a user runs them (managedLedgerStore
# bookkeeper, E=2 Qw=2 Qa=2: four bookies, a spare for each of the two ensemble changes
# below; bookkeeperClientTimeoutInSeconds, session and keep-alive settings left at their
# defaults), and clients with a user's timeouts (a send without a receipt for 30 s has
# failed).
#   1. A durable Exclusive subscription is created (pulsar-flex subscribes at Latest).
#   2. A pulsar-flex producer (tests/compat/lib/verify-produce.js) sends 20,000 messages whose
#      payload carries an increasing counter, at most 500 outstanding, ~1000/s; it records
#      which sends got a receipt (a failed or timed-out send is "not acknowledged" and never
#      sent again).
#   3. At 25% acknowledged: SIGKILL one bookie of the ensemble of the topic's current ledger
#      (chosen at random; the ensemble is read from the ledger's metadata in ZooKeeper, the
#      ledger id from the topic's internalStats). The broker must replace it (ensemble
#      change: the ensemble no longer names it) and go on: 50% acknowledged within 60 s.
#   4. At 50%: SIGSTOP one bookie of the ensemble then for the broker's bookie timeout + 3 s
#      (its bookkeeperClientTimeoutInSeconds, read with `magnetar config show`), then
#      SIGCONT: the broker must give up on it after its timeout and replace it with the last
#      spare (the ensemble no longer names it).
#   Failed sends: none may fail because of the SIGKILL (the ensemble change is invisible to
#   clients); the SIGSTOP outlasts the client's send timeout, so the sends outstanding then
#   may fail, at most one window (500), and none after the broker replaced the bookie
#   (check_failed_sends: each send that got no receipt was given up during a fault, each
#   fault + 10 s to heal); none may be left unsent.
#   5. After the producer finished: 1,000 more messages, every one of which must be
#      acknowledged (the cluster is healthy again: three bookies for E=2).
#   6. A consumer (verify-consume.js) on the subscription: every acknowledged message is
#      received, in order, none twice, and nothing else but sends that got no receipt (those
#      may appear: counted as extra); a message no producer sent fails the test.
#   7. The broker is SIGKILLed and a new one started (empty cache: it reopens the topic from
#      the store, recovers the ledger and reads from the surviving bookies); a second
#      subscription, created with the first, must give the same result through it.
# Prints PASS:/FAIL: lines and a SUMMARY line (sent, acknowledged, failed, found); exits
# non-zero on any failure (logs of every process are printed then). Everything started is
# stopped by pid.
#
# Environment: MAGNETAR_BIN (the binary), CLUSTER_MESSAGES (20000), CLUSTER_RATE (1000/s),
# CLUSTER_BK_TIMEOUT_S (unset: the broker's default; set: a faster, non-default run),
# CLUSTER_STOP_S (bookie timeout + 3), CLUSTER_SEED (random choice of the victims; default:
# $RANDOM).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init cluster
need_bin

N=${CLUSTER_MESSAGES:-20000}
RATE=${CLUSTER_RATE:-1000}
WINDOW=500
SEND_TIMEOUT_MS=30000
bk_timeout_args=()
[ -n "${CLUSTER_BK_TIMEOUT_S:-}" ] && bk_timeout_args=(--set bookkeeperClientTimeoutInSeconds="$CLUSTER_BK_TIMEOUT_S")
BK_TIMEOUT=$(cfg_value bookkeeperClientTimeoutInSeconds --config "$IT_TOP/conf/broker.yaml" "${bk_timeout_args[@]}")
[ -n "$BK_TIMEOUT" ] || { fail "cannot read bookkeeperClientTimeoutInSeconds from magnetar config show"; exit 1; }
STOP_S=${CLUSTER_STOP_S:-$((BK_TIMEOUT + 3))}
SEED=${CLUSTER_SEED:-$RANDOM}
RANDOM=$SEED
N2=1000
TOPIC="cluster-$$-$SEED"
SUB=durability
SUB2=after-broker-crash
note "seed $SEED, $N messages at $RATE/s, bookie timeout $BK_TIMEOUT s, SIGSTOP $STOP_S s"

NBK=4
bk_cluster_start $NBK
pass "$NBK bookies registered"

# (broker2, the restarted broker, runs on the same data directory)
broker_args=(--set dataDirectory="$T/broker"
    --set managedLedgerDefaultEnsembleSize=2 --set managedLedgerDefaultWriteQuorum=2
    --set managedLedgerDefaultAckQuorum=2 "${bk_timeout_args[@]}")
start_zk_broker broker "${broker_args[@]}" || exit 1
URL="pulsar://127.0.0.1:$(port_of broker brokerServicePort)"

# ---- 1. the subscriptions ---------------------------------------------------------------
for sub in "$SUB" "$SUB2"; do
    subscribe "sub-$sub" "$URL" "$TOPIC" "$sub"
done

# ---- 2. the producer --------------------------------------------------------------------
# ensemble_now: sets ENSEMBLE to the bookies (indexes) of the last segment of the topic's
# current ledger: its id from the broker's internalStats, its BookKeeper metadata from
# ZooKeeper (binary protobuf whose bookie ids "127.0.0.1:PORT" are plain strings, the
# segments in order: the last E of them are the current ensemble).
ensemble_now() {
    local lid d ids id i
    ENSEMBLE=()
    lid=$(curl -sf "http://127.0.0.1:$(port_of broker webServicePort)/admin/v2/persistent/public/default/$TOPIC/internalStats" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const l=JSON.parse(s).ledgers||[];console.log(l.length?l[l.length-1].ledgerId:"")})' 2>/dev/null)
    [ -n "$lid" ] || { note "no ledger id in internalStats"; return 1; }
    LEDGER_ID=$lid
    d=$(printf '%010d' "$lid")
    ids=$(java -cp "${ZK_CLASSPATH:-/usr/share/java/zookeeper.jar}" org.apache.zookeeper.ZooKeeperMain \
        -server "127.0.0.1:$ZK_PORT" get "/ledgers/${d:0:2}/${d:2:4}/L${d:6:4}" 2>/dev/null |
        grep -ao '127\.0\.0\.1:[0-9]\+' | tail -n 2)
    for id in $ids; do
        for i in $(seq 1 $NBK); do
            [ "127.0.0.1:$(port_of "bk$i" bookiePort)" = "$id" ] && ENSEMBLE+=("$i")
        done
    done
    note "ledger $lid: ensemble ${ENSEMBLE[*]/#/bk}"
    [ ${#ENSEMBLE[@]} -eq 2 ]
}

start_node producer $((N / RATE + 400)) lib/verify-produce.js --url "$URL" --topic "$TOPIC" \
    --count "$N" --rate "$RATE" --window "$WINDOW" --send-timeout-ms "$SEND_TIMEOUT_MS" --deadline-s 300 \
    --out "$T/produce.json" --progress "$T/produce.progress"

# ---- 3. SIGKILL a bookie of the ensemble at 25% --------------------------------------------
if wait_progress producer "$T/produce.progress" acked $((N / 4)) 120; then
    pass "$((N / 4)) receipts before any failure"
else
    fail "the producer did not reach $((N / 4)) receipts within 120 s ($(cat "$T/produce.progress" 2>/dev/null))"
fi
ensemble_now || { fail "cannot read the ensemble of $TOPIC's ledger"; exit 1; }
victim=${ENSEMBLE[$((RANDOM % 2))]}
note "SIGKILL bk$victim (pid $(pid_of "bk$victim"), port $(port_of "bk$victim" bookiePort)) at $(cat "$T/produce.progress")"
at_kill=$(kv "$T/produce.progress" acked)
T_KILL=$(now_ms)
kill_proc "bk$victim"

# ---- 4. SIGSTOP another one at 50% -------------------------------------------------------
if wait_progress producer "$T/produce.progress" acked $((N / 2)) 60; then
    pass "writes went on after bk$victim was killed ($(cat "$T/produce.progress"))"
else
    fail "no $((N / 2)) receipts within 60 s of killing bk$victim (no ensemble change?): $(cat "$T/produce.progress" 2>/dev/null)"
fi
rest=()
for i in $(seq 1 $NBK); do [ "$i" != "$victim" ] && rest+=("$i"); done
ensemble_now || { fail "cannot read the ensemble of $TOPIC's ledger"; exit 1; }
case " ${ENSEMBLE[*]} " in
*" $victim "*) fail "the ensemble still names the killed bk$victim" ;;
*) pass "the killed bk$victim was replaced: the ensemble is now ${ENSEMBLE[*]/#/bk}" ;;
esac
stopped=${ENSEMBLE[$((RANDOM % 2))]}
STOP_LEDGER=$LEDGER_ID
note "SIGSTOP bk$stopped (pid $(pid_of "bk$stopped")) for $STOP_S s at $(cat "$T/produce.progress")"
T_STOP=$(now_ms)
kill -STOP "$(pid_of "bk$stopped")"
sleep "$STOP_S" # the fault itself lasts this long (nothing is asserted after it)
kill -CONT "$(pid_of "bk$stopped")"
T_CONT=$(now_ms)
note "SIGCONT bk$stopped at $(cat "$T/produce.progress")"
if ! ensemble_now; then
    fail "cannot read the ensemble of $TOPIC's ledger after the SIGSTOP"
elif [ "$LEDGER_ID" != "$STOP_LEDGER" ]; then
    fail "the topic rolled from ledger $STOP_LEDGER to $LEDGER_ID during the SIGSTOP (the bookie was not replaced in place)"
elif [[ " ${ENSEMBLE[*]} " == *" $stopped "* ]]; then
    fail "the ensemble still names bk$stopped, stopped for longer than the bookie timeout"
else
    pass "bk$stopped, stopped for ${STOP_S} s, was replaced: the ensemble is now ${ENSEMBLE[*]/#/bk}"
fi

wait_exit producer $((N / RATE + 330))
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/produce.json" ]; then
    pass "producer finished: $(cat "$T/producer.out")"
else
    fail "producer exit code $rc"
    exit 1
fi
SENT=$(json "$T/produce.json" sent)
ACKED=$(json "$T/produce.json" ackedCount)
FAILED=$(json "$T/produce.json" failedCount)
NOTSENT=$(json "$T/produce.json" notSent)
note "producer: sent $SENT, acknowledged $ACKED, failed $FAILED, not sent $NOTSENT; errors $(json "$T/produce.json" errors)"
[ "$NOTSENT" = 0 ] || fail "$NOTSENT messages could not be sent at all (no producer could be created before the deadline)"
[ $((ACKED + FAILED)) -eq "$N" ] || fail "$N sent, but $ACKED acknowledged + $FAILED failed"
check_failed_sends "sends during the bookie faults" \
    "kill-bk$victim@$T_KILL-$T_KILL:0,stop-bk$stopped@$T_STOP-$T_CONT:$WINDOW" "$WINDOW" "$T/produce.json"

# ---- 5. healthy again ----------------------------------------------------------------------
produce_all producer2 "$T/produce2.json" 200 "$N2" "after the failures, new messages" \
    --url "$URL" --topic "$TOPIC" --start "$N" --send-timeout-ms "$SEND_TIMEOUT_MS" --deadline-s 180
ACKED2=$PRODUCE_ACKED
[ -s "$T/produce2.json" ] || echo '{"acked":[]}' >"$T/produce2.json"

# ---- 6. every acknowledged message, in order, once ------------------------------------------
verify_sub() { # verify_sub SUB URL WHAT -> sets FOUND MISSING DUPS DISORDER EXTRA PHANTOM
    local sub=$1 url=$2 what=$3
    if run_node 400 "consumer-$sub" lib/verify-consume.js --url "$url" --topic "$TOPIC" --sub "$sub" \
        --out "$T/consume-$sub.json" --expect "$T/produce.json,$T/produce2.json" --deadline-s 300; then
        pass "$what: every acknowledged message received, in order, none twice, nothing unsent: $(cat "$T/consumer-$sub.out")"
    else
        fail "$what: $(cat "$T/consumer-$sub.out") $(tail -n 3 "$T/consumer-$sub.err")"
    fi
    FOUND=$(json "$T/consume-$sub.json" unique)
    MISSING=$(json "$T/consume-$sub.json" missing)
    DUPS=$(json "$T/consume-$sub.json" dups)
    DISORDER=$(json "$T/consume-$sub.json" disorder)
    EXTRA=$(json "$T/consume-$sub.json" extra)
    PHANTOM=$(json "$T/consume-$sub.json" phantom)
}
verify_sub "$SUB" "$URL" "through the running broker"
R1="found=$FOUND missing=$MISSING duplicates=$DUPS out_of_order=$DISORDER extra_unacknowledged=$EXTRA never_sent=$PHANTOM"

# ---- 7. the same from the bookies alone: SIGKILL the broker, start a new one ------------------
alive broker && pass "broker alive after the bookie failures" || fail "broker died"
note "SIGKILL broker (pid $(pid_of broker)); a new broker reads $SUB2 from the bookies"
# The new broker takes the old one's address and ports, as a restarted pod would: it finds
# the bundle ownership its predecessor left in ZooKeeper (the dead session has not expired
# yet), recognises its own URL there and takes the bundle over at once.
old_bport=$(port_of broker brokerServicePort)
old_wport=$(port_of broker webServicePort)
kill_proc broker
start_zk_broker broker2 "${broker_args[@]}" \
    --set brokerServicePort="$old_bport" --set webServicePort="$old_wport" || exit 1
verify_sub "$SUB2" "pulsar://127.0.0.1:$(port_of broker2 brokerServicePort)" \
    "after a broker SIGKILL, read back from the bookies by a new broker"
R2="found=$FOUND missing=$MISSING duplicates=$DUPS out_of_order=$DISORDER extra_unacknowledged=$EXTRA never_sent=$PHANTOM"

# ---- processes ---------------------------------------------------------------------------
for i in "${rest[@]}"; do alive "bk$i" || fail "bookie bk$i died"; done
stop_proc broker2 20
rc=$?
[ $rc -eq 0 ] && pass "broker exit 0 on SIGTERM" || fail "broker exit code $rc on SIGTERM"
for i in "${rest[@]}"; do
    stop_proc "bk$i" 20
    rc=$?
    [ $rc -eq 0 ] || fail "bookie bk$i exit code $rc on SIGTERM"
done
check_sanitizers

summary=$(echo "cluster seed=$SEED bookie_timeout=${BK_TIMEOUT}s killed=bk$victim(at $at_kill acked) stopped=bk$stopped(${STOP_S}s)" \
    "sent=$((SENT + N2)) acknowledged=$((ACKED + ${ACKED2:-0})) failed=$FAILED (bound $WINDOW; by fault $FAILED_BY_FAULT)" \
    "| live broker: $R1 | new broker after SIGKILL: $R2")
echo "SUMMARY: $summary"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: cluster durability test: $summary" || echo "FAIL: cluster durability test: $summary"
exit "$IT_FAILED"
