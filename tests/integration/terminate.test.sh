#!/usr/bin/env bash
# terminate.test.sh - a terminated topic stays terminated across a broker restart, and clients
# see it as Pulsar's do.
#
#   1. A standalone (conf/standalone.yaml, durable store) gets a durable subscription on a new
#      topic and N messages (pulsar-flex producer, verify-produce.js).
#   2. POST .../terminate answers the last message id (ledgerId, entryId, partitionIndex -1),
#      the id of the last message stored; a second POST answers the same id.
#   3. The standalone is SIGKILLed and restarted on the same dataDirectory.
#   4. POST .../terminate again: the same id (the terminated position was stored with the
#      ledger list, not rebuilt from what is there now).
#   5. A raw client (terminate-probe.js) subscribes, receives and acks the N messages, then
#      gets REACHED_END_OF_TOPIC (hasReachedEndOfTopic) after exactly N, and a new PRODUCER on
#      the topic is refused with TopicTerminatedError (15).
#   6. A partitioned topic (2 partitions, messages on partition 0): plain .../terminate is 405;
#      .../partitions/terminate answers {"0": id, "1": id} (partition 0's last message id,
#      partition 1 empty) and a producer on a partition is then refused.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started is
# stopped by pid.
#
# Environment: MAGNETAR_BIN, TERM_MESSAGES (200).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init terminate
need_bin
it_env TERM_MESSAGES=200

N=$TERM_MESSAGES
TOPIC="term-$$"
PTOPIC="pterm-$$"
SUB=term-sub
start_standalone sa
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default"

# ---- 1. subscription and messages ------------------------------------------------------------
subscribe sub "$URL" "$TOPIC" "$SUB"
produce_all p1 "$T/p1.json" 120 "$N" "before terminate" --url "$URL" --topic "$TOPIC" \
    --deadline-s 100 || exit 1

# ---- 2. terminate ------------------------------------------------------------------------------
id_of() { # "CODE JSON" -> "ledger:entry:partition" or the answer as it came
    node -e 'const [c, ...r] = process.argv[1].split(" "); try { const j = JSON.parse(r.join(" "));
        console.log(c === "200" ? `${j.ledgerId}:${j.entryId}:${j.partitionIndex}` : `${c} ${r.join(" ")}`) }
        catch (e) { console.log(process.argv[1]) }' "$1"
}
T1=$(id_of "$(curl_json POST "$ADMIN/$TOPIC/terminate")")
T2=$(id_of "$(curl_json POST "$ADMIN/$TOPIC/terminate")")
LAC=$(curl_json GET "$ADMIN/$TOPIC/lastMessageId")
LAC=$(id_of "$LAC")
[ "$T1" = "$LAC" ] && [[ "$T1" == *:-1 ]] \
    && pass "terminate answered $T1, the topic's last message id" \
    || fail "terminate answered '$T1', lastMessageId '$LAC'"
[ "$T2" = "$T1" ] && pass "terminating again answers the same id" || fail "second terminate: '$T2', first '$T1'"

# ---- 3. restart --------------------------------------------------------------------------------
kill_proc sa
restart_standalone sa
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
ADMIN="http://127.0.0.1:$(port_of sa webServicePort)/admin/v2/persistent/public/default"
pass "standalone SIGKILLed and restarted on the same dataDirectory"

# ---- 4. still terminated at the same id --------------------------------------------------------
T3=$(id_of "$(curl_json POST "$ADMIN/$TOPIC/terminate")")
[ "$T3" = "$T1" ] && pass "after the restart terminate answers the stored id $T3" \
    || fail "after the restart terminate answered '$T3', before '$T1'"

# ---- 5. a client: every message, then REACHED_END_OF_TOPIC; producers refused ------------------
if run_node 90 probe lib/terminate-probe.js --url "$URL" --topic "persistent://public/default/$TOPIC" \
    --sub "$SUB" --count "$N" --out "$T/probe.json" --deadline-s 60; then
    RECEIVED=$(json "$T/probe.json" received)
    REACHED=$(json "$T/probe.json" reachedEnd)
    AFTER=$(json "$T/probe.json" reachedEndAfter)
    PERR=$(json "$T/probe.json" producerError)
    [ "$REACHED" = true ] && [ "$AFTER" = "$N" ] && [ "$RECEIVED" = "$N" ] \
        && pass "consumer got all $N messages, then REACHED_END_OF_TOPIC" \
        || fail "consumer: received ${RECEIVED:-?}, reachedEnd ${REACHED:-?} after ${AFTER:-?} (want $N) $(json "$T/probe.json" error)"
    [ "$PERR" = 15 ] && pass "a new producer is refused with TopicTerminatedError: $(json "$T/probe.json" producerMessage)" \
        || fail "new producer: error '${PERR:-none}' $(json "$T/probe.json" producerMessage), want 15"
else
    fail "terminate-probe: $(tail -n 3 "$T/probe.err")"
fi

# ---- 6. partitioned topic ----------------------------------------------------------------------
R=$(curl_json PUT "$ADMIN/$PTOPIC/partitions" 2)
[[ "$R" == 204* ]] || fail "create partitioned topic: $R"
produce_all p2 "$T/p2.json" 120 20 "partition 0" --url "$URL" --topic "$PTOPIC-partition-0" --deadline-s 100
P0=$(id_of "$(curl_json GET "$ADMIN/$PTOPIC-partition-0/lastMessageId")")
R=$(curl_json POST "$ADMIN/$PTOPIC/terminate")
[[ "$R" == 405* ]] && pass "plain terminate on a partitioned topic: $R" || fail "plain terminate on a partitioned topic: $R"
R=$(curl_json POST "$ADMIN/$PTOPIC/partitions/terminate")
PARTS=$(node -e 'const [c, ...r] = process.argv[1].split(" "); if (c !== "200") { console.log("bad"); process.exit() }
    const j = JSON.parse(r.join(" ")); console.log(Object.keys(j).sort().map((k) => `${k}=${j[k].ledgerId}:${j[k].entryId}:${j[k].partitionIndex}`).join(","))' "$R")
[[ "$PARTS" == "0=$P0,1="*":-1:1" ]] && pass "partitions/terminate answered each partition's id: $R" \
    || fail "partitions/terminate: $R"
if run_node 60 probe2 lib/terminate-probe.js --url "$URL" --topic "persistent://public/default/$PTOPIC-partition-1" \
    --sub other --count 0 --out "$T/probe2.json" --deadline-s 20; then
    [ "$(json "$T/probe2.json" producerError)" = 15 ] && pass "a producer on partition 1 is refused" \
        || fail "producer on partition 1: $(cat "$T/probe2.json")"
else
    fail "terminate-probe on a partition: $(tail -n 3 "$T/probe2.err")"
fi

stop_standalone sa
it_finish "terminate test" "terminate messages=$N id=$T1 after_restart=${T3:-?} reached_end_after=${AFTER:-?}"
