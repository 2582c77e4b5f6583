#!/usr/bin/env bash
# failover.test.sh - stateless brokers on ZooKeeper: bundle ownership, lookups with
# redirects, failover after a broker SIGKILL, the split-brain guard and a ZooKeeper restart.
#
# One ZooKeeper (zk.sh), three bookies, two brokers (managedLedgerStore=bookkeeper, E=2 Qw=2
# Qa=2, zooKeeperSessionTimeoutMillis=$FO_SESSION_MS, default 6000).
#   1. Failover. `magnetar perf produce` (8 topics over every bundle, service URL naming
#      both brokers: lookups redirect) and a pulsar-flex producer (verify-produce.js, one
#      busy topic, service URL = the broker that does NOT own it) run at a steady rate. At
#      25% the broker owning the busy topic is SIGKILLed. The other takes its bundles once
#      the session expires; the clients look up again and go on. Printed: the time from the
#      kill to the first producer served by the new owner on the busy topic (and to its
#      first receipt, from the pulsar-flex progress). Checked: every acknowledged pulsar-flex
#      message is consumed, in order, none twice (verify-consume.js); perf consume (Earliest)
#      receives at least as many messages as perf produce had acknowledged.
#   2. Split brain. The killed broker is restarted. A pulsar-flex producer on a new topic
#      pauses after 2,000 messages (its producer stays connected to the owner); the owner is
#      SIGSTOPped; meanwhile a second pulsar-flex producer through the other broker must get
#      2,000 messages acknowledged (it took the bundle: fencing the old ledger).
#      SIGCONT: the paused producer sends again on its old connection: the old owner must not
#      add to the fenced ledger (no receipt from it), and must drop its bundles (log). All
#      acknowledged messages are consumed in order.
#   3. ZooKeeper restart while the brokers run: both reconnect and serve a new producer.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure (logs printed).
# Environment: MAGNETAR_BIN, FO_SESSION_MS (6000), FO_RATE (pulsar-flex msg/s, 500),
# FO_COUNT (pulsar-flex messages, 15000), IT_KEEP=1 keeps the work directory.
# (Split brain: the second writer is pulsar-flex too, counters 4000.., so the consumer can
# check every acknowledged counter of both owners in one increasing sequence.)
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init failover
need_bin

SESSION_MS=${FO_SESSION_MS:-6000}
RATE=${FO_RATE:-500}
N=${FO_COUNT:-15000}
PERF_S=$((N / RATE + 5))
BUSY="fo-busy-$$"
PERF_T="fo-perf-$$"
SB="fo-split-$$"

zk_start
ZKURL="zk:127.0.0.1:$ZK_PORT"

for i in 1 2 3; do
    mkdir -p "$T/bk$i"
    start_magnetar "bk$i" bookie "bookiePort" 30 -- --config "$IT_TOP/conf/bookie.yaml" \
        --set bookiePort=0 --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 \
        --set metadataStoreUrl="$ZKURL" --set dataDirectory="$T/bk$i" \
        --set journalDirectory="$T/bk$i/journal" --set ledgerDirectories="$T/bk$i/ledgers" \
        || exit 1
done
for i in 1 2 3; do
    wait_log "bk$i" "registered " 30 || { fail "bookie bk$i did not register within 30 s"; exit 1; }
done

broker_args=(--config "$IT_TOP/conf/broker.yaml" --set bindAddress=127.0.0.1
    --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL"
    --set managedLedgerDefaultEnsembleSize=2
    --set managedLedgerDefaultWriteQuorum=2 --set managedLedgerDefaultAckQuorum=2
    --set bookkeeperClientTimeoutInSeconds=5 --set keepAliveIntervalSeconds=5
    --set zooKeeperSessionTimeoutMillis="$SESSION_MS"
    --set loadBalancerReportUpdateMinIntervalMillis=1000 --set brokerShutdownTimeoutMs=15000
    --set brokerServicePort=0 --set webServicePort=0)
start_broker() { # start_broker NAME
    mkdir -p "$T/$1"
    start_magnetar "$1" broker "brokerServicePort webServicePort" 60 -- "${broker_args[@]}" \
        --set dataDirectory="$T/$1"
}
url_of() { echo "pulsar://127.0.0.1:$(port_of "$1" brokerServicePort)"; }
start_broker b1 || exit 1
start_broker b2 || exit 1
U1=$(url_of b1)
U2=$(url_of b2)
BOTH="pulsar://127.0.0.1:$(port_of b1 brokerServicePort),127.0.0.1:$(port_of b2 brokerServicePort)"
pass "2 brokers up: $U1 $U2"

