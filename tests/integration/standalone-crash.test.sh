#!/usr/bin/env bash
# standalone-crash.test.sh - a `magnetar standalone` (conf/standalone.yaml as a user runs
# it, with two in-process bookies and E=Qw=Qa=2; timeouts and keep-alive left at their
# defaults) is SIGKILLed and restarted on the same dataDirectory. Clients have a user's
# 30 s send timeout.
#
#   1. A durable Exclusive subscription is created; 10,000 messages are produced with
#      receipts (tests/compat/lib/verify-produce.js; payload = increasing counter). All must be
#      acknowledged (nothing fails yet).
#   2. A consumer (verify-consume.js --ack-first --ack-holes) receives the first 40% and acks
#      them one by one (each after the previous ACK_RESPONSE) except 200 even counters just
#      after the first half (so the cursor has 200 individually acked ranges past its
#      mark-delete position), then stays connected without acking more.
#   3. After CRASH_SETTLE_S (3 s: longer than the store's 1 s cursor flush interval) a second
#      producer starts sending 4,000 more at ~2000/s; once >= 1,000 of them are acknowledged
#      the standalone gets SIGKILL in mid-stream. Only sends outstanding then may fail (at
#      most its window, 500, given up within 10 s of the kill; check_failed_sends); no send
#      of the other producers may fail.
#   4. Restart on the same dataDirectory and the same ports (a new free port only if those
#      are taken; noted). The bookie ports are remembered under dataDirectory.
#   5. 2,000 more messages are produced; all must be acknowledged.
#   6. A consumer on the subscription must receive every acknowledged message of steps 1, 3
#      and 5 that the first consumer did not ack (none lost: the holes come back), in order,
#      none twice; of the messages acked in step 2 none may come again (mark-delete position
#      and acked ranges survived: the acks are older than the flush interval; if the kill
#      came sooner after the last ack, all of them are allowed). Messages whose send got no
#      receipt may appear (counted); a message that was never sent fails the test.
# Prints PASS:/FAIL: lines and a SUMMARY line with the counts; exits non-zero on failure
# (logs printed). Everything started is stopped by pid.
#
# Environment: MAGNETAR_BIN,
# CRASH_MESSAGES (10000), CRASH_BOOKIES (2: in-process bookies, and E=Qw=Qa),
# CRASH_SETTLE_S (3), CRASH_FLUSH_S (the store's cursor flush
# interval, 1).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init standalone-crash
need_bin

N=${CRASH_MESSAGES:-10000}
K=$((N * 4 / 10))
HOLES=200 # unacked messages among the acked ones: 200 acked ranges past mark-delete
NB=4000 # sent while the standalone is killed
WINDOW_B=500 # their producer's window
N2=2000 # after the restart
SETTLE=${CRASH_SETTLE_S:-3}
FLUSH_S=${CRASH_FLUSH_S:-1}
TOPIC="crash-$$"
SUB=crash-sub
DATA="$T/data"

NBK=${CRASH_BOOKIES:-2}
sa_args=(--config "$IT_TOP/conf/standalone.yaml" --set dataDirectory="$DATA"
    --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0
    --set standaloneBookies="$NBK"
    --set managedLedgerDefaultEnsembleSize="$NBK" --set managedLedgerDefaultWriteQuorum="$NBK"
    --set managedLedgerDefaultAckQuorum="$NBK")
PORT_KEYS="brokerServicePort webServicePort bookiePort"
for ((i = 1; i < NBK; i++)); do PORT_KEYS="$PORT_KEYS bookiePort.$i"; done
bookie_ports() { local k out=; for k in $PORT_KEYS; do case $k in bookiePort*) out="$out${out:+ }$(port_of sa "$k")" ;; esac; done; echo "$out"; }

start_magnetar sa standalone "$PORT_KEYS" 60 -- \
    "${sa_args[@]}" --set brokerServicePort=0 --set webServicePort=0 || exit 1
BPORT=$(port_of sa brokerServicePort)
WPORT=$(port_of sa webServicePort)
BK_PORTS1=$(bookie_ports)
URL="pulsar://127.0.0.1:$BPORT"
cp "$T/sa.ports" "$T/sa.ports.first"

# ---- 1. subscription, then N messages ------------------------------------------------------
subscribe sub "$URL" "$TOPIC" "$SUB"
produce_all producer1 "$T/produce1.json" 300 "$N" "before the crash" --url "$URL" \
    --topic "$TOPIC" --send-timeout-ms 30000 --deadline-s 240 || exit 1
A1=$PRODUCE_ACKED

# ---- 2. ack the first 40% (with holes) and hold --------------------------------------------------
start_node acker 400 lib/verify-consume.js --url "$URL" --topic "$TOPIC" --sub "$SUB" \
    --out "$T/acker.json" --ack-first "$K" --ack-holes "$HOLES" --hold-s 300 --deadline-s 300
if wait_file "$T/acker.json" 120 && [ "$(json "$T/acker.json" processed)" = "$K" ]; then
    KACKED=$(json "$T/acker.json" ackedCount)
    FIRST_UNACKED=$(json "$T/acker.json" firstUnacked)
    pass "consumer received the first $K (first #$(json "$T/acker.json" first)) and acked $KACKED of them, leaving $HOLES holes after the first half (first unacked #$FIRST_UNACKED; ack errors $(json "$T/acker.json" ackErrors))"
