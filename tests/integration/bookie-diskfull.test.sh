#!/usr/bin/env bash
# bookie-diskfull.test.sh - a `magnetar standalone` whose bookie's disk fills up recovers by
# itself once space is freed, without a restart; after a restart it is not read-only again.
#
# Needs root to mount a tmpfs; without it, prints "SKIP: ..." and exits 0.
#
#   1. A DISK_MB tmpfs is mounted at dataDirectory/bookie-0 (the in-process bookie's journal
#      and ledgers; the metadata store stays on the normal disk), and a filler file leaves
#      FREE_MB free. standalone: managedLedgerStore=bookkeeper, one bookie, E=Qw=Qa=1,
#      diskCheckInterval=500, diskUsageThreshold=0.95, diskUsageLwmThreshold=0.90.
#   2. A producer sends 64 KiB messages until the bookie turns read-only. The bookie's log
#      must say why ("READ-ONLY" and "no space") and never answer an add EIO ("journal
#      write/fsync failed", "entry log write failed"); its "no space" errors must come at most
#      one line per 10 s (counted over the run).
#   3. The filler is deleted: the bookie must log "writable again" within 30 s, with no
#      restart, and 200 more messages sent then must all be acknowledged; the health check
#      answers 200.
#   4. SIGKILL and restart on the same directories: 3 disk checks later the bookie is still
#      writable (no second "READ-ONLY" line) and 100 more messages are acknowledged.
#   5. A consumer receives every acknowledged message, in order, once.
# Environment: MAGNETAR_BIN, DISK_MB (48), FREE_MB (12).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-diskfull
need_bin

it_env DISK_MB=48 FREE_MB=12
DATA="$T/data"
MNT="$DATA/bookie-0"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size="${DISK_MB}m" tmpfs "$MNT" 2>"$T/mount.err"; then
    echo "SKIP: bookie-diskfull: cannot mount a tmpfs ($(tr "\n" " " <"$T/mount.err")); needs root"
    exit 0
fi
IT_MOUNT=$MNT
# on exit: stop what runs on the mount (by pid), unmount, then the usual cleanup
cleanup_all() {
    local rc=$? n
    for n in "${IT_NAMES[@]}"; do stop_proc "$n" 10 >/dev/null 2>&1; done
    [ -n "${IT_MOUNT:-}" ] && { umount "$IT_MOUNT" || note "cannot unmount $IT_MOUNT"; }
    (exit $rc)
    it_cleanup
}
trap cleanup_all EXIT

sa_args=(--config "$IT_TOP/conf/standalone.yaml" --set dataDirectory="$DATA"
    --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0
    --set brokerServicePort=0 --set webServicePort=0 --set managedLedgerStore=bookkeeper
    --set standaloneBookies=1 --set managedLedgerDefaultEnsembleSize=1
    --set managedLedgerDefaultWriteQuorum=1 --set managedLedgerDefaultAckQuorum=1
    --set diskCheckInterval=500 --set diskUsageThreshold=0.95 --set diskUsageLwmThreshold=0.90
    --set bookkeeperClientTimeoutInSeconds=10)
start_magnetar sa standalone "brokerServicePort webServicePort bookiePort" 60 -- "${sa_args[@]}" || exit 1
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
WEB="http://127.0.0.1:$(port_of sa webServicePort)"
TOPIC="diskfull-$$"
subscribe sub "$URL" "$TOPIC" s

# 1. leave FREE_MB free
avail_kb=$(df -k --output=avail "$MNT" | tail -n 1)
fill_kb=$((avail_kb - FREE_MB * 1024))
[ "$fill_kb" -gt 0 ] && dd if=/dev/zero of="$MNT/filler" bs=1024 count="$fill_kb" status=none
note "tmpfs $MNT: $(df -h --output=used,avail,pcent "$MNT" | tail -n 1)"

# 2. produce until the bookie is read-only
# (--no-recreate: it stops at the first refused send and writes what was acknowledged)
start_node p1 180 lib/verify-produce.js --url "$URL" --topic "$TOPIC" --count 2000 --size 65536 \
    --rate 100 --window 50 --tag a --send-timeout-ms 15000 --deadline-s 150 --no-recreate \
    --out "$T/p1.json" --progress "$T/p1.progress"
