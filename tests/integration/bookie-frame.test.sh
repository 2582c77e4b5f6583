#!/usr/bin/env bash
# bookie-frame.test.sh - messages of exactly maxMessageSize go through a `magnetar standalone`
# (managedLedgerStore=bookkeeper, its in-process bookie) while other producers share the
# broker's connection to that bookie.
#
#   1. Durable subscriptions on two topics.
#   2. A producer sends BIG_COUNT messages of exactly maxMessageSize (the size CONNECTED
#      advertises; 5 MiB by default) to topic "big" while another sends SMALL_COUNT small
#      messages to topic "small" at SMALL_RATE/s. Every send of both must be acknowledged (the
#      framed add of a maxMessageSize message is larger than maxMessageSize: a bookie limit of
#      exactly maxMessageSize refused it and dropped the shared connection, failing the adds
#      of every topic on it).
#   3. Consumers on both subscriptions receive every acknowledged message, in order, once.
#   4. The standalone's log has no frame refused by the bookie and no bookie connection closed
#      for its size; it exits 0 on SIGTERM.
# Environment: MAGNETAR_BIN, BIG_COUNT (3), SMALL_COUNT (2000), SMALL_RATE (500).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-frame
need_bin

it_env BIG_COUNT=3 SMALL_COUNT=2000 SMALL_RATE=500
MAX=5242880 # maxMessageSize of conf/standalone.yaml (checked below)

if ! grep -q "^maxMessageSize: $MAX$" "$IT_TOP/conf/standalone.yaml"; then
    fail "conf/standalone.yaml no longer sets maxMessageSize: $MAX; update this test"
    exit 1
fi
start_magnetar sa standalone "brokerServicePort webServicePort bookiePort" 60 -- \
    --config "$IT_TOP/conf/standalone.yaml" --set dataDirectory="$T/data" \
    --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0 \
    --set brokerServicePort=0 --set webServicePort=0 --set managedLedgerStore=bookkeeper || exit 1
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
BIG="frame-big-$$"
SMALL="frame-small-$$"

for t in "$BIG" "$SMALL"; do
    subscribe "sub-$t" "$URL" "$t" s
done

start_node small 300 lib/verify-produce.js --url "$URL" --topic "$SMALL" --count "$SMALL_COUNT" \
    --rate "$SMALL_RATE" --tag s --send-timeout-ms 30000 --deadline-s 240 \
    --out "$T/small.json" --progress "$T/small.progress"
# the big ones go while the small producer is running
wait_progress small "$T/small.progress" acked 100 60 || note "small producer slow to start"
produce_all big "$T/big.json" 300 "$BIG_COUNT" "messages of exactly maxMessageSize ($MAX bytes)" \
    --url "$URL" --topic "$BIG" --size "$MAX" --window 1 --tag b --send-timeout-ms 60000 \
    --deadline-s 240 --no-recreate
wait_exit small 280
rc=$?
S=$(json "$T/small.json" ackedCount)
if [ $rc -eq 0 ] && [ "${S:-0}" = "$SMALL_COUNT" ]; then
    pass "all $SMALL_COUNT small messages sent meanwhile acknowledged"
else
    fail "small messages: exit $rc, acked ${S:-?}/$SMALL_COUNT, first error: $(json "$T/small.json" firstError)"
fi

if run_node 180 vbig lib/verify-consume.js --url "$URL" --topic "$BIG" --sub s --tag b \
    --expect "$T/big.json" --out "$T/vbig.json" --deadline-s 120; then
    pass "consumer of $BIG: $(cat "$T/vbig.out")"
else
    fail "consumer of $BIG: $(cat "$T/vbig.out") $(tail -n 3 "$T/vbig.err")"
fi
if run_node 180 vsmall lib/verify-consume.js --url "$URL" --topic "$SMALL" --sub s --tag s \
    --expect "$T/small.json" --out "$T/vsmall.json" --deadline-s 120; then
    pass "consumer of $SMALL: $(cat "$T/vsmall.out")"
else
    fail "consumer of $SMALL: $(cat "$T/vsmall.out") $(tail -n 3 "$T/vsmall.err")"
fi

if grep -qE "nettyMaxFrameSizeBytes|exceeds the limit" "$T/sa.log"; then
    fail "the bookie refused a frame: $(grep -m1 -E 'nettyMaxFrameSizeBytes|exceeds the limit' "$T/sa.log")"
else
    pass "no frame refused by the bookie"
fi
stop_proc sa 30
rc=$?
[ "$rc" = 0 ] && pass "standalone exit 0 on SIGTERM" || fail "standalone exit code $rc on SIGTERM"
check_sanitizers
echo "SUMMARY: $IT_PASSES passed, $IT_FAILS failed"
