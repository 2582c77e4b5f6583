#!/usr/bin/env bash
# failover.test.sh - stateless brokers on ZooKeeper: bundle ownership, lookups with
# redirects, failover after a broker SIGKILL, the split-brain guard and a ZooKeeper restart.
#
# One ZooKeeper (zk.sh), three bookies, two brokers, all on conf/broker.yaml and
# conf/bookie.yaml as a user runs them (managedLedgerStore bookkeeper, E=2 Qw=2 Qa=2; session
# timeout, bookie client timeout, load-report interval, keep-alive and shutdown timeout left
# at their defaults: zooKeeperSessionTimeoutMillis is read with `magnetar config show`), and
# pulsar-flex clients with a user's timeouts (30 s to create a producer or get a receipt).
# Every producer is tests/compat/lib/verify-produce.js (each counter sent once, never resent)
# and every check is on the exact set of counters (verify-consume.js): each acknowledged one
# received once, in order, nothing that was never sent; every send without a receipt must
# have been given up while a fault the test caused was on (verify-failed.js), at most one
# window per producer.
#   1. Failover. Eight producers on eight topics over every bundle (service URL naming both
#      brokers: lookups redirect) and one busy producer (one topic, service URL = the broker
#      that does NOT own it) run at a steady rate. At 25% the broker owning the busy topic
#      is SIGKILLed. The other takes its bundles once the session expires; the clients look
#      up again and go on. Printed: the time from the kill to the first producer served by
#      the new owner on the busy topic (and to its first receipt, from the progress file).
#      Checked on all nine topics: the exact sets, and the failed sends.
#   2. Split brain. The killed broker is restarted. A producer on a new topic pauses after
#      2,000 messages (its producer stays connected to the owner); the owner is SIGSTOPped;
#      meanwhile a second producer through the other broker must get 2,000 messages
#      acknowledged (it took the bundle: fencing the old ledger). SIGCONT: the paused producer
#      sends 2,000 more on its old connection: the old owner must not acknowledge any, none
#      of them may be readable (--forbid), and it must drop its bundles (log). All
#      acknowledged messages of both are consumed in order.
#   3. ZooKeeper restart while the brokers run: both reconnect (log), and four producers
#      through both brokers get every message acknowledged; each topic holds exactly them.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure (logs printed).
# Environment: MAGNETAR_BIN, FO_SESSION_MS (unset: the default; set: a faster, non-default
# run), FO_RATE (busy producer msg/s, 500), FO_COUNT (busy producer messages, 15000),
# IT_KEEP=1 keeps the work directory.
# (Split brain: the second writer's counters start at 4000, so the consumer can check every
# acknowledged counter of both owners in one increasing sequence.)
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init failover
need_bin

session_args=()
[ -n "${FO_SESSION_MS:-}" ] && session_args=(--set zooKeeperSessionTimeoutMillis="$FO_SESSION_MS")
SESSION_MS=$(cfg_value zooKeeperSessionTimeoutMillis --config "$IT_TOP/conf/broker.yaml" "${session_args[@]}")
[ -n "$SESSION_MS" ] || { fail "cannot read zooKeeperSessionTimeoutMillis from magnetar config show"; exit 1; }
RATE=${FO_RATE:-500}
N=${FO_COUNT:-15000}
RUN_S=$((N / RATE + 5))
SEND_TIMEOUT_MS=30000
BUSY="fo-busy-$$"
BUSY_WINDOW=200
NM=8 # topics over every bundle
M_RATE=100
M_WINDOW=100
MULTI=()
for i in $(seq 0 $((NM - 1))); do MULTI+=("fo-multi-$$-$i"); done
SB="fo-split-$$"
NZ=4 # topics after the ZooKeeper restart
ZT=()
for i in $(seq 0 $((NZ - 1))); do ZT+=("fo-zk-$$-$i"); done
note "session timeout $SESSION_MS ms"

bk_cluster_start 3

