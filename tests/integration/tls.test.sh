#!/usr/bin/env bash
# tls.test.sh - the TLS ports of a standalone broker: pulsar+ssl:// (brokerServicePortTls)
# and HTTPS (webServicePortTls), with a CA and certificates made here with openssl (nothing
# is committed).
#
#   1. A TLS port without tlsCertificateFilePath, or with a certificate file that does not
#      exist, stops the start with the key and the file named.
#   2. HTTPS admin with curl --cacert: the tenants list, and a lookup whose JSON carries
#      brokerUrlTls; plain HTTP still served on webServicePort.
#   3. `magnetar perf produce` over pulsar+ssl:// with --trust-cert-file: every message
#      acknowledged; without the CA it is refused (certificate verify failed).
#      (pulsar-flex has no TLS option, so perf and openssl s_client are the TLS clients.)
#   4. While a producer runs over TLS: plain text, garbage and a silent client on the TLS
#      port are each closed (the silent one within the handshake bound), logged at most once
#      per 10 s, and the producer loses nothing.
#   5. Rotation: new certificate files (another serial) are served to a new openssl
#      s_client within tlsCertRefreshCheckDurationSec, while the producer that started
#      before keeps going on its connection (all acknowledged, none failed).
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init tls
need_magnetar
command -v openssl >/dev/null 2>&1 || it_skip "openssl not found"
command -v curl >/dev/null 2>&1 || it_skip "curl not found"
it_env TLS_RATE=100 TLS_SECONDS=12

# ---- a CA and two server certificates (serials 1001 and 2002) for 127.0.0.1 -------------
mk_cert() { sh "$IT_TOP/tests/lib/mkcert.sh" "$T" "$1" "$2" 127.0.0.1; } # mk_cert NAME SERIAL
mk_cert one 1001 && mk_cert two 2002 || { fail "openssl could not make the test certificates"; exit 1; }
mkdir -p "$T/live"
cp "$T/one.pem" "$T/live/cert.pem" && cp "$T/one.key" "$T/live/key.pem"

# ---- 1. configuration errors name the key and the file -----------------------------------
bad_start() { # bad_start NAME EXPECTED-TEXT ARGS...
    local name=$1 want=$2
    shift 2
    (exec "$BIN" standalone --set brokerServicePort=0 --set webServicePort=0 \
        --set dataDirectory="$T/$name" "$@") >"$T/$name.log" 2>&1 </dev/null &
    register "$name" $!
    wait_exit "$name" 30
    if ! alive "$name" && grep -qF "$want" "$T/$name.log"; then
        pass "refused to start: $(grep -m1 -F "$want" "$T/$name.log" | sed 's/.*ERROR *//')"
    else
        fail "$name: want '$want' in: $(tail -n 3 "$T/$name.log")"
        kill_proc "$name" 2>/dev/null
    fi
}
bad_start nocert "brokerServicePortTls is set but tlsCertificateFilePath is empty" \
    --set brokerServicePortTls=0
bad_start webplainoff "webServicePort is off (empty): needs webServicePortTls and brokerClientTlsEnabled=true" \
    --set webServicePort= --set webServicePortTls=0 --set tlsCertificateFilePath="$T/live/cert.pem" \
    --set tlsKeyFilePath="$T/live/key.pem"
bad_start missing "tlsCertificateFilePath: cannot read '$T/nope.pem': No such file or directory" \
    --set webServicePortTls=0 --set tlsCertificateFilePath="$T/nope.pem" \
    --set tlsKeyFilePath="$T/live/key.pem"

# ---- the broker ----------------------------------------------------------------------------
start_magnetar sa standalone "brokerServicePort webServicePort brokerServicePortTls webServicePortTls" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa" \
    --set brokerServicePortTls=0 --set webServicePortTls=0 \
    --set tlsCertificateFilePath="$T/live/cert.pem" --set tlsKeyFilePath="$T/live/key.pem" \
    --set tlsCertRefreshCheckDurationSec=1 || exit 1
PT=$(port_of sa brokerServicePortTls)
WT=$(port_of sa webServicePortTls)
TLSURL="pulsar+ssl://127.0.0.1:$PT"
HTTPS="https://127.0.0.1:$WT"
HTTP="http://127.0.0.1:$(port_of sa webServicePort)"

# ---- 2. HTTPS admin ---------------------------------------------------------------------------
code() { curl -s -o "$T/body" -w '%{http_code}' --max-time 10 "$@"; }
[ "$(code --cacert "$T/ca.pem" "$HTTPS/admin/v2/tenants")" = 200 ] && grep -q '"public"' "$T/body" \
    && pass "HTTPS admin with curl --cacert: $(cat "$T/body")" \
    || fail "HTTPS admin: $(cat "$T/body")"
[ "$(code --cacert "$T/ca.pem" "$HTTPS/lookup/v2/topic/persistent/public/default/tls-lookup")" = 200 ] \
    && grep -q "\"brokerUrlTls\":\"$TLSURL\"" "$T/body" \
    && pass "HTTPS lookup answers brokerUrlTls: $(cat "$T/body")" \
    || fail "HTTPS lookup: $(cat "$T/body")"
[ "$(code "$HTTP/admin/v2/tenants")" = 200 ] && pass "plain HTTP still served" \
    || fail "plain HTTP: $(cat "$T/body")"
[ "$(code "$HTTPS/admin/v2/tenants")" = 000 ] && pass "HTTPS without the CA: curl refuses the certificate" \
    || fail "HTTPS without the CA got an answer"

