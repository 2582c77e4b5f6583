#!/usr/bin/env bash
# autorecovery.test.sh - BookKeeper's autorecovery brings every ledger back to its copies
# after a bookie is lost for good, so that losing a second one loses nothing.
#
# One real ZooKeeper (zk.sh), four `magnetar bookie` processes (conf/bookie.yaml; each runs
# the autorecovery, autoRecoveryDaemonEnabled's default, with lostBookieRecoveryDelay set low)
# and one `magnetar broker` with E=Qw=Qa=2 and ledgers of at most 5000 entries (so the topic
# has several closed ledgers and an open one).
#   1. A durable subscription, then 20,000 messages (tests/compat/lib/verify-produce.js, at
#      most 500 outstanding): every one must be acknowledged.
#   2. SIGKILL one bookie that ledgers of the topic name (chosen at random), for good.
#   3. 1,000 more messages, every one acknowledged (the writer's ensemble change moves the open
#      ledger off the dead bookie; its older fragments are the autorecovery's).
#   4. Wait (at most AUTOREC_DEADLINE_S) until every ledger in the metadata store has, in every
#      segment, 2 distinct live bookies (`magnetar shell listledgers` and `ledgermetadata`)
#      and `magnetar shell listunderreplicated` counts 0: the time from the SIGKILL to that
#      point is the time to full replication.
#   5. SIGKILL a second original bookie that ledgers named before step 2.
#   6. A consumer (verify-consume.js) on the subscription, through the same broker: every
#      acknowledged message is received, in order, none twice.
# Prints PASS:/FAIL: lines and a SUMMARY line (messages, ledgers, entries re-replicated, time
# to full replication); exits non-zero on any failure. Everything started is stopped by pid.
#
# Environment: MAGNETAR_BIN, AUTOREC_MESSAGES (20000), AUTOREC_DELAY_S (lostBookieRecoveryDelay,
# 5), AUTOREC_DEADLINE_S (300), AUTOREC_SEED (the victims; default $RANDOM).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$IT_DIR/lib/autorec.sh"
it_init autorecovery
need_bin

N=${AUTOREC_MESSAGES:-20000}
N2=1000
DELAY=${AUTOREC_DELAY_S:-5}
DEADLINE=${AUTOREC_DEADLINE_S:-300}
SEED=${AUTOREC_SEED:-$RANDOM}
RANDOM=$SEED
TOPIC="autorec-$$-$SEED"
SUB=verify
NBK=4
note "seed $SEED, $N + $N2 messages, lostBookieRecoveryDelay $DELAY s"

bk_cluster_start $NBK --set lostBookieRecoveryDelay="$DELAY" \
    --set openLedgerRereplicationGracePeriod=1000 --set lockReleaseOfFailedLedgerGracePeriod=2000
pass "$NBK bookies registered"
start_zk_broker broker --set dataDirectory="$T/broker" \
    --set managedLedgerDefaultEnsembleSize=2 --set managedLedgerDefaultWriteQuorum=2 \
    --set managedLedgerDefaultAckQuorum=2 --set managedLedgerMaxEntriesPerLedger=5000 \
    --set managedLedgerMinLedgerRolloverTimeMinutes=0 || exit 1
URL="pulsar://127.0.0.1:$(port_of broker brokerServicePort)"

# ---- 1. written before the failure ----------------------------------------------------------
subscribe "sub-$SUB" "$URL" "$TOPIC" "$SUB"
produce_all producer "$T/produce.json" 400 "$N" "before the failure" \
    --url "$URL" --topic "$TOPIC" --window 500 --deadline-s 300 || exit 1
ACKED=$PRODUCE_ACKED

