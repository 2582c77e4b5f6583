#!/usr/bin/env bash
# tls-client.test.sh - the client's TLS connection (bufferevent_openssl on the socket itself,
# broker/client/client.c) through a broker restart, driven by `magnetar perf produce`:
#
#   1. A producer over pulsar+ssl:// with the bench's batching flags is acknowledged while
#      the broker runs.
#   2. The broker stops (SIGTERM): while it is down a new client to the TLS port fails with
#      the socket's reason (Connection refused) and exits within its bound.
#   3. The broker restarts on the same TLS port: the producer reconnects over TLS (its
#      producer is created a second time on the broker) and every message it sent is
#      acknowledged, none failed.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init tls-client
need_magnetar
it_env TLSC_RATE=400 TLSC_MESSAGES=4000
tls_test_certs tls-client || exit 1

KEYS="brokerServicePort webServicePort brokerServicePortTls"
ARGS=(--set dataDirectory="$T/sa" --set webServicePort=0 --set brokerServicePort=0
    --set tlsCertificateFilePath="$T/srv.pem" --set tlsKeyFilePath="$T/srv.key")
start_magnetar sa standalone "$KEYS" 60 -- "${ARGS[@]}" --set brokerServicePortTls=0 || exit 1
PT=$(port_of sa brokerServicePortTls)
TLSURL="pulsar+ssl://127.0.0.1:$PT"

# ---- 1. a producer over TLS ------------------------------------------------------------------
( exec timeout -s KILL 120 "$BIN" perf produce -u "$TLSURL" --trust-cert-file "$T/ca.pem" \
    -r "$TLSC_RATE" -m "$TLSC_MESSAGES" -s 1024 -bm 1000 -bb 131072 -b 1 -o 1000 -i 1 \
    --json "$T/p.json" tls-client ) >"$T/p.out" 2>"$T/p.err" &
register p $!
# progress lines: "produce [...] ... acked N" style; wait for a first one with acks
for _ in $(seq 1 100); do grep -q 'produce \[' "$T/p.out" && break; sleep 0.1; done
if grep -q 'produce \[' "$T/p.out" && alive p; then
    pass "producer over pulsar+ssl:// running: $(grep 'produce \[' "$T/p.out" | tail -n 1)"
else
    fail "the producer reported nothing: $(tail -n 3 "$T/p.err")"
fi

# ---- 2. the broker stops; a new TLS client is refused with the socket's reason ---------------
stop_proc sa 30 || fail "standalone exit code $? on SIGTERM"
t0=$SECONDS
( exec timeout -s KILL 30 "$BIN" perf produce -u "$TLSURL" --trust-cert-file "$T/ca.pem" \
    --connect-timeout 5 -m 1 tls-client-down ) >"$T/down.out" 2>"$T/down.err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 137 ] && grep -q "cannot connect to $TLSURL: Connection refused" "$T/down.err"; then
    pass "TLS client while the broker is down: exit $rc after $((SECONDS - t0)) s: $(grep -m1 'cannot connect' "$T/down.err")"
else
    fail "TLS client while the broker is down: rc=$rc $(tail -n 2 "$T/down.err")"
fi

# ---- 3. the broker restarts on the same TLS port; the producer goes on ------------------------
lines_before=$(wc -l <"$T/sa.log")
if ! IT_START_SOFT=1 start_magnetar sa standalone "$KEYS" 90 -- "${ARGS[@]}" \
    --set brokerServicePortTls="$PT"; then
    if tail -n +"$((lines_before + 1))" "$T/sa.log" | grep -qi "in use"; then
        note "TLS port $PT taken meanwhile: cannot check the reconnect"
        kill_proc p
        it_skip "TLS port taken by another process"
    fi
    fail "the standalone did not restart: $(tail -n 3 "$T/sa.log")"
    exit 1
fi
wait_exit p 120
rc=$?
sent=$(json "$T/p.json" messages_sent)
acked=$(json "$T/p.json" messages_acked)
failed=$(json "$T/p.json" messages_failed)
if [ $rc -eq 0 ] && [ "${failed:-1}" = 0 ] && [ "${acked:-0}" = "$TLSC_MESSAGES" ] &&
    [ "${sent:-0}" = "$TLSC_MESSAGES" ]; then
    pass "producer across the restart: $acked of $sent acknowledged, 0 failed"
else
    fail "producer across the restart: rc=$rc sent=$sent acked=$acked failed=$failed $(tail -n 3 "$T/p.err")"
fi
n=$(grep -c "producer .* on persistent://public/default/tls-client\b" "$T/sa.log")
[ "$n" -ge 2 ] && pass "the producer reconnected over TLS (created $n times on the broker)" \
    || fail "the producer was created $n times, want >= 2 (a reconnect after the restart)"

stop_standalone sa