start_broker() { # start_broker NAME
    start_zk_broker "$1" --set managedLedgerDefaultEnsembleSize=2 \
        --set managedLedgerDefaultWriteQuorum=2 --set managedLedgerDefaultAckQuorum=2 \
        "${session_args[@]}"
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

# Background node clients started together, then waited for together.
# subscribe_all BROKER SUB TOPIC...: create a durable subscription on each topic (before
# producing) through BROKER. First an HTTP lookup there, following its redirect
# (authoritative) as Pulsar's clients do, so that each bundle gets an owner: pulsar-flex
# connects to the broker a lookup names without the authoritative lookup that makes it
# take the bundle, and is refused ("not served by this instance") when that broker does
# not own it yet.
subscribe_all() {
    local url web t ok=0 sub=$2
    url=$(url_of "$1")
    web="http://127.0.0.1:$(port_of "$1" webServicePort)"
    shift 2
    for t in "$@"; do
        curl -sfL -o /dev/null --max-time 30 "$web/lookup/v2/topic/persistent/public/default/$t" \
            || note "HTTP lookup of $t through $web failed"
    done
    for t in "$@"; do
        start_node "sub-$t" 60 lib/verify-consume.js --url "$url" --topic "$t" --sub "$sub" \
            --out "$T/sub-$t.json" --subscribe-only
    done
    for t in "$@"; do
        wait_exit "sub-$t" 70 || { ok=1; fail "subscribe to $t: $(tail -n 3 "$T/sub-$t.err")"; }
    done
    return $ok
}
# verify_all WHAT URL SUB TOPIC...: verify-consume on each topic against produce-TOPIC.json
verify_all() {
    local what=$1 url=$2 sub=$3 t bad=0
    shift 3
    for t in "$@"; do
        start_node "consume-$t" 300 lib/verify-consume.js --url "$url" --topic "$t" --sub "$sub" \
            --out "$T/consume-$t.json" --expect "$T/produce-$t.json" --deadline-s 240
    done
    VERIFIED_FOUND=0
    for t in "$@"; do
        if wait_exit "consume-$t" 310; then
            VERIFIED_FOUND=$((VERIFIED_FOUND + $(json "$T/consume-$t.json" unique)))
        else
            bad=1
            fail "$what: $t: $(cat "$T/consume-$t.out") $(tail -n 3 "$T/consume-$t.err")"
        fi
    done
    [ $bad = 0 ] && pass "$what: on all $# topics every acknowledged message received, in order, once, nothing unsent ($VERIFIED_FOUND messages)"
}
# sum_json KEY TOPIC...: the sum of KEY over produce-TOPIC.json
sum_json() {
    local key=$1 t n=0
    shift
    for t in "$@"; do n=$((n + $(json "$T/produce-$t.json" "$key" || echo 0))); done
    echo "$n"
}
# produce_files TOPIC...: their produce summaries, comma-separated
produce_files() { local t out=; for t in "$@"; do out="$out${out:+,}$T/produce-$t.json"; done; echo "$out"; }
# owner_of TOPIC_SUBSTRING NAME...: the first broker whose log shows a producer on it
owner_of() {
    local t=$1 n
    shift
    for n in "$@"; do
        grep -qE "producer [0-9]+ '.*' on persistent://public/default/$t\$" "$T/$n.log" && { echo "$n"; return; }
    done
}

# ---- 1. failover after SIGKILL -------------------------------------------------------------
subscribe_all b1 fo "$BUSY" "${MULTI[@]}" || exit 1
OWNER=""
for n in b1 b2; do grep -qE "subscribed to persistent://public/default/$BUSY sub" "$T/$n.log" && OWNER=$n; done
[ -n "$OWNER" ] || { fail "no broker served the subscription of $BUSY"; exit 1; }
OTHER=$([ "$OWNER" = b1 ] && echo b2 || echo b1)
[ "$OWNER" = b1 ] && SUB_VIA=direct || SUB_VIA=redirect
pass "$BUSY is owned by $OWNER (subscribed through b1: $SUB_VIA)"
owned_by_owner=0
for t in "${MULTI[@]}"; do
    grep -qE "subscribed to persistent://public/default/$t sub" "$T/$OWNER.log" && owned_by_owner=$((owned_by_owner + 1))
done
note "$owned_by_owner of the $NM topics are owned by $OWNER"

for t in "${MULTI[@]}"; do
    start_node "producer-$t" $((RUN_S + 200)) lib/verify-produce.js --url "$BOTH" --topic "$t" \
        --count $((M_RATE * RUN_S)) --rate "$M_RATE" --window "$M_WINDOW" \
        --send-timeout-ms "$SEND_TIMEOUT_MS" --deadline-s $((RUN_S + 120)) --out "$T/produce-$t.json"
done
start_node producer $((RUN_S + 200)) lib/verify-produce.js --url "$(url_of "$OTHER")" \
    --topic "$BUSY" --count "$N" --rate "$RATE" --window "$BUSY_WINDOW" --send-timeout-ms "$SEND_TIMEOUT_MS" \
    --deadline-s $((RUN_S + 120)) --out "$T/produce-$BUSY.json" --progress "$T/produce.progress"

if wait_progress producer "$T/produce.progress" acked $((N / 4)) 90; then
    pass "$((N / 4)) receipts on $BUSY before the kill"
else
    fail "no $((N / 4)) receipts within 90 s: $(cat "$T/produce.progress" 2>/dev/null)"
    exit 1
fi
n_owned_before=$(grep -c "acquired" "$T/$OWNER.log")
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
    T_RECEIPT=$(now_ms)
    fail "$OTHER did not take $BUSY within $((SESSION_MS / 1000 + 60)) s of the kill"
fi
grep -q "bundle public/default/.* acquired" "$T/$OTHER.log" && pass "$OTHER acquired bundles" || fail "$OTHER acquired nothing"

wait_exit producer $((RUN_S + 150)); rc=$?
[ $rc -eq 0 ] && [ -s "$T/produce-$BUSY.json" ] || { fail "busy producer exit $rc"; exit 1; }
for t in "${MULTI[@]}"; do
    wait_exit "producer-$t" $((RUN_S + 150)); rc=$?
    [ $rc -eq 0 ] && [ -s "$T/produce-$t.json" ] || { fail "producer on $t exit $rc: $(tail -n 3 "$T/producer-$t.err")"; exit 1; }
done
SENT=$(json "$T/produce-$BUSY.json" sent)
ACKED=$(json "$T/produce-$BUSY.json" ackedCount)
M_SENT=$(sum_json sent "${MULTI[@]}")
M_ACKED=$(sum_json ackedCount "${MULTI[@]}")
NOTSENT=$(sum_json notSent "$BUSY" "${MULTI[@]}")
note "busy: sent $SENT acked $ACKED failed $(json "$T/produce-$BUSY.json" failedCount) errors $(json "$T/produce-$BUSY.json" errors)"
note "$NM topics: sent $M_SENT acked $M_ACKED failed $(sum_json failedCount "${MULTI[@]}")"
[ "$NOTSENT" = 0 ] || fail "$NOTSENT messages could not be sent at all (no producer before the deadline)"
check_failed_sends "sends around the SIGKILL of $OWNER" \
    "kill-$OWNER@$T_KILL-$T_RECEIPT:$((BUSY_WINDOW + NM * M_WINDOW))" \
    $((BUSY_WINDOW + NM * M_WINDOW)) "$(produce_files "$BUSY" "${MULTI[@]}")"
FAILED1=$FAILED_SENDS

verify_all "after the failover" "$(url_of "$OTHER")" fo "$BUSY" "${MULTI[@]}"
FOUND=$(json "$T/consume-$BUSY.json" unique)
MISSING=$(json "$T/consume-$BUSY.json" missing)
DISORDER=$(json "$T/consume-$BUSY.json" disorder)
M_FOUND=$((VERIFIED_FOUND - ${FOUND:-0}))

# ---- 2. split brain --------------------------------------------------------------------------
start_broker b3 || exit 1
SURV=$OTHER
subscribe_all b3 fo "$SB" || exit 1
O2=""
for n in "$SURV" b3; do grep -qE "subscribed to persistent://public/default/$SB sub" "$T/$n.log" && O2=$n; done
N2=$([ "$O2" = b3 ] && echo "$SURV" || echo b3)
note "$SB is owned by $O2; the other broker is $N2"
# counters 0..1999 before the pause, 2000..3999 after SIGCONT (on the old connection)
start_node producer2 $((SESSION_MS / 1000 * 2 + 200)) lib/verify-produce.js --url "$(url_of "$N2")" --topic "$SB" \
    --count 4000 --pause-after 2000 --resume-file "$T/resume" --no-recreate --window 100 \
    --send-timeout-ms "$SEND_TIMEOUT_MS" --deadline-s $((SESSION_MS / 1000 * 2 + 150)) \
    --out "$T/produce2.json" --progress "$T/produce2.progress"
wait_progress producer2 "$T/produce2.progress" paused 1 60 || { fail "producer2 did not pause: $(cat "$T/produce2.progress" 2>/dev/null)"; exit 1; }
[ "$(kv "$T/produce2.progress" acked)" = 2000 ] && pass "$O2 acknowledged the first 2000 on $SB" \
    || fail "$O2 acknowledged $(kv "$T/produce2.progress" acked) of the first 2000 on $SB"
note "SIGSTOP $O2 (session timeout $SESSION_MS ms)"
T_STOP=$(now_ms)
kill -STOP "$(pid_of "$O2")"
# The other broker takes the bundle once the session expired; until then its lookups
# redirect to the stopped one (the pulsar-flex producer retries creating its producer).
run_node $((SESSION_MS / 1000 * 2 + 100)) producer3 lib/verify-produce.js --url "$(url_of "$N2")" --topic "$SB" \
    --start 4000 --count 2000 --rate 400 --window 100 --send-timeout-ms "$SEND_TIMEOUT_MS" \
    --create-timeout-ms 30000 --deadline-s $((SESSION_MS / 1000 * 2 + 60)) --out "$T/produce3.json"
SB_ACKED=$(json "$T/produce3.json" ackedCount)
T_TAKEN=$(( $(now_ms) - T_STOP ))
[ "${SB_ACKED:-0}" = 2000 ] && pass "while $O2 was stopped $N2 took $SB and acknowledged all 2000 messages (done ${T_TAKEN} ms after SIGSTOP)" \
    || fail "split brain: only ${SB_ACKED:-0} of 2000 acknowledged by $N2: $(cat "$T/producer3.out")"
grep -qE "bundle public/default/.* acquired" "$T/$N2.log" || fail "$N2 acquired nothing"
# The paused producer sends again on its connection to the stopped broker: the frames are
# waiting in the socket when it resumes, next to the news of its expired session.
touch "$T/resume"
wait_progress producer2 "$T/produce2.progress" sent 2001 30 || fail "producer2 did not resume sending"
kill -CONT "$(pid_of "$O2")"
T_CONT=$(now_ms)
note "SIGCONT $O2 after $((T_CONT - T_STOP)) ms"
wait_exit producer2 $((SESSION_MS / 1000 + 100))
R=$(json "$T/produce2.json" resumed)
note "old producer after SIGCONT (its connection to $O2): $R"
RESUMED_ACKED=$(echo "$R" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).acked)}catch(e){console.log("?")}})')
[ "$RESUMED_ACKED" = 0 ] && pass "$O2 added nothing after SIGCONT (0 receipts on the old connection: $R)" \
    || fail "$O2 acknowledged $RESUMED_ACKED messages after SIGCONT"