# ---- 2. SIGKILL a bookie that holds data, for good ------------------------------------------
before=$(ar_ensembles) || { fail "cannot read the ledgers' ensembles"; exit 1; }
LEDGERS=$(ar_ledgers "$before")
note "$LEDGERS ledger(s); segments: $(echo "$before" | wc -l)"
ar_holders "$before"
holders=("${AR_HOLDERS[@]}")
[ ${#holders[@]} -ge 2 ] || { fail "fewer than 2 bookies hold data: ${holders[*]}"; exit 1; }
victim=${holders[$((RANDOM % ${#holders[@]}))]}
VICTIM_ID=$(ar_bookie_id "$victim")
on_victim=$(echo "$before" | grep " $VICTIM_ID\b" | awk '{print $1}' | sort -u | wc -l)
note "SIGKILL bk$victim ($VICTIM_ID, in $on_victim ledger(s))"
T_KILL=$(now_ms)
kill_proc "bk$victim"

# ---- 3. the writer goes on -------------------------------------------------------------------
produce_all producer2 "$T/produce2.json" 200 "$N2" "after bk$victim was killed" \
    --url "$URL" --topic "$TOPIC" --start "$N" --window 500 --deadline-s 180
ACKED2=${PRODUCE_ACKED:-0}
[ -s "$T/produce2.json" ] || echo '{"acked":[]}' >"$T/produce2.json"

# ---- 4. every ledger back to 2 live copies ---------------------------------------------------
live=()
for i in $(seq 1 $NBK); do [ "$i" != "$victim" ] && live+=("$(ar_bookie_id "$i")"); done
if ar_wait_replicated "$DEADLINE" "${live[@]}"; then
    T_DONE=$(now_ms)
    LEDGERS=$AR_LEDGERS
    REPL_S=$(awk -v a="$T_KILL" -v b="$T_DONE" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    pass "every one of $LEDGERS ledgers has 2 live bookies in every segment, none under-replicated, $REPL_S s after the SIGKILL (the ZooKeeper session timeout and lostBookieRecoveryDelay $DELAY s included)"
else
    REPL_S=timeout
    fail "after $DEADLINE s: $AR_BAD segment(s) without 2 live bookies, ${AR_UNDER:-?} ledger(s) marked under-replicated"
fi
COPIED=0
for i in $(seq 1 $NBK); do
    [ -f "$T/bk$i.log" ] || continue
    c=$(sed -n 's/.* segment [0-9]*: \([0-9]*\) entries copied to .*/\1/p' "$T/bk$i.log" |
        awk '{ n += $1 } END { print n + 0 }')
    COPIED=$((COPIED + c))
done
# when the auditor marked the first ledger, and when the last fragment was copied (log times)
log_ms() { date -d "$1" +%s%3N 2>/dev/null; }
first_mark=$(cat "$T"/bk*.log | grep ' is under-replicated (lost: ' | awk '{ print $1 }' | sort | head -n 1)
last_copy=$(cat "$T"/bk*.log | grep ' entries copied to ' | awk '{ print $1 }' | sort | tail -n 1)
MARK_S=? COPY_S=?
[ -n "$first_mark" ] && MARK_S=$(awk -v a="$T_KILL" -v b="$(log_ms "$first_mark")" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
[ -n "$first_mark" ] && [ -n "$last_copy" ] &&
    COPY_S=$(awk -v a="$(log_ms "$first_mark")" -v b="$(log_ms "$last_copy")" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
note "the replication workers copied $COPIED entries; first mark $MARK_S s after the SIGKILL (ZooKeeper session expiry, then lostBookieRecoveryDelay), last copy $COPY_S s after that"

# ---- 5. a second original bookie goes -----------------------------------------------------------
second=
for i in "${holders[@]}"; do [ "$i" != "$victim" ] && second=$i && break; done
note "SIGKILL bk$second ($(ar_bookie_id "$second")), an original holder"
kill_proc "bk$second"

# ---- 6. every acknowledged message ---------------------------------------------------------------
ar_verify_all "after the second bookie loss" "$URL" "$TOPIC" "$SUB" "$T/produce.json,$T/produce2.json"

alive broker && pass "broker alive" || fail "broker died"
stop_clean 20 broker
for i in $(seq 1 $NBK); do
    [ "$i" = "$victim" ] || [ "$i" = "$second" ] || stop_clean 20 "bk$i"
done
check_sanitizers

summary="autorecovery seed=$SEED sent=$((N + N2)) acknowledged=$((ACKED + ACKED2)) found=${AR_FOUND:-?} missing=${AR_MISSING:-?} ledgers=$LEDGERS on_lost_bookie=$on_victim entries_copied=$COPIED time_to_full_replication=${REPL_S}s (first mark after ${MARK_S}s: session expiry + lostBookieRecoveryDelay=${DELAY}s; copies done ${COPY_S}s later)"
echo "SUMMARY: $summary"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: autorecovery test: $summary" || echo "FAIL: autorecovery test: $summary"
exit "$IT_FAILED"