if wait_log sa "READ-ONLY.*no space" 120; then
    pass "the bookie turned read-only: $(grep -m1 'READ-ONLY' "$T/sa.log" | cut -c1-200)"
else
    fail "the bookie never turned read-only ($(df -h --output=pcent "$MNT" | tail -n 1) used)"
fi
wait_exit p1 170
A1=$(json "$T/p1.json" ackedCount)
F1=$(json "$T/p1.json" failedCount)
if [ -n "$A1" ] && [ "${F1:-0}" -gt 0 ]; then
    pass "producer 1: $A1 acknowledged, then refused: $(json "$T/p1.json" firstError | cut -c1-120)"
else
    fail "producer 1: acked ${A1:-?}, failed ${F1:-?} (want some acknowledged, then refusals)"
fi

# 3. free space: writable again without a restart
rm -f "$MNT/filler"
if wait_log sa "writable again" 30; then
    pass "writable again without a restart: $(grep -m1 'writable again' "$T/sa.log" | cut -c1-200)"
else
    fail "still read-only 30 s after space was freed"
fi
produce_all p2 "$T/p2.json" 120 200 "after space was freed" --url "$URL" --topic "$TOPIC" \
    --start 100000 --size 1024 --tag a --send-timeout-ms 30000 --deadline-s 100
code=$(curl -s -o "$T/health.out" -w '%{http_code}' --max-time 30 "$WEB/admin/v2/brokers/health")
[ "$code" = 200 ] && pass "health check answers 200" || fail "health check answers $code: $(head -c 200 "$T/health.out")"

# 4. restart: not read-only again
kill_proc sa
n_ro=$(grep -c 'READ-ONLY' "$T/sa.log")
start_magnetar sa standalone "brokerServicePort webServicePort bookiePort" 60 -- "${sa_args[@]}" || exit 1
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
produce_all p3 "$T/p3.json" 120 100 "after the restart" --url "$URL" --topic "$TOPIC" \
    --start 200000 --size 1024 --tag a --send-timeout-ms 30000 --deadline-s 100
if [ "$(grep -c 'READ-ONLY' "$T/sa.log")" = "$n_ro" ]; then
    pass "not read-only again after the restart"
else
    fail "read-only again after the restart: $(grep 'READ-ONLY' "$T/sa.log" | tail -n 1 | cut -c1-200)"
fi
pct=$(df --output=pcent "$MNT" | tail -n 1 | tr -dc 0-9)
if [ "$pct" -lt 90 ]; then
    pass "after the restart the bookie's disk is ${pct}% used (below diskUsageLwmThreshold)"
else
    fail "after the restart the bookie's disk is ${pct}% used"
fi
journals=$(ls "$MNT/journal/current" | grep -c '\.txn$')
[ "$journals" = 1 ] && pass "the previous run's journal was trimmed at the start" ||
    fail "$journals journal files after the restart: $(ls "$MNT/journal/current" | tr '\n' ' ')"

# 5. every acknowledged message is there
if run_node 180 v lib/verify-consume.js --url "$URL" --topic "$TOPIC" --sub s --tag a \
    --expect "$T/p1.json,$T/p2.json,$T/p3.json" --out "$T/v.json" --deadline-s 120; then
    pass "consumer: $(cat "$T/v.out")"
else
    fail "consumer: $(cat "$T/v.out") $(tail -n 3 "$T/v.err")"
fi

# logs: no EIO for lack of space; repeated failures at most one line per 10 s per kind
limit=$((SECONDS / 10 + 2))
for kind in "more journal failures since the last line" "more such failures since the last line" \
    "more since the last line)"; do
    n=$(grep -c "$kind" "$T/sa.log")
    if [ "$n" -le "$limit" ]; then
        pass "'$kind': $n line(s) in ${SECONDS} s"
    else
        fail "'$kind': $n lines in ${SECONDS} s (more than one per 10 s)"
    fi
done
if grep -qE 'journal write/fsync failed|entry log write failed' "$T/sa.log"; then
    fail "an I/O error instead of read-only: $(grep -m1 -E 'journal write/fsync failed|entry log write failed' "$T/sa.log")"
else
    pass "no I/O error reported for lack of space"
fi
stop_proc sa 30
check_sanitizers
echo "SUMMARY: $IT_PASSES passed, $IT_FAILS failed"
