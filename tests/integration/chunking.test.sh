#!/usr/bin/env bash
# chunking.test.sh - chunked messages (issue 15): a message larger than maxMessageSize,
# split by the client into chunks, is stored and delivered so that the consumer can put it
# back together, on Exclusive and on Shared with two consumers; bad chunk sequences are
# stored and delivered as sent.
#
# A standalone with the default maxMessageSize (5 MB); tests/compat/lib/chunk-probe.js
# subscribes first, then two raw producers send one CHUNK_MB MB message each, split into
# chunks just under CONNECTED.max_message_size, the two producers' chunks interleaved;
# a third adds a run with a missing chunk and a lone chunk of a foreign uuid. Consumers keep
# only PERMITS permits out (topped up per message, as a small receiver queue does), so a
# Shared dispatcher that spread chunks over its consumers would be seen. Checks per
# subscription type:
#   - every chunk got its receipt;
#   - each message's chunks all went to one consumer, in chunk order, and put back together
#     they are byte-exact (sha256) the message sent;
#   - on Shared both consumers got something (the dispatch is still shared);
#   - every chunk of the bad sequences was delivered exactly once, with its uuid and ids;
#   - Shared, a consumer that leaves with 2 chunks in flight and unacknowledged: the other
#     gets every message whole (the returned chunks come back with the rest of their run,
#     in order); the same when it asks for them again (REDELIVER_UNACKNOWLEDGED_MESSAGES).
# Meanwhile the Shared topic's stats count the chunks: msgChunkPublished, and
# chunkedMessageRate of publishers, consumers and the subscription over a stats interval
# (statsUpdateFrequencyInSecs=STATS_S). Everything started is stopped by pid.
#
# Environment: MAGNETAR_BIN, CHUNK_MB (20), PERMITS (2), STATS_S (3).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init chunking
need_bin
it_env CHUNK_MB=20 PERMITS=2 STATS_S=3

start_standalone sa --set statsUpdateFrequencyInSecs="$STATS_S"
MAX=$(cfg_value maxMessageSize --config "$IT_TOP/conf/standalone.yaml")
[ "$MAX" = 5242880 ] && pass "maxMessageSize is the default 5 MB" || fail "maxMessageSize $MAX, want 5242880"

# check_run MODE JSON: the PASS/FAIL lines of one chunk-probe.js run
check_run() {
    local mode=$1 out=$2 r
    r=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
        const m = j.messages, whole = m.filter((x) => x.consumers.length === 1 && x.inOrder && x.complete && x.sha256ok);
        const sent = j.sent.reduce((a, s) => a + s.chunks, 0) + j.bad.length;
        console.log([j.error ? JSON.stringify(j.error) : "-", j.receipts, sent, m.length, whole.length,
            j.sent.map((s) => s.chunks).join("+"), j.perConsumer.join("/"),
            j.bad.filter((b) => b.deliveries === 1).length, j.bad.length,
            JSON.stringify(m.filter((x) => !whole.includes(x)))].join(" "))' "$out")
    read -r ERR REC SENT NMSG WHOLE CHUNKS PERC BADOK BADN BROKEN <<<"$r"
    [ "$ERR" = - ] && [ "$REC" = "$SENT" ] \
        && pass "$mode: all $SENT chunks acknowledged (messages of $CHUNKS chunks)" \
        || fail "$mode: error $ERR, $REC of $SENT chunks acknowledged"
    [ "$NMSG" -ge 2 ] && [ "$WHOLE" = "$NMSG" ] \
        && pass "$mode: each of the $NMSG ${CHUNK_MB} MB messages reassembled byte-exact from its chunks at one consumer (per consumer $PERC)" \
        || fail "$mode: $WHOLE of $NMSG messages whole; broken: $BROKEN (per consumer $PERC)"
    [ "$BADN" -ge 3 ] && [ "$BADOK" = "$BADN" ] \
        && pass "$mode: the $BADN chunks with a missing sibling or a foreign uuid delivered once each, as sent" \
        || fail "$mode: $BADOK of $BADN bad-sequence chunks delivered exactly once"
}

