#!/usr/bin/env bash
# iothreads.test.sh - a standalone with numIOThreads=2 (docs/threads.md): client connections'
# sockets, framing and decode on two I/O loops, topics on the main loop.
#
#   1. `magnetar standalone --set numIOThreads=2` starts with two threads named mg-io-0 and
#      mg-io-1 (/proc/PID/task/*/comm).
#   2. `magnetar perf consume` (Exclusive, from the earliest) and then `magnetar perf produce`
#      (two connections: one on each I/O loop) move IOT_MESSAGES messages of IOT_SIZE bytes:
#      all sent, acknowledged and received.
#   3. The Pulsar client pulsar-flex (verify-produce.js) publishes IOT_MESSAGES more on another
#      topic, all acknowledged.
#   4. Over pulsar+ssl:// (brokerServicePortTls; the TLS handshake runs on the I/O loop):
#      `magnetar perf produce` with the test CA gets all IOT_MESSAGES acknowledged, and a
#      client that does not trust the certificate is refused.
#   5. SIGTERM stops the standalone with exit 0 (the I/O loops stop after the connections
#      closed), no sanitizer report.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid.
#
# Environment: MAGNETAR_BIN, IOT_MESSAGES (20000), IOT_SIZE (1024).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init iothreads
need_bin
it_env IOT_MESSAGES=20000 IOT_SIZE=1024

tls_test_certs iothreads || exit 1
SA_PORT_KEYS="$SA_PORT_KEYS brokerServicePortTls"
start_standalone sa --set numIOThreads=2 --set brokerServicePortTls=0 \
    --set tlsCertificateFilePath="$T/srv.pem" --set tlsKeyFilePath="$T/srv.key"
TLSURL="pulsar+ssl://127.0.0.1:$(port_of sa brokerServicePortTls)"
pid=$(pid_of sa)
io_threads=$(cat /proc/"$pid"/task/*/comm 2>/dev/null | grep -c '^mg-io-')
[ "$io_threads" = 2 ] && pass "two I/O threads (mg-io-*)" || fail "$io_threads I/O threads, want 2"

topic="iot-$$"
timeout -s KILL 120 "$BIN" perf consume -u "$URL" -s iot-sub -st Exclusive -p Earliest \
    -m "$IOT_MESSAGES" -i 1 --json "$T/consume.json" "$topic" >"$T/consume.out" 2>"$T/consume.err" &
register consume $!
for _ in $(seq 1 300); do
    grep -q subscribed "$T/consume.out" 2>/dev/null && break
    alive consume || break
    sleep 0.1
done
grep -q subscribed "$T/consume.out" 2>/dev/null ||
    { fail "perf consume did not subscribe: $(tail -n 3 "$T/consume.err")"; it_finish iothreads "no consumer"; }
timeout -s KILL 120 "$BIN" perf produce -u "$URL" -r 0 -s "$IOT_SIZE" -m "$IOT_MESSAGES" -i 1 \
    --json "$T/produce.json" "$topic" >"$T/produce.out" 2>"$T/produce.err"
rc=$?
[ $rc -eq 0 ] && pass "perf produce exited 0" || fail "perf produce exited $rc: $(tail -n 3 "$T/produce.err")"
wait_exit consume 60
rc=$?
[ $rc -eq 0 ] && pass "perf consume exited 0" || fail "perf consume exited $rc: $(tail -n 3 "$T/consume.err")"
sent=$(json "$T/produce.json" messages_sent)
acked=$(json "$T/produce.json" messages_acked)
received=$(json "$T/consume.json" messages_received)
[ "$sent" = "$IOT_MESSAGES" ] && [ "$acked" = "$IOT_MESSAGES" ] &&
    pass "perf produce: $IOT_MESSAGES sent and acknowledged" ||
    fail "perf produce: sent '$sent', acknowledged '$acked', want $IOT_MESSAGES"
[ "$received" = "$IOT_MESSAGES" ] && pass "perf consume: $IOT_MESSAGES received" ||
    fail "perf consume: received '$received', want $IOT_MESSAGES"

produce_all flex "$T/flex.json" 120 "$IOT_MESSAGES" "pulsar-flex over the I/O loops" \
    --url "$URL" --topic "iot-flex-$$"

timeout -s KILL 120 "$BIN" perf produce -u "$TLSURL" --trust-cert-file "$T/ca.pem" -r 0 \
    -s "$IOT_SIZE" -m "$IOT_MESSAGES" -i 1 --json "$T/tls.json" "iot-tls-$$" >"$T/tls.out" 2>"$T/tls.err"
rc=$?
acked=$(json "$T/tls.json" messages_acked)
[ $rc -eq 0 ] && [ "$acked" = "$IOT_MESSAGES" ] &&
    pass "perf produce over pulsar+ssl://: $IOT_MESSAGES acknowledged" ||
    fail "perf produce over pulsar+ssl://: exit $rc, acknowledged '$acked': $(tail -n 3 "$T/tls.err")"
timeout -s KILL 60 "$BIN" perf produce -u "$TLSURL" --connect-timeout 5 -r 0 -m 10 \
    "iot-tls-$$" >"$T/untrusted.out" 2>"$T/untrusted.err"
rc=$?
[ $rc -ne 0 ] && pass "a client without the CA is refused (exit $rc)" ||
    fail "a client without the CA produced over TLS"

stop_standalone sa
it_finish iothreads "numIOThreads=2: $IOT_MESSAGES messages through perf, pulsar-flex and TLS"
