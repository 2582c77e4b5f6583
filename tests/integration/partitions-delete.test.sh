#!/usr/bin/env bash
# partitions-delete.test.sh - deleting a partitioned topic with thousands of partitions does
# not freeze the broker; partition counts are bounded.
#
#   1. A probe producer publishes to another topic throughout (one send at a time, every
#      5 ms; each send's latency is measured by the client). A partitioned topic of
#      PARTS partitions is created and every partition loaded (partitioned-stats), then
#      force-deleted. The delete answers 204 and the topic is gone (partitions 0, none of its
#      partitions listed). While each of the two ran, the probe was served: its slowest send
#      is under half of the operation's length, or under a fixed bound (LOAD_LAT_BOUND_MS,
#      LAT_BOUND_MS) when the operation was short. An operation done in one loop turn holds
#      every send for about its whole length (9 s loading, ~0.3 s deleting 5000 partitions),
#      which fails both; a loaded machine makes the operation longer and so its half-length
#      bound more generous, where a fixed bound alone failed once under load.
#   2. Creating more partitions than maxNumPartitionsPerPartitionedTopic (default 10000)
#      answers 406 "Number of partitions should be less than or equal to 10000"; growing an
#      existing one past it too.
#   3. Without force, a partitioned topic with a producer on one partition is not deleted
#      (412) and keeps its partitions.
#   4. Partitions stored but not loaded (after a restart) are deleted too.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init partitions-delete
need_bin

PARTS=5000
LAT_BOUND_MS=150
# Loading thousands of topics writes their metadata; the embedded store still fdatasyncs on
# the loop thread (moving it off is performance work), so a sync can hold the loop for a few
# hundred ms on a busy disk. Loading them all in one turn held it for seconds (9 s at 5000).
LOAD_LAT_BOUND_MS=1000
NS=public/default

start_sa() {
    start_magnetar sa standalone "brokerServicePort webServicePort" 60 -- \
        --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa"
}
start_sa || exit 1
BPORT=$(port_of sa brokerServicePort)
WPORT=$(port_of sa webServicePort)
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/$NS"

