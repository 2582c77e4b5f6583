#!/usr/bin/env bash
# dedup.test.sh - message deduplication survives a broker crash: a producer that resends
# the same sequence ids after a `magnetar standalone` is SIGKILLed and restarted stores each
# message exactly once.
#
#   1. A standalone (conf/standalone.yaml, brokerDeduplicationEnabled=true, a snapshot every
#      DEDUP_INTERVAL entries) gets a durable subscription on a new topic.
#   2. A raw producer named dd-producer (tests/compat/lib/dedup-produce.js: sequence id =
#      counter) sends counters 0..N-1 at DEDUP_RATE/s, up to 200 unanswered; once at least
#      N/2 are acknowledged the standalone gets SIGKILL in mid-stream.
#   3. Restart on the same dataDirectory (the topic's deduplication state is rebuilt from the
#      pulsar.dedup cursor's snapshot and the entries after it).
#   4. The producer comes back under the same name and sends ALL counters 0..N-1 again (a
#      client that lost its receipts). PRODUCER_SUCCESS must carry a last_sequence_id at
#      least the highest counter acknowledged before the crash; every counter acknowledged
#      before the crash must now be answered as a duplicate (receipt -1:-1); every counter
#      must be acknowledged.
#   5. A consumer on the subscription (verify-consume.js) must receive each counter 0..N-1
#      exactly once, in order: none lost, none stored twice.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure (logs printed).
# Everything started is stopped by pid.
#
# Environment: MAGNETAR_BIN, DEDUP_MESSAGES (3000), DEDUP_RATE (1000), DEDUP_INTERVAL (500:
# brokerDeduplicationEntriesInterval).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init dedup
need_bin
it_env DEDUP_MESSAGES=3000 DEDUP_RATE=1000 DEDUP_INTERVAL=500

N=$DEDUP_MESSAGES
TOPIC="dedup-$$"
SUB=dedup-sub
NAME=dd-producer
DATA="$T/data"
standalone_on_data sa "$DATA" --set brokerDeduplicationEnabled=true \
    --set brokerDeduplicationEntriesInterval="$DEDUP_INTERVAL" || exit 1
FULL="persistent://public/default/$TOPIC"

# ---- 1. subscription --------------------------------------------------------------------------
subscribe sub "$URL" "$TOPIC" "$SUB"

# ---- 2. send, SIGKILL in mid-stream ---------------------------------------------------------------
start_node p1 120 lib/dedup-produce.js --url "$URL" --topic "$FULL" --name "$NAME" --count "$N" \
    --window 200 --rate "$DEDUP_RATE" --deadline-s 100 --out "$T/p1.json" --progress "$T/p1.progress"
if wait_progress p1 "$T/p1.progress" acked $((N / 2)) 60; then
    note "SIGKILL standalone (pid $(pid_of sa)) at $(cat "$T/p1.progress")"
    kill_proc sa
else
    fail "fewer than $((N / 2)) receipts within 60 s: $(cat "$T/p1.progress" 2>/dev/null) $(tail -n 3 "$T/p1.err")"
    exit 1
fi
wait_exit p1 30 || fail "first producer exit code $?"
A1=$(json "$T/p1.json" ackedCount)
MAX1=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
                console.log(j.acked.length ? Math.max(...j.acked) : -1)' "$T/p1.json")
DUP1=$(json "$T/p1.json" dups | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d));
                process.stdin.on("end", () => console.log(JSON.parse(s || "[]").length))')
[ "${A1:-0}" -ge $((N / 2)) ] && [ "$DUP1" = 0 ] \
    && pass "$A1 of $N stored before the SIGKILL (highest #$MAX1), no duplicate receipts on first sends" \
    || fail "before the SIGKILL: ${A1:-?} acknowledged, $DUP1 duplicate receipts (want >= $((N / 2)), 0)"