# epoch ms of an ISO log timestamp (2026-11-25T22:37:39.188Z)
log_ms() { date -u -d "$1" +%s%3N; }
now_ms() { date +%s%3N; }
# owner_of TOPIC_SUBSTRING NAME...: the first broker whose log shows a producer on it
owner_of() {
    local t=$1 n
    shift
    for n in "$@"; do
        grep -qE "producer [0-9]+ '.*' on persistent://public/default/$t\$" "$T/$n.log" && { echo "$n"; return; }
    done
}

# ---- 1. failover after SIGKILL -------------------------------------------------------------
run_node 60 sub-busy lib/verify-consume.js --url "$U1" --topic "$BUSY" --sub fo \
    --out "$T/sub-busy.json" --subscribe-only || { fail "subscribe to $BUSY: $(tail -n 3 "$T/sub-busy.err")"; exit 1; }
OWNER=""
for n in b1 b2; do grep -qE "subscribed to persistent://public/default/$BUSY sub" "$T/$n.log" && OWNER=$n; done
[ -n "$OWNER" ] || { fail "no broker served the subscription of $BUSY"; exit 1; }
OTHER=$([ "$OWNER" = b1 ] && echo b2 || echo b1)
[ "$OWNER" = b1 ] && SUB_VIA=direct || SUB_VIA=redirect
pass "$BUSY is owned by $OWNER (subscribed through b1: $SUB_VIA)"

start_magnetar_perf() { # NAME ARGS... (perf in the background; pid registered)
    local name=$1
    shift
    "$BIN" perf "$@" >"$T/$name.log" 2>&1 &
    register "$name" $!
}
start_magnetar_perf perfp produce -u "$BOTH" -t 8 -r 800 -time "$PERF_S" -i 2 \
    --json "$T/perfp.json" "$PERF_T"
start_node producer $((PERF_S + 200)) lib/verify-produce.js --url "$(url_of "$OTHER")" \
    --topic "$BUSY" --count "$N" --rate "$RATE" --window 200 --send-timeout-ms 20000 \
    --deadline-s $((PERF_S + 120)) --out "$T/produce.json" --progress "$T/produce.progress"

if wait_progress producer "$T/produce.progress" acked $((N / 4)) 90; then
    pass "$((N / 4)) receipts on $BUSY before the kill"
else
    fail "no $((N / 4)) receipts within 90 s: $(cat "$T/produce.progress" 2>/dev/null)"
    exit 1
fi
n_owned_before=$(grep -c "acquired" "$T/$OWNER.log")
ACK_AT_KILL=$(kv "$T/produce.progress" acked)
T_KILL=$(now_ms)
note "SIGKILL $OWNER (owner of $BUSY, $n_owned_before bundles acquired) at $(cat "$T/produce.progress")"
kill_proc "$OWNER"

# the new owner's first producer on the busy topic, then the client's next receipt
T_RECEIPT=""
for _ in $(seq 1 $(( (SESSION_MS / 1000 + 60) * 10 ))); do
    [ -n "$(owner_of "$BUSY" "$OTHER")" ] && break
    sleep 0.1
done
a0=$(kv "$T/produce.progress" acked)
for _ in $(seq 1 300); do
    a=$(kv "$T/produce.progress" acked)
    if [ -n "$a" ] && [ -n "$a0" ] && [ "$a" -gt "$a0" ]; then T_RECEIPT=$(now_ms); break; fi
    sleep 0.1
done
first_prod=$(grep -E "producer [0-9]+ '.*' on persistent://public/default/$BUSY\$" "$T/$OTHER.log" | head -n 1 | cut -d' ' -f1)
if [ -n "$first_prod" ] && [ -n "$T_RECEIPT" ]; then
    FAILOVER_PRODUCER_MS=$(( $(log_ms "$first_prod") - T_KILL ))
    FAILOVER_RECEIPT_MS=$(( T_RECEIPT - T_KILL ))
    pass "failover: $OTHER serves $BUSY ${FAILOVER_PRODUCER_MS} ms after the kill (first receipt seen by the client after ~${FAILOVER_RECEIPT_MS} ms; session timeout $SESSION_MS ms)"
else
    FAILOVER_PRODUCER_MS=-1
    FAILOVER_RECEIPT_MS=-1
    fail "$OTHER did not take $BUSY within $((SESSION_MS / 1000 + 60)) s of the kill"
fi
grep -q "bundle public/default/.* acquired" "$T/$OTHER.log" && pass "$OTHER acquired bundles" || fail "$OTHER acquired nothing"