if wait_log "$O2" "bundle .* lost" 60; then
    pass "$O2 dropped its bundles: $(grep -m1 -E 'bundle .* lost' "$T/$O2.log" | cut -c1-160)"
    grep -E "fenced|publish on .* failed" "$T/$O2.log" | head -n 3 | cut -c1-200 | sed 's/^/    /'
else
    fail "$O2 shows no sign of dropping its bundles"
fi
for f in produce2 produce3; do [ -s "$T/$f.json" ] || echo '{"acked":[]}' >"$T/$f.json"; done
# producer2's sends after the pause fail by design (the fenced owner: at most its window of
# 100 before it gives up, the rest are not sent); producer3 must lose none
check_failed_sends "split brain sends" "stop-$O2@$T_STOP-$T_CONT:100" 100 "$T/produce2.json,$T/produce3.json"
if run_node 200 consumer2 lib/verify-consume.js --url "$(url_of "$N2")" --topic "$SB" --sub fo \
    --out "$T/consume2.json" --expect "$T/produce2.json,$T/produce3.json" --forbid 2000-3999 --deadline-s 120; then
    pass "$SB: every acknowledged message consumed in order, once; none of the old owner's sends after SIGCONT: $(cat "$T/consumer2.out")"
else
    fail "$SB: $(cat "$T/consumer2.out") $(tail -n 3 "$T/consumer2.err")"