# ---- 3. restart on the same data directory ---------------------------------------------------
restart_on_ports sa standalone "$SA_PORT_KEYS" 90 "$BPORT" "$WPORT" -- "${SA_ARGS[@]}"
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
pass "standalone restarted on the same dataDirectory"

# ---- 4. the same producer name resends every counter --------------------------------------------
run_node 150 p2 lib/dedup-produce.js --url "$URL" --topic "$FULL" --name "$NAME" --count "$N" \
    --window 200 --deadline-s 120 --out "$T/p2.json"
rc=$?
A2=$(json "$T/p2.json" ackedCount)
LAST=$(json "$T/p2.json" lastSequenceId)
[ $rc -eq 0 ] && [ "${A2:-0}" = "$N" ] \
    && pass "after the restart every one of the $N resent counters was acknowledged" \
    || fail "after the restart: exit $rc, ${A2:-?} of $N acknowledged, first error: $(json "$T/p2.json" firstError) $(tail -n 3 "$T/p2.err")"
[ -n "$LAST" ] && [ "$LAST" -ge "$MAX1" ] \
    && pass "PRODUCER_SUCCESS.last_sequence_id $LAST >= #$MAX1, the highest acknowledged before the crash" \
    || fail "PRODUCER_SUCCESS.last_sequence_id ${LAST:-none}, want >= $MAX1"
# every counter acknowledged before the crash is now a duplicate; the rest were stored once
CHECK=$(node -e 'const fs = require("fs");
    const p1 = JSON.parse(fs.readFileSync(process.argv[1])), p2 = JSON.parse(fs.readFileSync(process.argv[2]));
    const dups = new Set(p2.dups), stored = new Set(p2.stored);
    const notDup = p1.acked.filter((c) => !dups.has(c));
    const overlap = p2.dups.filter((c) => stored.has(c));
    console.log(`${notDup.length} ${p2.dups.length} ${p2.stored.length} ${overlap.length}`)' "$T/p1.json" "$T/p2.json")
read -r NOTDUP NDUP NSTORED OVERLAP <<<"$CHECK"
[ "$NOTDUP" = 0 ] && [ "$OVERLAP" = 0 ] && [ $((NDUP + NSTORED)) -eq "$N" ] \
    && pass "resends: $NDUP answered as duplicates (-1:-1), including all $A1 acknowledged before the crash; $NSTORED stored" \
    || fail "resends: $NOTDUP counters acknowledged before the crash were stored again, $NDUP duplicates + $NSTORED stored of $N (overlap $OVERLAP)"
grep -q "deduplication enabled" "$T/sa.log" && note "$(grep "rebuilding the deduplication state" "$T/sa.log" | tail -n 1)"

# ---- 5. read everything back: each counter exactly once --------------------------------------------
if run_node 200 consumer lib/verify-consume.js --url "$URL" --topic "$TOPIC" --sub "$SUB" \
    --out "$T/consume.json" --expect "$T/p2.json" --max-extra 0 --deadline-s 150; then
    pass "the subscription holds each of the $N counters exactly once, in order: $(cat "$T/consumer.out")"
else
    fail "read back: $(cat "$T/consumer.out") $(tail -n 3 "$T/consumer.err")"
fi

alive sa && pass "standalone alive" || fail "standalone died"
stop_proc sa 30
rc=$?
[ $rc -eq 0 ] && pass "standalone exit 0 on SIGTERM" || fail "standalone exit code $rc on SIGTERM"
check_sanitizers

summary="dedup messages=$N acked_before_kill=${A1:-?} last_sequence_id=${LAST:-?} duplicates=${NDUP:-?} stored_after=${NSTORED:-?} received=$(json "$T/consume.json" unique) missing=$(json "$T/consume.json" missing) twice=$(json "$T/consume.json" dups)"
echo "SUMMARY: $summary"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: dedup test: $summary" || echo "FAIL: dedup test: $summary"
exit "$IT_FAILED"
