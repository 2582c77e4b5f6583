#!/usr/bin/env bash
# bookie-ledgerdirs.test.sh - a `magnetar bookie` with several ledger directories
# (ledgerDirectories comma-separated, BookKeeper's key).
#
#   1. bookie A starts on journal J and ledger directories L0, L1, L2 (port 0, --port-file,
#      64 KiB entry logs, checkpoints every 100 ms).
#   2. bk_bench writes 1 KiB adds for 2 s: the entry logs spread over the three directories
#      (waited for, bounded), the index (LMDB) stays in L0, each directory holds the cookie.
#   3. A stops (SIGTERM, exit 0). Started again with L2 left out: exits 1 naming
#      ledgerDirectories; with a fourth, empty directory added: exits 1 naming it.
#   4. With the original list it starts again; `--format --force` then clears every directory.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-ledgerdirs
need_magnetar
BENCH="$BUILD_DIR/broker/bookie/bk_bench"
[ -x "$BENCH" ] || it_skip "no $BENCH (make broker/bookie/bk_bench)"

J="$T/journal"
L0="$T/l0" L1="$T/l1" L2="$T/l2" L3="$T/l3"
bk_args() { # bk_args LEDGER_DIRECTORIES
    echo --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0 \
        --set metadataStoreUrl=none --set journalDirectory="$J" --set ledgerDirectories="$1" \
        --set logSizeLimit=65536 --set flushInterval=100
}
logs_in() { find "$1/current" -maxdepth 1 -name '*.log' 2>/dev/null | wc -l; }

# shellcheck disable=SC2046
start_magnetar a bookie bookiePort 30 -- $(bk_args "$L0,$L1,$L2") || exit 1
PORT=$(port_of a bookiePort)
timeout 30 "$BENCH" add 127.0.0.1 "$PORT" --seconds 2 --outstanding 100 >"$T/bench.log" 2>&1 ||
    fail "bk_bench: $(tail -n 2 "$T/bench.log")"
note "bench: $(tail -n 1 "$T/bench.log")"
spread=0
for _ in $(seq 1 100); do # up to 10 s for the last checkpoints
    if [ "$(logs_in "$L0")" -ge 2 ] && [ "$(logs_in "$L1")" -ge 2 ] && [ "$(logs_in "$L2")" -ge 2 ]; then
        spread=1
        break
    fi
    sleep 0.1
done
counts="l0=$(logs_in "$L0") l1=$(logs_in "$L1") l2=$(logs_in "$L2")"
[ "$spread" = 1 ] && pass "entry logs spread over the three directories ($counts)" ||
    fail "entry logs not spread over the directories ($counts)"
if [ -d "$L0/current/index" ] && [ ! -e "$L1/current/index" ] && [ ! -e "$L2/current/index" ]; then
    pass "the index is in the first ledger directory only"
else
    fail "index directories: $(ls -d "$T"/l*/current/index 2>/dev/null | tr '\n' ' ')"
fi
ok=1
for d in "$L0" "$L1" "$L2"; do
    grep -q 'ledgerDirs: "3' "$d/current/VERSION" 2>/dev/null || ok=0
done
[ "$ok" = 1 ] && pass "each ledger directory holds the cookie naming the three" ||
    fail "cookies: $(head -c 300 "$L0/current/VERSION" 2>/dev/null)"
stop_proc a 15
rc=$?
[ "$rc" = 0 ] && pass "bookie A stopped cleanly" || fail "bookie A exit code $rc on SIGTERM"

# a directory left out, then an empty one added: refused (foreground, bounded)
# shellcheck disable=SC2046
timeout 30 "$BIN" bookie $(bk_args "$L0,$L1") --port-file "$T/b.ports" >"$T/b.log" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "ledgerDirectories" "$T/b.log" && grep -q "does not match" "$T/b.log"; then
    pass "a ledger directory left out: exit 1: $(grep -m1 'does not match' "$T/b.log" | cut -c1-200)"
else
    fail "a ledger directory left out: exit $rc, log: $(tail -n 3 "$T/b.log")"
fi
# shellcheck disable=SC2046
timeout 30 "$BIN" bookie $(bk_args "$L0,$L1,$L2,$L3") --port-file "$T/c.ports" >"$T/c.log" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "$L3" "$T/c.log"; then
    pass "an empty ledger directory added: exit 1 naming $L3"
else
    fail "an empty ledger directory added: exit $rc, log: $(tail -n 3 "$T/c.log")"
fi

# shellcheck disable=SC2046
if start_magnetar a2 bookie bookiePort 30 -- $(bk_args "$L0,$L1,$L2"); then
    pass "with its directories as before, the bookie starts again"
fi
stop_proc a2 15 || fail "bookie a2 exit code $? on SIGTERM"

# --format --force clears every ledger directory (and the journal's)
# shellcheck disable=SC2046
timeout 30 "$BIN" bookie $(bk_args "$L0,$L1,$L2") --format --force >"$T/f.log" 2>&1
rc=$?
left=$(ls -d "$J/current" "$L0/current" "$L1/current" "$L2/current" 2>/dev/null | tr '\n' ' ')
if [ "$rc" = 0 ] && [ -z "$left" ]; then
    pass "--format --force removed current/ of the journal and the three ledger directories"
else
    fail "--format --force: exit $rc, left: $left, log: $(tail -n 2 "$T/f.log")"
fi
check_sanitizers
echo "SUMMARY: $IT_PASSES passed, $IT_FAILS failed"