wait_exit producer $((PERF_S + 150)); rc=$?
[ $rc -eq 0 ] && [ -s "$T/produce.json" ] || { fail "pulsar-flex producer exit $rc"; exit 1; }
wait_exit perfp $((PERF_S + 60)); rc=$?
[ $rc -eq 0 ] && pass "perf produce finished: $(grep 'produce total' "$T/perfp.log")" || fail "perf produce exit $rc: $(tail -n 3 "$T/perfp.log")"
ACKED=$(json "$T/produce.json" ackedCount)
SENT=$(json "$T/produce.json" sent)
PERF_ACKED=$(json "$T/perfp.json" messages_acked)
PERF_SENT=$(json "$T/perfp.json" messages_sent)
note "pulsar-flex: sent $SENT acked $ACKED failed $(json "$T/produce.json" failedCount) errors $(json "$T/produce.json" errors)"

if run_node 300 consumer lib/verify-consume.js --url "$(url_of "$OTHER")" --topic "$BUSY" --sub fo \
    --out "$T/consume.json" --expect "$T/produce.json" --deadline-s 120; then
    pass "$BUSY: every acknowledged message consumed, in order, none twice: $(cat "$T/consumer.out")"
else
    fail "$BUSY: $(cat "$T/consumer.out") $(tail -n 3 "$T/consumer.err")"
fi
FOUND=$(json "$T/consume.json" unique)
MISSING=$(json "$T/consume.json" missing)
DISORDER=$(json "$T/consume.json" disorder)

timeout 120 "$BIN" perf consume -u "$(url_of "$OTHER")" -t 8 -p Earliest -s verify -m "$PERF_ACKED" \
    -time 90 -i 5 --json "$T/perfc.json" "$PERF_T" >"$T/perfc.log" 2>&1
PERF_FOUND=$(json "$T/perfc.json" messages_received)
if [ -n "$PERF_FOUND" ] && [ -n "$PERF_ACKED" ] && [ "$PERF_FOUND" -ge "$PERF_ACKED" ] && [ "$PERF_ACKED" -gt 0 ]; then
    pass "perf: $PERF_ACKED acknowledged over 8 topics, $PERF_FOUND consumed"
else
    fail "perf: $PERF_ACKED acknowledged, ${PERF_FOUND:-?} consumed: $(tail -n 2 "$T/perfc.log")"
fi

# ---- 2. split brain --------------------------------------------------------------------------
start_broker b3 || exit 1
U3=$(url_of b3)
SURV=$OTHER
run_node 60 sub-sb lib/verify-consume.js --url "$U3" --topic "$SB" --sub fo \
    --out "$T/sub-sb.json" --subscribe-only || { fail "subscribe to $SB"; exit 1; }
O2=""
for n in "$SURV" b3; do grep -qE "subscribed to persistent://public/default/$SB sub" "$T/$n.log" && O2=$n; done
N2=$([ "$O2" = b3 ] && echo "$SURV" || echo b3)
note "$SB is owned by $O2; the other broker is $N2"
start_node producer2 200 lib/verify-produce.js --url "$(url_of "$N2")" --topic "$SB" \
    --count 4000 --pause-after 2000 --resume-file "$T/resume" --no-recreate --window 100 \
    --send-timeout-ms 15000 --deadline-s 150 --out "$T/produce2.json" --progress "$T/produce2.progress"
for _ in $(seq 1 600); do grep -q "paused=1" "$T/produce2.progress" 2>/dev/null && break; sleep 0.1; done
grep -q "paused=1" "$T/produce2.progress" || { fail "producer2 did not pause"; exit 1; }
note "SIGSTOP $O2 (session timeout $SESSION_MS ms)"
kill -STOP "$(pid_of "$O2")"
T_STOP=$(now_ms)
# The other broker takes the bundle once the session expired; until then its lookups
# redirect to the stopped one (the pulsar-flex producer retries creating its producer).
run_node 200 producer3 lib/verify-produce.js --url "$(url_of "$N2")" --topic "$SB" \
    --start 4000 --count 2000 --rate 400 --window 100 --send-timeout-ms 15000 \
    --create-timeout-ms 5000 --deadline-s $((SESSION_MS / 1000 * 2 + 60)) --out "$T/produce3.json"
SB_ACKED=$(json "$T/produce3.json" ackedCount)
T_TAKEN=$(( $(now_ms) - T_STOP ))
[ "${SB_ACKED:-0}" -ge 2000 ] && pass "while $O2 was stopped $N2 took $SB and acknowledged $SB_ACKED messages (done ${T_TAKEN} ms after SIGSTOP)" \
    || fail "split brain: only ${SB_ACKED:-0} of 2000 acknowledged by $N2: $(cat "$T/producer3.out")"
