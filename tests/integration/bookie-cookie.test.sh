#!/usr/bin/env bash
# bookie-cookie.test.sh - a bookie's identity (cookies) across restarts, with a real ZooKeeper.
#
#   1. ZooKeeper (zk.sh) and one `magnetar bookie` (bookiePort 0, --port-file): it registers
#      and writes its cookie (current/VERSION, BookKeeper's layout 5 text with its bookie id,
#      directories and the cluster's instance id) to its journal and ledger directories.
#   2. Stopped (SIGTERM, exit 0) and started again on the same directories: it takes the same
#      port again (its id names it) and registers.
#   3. Started with another advertisedAddress: exits non-zero within 30 s, its log naming the
#      old and the new bookie id; it never wrote a port file.
#   4. Its ledger directory wiped (rm -rf): refused the same way, the log naming the ledger
#      directory; the journal directory's files are untouched.
#   5. Both directories wiped while ZooKeeper still has /ledgers/cookies/<id>: refused (the
#      "started on an empty disk" case), the log naming the store's cookie. (Without cookies
#      bookiePort 0 would pick a new port, i.e. a new bookie id: from here on the port is
#      given.)
#   6. `magnetar bookie --format` without --force: exit 2, nothing deleted (the journal's
#      cookie still there); with --force: exit 0, its directories emptied and the store's
#      cookie deleted, after which the bookie starts as a new one and registers.
# Everything started is stopped by pid. Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init bookie-cookie
need_magnetar
zk_start

J="$T/bk/journal"
L="$T/bk/ledgers"
mkdir -p "$T/bk"
bk_args() { # bk_args ADVERTISED_ADDRESS
    echo --set bindAddress=127.0.0.1 --set advertisedAddress="$1" --set bookiePort=0 \
        --set metadataStoreUrl="$ZKURL" --set dataDirectory="$T/bk" \
        --set journalDirectory="$J" --set ledgerDirectories="$L"
}
registered() { "$IT_DIR/zk.sh" registered "$T/zk" 30 "$1" >/dev/null; }

# refused NAME ADDR PATTERN WHAT [ARG...]: a foreground start must exit non-zero, its log
# matching PATTERN (a fixed string), without writing a port file
refused() {
    local name=$1 addr=$2 pattern=$3 what=$4 rc
    shift 4
    # shellcheck disable=SC2046
    timeout 30 "$BIN" bookie $(bk_args "$addr") "$@" --port-file "$T/$name.ports" \
        >"$T/$name.log" 2>&1
    rc=$?
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -qF -- "$pattern" "$T/$name.log"; then
        pass "$what: exit $rc: $(grep -m1 'ERROR' "$T/$name.log" | cut -c1-260)"
    else
        fail "$what: exit $rc, log: $(tail -n 3 "$T/$name.log")"
    fi
    [ -s "$T/$name.ports" ] && fail "$what: the refused bookie wrote a port file (it listened)"
    return 0
}

# ---- 1. first start ----------------------------------------------------------------------
# shellcheck disable=SC2046
start_magnetar b1 bookie bookiePort 30 -- $(bk_args 127.0.0.1) || exit 1
PORT=$(port_of b1 bookiePort)
ID="127.0.0.1:$PORT"
registered "$ID" && pass "bookie $ID registered" || fail "bookie $ID did not register"
for d in "$J" "$L"; do
    c="$d/current/VERSION"
    if [ "$(head -n 1 "$c" 2>/dev/null)" = 5 ] && grep -qF "bookieHost: \"$ID\"" "$c" &&
        grep -qF "journalDir: \"$J\"" "$c" && grep -qF "ledgerDirs: \"1\\t$L\"" "$c" &&
        grep -qE '^instanceId: "[0-9a-f-]{36}"$' "$c"; then
        pass "cookie $c: $(tr '\n' ' ' <"$c")"
    else
        fail "cookie $c: $(cat "$c" 2>&1)"
    fi
done
stop_proc b1 15 && pass "bookie stopped cleanly" || fail "bookie exit code $? on SIGTERM"

# ---- 2. a clean restart ------------------------------------------------------------------
# shellcheck disable=SC2046
if start_magnetar b2 bookie bookiePort 30 -- $(bk_args 127.0.0.1); then
    p2=$(port_of b2 bookiePort)
    [ "$p2" = "$PORT" ] && pass "restarted on the same port $p2" ||
        fail "restarted on port $p2, was $PORT (its bookie id changed)"
    registered "$ID" && pass "restarted bookie registered as $ID" || fail "$ID not registered"
fi
stop_proc b2 15 || fail "restarted bookie exit code $? on SIGTERM"

# ---- 3. another advertised address -------------------------------------------------------
refused b3 127.0.0.2 "belongs to bookie $ID but this bookie is 127.0.0.2:$PORT" \
    "start with advertisedAddress 127.0.0.2"

# ---- 4. the ledger directory wiped -------------------------------------------------------
jfiles=$(ls "$J/current")
rm -rf "$L"
refused b4 127.0.0.1 "ledgerDirectories $L has no cookie" "start with the ledger directory wiped"
[ "$(ls "$J/current")" = "$jfiles" ] && pass "the journal directory is untouched" ||
    fail "journal directory changed: [$jfiles] -> [$(ls "$J/current")]"

# ---- 5. every directory empty, the store remembers the bookie -----------------------------
# (the wiped directories lost the port with their cookies: from here on it is given)
rm -rf "$J" "$L"
refused b5 127.0.0.1 "the metadata store has its cookie /ledgers/cookies/$ID" \
    "start on empty directories with the store's cookie present" --set bookiePort="$PORT"

# ---- 6. format ---------------------------------------------------------------------------
mkdir -p "$J/current"
echo kept >"$J/current/marker"
# shellcheck disable=SC2046
timeout 30 "$BIN" bookie $(bk_args 127.0.0.1) --set bookiePort="$PORT" --format \
    >"$T/f1.log" 2>&1
rc=$?
if [ "$rc" = 2 ] && [ -e "$J/current/marker" ] && grep -q "Add --force" "$T/f1.log"; then
    pass "--format without --force: exit 2, nothing deleted"
else
    fail "--format without --force: exit $rc, marker $(ls "$J/current" 2>&1), log: $(tail -n 2 "$T/f1.log")"
fi
# shellcheck disable=SC2046
timeout 60 "$BIN" bookie $(bk_args 127.0.0.1) --set bookiePort="$PORT" --format --force \
    >"$T/f2.log" 2>&1
rc=$?
if [ "$rc" = 0 ] && [ ! -e "$J/current" ] &&
    grep -qF "deleting the cookie /ledgers/cookies/$ID from the metadata store" "$T/f2.log"; then
    pass "--format --force: exit 0, directories emptied, store cookie deleted"
else
    fail "--format --force: exit $rc, log: $(tail -n 3 "$T/f2.log")"
fi
# shellcheck disable=SC2046
if start_magnetar b6 bookie bookiePort 30 -- $(bk_args 127.0.0.1) --set bookiePort="$PORT"; then
    grep -q "new bookie $ID" "$T/b6.log" && pass "after format the bookie starts as a new bookie" ||
        fail "after format: no 'new bookie' line in its log"
    registered "$ID" && pass "formatted bookie registered as $ID" || fail "$ID not registered"
fi
stop_proc b6 15 || fail "formatted bookie exit code $? on SIGTERM"
check_sanitizers
echo "SUMMARY: $IT_PASSES passed, $IT_FAILS failed"
[ "$IT_FAILS" = 0 ]
