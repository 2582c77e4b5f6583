#!/usr/bin/env bash
# autorecovery-shell.test.sh - `magnetar autorecovery` (the daemon alone) and `magnetar shell`'s
# operator commands on a cluster whose bookies do not run the autorecovery
# (autoRecoveryDaemonEnabled=false).
#
# ZooKeeper, four bookies (zooKeeperSessionTimeoutMillis=4000: a killed bookie is unregistered
# within seconds), one broker with E=Qw=Qa=2 and ledgers of at most 500 entries.
#   1. 3,000 messages, all acknowledged. `shell listbookies`: 4 read-write bookies, in
#      BookKeeper's format; `shell ledgermetadata -l <id>` of a closed ledger; `shell
#      listunderreplicated`: count 0.
#   2. SIGKILL bookie A (one that ledgers name) for good; once it is unregistered: still no
#      mark (no auditor runs); 200 more messages (the writer leaves A).
#   3. `shell autorecovery -disable`; `magnetar autorecovery` (lostBookieRecoveryDelay=0) is
#      elected auditor and its worker waits (the ledgers still name A); `shell autorecovery
#      -enable`, and every ledger
#      gets 2 live bookies in every segment (at most 120 s); its /metrics
#      (prometheusStatsHttpPort) show it is the auditor and the entries it copied; SIGTERM:
#      exit 0.
#   4. SIGKILL bookie B (another original holder); 200 more messages. `shell recover B`
#      answered "N" changes nothing (exit 1); `shell decommissionbookie` of a registered bookie
#      is refused (exit 1); `shell recover -f B` exits 0 and no ledger names B any more;
#      `shell decommissionbookie -bookieid B` exits 0 and deletes B's cookie.
#   5. Every acknowledged message is read back (two bookies left).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$IT_DIR/lib/autorec.sh"
it_init autorecovery-shell
need_bin

SEED=${AUTOREC_SEED:-$RANDOM}
RANDOM=$SEED
TOPIC="arshell-$$-$SEED"
SUB=verify
NBK=4
N=3000
note "seed $SEED"

bk_cluster_start $NBK --set autoRecoveryDaemonEnabled=false --set zooKeeperSessionTimeoutMillis=4000
start_zk_broker broker --set managedLedgerDefaultEnsembleSize=2 \
    --set managedLedgerDefaultWriteQuorum=2 --set managedLedgerDefaultAckQuorum=2 \
    --set managedLedgerMaxEntriesPerLedger=500 --set managedLedgerMinLedgerRolloverTimeMinutes=0 || exit 1
URL="pulsar://127.0.0.1:$(port_of broker brokerServicePort)"

# n_rw: read-write bookies listed by `shell listbookies -rw`
n_rw() { ar_shell listbookies -rw | grep -c '^BookieID:'; }
wait_unregistered() { # wait_unregistered N: until N read-write bookies are listed (30 s)
    local end=$(($(date +%s) + 30))
    while [ "$(date +%s)" -lt "$end" ]; do
        [ "$(n_rw)" = "$1" ] && return 0
        sleep 0.5
    done
    return 1
}
under() { ar_shell listunderreplicated | sed -n 's/^Under replicated ledger count: //p'; }
live_ids() {
    local i
    LIVE=()
    for i in $(seq 1 $NBK); do [ -n "${IT_PID[bk$i]:-}" ] && LIVE+=("$(ar_bookie_id "$i")"); done
}

# ---- 1 -------------------------------------------------------------------------------------
subscribe "sub-$SUB" "$URL" "$TOPIC" "$SUB"
produce_all p1 "$T/p1.json" 200 "$N" "first messages" --url "$URL" --topic "$TOPIC" --window 500 || exit 1
out=$(ar_shell listbookies)
if [ "$(echo "$out" | sed -n '/^ReadWrite Bookies :$/,/^Readonly Bookies :$/p' | grep -c '^BookieID:127\.0\.0\.1:[0-9]*, IP:127\.0\.0\.1, Port:[0-9]*, Hostname:')" = 4 ] &&
    echo "$out" | grep -qx 'All Bookies :'; then
    pass "shell listbookies: 4 read-write bookies in BookKeeper's format"
else
    fail "shell listbookies: $out"