fi
SB_FOUND=$(json "$T/consume2.json" unique)

# ---- 3. ZooKeeper restart --------------------------------------------------------------------
subscribe_all "$N2" fo "${ZT[@]}" || exit 1
note "restarting ZooKeeper"
T_ZK=$(now_ms)
zk_lines() { wc -l <"$T/$1.log"; }
declare -A ZK_LINES0
for n in "$N2" "$O2"; do ZK_LINES0[$n]=$(zk_lines "$n"); done
"$IT_DIR/zk.sh" stop "$T/zk" >/dev/null 2>&1
"$IT_DIR/zk.sh" start "$T/zk" >/dev/null || { fail "ZooKeeper did not restart"; exit 1; }
ZK_DOWN_MS=$(( $(now_ms) - T_ZK ))
note "ZooKeeper back after $ZK_DOWN_MS ms"
for n in "$N2" "$O2"; do
    ok=0
    for _ in $(seq 1 600); do
        tail -n +"$((ZK_LINES0[$n] + 1))" "$T/$n.log" | grep -qE "zk: session .* (reconnected|established)" && { ok=1; break; }
        alive "$n" || break
        sleep 0.1
    done
    [ $ok = 1 ] && pass "$n reconnected to ZooKeeper: $(tail -n +"$((ZK_LINES0[$n] + 1))" "$T/$n.log" | grep -m1 -E "zk: session" | cut -c1-120)" \
        || fail "$n did not reconnect to ZooKeeper within 60 s (alive: $(alive "$n" && echo yes || echo no))"
