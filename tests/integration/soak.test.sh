#!/usr/bin/env bash
# soak.test.sh - a standalone taking a steady stream for SOAK_SECONDS (180) with a consumer
# keeping up: its data directory must level off, not grow with time (issue 11).
#
#   1. `magnetar standalone` (bookkeeper store, one bookie, E=Qw=Qa=1) with a short time
#      retention (defaultRetentionTimeInMinutes=1, no size limit), ledgers that roll every
#      ROLL_ENTRIES entries (min rollover time 0), the retention check every 5 s, small entry
#      logs (logSizeLimit 1 MiB), a small journal (journalMaxSizeMB 1), bookie GC every 5 s
#      and minor/major compaction every 10/20 s.
#   2. `magnetar perf consume` (Exclusive, acknowledging) subscribes first; `magnetar perf
#      produce` sends RATE msg/s of SIZE bytes, unbatched, for SOAK_SECONDS.
#   3. The data directory's size (du) is sampled every 30 s. Printed: "figure: soak MB at
#      1,2,3 min: a b c" (the samples at 1/3, 2/3 and the end of the run).
#   4. Asserted: the producer had every message acknowledged and the consumer kept up (its
#      count within 2 s of traffic of the producer's); the size at the end is at most the
#      bound = base + R x (retention + ledger span + check + GC + slack), R = RATE x SIZE
#      (what retention allows to stay, not the whole stream), and the size's trend over the
#      second half (least-squares slope of its samples) is under 40 % of R (growing with
#      time would be about 100 %).
# Environment: MAGNETAR_BIN, SOAK_SECONDS (180), RATE (300), SIZE (1024), SOAK_SET (more
# "--set key=value" arguments for the standalone, after the test's own: e.g. turning bookie
# GC off, "--set gcWaitTime=3600000 --set minorCompactionInterval=0
# --set majorCompactionInterval=0", makes the size grow with time and the test fail).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init soak
need_magnetar

it_env SOAK_SECONDS=180 RATE=300 SIZE=1024
SOAK_SET=${SOAK_SET:-}
ROLL_ENTRIES=$((RATE * 10)) # a ledger holds about 10 s of the stream
RETENTION_S=60
DATA="$T/data"
mkdir -p "$DATA"

sa_args=(--config "$IT_TOP/conf/standalone.yaml" --set dataDirectory="$DATA"
    --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0
    --set brokerServicePort=0 --set webServicePort=0 --set managedLedgerStore=bookkeeper
    --set standaloneBookies=1 --set managedLedgerDefaultEnsembleSize=1
    --set managedLedgerDefaultWriteQuorum=1 --set managedLedgerDefaultAckQuorum=1
    --set defaultRetentionTimeInMinutes=$((RETENTION_S / 60)) --set defaultRetentionSizeInMB=-1
    --set retentionCheckIntervalInSeconds=5 --set managedLedgerMinLedgerRolloverTimeMinutes=0
    --set managedLedgerMaxEntriesPerLedger="$ROLL_ENTRIES"
    --set logSizeLimit=1048576 --set journalMaxSizeMB=1 --set gcWaitTime=5000
    --set minorCompactionInterval=10 --set majorCompactionInterval=20)
# shellcheck disable=SC2206 # SOAK_SET is a list of words
sa_args+=($SOAK_SET)
start_magnetar sa standalone "brokerServicePort webServicePort bookiePort" 60 -- "${sa_args[@]}" || exit 1
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
TOPIC="persistent://public/default/soak-$$"

# the consumer first, so its subscription holds everything from the first message on
(exec timeout -s KILL $((SOAK_SECONDS + 60)) "$BIN" perf consume -u "$URL" -s soak -st Exclusive \
    -p Earliest -time $((SOAK_SECONDS + 15)) -i 10 --json "$T/consume.json" "$TOPIC") \
    >"$T/consume.out" 2>"$T/consume.err" &
register consumer $!
for _ in $(seq 200); do
    grep -q subscribed "$T/consume.out" 2>/dev/null && break
    alive consumer || break
    sleep 0.1
done
if grep -q subscribed "$T/consume.out" 2>/dev/null; then
    pass "consumer subscribed"