# ---- 3. perf over pulsar+ssl:// ------------------------------------------------------------------
perf() { # perf NAME TIMEOUT ARGS...: stdout/stderr in $T/NAME.out/.err
    local name=$1 tmo=$2
    shift 2
    timeout -s KILL "$tmo" "$BIN" perf "$@" >"$T/$name.out" 2>"$T/$name.err"
}
if perf p1 60 produce -u "$TLSURL" --trust-cert-file "$T/ca.pem" -r 0 -m 500 \
    --json "$T/p1.json" tls-1 && [ "$(json "$T/p1.json" messages_acked)" = 500 ]; then
    pass "perf produce over pulsar+ssl://: 500 messages acknowledged"
else
    fail "perf produce over TLS: $(tail -n 3 "$T/p1.err") $(tail -n 2 "$T/p1.out")"
fi
if ! perf p2 30 produce -u "$TLSURL" -m 5 tls-2 && grep -q "certificate verify failed" "$T/p2.err"; then
    pass "perf without the CA refused: $(head -n 1 "$T/p2.err")"
else
    fail "perf without the CA: $(tail -n 3 "$T/p2.err")"
fi

# ---- 4 and 5: a producer over TLS across bad clients and a certificate rotation ------------
serial() { # the serial of the certificate a new connection to the TLS port is served
    echo | timeout 10 openssl s_client -connect "127.0.0.1:$PT" -CAfile "$T/ca.pem" 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}
[ "$(serial)" = 03E9 ] && pass "served certificate serial 1001 (03E9)" \
    || fail "served serial $(serial), want 03E9"

( exec timeout -s KILL $((TLS_SECONDS + 60)) "$BIN" perf produce -u "$TLSURL" \
    --trust-cert-file "$T/ca.pem" -r "$TLS_RATE" -time "$TLS_SECONDS" -i 1 \
    --json "$T/live.json" tls-live ) >"$T/live.out" 2>"$T/live.err" &
register live $!
for _ in $(seq 1 100); do grep -q 'produce \[' "$T/live.out" && break; sleep 0.1; done
grep -q 'produce \[' "$T/live.out" || fail "the live producer reported nothing: $(tail -n 3 "$T/live.err")"

fails_before=$(grep -c "TLS handshake from" "$T/sa.log")
bad_start_s=$SECONDS
# plain text, then garbage: each connection is closed by the broker (read ends, bounded)
for what in plain garbage; do
    if [ $what = plain ]; then data=$'GET / HTTP/1.1\r\nHost: x\r\n\r\n'; else data=$(head -c 300 /dev/urandom | tr -d '\0'); fi
    # closed = cat ends (end of file, or a reset when the broker did not read everything)
    timeout 15 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$PT"'; printf "%s" "$1" >&3; cat <&3 >/dev/null; exit 0' \
        _ "$data" 2>/dev/null
    if [ $? -ne 124 ]; then
        pass "$what bytes to the TLS port: connection closed by the broker"
    else
        fail "$what bytes to the TLS port: not closed within 15 s"
    fi
done
# a client that sends nothing: closed by the handshake bound (10 s)
t0=$SECONDS
timeout 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$PT"'; cat <&3 >/dev/null; exit 0' 2>/dev/null
if [ $? -ne 124 ] && [ $((SECONDS - t0)) -ge 9 ]; then
    pass "a silent client on the TLS port closed after $((SECONDS - t0)) s (handshake bound)"
else
    fail "a silent client on the TLS port was not closed within 30 s"
fi
fails=$(( $(grep -c "TLS handshake from" "$T/sa.log") - fails_before ))
lines_max=$(( 1 + (SECONDS - bad_start_s) / 10 ))
if [ "$fails" -ge 1 ] && [ "$fails" -le "$lines_max" ]; then
    pass "failed handshakes logged in $fails line(s) (at most one per 10 s): $(grep "TLS handshake from" "$T/sa.log" | tail -n 1 | sed 's/.*WARN *//')"
else
    fail "failed handshakes logged in $fails lines, want 1..$lines_max"
fi

# rotation: the new pair replaces the files (key, then certificate)
cp "$T/two.key" "$T/live/key.tmp" && mv "$T/live/key.tmp" "$T/live/key.pem"
cp "$T/two.pem" "$T/live/cert.tmp" && mv "$T/live/cert.tmp" "$T/live/cert.pem"
alive live && rotated_live=1 || rotated_live=0
got=
for _ in $(seq 1 30); do
    got=$(serial)
    [ "$got" = 07D2 ] && break
    sleep 0.5
done
[ "$got" = 07D2 ] && pass "after the rotation a new connection is served serial 2002 (07D2)" \
    || fail "after the rotation the served serial is $got, want 07D2"
grep -q "TLS certificate files reloaded" "$T/sa.log" && pass "the broker logged the reload" \
    || fail "no reload logged"

wait_exit live $((TLS_SECONDS + 60))
rc=$?
sent=$(json "$T/live.json" messages_sent)
acked=$(json "$T/live.json" messages_acked)
failed=$(json "$T/live.json" messages_failed)
if [ $rc -eq 0 ] && [ $rotated_live = 1 ] && [ "${failed:-1}" = 0 ] && [ "${acked:-0}" = "${sent:-x}" ] &&
    [ "${acked:-0}" -gt 0 ]; then
    pass "the producer that was live across the bad clients and the rotation: $acked of $sent acknowledged, 0 failed"
else
    fail "live producer: rc=$rc live-at-rotation=$rotated_live sent=$sent acked=$acked failed=$failed $(tail -n 3 "$T/live.err")"
fi

n=$(grep -c "producer .* on persistent://public/default/tls-live" "$T/sa.log")
[ "$n" = 1 ] && pass "the live producer kept its one connection (no reconnect)" \
    || fail "the live producer was created $n times (reconnected)"
alive sa && pass "the broker kept serving" || fail "the broker died"
stop_clean 20 sa