# probe_args NAME MODE: chunk-probe.js's arguments for topic chunking-NAME-PID, subscription
# NAME, output $T/NAME.json (in PROBE)
probe_args() {
    PROBE=(lib/chunk-probe.js --url "$URL" --topic "persistent://public/default/chunking-$1-$$" --sub "$1"
        --mode "$2" --size $((CHUNK_MB * 1024 * 1024)) --messages 1 --permits "$PERMITS" --bad
        --out "$T/$1.json" --deadline-s 200)
}
# probe NAME MODE WHAT [ARGS...]: one chunk-probe.js run with ARGS added, then check_run WHAT
probe() {
    local name=$1 mode=$2 what=$3
    shift 3
    probe_args "$name" "$mode"
    run_node 240 "$name" "${PROBE[@]}" "$@" || fail "$what: probe exit $?: $(tail -n 3 "$T/$name.err")"
    check_run "$what" "$T/$name.json"
}

probe ex exclusive Exclusive

probe_args sh shared
start_node sh 300 "${PROBE[@]}" --linger-s 60
wait_file "$T/sh.json" 240 || fail "the Shared probe wrote nothing: $(tail -n 3 "$T/sh.err")"
check_run Shared "$T/sh.json"

# Stats while its producers and consumers are still connected: msgChunkPublished, and the
# chunkedMessageRate of the publishers and consumers over an interval (STATS_S) that saw
# the chunks go through (rates of later intervals are 0 again).
STATS="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default/chunking-sh-$$/stats"
PUB_RATE=0 CON_RATE=0 SUB_RATE=0 PUBLISHED=false
for _ in $(seq 1 $((STATS_S * 40))); do
    read -r P C S F <<<"$(curl -s --max-time 5 "$STATS" | node -e 'let s = "";
        process.stdin.on("data", (d) => (s += d)).on("end", () => { try { const j = JSON.parse(s);
            const sub = j.subscriptions.sh || { consumers: [] };
            console.log(Math.max(0, ...j.publishers.map((p) => p.chunkedMessageRate)),
                sub.consumers.reduce((a, c) => a + c.chunkedMessageRate, 0), sub.chunkedMessageRate || 0,
                j.msgChunkPublished);
        } catch (e) { console.log("0 0 0 false"); } });')"
    [ "${P:-0}" != 0 ] && PUB_RATE=$P
    [ "${C:-0}" != 0 ] && CON_RATE=$C
    [ "${S:-0}" != 0 ] && SUB_RATE=$S
    [ "$F" = true ] && PUBLISHED=true
    [ "$PUB_RATE" != 0 ] && [ "$CON_RATE" != 0 ] && [ "$SUB_RATE" != 0 ] && [ $PUBLISHED = true ] && break
    sleep 0.1
done
touch "$T/sh.json.done"
wait_exit sh 30 || fail "shared probe exit $?: $(tail -n 3 "$T/sh.err")"
[ $PUBLISHED = true ] && pass "stats: msgChunkPublished true" || fail "stats: msgChunkPublished never true"
[ "$PUB_RATE" != 0 ] && [ "$CON_RATE" != 0 ] && [ "$SUB_RATE" != 0 ] \
    && pass "stats: chunkedMessageRate publishers $PUB_RATE/s, consumers $CON_RATE/s, subscription $SUB_RATE/s" \
    || fail "stats: chunkedMessageRate publishers $PUB_RATE, consumers $CON_RATE, subscription $SUB_RATE: want > 0"
A=${PERC%/*} B=${PERC#*/}
[ "${A:-0}" -gt 0 ] && [ "${B:-0}" -gt 0 ] && pass "Shared: both consumers got messages ($PERC)" \
    || fail "Shared: per consumer $PERC, want both > 0"

# A Shared consumer that leaves with chunks in flight: the broker gives them back, and the
# other consumer must get every run whole and in order (later chunks read meanwhile wait
# behind the returned ones).
probe lv shared "Shared, first consumer leaves after 2 chunks" --close-first 2
[ "${PERC%/*}" = 2 ] && pass "the leaving consumer had 2 chunks in flight" \
    || fail "the leaving consumer got ${PERC%/*} chunks, want 2"

# A Shared consumer that asks for its 2 unacked chunks again (REDELIVER_UNACKNOWLEDGED_MESSAGES)
# and forgets them, as a client does: every run must still come whole and in order.
probe rd shared "Shared, first consumer redelivers its first 2 chunks" --redeliver-first 2

stop_standalone sa
it_finish "chunking test" "chunking mb=$CHUNK_MB chunks=$CHUNKS"
