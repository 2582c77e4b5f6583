#!/bin/sh
# bench-bookie.sh - adds/s and MB/s of `magnetar bookie` for 1 KiB entries with ~1000
# outstanding adds, with group commit (default settings) and with one fsync per add
# (journalMaxGroupWaitMSec=0, journalBufferedEntriesThreshold=1), next to the disk's own
# fdatasync rate. Prints figures only.
#
#   scripts/bench-bookie.sh [BUILD_DIR] [SECONDS]      (BUILD_DIR defaults to ./build or .)
# Data goes to a temporary directory under $BENCH_DIR (default /tmp) - put it on the disk you
# want to measure.
set -eu
BUILD=${1:-}
SECS=${2:-5}
if [ -z "$BUILD" ]; then
    if [ -x build/magnetar ]; then BUILD=build; else BUILD=.; fi
fi
MAGNETAR=$BUILD/magnetar
BENCH=$BUILD/broker/bookie/bk_bench
[ -x "$MAGNETAR" ] || { echo "no $MAGNETAR (build first)" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "no $BENCH (make broker/bookie/bk_bench)" >&2; exit 1; }
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/bench-bookie.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

run() { # name, extra --set options...
    name=$1; shift
    rm -rf "$WORK/data" "$WORK/port"
    "$MAGNETAR" bookie --set bookiePort=0 --set bindAddress=127.0.0.1 \
        --set metadataStoreUrl=none --set logLevel=warn \
        --set journalDirectory="$WORK/data/journal" --set ledgerDirectories="$WORK/data/ledgers" \
        --port-file "$WORK/port" "$@" 2>"$WORK/bookie.log" &
    PID=$!
    i=0
    while [ ! -s "$WORK/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -s "$WORK/port" ] || { cat "$WORK/bookie.log" >&2; exit 1; }
    port=$(sed -n 's/^bookiePort=//p' "$WORK/port")
    printf '%-16s ' "$name:"
    "$BENCH" add 127.0.0.1 "$port" --size 1024 --outstanding 1000 --seconds "$SECS"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "bookie benchmark: 1 KiB entries, 1000 outstanding, ${SECS}s per run, data in $WORK"
run "group commit"
run "fsync per add" --set journalMaxGroupWaitMSec=0 --set journalBufferedEntriesThreshold=1
if command -v fio >/dev/null 2>&1; then
    printf '%-16s ' "disk (fio):"
    fio --name=fsync --directory="$WORK" --rw=write --bs=4k --size=64m --fdatasync=1 \
        --runtime="$SECS" --time_based --output-format=terse 2>/dev/null |
        awk -F';' '{printf "%s write IOPS with fdatasync each\n", $8}'
else
    printf '%-16s ' "disk:"
    "$BENCH" fsync "$WORK" --seconds "$SECS"
fi