# http METHOD PATH [BODY]: prints "CODE BODY"
http() {
    local out code
    out=$(curl -s --max-time 300 -X "$1" -H 'Content-Type: application/json' \
        ${3:+-d "$3"} -w '\n%{http_code}' "$ADMIN/$2")
    code=${out##*$'\n'}
    echo "$code ${out%$'\n'*}"
}

# 1 ---------------------------------------------------------------------------------------
start_node probe 600 lib/probe-produce.js --url "pulsar://127.0.0.1:$BPORT" \
    --topic "persistent://$NS/bulk-probe" --out "$T/probe.json" --stop-file "$T/probe.stop" \
    --interval-ms 5 --deadline-s 500
wait_progress probe "$T/probe.json.progress" acked 50 30 ||
    { fail "the probe producer did not get going"; exit 1; }

r=$(http PUT big/partitions "$PARTS")
[ "${r%% *}" = 204 ] || fail "create $PARTS partitions: $r"
# served WHAT MAX A B BOUND: PASS when MAX (the probe's slowest send while an operation ran
# from A to B, ms epoch) is under half of B - A, or under BOUND ms
served() {
    local what=$1 max=$2 len=$(($4 - $3)) bound=$5
    if [ "$max" -ge 0 ] && { [ "$max" -lt $((len / 2)) ] || [ "$max" -lt "$bound" ]; }; then
        pass "another topic's producer was served while $what ($len ms): slowest send $max ms"
    else
        fail "another topic's producer while $what ($len ms): slowest send $max ms (want < $((len / 2)) or < $bound)"
    fi
}
# probe_max A B: the probe's slowest send among those started between A and B (ms epoch)
probe_max() {
    sleep 0.3 # the probe's sends that started meanwhile have settled
    awk -v a="$1" -v b="$2" '$1 >= a - 20 && $1 <= b { if ($2 > m) m = $2; n++ }
        END { print (n ? m : -1) }' "$T/probe.json.lat"
}
tl0=$(date +%s%3N)
r=$(http GET big/partitioned-stats)
tl1=$(date +%s%3N)
[ "${r%% *}" = 200 ] || fail "partitioned-stats of $PARTS partitions: ${r:0:200}"
max=$(probe_max "$tl0" "$tl1")
echo "figure: loading $PARTS partitions (partitioned-stats) took $((tl1 - tl0)) ms; the other topic's slowest send meanwhile $max ms"
served "$PARTS partitions loaded" "$max" "$tl0" "$tl1" $LOAD_LAT_BOUND_MS
loaded=$(curl -s "http://127.0.0.1:$WPORT/metrics" |
    grep -o "topic=\"persistent://$NS/big-partition-[0-9]*\"" | sort -u | wc -l)
note "partitions loaded: $loaded"
[ "$loaded" -ge "$PARTS" ] || fail "only $loaded of $PARTS partitions were loaded before the delete"

t0=$(date +%s%3N)
r=$(http DELETE "big/partitions?force=true")
t1=$(date +%s%3N)
if [ "${r%% *}" = 204 ]; then
    pass "force-delete of $PARTS loaded partitions answered 204 in $((t1 - t0)) ms"
else
    fail "force-delete of $PARTS partitions: $r"
fi
r=$(http GET big/partitions)
if [ "$r" = '200 {"partitions":0}' ] || [ "${r%% *}" = 404 ]; then
    pass "the partitioned topic is gone ($r)"
else
    fail "after the delete: GET partitions answers $r"
fi
left=$(curl -s "$ADMIN" | tr ',' '\n' | grep -c 'big-partition-')
[ "$left" = 0 ] && pass "no partition is listed any more" || fail "$left partitions still listed"
max=$(probe_max "$t0" "$t1")
n=$(awk -v a="$t0" -v b="$t1" '$1 >= a - 20 && $1 <= b' "$T/probe.json.lat" | wc -l)
echo "figure: deleting $PARTS loaded partitions took $((t1 - t0)) ms; the other topic's producer sent $n messages meanwhile, slowest $max ms"
served "$PARTS partitions were deleted" "$max" "$t0" "$t1" $LAT_BOUND_MS
[ "$(kv "$T/probe.json.progress" failed)" = 0 ] || fail "the probe saw failed sends: $(cat "$T/probe.json.progress")"

# 2 ---------------------------------------------------------------------------------------
r=$(http PUT over/partitions 10001)
if [ "${r%% *}" = 406 ] && [[ "$r" == *"Number of partitions should be less than or equal to 10000"* ]]; then
    pass "10001 partitions refused: $r"
else
    fail "10001 partitions: $r (want 406)"
fi
r=$(http GET over/partitions)
[ "${r%% *}" = 404 ] || [ "$r" = '200 {"partitions":0}' ] || fail "the refused topic exists: $r"
r=$(http PUT grow/partitions 2)
[ "${r%% *}" = 204 ] || fail "create grow: $r"
r=$(http POST grow/partitions 10001)
if [ "${r%% *}" = 406 ]; then pass "growing past the bound refused: $r"; else fail "grow to 10001: $r (want 406)"; fi
r=$(http GET grow/partitions)
[ "$r" = '200 {"partitions":2}' ] || fail "after the refused grow: $r"

# 3 ---------------------------------------------------------------------------------------
r=$(http PUT busy/partitions 3)
[ "${r%% *}" = 204 ] || fail "create busy: $r"
start_node busyp 120 lib/probe-produce.js --url "pulsar://127.0.0.1:$BPORT" \
    --topic "persistent://$NS/busy-partition-1" --out "$T/busy.json" --stop-file "$T/busy.stop" \
    --interval-ms 50 --deadline-s 100
wait_progress busyp "$T/busy.json.progress" acked 1 30 || fail "no producer on busy-partition-1"
r=$(http DELETE busy/partitions)
if [ "${r%% *}" = 412 ]; then pass "delete without force of a topic with a producer: $r"; else fail "delete without force: $r (want 412)"; fi
r=$(http GET busy/partitions)
[ "$r" = '200 {"partitions":3}' ] && pass "its partitions are kept" || fail "after the refused delete: $r"
touch "$T/busy.stop"
wait_exit busyp 20 >/dev/null

# 4 ---------------------------------------------------------------------------------------
r=$(http PUT stored/partitions 3)
[ "${r%% *}" = 204 ] || fail "create stored: $r"
r=$(http GET stored/partitioned-stats)
[ "${r%% *}" = 200 ] || fail "load stored: $r"
touch "$T/probe.stop"
wait_exit probe 30 >/dev/null
stop_proc sa || fail "standalone exit code $? on SIGTERM"
start_sa || exit 1
WPORT=$(port_of sa webServicePort)
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/$NS"
before=$(curl -s "$ADMIN" | tr ',' '\n' | grep -c 'stored-partition-')
r=$(http DELETE "stored/partitions?force=true")
after=$(curl -s "$ADMIN" | tr ',' '\n' | grep -c 'stored-partition-')
if [ "${r%% *}" = 204 ] && [ "$before" = 3 ] && [ "$after" = 0 ]; then
    pass "stored partitions not loaded are deleted too ($before listed before, $after after)"
else
    fail "delete after restart: $r; $before listed before, $after after"
fi
check_sanitizers
stop_proc sa
exit 0