grep -qE "bundle public/default/.* acquired" "$T/$N2.log" || fail "$N2 acquired nothing"
# The paused producer sends again on its connection to the stopped broker: the frames are
# waiting in the socket when it resumes, next to the news of its expired session.
touch "$T/resume"
sleep 1
kill -CONT "$(pid_of "$O2")"
note "SIGCONT $O2 after $(( $(now_ms) - T_STOP )) ms"
wait_exit producer2 120
R=$(json "$T/produce2.json" resumed)
note "old producer after SIGCONT (its connection to $O2): $R"
RESUMED_ACKED=$(echo "$R" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).acked)}catch(e){console.log("?")}})')
[ "$RESUMED_ACKED" = 0 ] && pass "$O2 added nothing after SIGCONT (0 receipts on the old connection: $R)" \
    || fail "$O2 acknowledged $RESUMED_ACKED messages after SIGCONT"
if wait_log "$O2" "bundle .* lost" 30; then
    pass "$O2 dropped its bundles: $(grep -m1 -E 'bundle .* lost' "$T/$O2.log" | cut -c1-160)"
    grep -E "fenced|publish on .* failed" "$T/$O2.log" | head -n 3 | cut -c1-200 | sed 's/^/    /'

else
    fail "$O2 shows no sign of dropping its bundles"
fi
echo '{"acked":[]}' >"$T/empty.json"
SBEXP="$T/produce2.json,$T/produce3.json"
timeout 100 "$BIN" perf consume -u "$(url_of "$N2")" -t 1 -p Earliest -s sbcount -m 4000 -time 20 \
    --json "$T/perfsbc.json" "$SB" >"$T/perfsbc.log" 2>&1
if run_node 200 consumer2 lib/verify-consume.js --url "$(url_of "$N2")" --topic "$SB" --sub fo \
    --out "$T/consume2.json" --expect "$SBEXP" --deadline-s 60; then
    pass "$SB: every acknowledged pulsar-flex message consumed in order: $(cat "$T/consumer2.out")"
else
    fail "$SB: $(cat "$T/consumer2.out") $(tail -n 3 "$T/consumer2.err")"
fi
SB_FOUND=$(json "$T/perfsbc.json" messages_received)
note "$SB holds ${SB_FOUND:-?} messages (2000 acked by the old owner before the stop + $SB_ACKED by the new one)"

# ---- 3. ZooKeeper restart --------------------------------------------------------------------
note "restarting ZooKeeper"
T_ZK=$(now_ms)
"$IT_DIR/zk.sh" stop "$T/zk" >/dev/null 2>&1
"$IT_DIR/zk.sh" start "$T/zk" >/dev/null || { fail "ZooKeeper did not restart"; exit 1; }
ZK_DOWN_MS=$(( $(now_ms) - T_ZK ))
note "ZooKeeper back after $ZK_DOWN_MS ms"
sleep 2
for n in "$N2" "$O2"; do alive "$n" || fail "$n died"; done
if timeout 60 "$BIN" perf produce -u "$(url_of "$N2"),127.0.0.1:$(port_of "$O2" brokerServicePort)" \
    -t 4 -r 200 -m 400 -time 40 --json "$T/perfzk.json" "fo-zk-$$" >"$T/perfzk.log" 2>&1 \
    && [ "$(json "$T/perfzk.json" messages_acked)" = 400 ]; then
    pass "after the ZooKeeper restart ($ZK_DOWN_MS ms down) the brokers serve: 400 of 400 acknowledged"
else
    fail "after the ZooKeeper restart: $(tail -n 3 "$T/perfzk.log")"
fi
grep -hE "zk: session .* reconnected|session expired" "$T/$N2.log" "$T/$O2.log" | tail -n 4 | sed 's/^/    /'

# ---- shutdown ----------------------------------------------------------------------------------
for n in "$N2" "$O2"; do
    t0=$(now_ms)
    stop_proc "$n" 20
    rc=$?
    [ $rc -eq 0 ] && pass "$n exit 0 on SIGTERM after $(( $(now_ms) - t0 )) ms" || fail "$n exit code $rc on SIGTERM"
done
check_sanitizers

echo "SUMMARY: failover session=${SESSION_MS}ms killed=$OWNER kill->new-owner-producer=${FAILOVER_PRODUCER_MS}ms" \
    "kill->first-receipt<=${FAILOVER_RECEIPT_MS}ms | pulsar-flex $BUSY: sent=$SENT acknowledged=$ACKED found=$FOUND missing=$MISSING out_of_order=$DISORDER" \
    "| perf 8 topics: sent=$PERF_SENT acknowledged=$PERF_ACKED consumed=$PERF_FOUND" \
    "| split brain: old owner receipts after SIGCONT=$RESUMED_ACKED new owner acked=$SB_ACKED | zk restart ${ZK_DOWN_MS}ms"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: failover test" || echo "FAIL: failover test"
exit "$IT_FAILED"