else
    fail "the consumer did not receive $K messages within 120 s: $(tail -n 5 "$T/acker.err")"
    exit 1
fi
sleep "$SETTLE"

# ---- 3. SIGKILL in mid-stream -----------------------------------------------------------------
start_node producerB 300 lib/verify-produce.js --url "$URL" --topic "$TOPIC" --start "$N" \
    --count "$NB" --rate 2000 --window "$WINDOW_B" --send-timeout-ms 30000 --deadline-s 120 --no-recreate \
    --out "$T/produceB.json" --progress "$T/produceB.progress"
wait_progress producerB "$T/produceB.progress" acked 1000 60 \
    || fail "the mid-stream producer got no 1000 receipts within 60 s ($(cat "$T/produceB.progress" 2>/dev/null))"
KILL_MS=$(now_ms)
note "SIGKILL standalone (pid $(pid_of sa)) at $(cat "$T/produceB.progress")"
kill_proc sa
wait_exit producerB 60 || fail "mid-stream producer exit code $?"
stop_proc acker 10
AB=$(json "$T/produceB.json" ackedCount)
note "mid-stream producer: $(cat "$T/producerB.out")"
[ "${AB:-0}" -ge 1000 ] && pass "$AB messages acknowledged in the last moments before the SIGKILL" \
    || fail "only ${AB:-?} acknowledged by the mid-stream producer"

# ---- 4. restart on the same data directory ---------------------------------------------------
restart_on_ports sa standalone "$PORT_KEYS" 90 "$BPORT" "$WPORT" -- "${sa_args[@]}"
pass "standalone restarted on the same dataDirectory"
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
BK_PORTS2=$(bookie_ports)
[ "$BK_PORTS1" = "$BK_PORTS2" ] && pass "bookie ports remembered ($BK_PORTS2)" \
    || fail "bookie ports changed across the restart: $BK_PORTS1 -> $BK_PORTS2"

# ---- 5. more messages after the restart -------------------------------------------------------
START2=$((N + NB))
produce_all producer2 "$T/produce2.json" 300 "$N2" "after the restart" --url "$URL" \
    --topic "$TOPIC" --start "$START2" --send-timeout-ms 30000 --deadline-s 240
A2=$PRODUCE_ACKED
for f in produce1 produceB produce2; do [ -s "$T/$f.json" ] || echo '{"acked":[]}' >"$T/$f.json"; done
check_failed_sends "failed sends" "kill-standalone@$KILL_MS-$KILL_MS:$WINDOW_B" "$WINDOW_B" \
    "$T/produce1.json,$T/produceB.json,$T/produce2.json"

# ---- 6. what the subscription delivers now -----------------------------------------------------
LAST_ACK_MS=$(json "$T/acker.json" lastAckAt)
if [ $((KILL_MS - LAST_ACK_MS)) -gt $(((FLUSH_S + 1) * 1000)) ]; then
    MAXRE=0 # every ack is older than the flush interval: it must have been persisted
else
    MAXRE=$KACKED
fi
note "last ack $((KILL_MS - LAST_ACK_MS)) ms before the SIGKILL: at most $MAXRE acked messages may come again"
if run_node 300 consumer lib/verify-consume.js --url "$URL" --topic "$TOPIC" --sub "$SUB" \
    --out "$T/consume.json" --expect "$T/produce1.json,$T/produceB.json,$T/produce2.json" \
    --exclude "$T/acker.json" --max-redelivered "$MAXRE" --deadline-s 180; then
    pass "after the crash: every acknowledged, unconsumed message delivered in order, once; none of the consumed ones again: $(cat "$T/consumer.out")"
else
    fail "after the crash: $(cat "$T/consumer.out") $(tail -n 3 "$T/consumer.err")"
fi
FIRST=$(json "$T/consume.json" first)
if [ "$MAXRE" = 0 ]; then MINFIRST=$FIRST_UNACKED; else MINFIRST=1; fi
[ -n "$FIRST" ] && [ "$FIRST" != null ] && [ "$FIRST" -ge "$MINFIRST" ] \
    && pass "the subscription's position survived: first message after the restart is #$FIRST (first unacked #$FIRST_UNACKED)" \
    || fail "first message after the restart is #${FIRST:-none}, want >= #$MINFIRST (the first unacked was #$FIRST_UNACKED)"

stop_standalone sa

summary=$(echo "standalone-crash sent=$((N + $(json "$T/produceB.json" sent) + N2))" \
    "acknowledged=$((A1 + ${AB:-0} + ${A2:-0})) (before=$A1 mid-stream=${AB:-0} after=${A2:-0})" \
    "consumer_acked_before_crash=$KACKED of the first $K needed=$(json "$T/consume.json" needed)" \
    "found=$(json "$T/consume.json" unique) missing=$(json "$T/consume.json" missing)" \
    "duplicates=$(json "$T/consume.json" dups) out_of_order=$(json "$T/consume.json" disorder)" \
    "redelivered_acked=$(json "$T/consume.json" redelivered) first_after_restart=$FIRST" \
    "extra_unacknowledged=$(json "$T/consume.json" extra) never_sent=$(json "$T/consume.json" phantom)" \
    "failed_sends=$FAILED_SENDS")
it_finish "standalone crash test" "$summary"
