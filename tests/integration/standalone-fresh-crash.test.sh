#!/usr/bin/env bash
# standalone-fresh-crash.test.sh - what a standalone acknowledges right after it starts
# survives a SIGKILL, on a fresh dataDirectory and on an existing one. This covers the start
# path's removed syncs (docs/design.md §10): a brand-new bookie has no start checkpoint (its
# first acknowledged adds are covered by the journal alone, no lastMark yet) and the
# embedded metadata store does not sync changes of ephemeral nodes (ownership, lease,
# registration), which the next open drops.
#
#   0. A standalone on a fresh dataDirectory is killed (SIGKILL) as soon as it is ready, with
#      nothing produced: the new metadata store's first log (written unsynced, synced by its
#      first persistent change) and the cookies of the new cluster's first bookie (written
#      to the store as one group) must let it restart on that directory, with the tenants
#      and namespaces it created, and take a message.
#   1. A standalone (conf/standalone.yaml, one in-process bookie) starts on a fresh
#      dataDirectory with flushInterval 10 min, so that no bookie checkpoint runs before the
#      kill. A durable subscription is created and MSGS messages are produced with receipts,
#      all of which must be acknowledged. The bookie must have no lastMark file yet (else
#      this run did not test the journal-only case). SIGKILL at once.
#   2. Restart on the same dataDirectory (an existing one: the journal is replayed), produce
#      MSGS more, all acknowledged, SIGKILL at once.
#   3. Restart; a consumer on the subscription must receive every acknowledged message of 1
#      and 2, in order, none twice, none that was never sent.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid. Environment: MAGNETAR_BIN, FRESH_CRASH_MESSAGES (20).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init standalone-fresh-crash
need_bin

MSGS=${FRESH_CRASH_MESSAGES:-20}
TOPIC="fresh-crash-$$"
SUB=fresh-crash-sub
MARK="$T/data/bookie-0/ledgers/current/lastMark"

# ---- 0. killed as soon as it is ready --------------------------------------------------------
start_standalone sa0 --set dataDirectory="$T/data0"
note "SIGKILL standalone (pid $(pid_of sa0)) right after ready"
kill_proc sa0
restart_standalone sa0
pass "standalone restarted on a fresh dataDirectory killed right after ready"
read -r code body <<<"$(curl_json GET "$WEB/admin/v2/namespaces/public")"
if [ "$code" = 200 ] && grep -q '"public/default"' <<<"$body"; then
    pass "the namespaces created by the killed start are there: $body"
else
    fail "GET namespaces/public after the restart: $code $body"
fi
produce_all producer0 "$T/produce0.json" 120 1 "a message after the restart" \
    --url "$URL" --topic "$TOPIC-0" --send-timeout-ms 30000 --deadline-s 100 || exit 1
stop_standalone sa0

# ---- 1. fresh dataDirectory ------------------------------------------------------------------
start_standalone sa --set flushInterval=600000
subscribe sub "$URL" "$TOPIC" "$SUB"
produce_all producer1 "$T/produce1.json" 120 "$MSGS" "first messages on a fresh standalone" \
    --url "$URL" --topic "$TOPIC" --send-timeout-ms 30000 --deadline-s 100 || exit 1
A1=$PRODUCE_ACKED
if [ -e "$MARK" ]; then
    fail "the bookie has a lastMark before its first checkpoint ($MARK): the start checkpoint ran"
else
    pass "no bookie checkpoint yet: the $A1 acknowledged messages are in the journal alone"
fi
note "SIGKILL standalone (pid $(pid_of sa)) right after the receipts"
kill_proc sa

# ---- 2. existing dataDirectory -----------------------------------------------------------------
restart_standalone sa
pass "standalone restarted on the killed fresh dataDirectory"
produce_all producer2 "$T/produce2.json" 120 "$MSGS" "first messages after the restart" \
    --url "$URL" --topic "$TOPIC" --start "$MSGS" --send-timeout-ms 30000 --deadline-s 100 || exit 1
A2=$PRODUCE_ACKED
note "SIGKILL standalone (pid $(pid_of sa)) right after the receipts"
kill_proc sa

# ---- 3. read everything back -------------------------------------------------------------------
restart_standalone sa
if run_node 120 consumer lib/verify-consume.js --url "$URL" --topic "$TOPIC" --sub "$SUB" \
    --out "$T/consume.json" --expect "$T/produce1.json,$T/produce2.json" --deadline-s 100; then
    pass "every acknowledged message delivered after two kills, in order, once: $(cat "$T/consumer.out")"
else
    fail "after the kills: $(cat "$T/consumer.out") $(tail -n 3 "$T/consumer.err")"
fi
stop_standalone sa

summary=$(echo "standalone-fresh-crash acknowledged=$((A1 + A2))" \
    "found=$(json "$T/consume.json" unique) missing=$(json "$T/consume.json" missing)" \
    "duplicates=$(json "$T/consume.json" dups) never_sent=$(json "$T/consume.json" phantom)")
it_finish "standalone fresh crash test" "$summary"