fi
segs=$(ar_ensembles)
first=$(echo "$segs" | head -n 1 | awk '{ print $1 }')
md=$(ar_shell ledgermetadata -l "$first")
if echo "$md" | grep -qx "ledgerID: $first" &&
    echo "$md" | grep -q 'LedgerMetadata{formatVersion=3, ensembleSize=2, writeQuorumSize=2, ackQuorumSize=2, state=CLOSED, length=[0-9]*, lastEntryId=499, digestType=CRC32C, password=base64:, ensembles={0=\[127.0.0.1:[0-9]*, 127.0.0.1:[0-9]*\]}'; then
    pass "shell ledgermetadata -l $first: $(echo "$md" | tail -n 1 | cut -c1-160)..."
else
    fail "shell ledgermetadata -l $first: $md"
fi
[ "$(under)" = 0 ] && pass "shell listunderreplicated: 0" || fail "shell listunderreplicated: $(ar_shell listunderreplicated)"

# ---- 2 -------------------------------------------------------------------------------------
ar_holders "$segs"
A=${AR_HOLDERS[$((RANDOM % ${#AR_HOLDERS[@]}))]}
A_ID=$(ar_bookie_id "$A")
note "SIGKILL bk$A ($A_ID)"
kill_proc "bk$A"
wait_unregistered 3 && pass "bk$A unregistered: $(n_rw) read-write bookies" || fail "bk$A still listed after 30 s"
[ "$(under)" = 0 ] && pass "no auditor runs in the bookies (autoRecoveryDaemonEnabled=false): nothing marked" ||
    fail "ledgers marked although no autorecovery runs: $(ar_shell listunderreplicated)"
produce_all p2 "$T/p2.json" 200 200 "after bk$A was killed" --url "$URL" --topic "$TOPIC" --start "$N" || exit 1

# ---- 3 -------------------------------------------------------------------------------------
named() { ar_ensembles | grep -c " $1\b"; }
out=$(ar_shell autorecovery -disable)
[ "$out" = "Autorecovery is disabled" ] && [ "$(ar_shell autorecovery)" = "Autorecovery is disabled" ] &&
    pass "shell autorecovery -disable: $out" || fail "shell autorecovery -disable: $out"
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
start_magnetar autorec autorecovery "" 30 -- --config "$IT_TOP/conf/bookie.yaml" \
    --set metadataStoreUrl="$ZKURL" --set advertisedAddress=127.0.0.1 --set bindAddress=127.0.0.1 \
    --set prometheusStatsHttpPort="$MPORT" \
    --set lostBookieRecoveryDelay=0 --set openLedgerRereplicationGracePeriod=1000 || exit 1
wait_log autorec 'is the auditor' 30 && pass "magnetar autorecovery elected auditor" || fail "magnetar autorecovery not elected within 30 s"
# the auditor marks at once (delay 0) and kicks its worker, which would copy within
# milliseconds: marks still there, and nothing written, once they are seen
marked=0
for _ in $(seq 1 150); do
    marked=$(under)
    [ "${marked:-0}" -gt 0 ] && break
    sleep 0.1
done
written=$(curl -sf "http://127.0.0.1:$MPORT/metrics" | sed -n 's/^replication_replication_worker_NUM_ENTRIES_WRITTEN //p')
if wait_log autorec 'ledger replication disabled' 10 && [ "${marked:-0}" -gt 0 ] && [ "$written" = 0 ] &&
    [ "$(under)" = "$marked" ] && [ "$(named "$A_ID")" -gt 0 ]; then
    pass "replication disabled (shell autorecovery -disable): $marked ledger(s) marked, the worker waits (0 entries written)"
else
    fail "replication disabled: marked ${marked:-?}, written ${written:-?}: $(tail -n 3 "$T/autorec.log")"
fi
out=$(ar_shell lostbookierecoverydelay -get)
[ "$out" = "LostBookieRecoveryDelay value in ZK: 0" ] && pass "shell lostbookierecoverydelay -get: $out (stored by the auditor from its configuration)" ||
    fail "shell lostbookierecoverydelay -get: $out"
out=$(ar_shell autorecovery -enable)
[ "$out" = "Autorecovery is enabled" ] && pass "shell autorecovery -enable: $out" || fail "shell autorecovery -enable: $out"
live_ids
if ar_wait_replicated 120 "${LIVE[@]}"; then
    pass "magnetar autorecovery: every one of $AR_LEDGERS ledgers has 2 live bookies in every segment after $((AR_WAITED_MS / 1000)) s"
else
    fail "magnetar autorecovery: after 120 s $AR_BAD segment(s) without 2 live bookies, $AR_UNDER marked"
fi
m=$(curl -sf "http://127.0.0.1:$MPORT/metrics")
written=$(echo "$m" | sed -n 's/^replication_replication_worker_NUM_ENTRIES_WRITTEN //p')
if echo "$m" | grep -qx 'replication_auditor_leader 1' && [ "${written:-0}" -gt 0 ]; then
    pass "magnetar autorecovery /metrics: auditor, $written entries re-replicated, $(echo "$m" | grep '^replication_replication_worker_NUM_FULL_OR_PARTIAL_LEDGERS_REPLICATED ')"
else
    fail "magnetar autorecovery /metrics: $m"
fi
stop_proc autorec 20 && pass "magnetar autorecovery exit 0 on SIGTERM" || fail "magnetar autorecovery exit code $? on SIGTERM"

# ---- 4 -------------------------------------------------------------------------------------
ar_holders "$segs"
B=
for i in "${AR_HOLDERS[@]}"; do [ "$i" != "$A" ] && B=$i && break; done
B_ID=$(ar_bookie_id "$B")
note "SIGKILL bk$B ($B_ID)"
kill_proc "bk$B"
wait_unregistered 2 || fail "bk$B still listed after 30 s"
produce_all p3 "$T/p3.json" 200 200 "after bk$B was killed" --url "$URL" --topic "$TOPIC" --start $((N + 200)) || exit 1
before_n=$(named "$B_ID")
out=$(echo N | ar_shell recover "$B_ID")
rc=$?
if [ $rc = 1 ] && echo "$out" | grep -q 'Are you sure to recover them : (Y/N)' && [ "$(named "$B_ID")" = "$before_n" ]; then
    pass "shell recover answered N: exit 1, nothing changed ($before_n segment(s) name bk$B)"
else
    fail "shell recover answered N: exit $rc: $out"
fi
live_ids
out=$(ar_shell decommissionbookie -bookieid "${LIVE[0]}" 2>&1)
rc=$?
[ $rc = 1 ] && echo "$out" | grep -q 'still registered' && pass "shell decommissionbookie of a running bookie refused: $out" ||
    fail "shell decommissionbookie of a running bookie: exit $rc: $out"
out=$(ar_shell recover -f "$B_ID" 2>&1)
rc=$?
if [ $rc = 0 ] && [ "$(named "$B_ID")" = 0 ]; then
    pass "shell recover -f bk$B: exit 0, no ledger names it any more: $(echo "$out" | tail -n 1)"
else
    fail "shell recover -f bk$B: exit $rc, $(named "$B_ID") segment(s) still name it: $out"
fi
out=$(ar_shell decommissionbookie -bookieid "$B_ID" 2>&1)
rc=$?
cookie=$(java -cp "${ZK_CLASSPATH:-/usr/share/java/zookeeper.jar}" org.apache.zookeeper.ZooKeeperMain \
    -server "127.0.0.1:$ZK_PORT" stat "/ledgers/cookies/$B_ID" 2>&1 | grep -c 'ctime')
if [ $rc = 0 ] && echo "$out" | grep -q "Decommission of bookie $B_ID completed" && [ "$cookie" = 0 ]; then
    pass "shell decommissionbookie -bookieid bk$B: exit 0, its cookie deleted"
else
    fail "shell decommissionbookie -bookieid bk$B: exit $rc (cookie stat lines: $cookie): $out"
fi

# ---- 5 -------------------------------------------------------------------------------------
ar_verify_all "two bookies lost" "$URL" "$TOPIC" "$SUB" "$T/p1.json,$T/p2.json,$T/p3.json"

stop_clean 20 broker
for i in $(seq 1 $NBK); do [ "$i" = "$A" ] || [ "$i" = "$B" ] || stop_clean 20 "bk$i"; done
check_sanitizers
[ "$IT_FAILED" -eq 0 ] && echo "PASS: autorecovery shell test (seed $SEED)" || echo "FAIL: autorecovery shell test (seed $SEED)"
exit "$IT_FAILED"