else
    fail "consumer did not subscribe within 20 s"
    exit 1
fi

(exec timeout -s KILL $((SOAK_SECONDS + 60)) "$BIN" perf produce -u "$URL" -r "$RATE" -s "$SIZE" \
    -db -time "$SOAK_SECONDS" -i 10 --json "$T/produce.json" "$TOPIC") \
    >"$T/produce.out" 2>"$T/produce.err" &
register producer $!
start=$SECONDS

# du samples every 30 s (the loop waits for each mark; no fixed sleep before an assert)
mb() { du -sk "$DATA" 2>/dev/null | awk '{printf "%.1f", $1 / 1024}'; }
declare -a SAMPLE=()
step=$((SOAK_SECONDS / 6))
for i in 1 2 3 4 5 6; do
    while [ $((SECONDS - start)) -lt $((i * step)) ]; do
        alive sa || break 2
        sleep 1
    done
    SAMPLE[i]=$(mb)
    note "t=$((SECONDS - start)) s: data directory ${SAMPLE[i]} MB ($(find "$DATA"/bookie-0/ledgers/current -type f 2>/dev/null | wc -l) files in ledgers/current)"
done
if ! alive sa; then
    fail "standalone exited during the soak"
    exit 1
fi

if wait_exit producer 60; then pass "perf produce exited 0"; else fail "perf produce exited $?"; fi
if wait_exit consumer 60; then pass "perf consume exited 0"; else fail "perf consume exited $?"; fi
sent=$(json "$T/produce.json" messages_sent 2>/dev/null)
acked=$(json "$T/produce.json" messages_acked 2>/dev/null)
received=$(json "$T/consume.json" messages_received 2>/dev/null)
if [ -n "$sent" ] && [ "$sent" -gt 0 ] && [ "$sent" = "$acked" ]; then
    pass "producer: $sent sent, all acknowledged"
else
    fail "producer: sent '$sent', acked '$acked'"
fi
if [ -n "$received" ] && [ -n "$acked" ] && [ $((acked - received)) -le $((RATE * 2)) ]; then
    pass "consumer kept up: $received of $acked received"
else
    fail "consumer: received '$received' of '$acked'"
fi

a=${SAMPLE[2]} b=${SAMPLE[4]} c=${SAMPLE[6]}
echo "figure: soak MB at 1,2,3 min: $a $b $c"
# what retention lets stay: retention + a ledger's span (10 s) + the retention check (5 s) +
# GC and compaction (20 s) + 25 s slack, of the stream's bytes, plus 8 MB of fixed files
# (metadata store, index, the open entry log and journal)
rate_mb=$(awk -v r="$RATE" -v s="$SIZE" 'BEGIN { printf "%.3f", r * s / 1048576 }')
bound=$(awk -v r="$rate_mb" -v t="$RETENTION_S" 'BEGIN { printf "%.1f", 8 + r * (t + 60) }')
if awk -v c="$c" -v m="$bound" 'BEGIN { exit !(c <= m) }'; then
    pass "size at the end $c MB <= $bound MB (retention's share of a $rate_mb MB/s stream)"
else
    fail "size at the end $c MB > $bound MB: the data directory does not level off"
fi
# the trend over the second half (least-squares slope of its 4 samples, so one GC or
# compaction landing just before or after a sample does not decide): under 40 % of the
# stream's rate (growing with time would be about 100 %)
slope=$(printf '%s\n' "${SAMPLE[@]:3:4}" | awk -v step="$step" '
    { x = NR * step; sx += x; sy += $1; sxx += x * x; sxy += x * $1; n++ }
    END { printf "%.4f", (n * sxy - sx * sy) / (n * sxx - sx * sx) }')
if awk -v s="$slope" -v r="$rate_mb" 'BEGIN { exit !(s <= 0.4 * r) }'; then
    pass "second half trend $slope MB/s < 40 % of the $rate_mb MB/s written"
else
    fail "second half grew $slope MB/s (the stream wrote $rate_mb MB/s): not level"
fi
note "samples (MB, every $step s): ${SAMPLE[*]}"

stop_clean 30 sa
check_sanitizers
