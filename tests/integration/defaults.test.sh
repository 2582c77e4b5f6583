#!/usr/bin/env bash
# defaults.test.sh - what a user gets without setting a key is durable and safe.
#
#   1. `magnetar config show` for the broker role: managedLedgerStore is bookkeeper.
#   2. `magnetar broker` without a shared metadata store (the built-in default "embedded")
#      refuses to start with bookkeeper topics: it could not find a bookie (exit 2, names
#      metadataStoreUrl).
#   3. `magnetar broker` with managedLedgerStore=memory on ZooKeeper refuses to start unless
#      allowVolatileTopics=true is also given; with it, it starts and logs a WARN that topics
#      are not durable.
#   4. `magnetar standalone` started from an empty directory (no conf/standalone.yaml found)
#      listens on loopback only and stores its topics on its in-process bookie: a message
#      acknowledged before a SIGKILL is read back after a restart.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init defaults
need_bin

# 1 ---------------------------------------------------------------------------------------
empty="$T/empty"
mkdir -p "$empty"
store=$(cd "$empty" && "$BIN" config show 2>&1 | sed -n 's/^managedLedgerStore: //p')
if [ "$store" = '"bookkeeper"' ] || [ "$store" = bookkeeper ]; then
    pass "built-in default managedLedgerStore is bookkeeper"
else
    fail "built-in default managedLedgerStore is '$store', not bookkeeper"
fi

# 2 ---------------------------------------------------------------------------------------
(cd "$empty" && timeout 20 "$BIN" broker --set brokerServicePort=0 --set webServicePort=0 \
    --set dataDirectory="$T/b0" >"$T/b0.log" 2>&1)
rc=$?
if [ "$rc" = 2 ] && grep -q "metadataStoreUrl" "$T/b0.log"; then
    pass "broker on the built-in embedded store refuses bookkeeper topics (exit 2): $(head -c 160 "$T/b0.log")"
else
    fail "broker without a shared metadata store: exit $rc (want 2 naming metadataStoreUrl)"
    cat "$T/b0.log"
fi

# 3 ---------------------------------------------------------------------------------------
zk_start
common=(--set brokerServicePort=0 --set webServicePort=0 --set bindAddress=127.0.0.1
        --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL")
(cd "$empty" && timeout 60 "$BIN" broker "${common[@]}" --set dataDirectory="$T/b1" \
    --set managedLedgerStore=memory >"$T/b1.log" 2>&1)
rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "allowVolatileTopics" "$T/b1.log"; then
    pass "memory topics on ZooKeeper refused without allowVolatileTopics (exit $rc)"
else
    fail "memory topics on ZooKeeper without allowVolatileTopics: exit $rc (want a refusal naming allowVolatileTopics)"
    tail -n 20 "$T/b1.log"
fi
if start_magnetar b2 broker "brokerServicePort" 60 -- "${common[@]}" --set dataDirectory="$T/b2" \
    --set managedLedgerStore=memory --set allowVolatileTopics=true; then
    if grep -q "WARN.*NOT durable" "$T/b2.log"; then
        pass "with allowVolatileTopics=true the broker starts and warns that topics are not durable"
    else
        fail "volatile broker started without the WARN"
    fi
    stop_proc b2
fi

# 4 ---------------------------------------------------------------------------------------
start_sa() {
    # From the empty directory: no conf/standalone.yaml; only ports and the data directory set.
    IT_CWD=$empty start_magnetar sa standalone "webServicePort" 60 -- --set brokerServicePort=0 \
        --set webServicePort=0 --set dataDirectory="$T/sa"
}
rm -f "$T/sa.ports"
start_sa || exit 1
bport=$(port_of sa brokerServicePort)
pid=$(pid_of sa)
listen=$(ss -Hltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | sort -u | tr '\n' ' ')
nonloop=$(echo "$listen" | tr ' ' '\n' | grep -v '^$' | grep -cvE '^(127\.0\.0\.1|\[::1\]):[0-9]+$')
if [ -n "$listen" ] && [ "$nonloop" = 0 ]; then
    pass "standalone started outside the repository listens on loopback only: $listen"
else
    fail "standalone started outside the repository listens on: '$listen'"
fi
TOPIC="persistent://public/default/defaults-$$"
run_node 60 sub lib/verify-consume.js --url "pulsar://127.0.0.1:$bport" --topic "$TOPIC" \
    --sub check --subscribe-only --out "$T/sub.json" || fail "subscription not created: $(tail -n 5 "$T/sub.err")"
if run_node 60 produce lib/verify-produce.js --url "pulsar://127.0.0.1:$bport" --topic "$TOPIC" \
       --count 50 --out "$T/produce.json"; then
    acked=$(json "$T/produce.json" ackedCount)
else
    acked=0
fi
if [ "${acked:-0}" -gt 0 ]; then pass "standalone acknowledged $acked messages"; else fail "no receipt from the standalone"; cat "$T/produce.err"; fi
kill_proc sa
rm -f "$T/sa.ports"
start_sa || exit 1
bport=$(port_of sa brokerServicePort)
if run_node 60 consume lib/verify-consume.js --url "pulsar://127.0.0.1:$bport" --topic "$TOPIC" \
       --sub check --expect "$T/produce.json" --out "$T/consume.json"; then
    pass "after a SIGKILL the standalone's built-in defaults kept every acknowledged message: $(cat "$T/consume.json")"
else
    fail "after a SIGKILL and restart of a default standalone: $(cat "$T/consume.json" 2>/dev/null) $(tail -n 5 "$T/consume.err")"
fi
stop_proc sa
check_sanitizers