done
for t in "${ZT[@]}"; do
    start_node "producer-$t" 120 lib/verify-produce.js \
        --url "pulsar://127.0.0.1:$(port_of "$N2" brokerServicePort),127.0.0.1:$(port_of "$O2" brokerServicePort)" \
        --topic "$t" --count 100 --send-timeout-ms "$SEND_TIMEOUT_MS" --deadline-s 100 --out "$T/produce-$t.json"
done
zk_ok=1
for t in "${ZT[@]}"; do
    wait_exit "producer-$t" 130 && [ "$(json "$T/produce-$t.json" ackedCount)" = 100 ] \
        || { zk_ok=0; fail "after the ZooKeeper restart: $t: $(cat "$T/producer-$t.out") $(tail -n 2 "$T/producer-$t.err")"; }
done
[ $zk_ok = 1 ] && pass "after the ZooKeeper restart ($ZK_DOWN_MS ms down) the brokers serve: $((NZ * 100)) of $((NZ * 100)) acknowledged"
verify_all "after the ZooKeeper restart" "$(url_of "$N2")" fo "${ZT[@]}"

# ---- shutdown ----------------------------------------------------------------------------------
for n in "$N2" "$O2"; do
    t0=$(now_ms)
    stop_proc "$n" 20
    rc=$?
    [ $rc -eq 0 ] && pass "$n exit 0 on SIGTERM after $(( $(now_ms) - t0 )) ms" || fail "$n exit code $rc on SIGTERM"
done
check_sanitizers

echo "SUMMARY: failover session=${SESSION_MS}ms killed=$OWNER kill->new-owner-producer=${FAILOVER_PRODUCER_MS}ms" \
    "kill->first-receipt<=${FAILOVER_RECEIPT_MS}ms | busy $BUSY: sent=$SENT acknowledged=$ACKED found=$FOUND missing=$MISSING out_of_order=$DISORDER" \
    "| $NM topics: sent=$M_SENT acknowledged=$M_ACKED found=$M_FOUND | failed sends at the kill=$FAILED1 (bound $((BUSY_WINDOW + NM * M_WINDOW)))" \
    "| split brain: old owner receipts after SIGCONT=$RESUMED_ACKED new owner acked=$SB_ACKED found=$SB_FOUND | zk restart ${ZK_DOWN_MS}ms"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: failover test" || echo "FAIL: failover test"
exit "$IT_FAILED"
