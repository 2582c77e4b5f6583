#!/usr/bin/env bash
# bookie-lock.test.sh - a second `magnetar bookie` pointed at the directories of a running one
# is refused instead of replaying and appending to its live journal.
#
#   1. bookie A starts on journal J and ledgers L (port 0, --port-file).
#   2. bookie B with the same J and L (its own port): must exit non-zero within 30 s, its log
#      naming the directory and A's pid; A's journal directory is unchanged (B created no
#      journal file) and A is still running.
#   3. bookie C with its own journal directory but A's ledger directory: refused the same way
#      (naming L).
#   4. A stops (SIGTERM, exit 0); B started again on J and L now starts.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-lock
need_magnetar

J="$T/journal"
L="$T/ledgers"
bk_args() { # bk_args JOURNAL LEDGERS
    echo --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0 \
        --set metadataStoreUrl=none --set journalDirectory="$1" --set ledgerDirectories="$2"
}

# shellcheck disable=SC2046
start_magnetar a bookie bookiePort 30 -- $(bk_args "$J" "$L") || exit 1
A_PID=$(pid_of a)
before=$(ls "$J/current")

# a second bookie on the same directories (its own port file; foreground, bounded)
# shellcheck disable=SC2046
timeout 30 "$BIN" bookie $(bk_args "$J" "$L") --port-file "$T/b.ports" >"$T/b.log" 2>&1
rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "journalDirectory $J is in use" "$T/b.log" &&
    grep -q "pid $A_PID" "$T/b.log"; then
    pass "second bookie on the same directories exits $rc: $(grep -m1 'in use' "$T/b.log" | cut -c1-220)"
else
    fail "second bookie on the same directories: exit $rc, log: $(tail -n 3 "$T/b.log")"
fi
[ -s "$T/b.ports" ] && fail "the refused bookie wrote a port file (it listened)"
after=$(ls "$J/current")
if [ "$before" = "$after" ]; then
    pass "the running bookie's journal directory is untouched ($(echo "$after" | tr '\n' ' '))"
else
    fail "journal directory changed: before [$before] after [$after]"
fi

# a bookie with its own journal directory but the same ledger directory
# shellcheck disable=SC2046
timeout 30 "$BIN" bookie $(bk_args "$T/journal-c" "$L") --port-file "$T/c.ports" >"$T/c.log" 2>&1
rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "ledgerDirectories $L is in use" "$T/c.log" &&
    grep -q "pid $A_PID" "$T/c.log"; then
    pass "a bookie sharing only the ledger directory exits $rc naming $L and pid $A_PID"
else
    fail "a bookie sharing the ledger directory: exit $rc, log: $(tail -n 3 "$T/c.log")"
fi

if alive a; then pass "bookie A still running"; else fail "bookie A died"; fi
stop_proc a 15
rc=$?
[ "$rc" = 0 ] && pass "bookie A stopped cleanly" || fail "bookie A exit code $rc on SIGTERM"

# shellcheck disable=SC2046
if start_magnetar b2 bookie bookiePort 30 -- $(bk_args "$J" "$L"); then
    pass "after A stopped, a bookie starts on its directories"
fi
stop_proc b2 15 || fail "bookie b2 exit code $? on SIGTERM"
check_sanitizers
echo "SUMMARY: $IT_PASSES passed, $IT_FAILS failed"
