#!/usr/bin/env bash
# admin-https-limits.test.sh - the HTTPS admin port (webServicePortTls) has the head filter
# and the connection cap of the plain port (admin_conn.c), with a CA and a certificate made
# here with openssl:
#   1. a request head over httpMaxRequestHeaderSize is answered 431 over TLS; a head just
#      under it is served;
#   2. a head that does not end within httpRequestReadTimeoutSeconds is answered 408, not
#      before that time;
#   3. with maxHttpServerConnections TLS connections open, one more gets no answer; once
#      they close, requests are answered again;
#   4. a reply of many TLS records to HTTP/1.0 and to Connection: close (the server closes
#      the connection after it) arrives whole, and the port goes on answering;
#   5. the plain port still answers, and the broker keeps serving.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init admin-https-limits
need_magnetar
command -v openssl >/dev/null 2>&1 || it_skip "openssl not found"
command -v curl >/dev/null 2>&1 || it_skip "curl not found"
it_env HL_HEADER_MAX=8192 HL_READ_TIMEOUT=3 HL_CONNS=3

printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/ext"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 \
    -subj /CN=magnetar-test-ca 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout "$T/server.key" -out "$T/server.csr" \
        -subj /CN=127.0.0.1 2>/dev/null &&
    openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -set_serial 7 \
        -days 2 -extfile "$T/ext" -out "$T/server.pem" 2>/dev/null ||
    { fail "openssl could not make the test certificates"; exit 1; }

start_magnetar sa standalone "webServicePort webServicePortTls" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set webServicePortTls=0 \
    --set dataDirectory="$T/sa" --set tlsCertificateFilePath="$T/server.pem" \
    --set tlsKeyFilePath="$T/server.key" --set httpMaxRequestHeaderSize="$HL_HEADER_MAX" \
    --set httpRequestReadTimeoutSeconds="$HL_READ_TIMEOUT" \
    --set maxHttpServerConnections="$HL_CONNS" || exit 1
WT=$(port_of sa webServicePortTls)
HTTPS="https://127.0.0.1:$WT"

# tls_raw NAME TIMEOUT: stdin goes to the HTTPS port as it is; what comes back in $T/NAME.out
tls_raw() {
    timeout -s KILL "$2" openssl s_client -quiet -ign_eof -connect "127.0.0.1:$WT" \
        -CAfile "$T/ca.pem" >"$T/$1.out" 2>"$T/$1.err"
}
filler() { head -c "$1" /dev/zero | tr '\0' 'a'; }

# ---- 1. header size ----------------------------------------------------------------------------
code=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 10 --cacert "$T/ca.pem" \
    -H "X-Fill: $(filler $((HL_HEADER_MAX / 2)))" "$HTTPS/admin/v2/tenants")
[ "$code" = 200 ] && pass "HTTPS head under httpMaxRequestHeaderSize: 200" \
    || fail "HTTPS head under the limit: $code $(cat "$T/body")"
printf 'GET /admin/v2/tenants HTTP/1.1\r\nHost: x\r\nX-Fill: %s\r\n\r\n' \
    "$(filler $((HL_HEADER_MAX * 4)))" | tls_raw big 30
if head -n 1 "$T/big.out" | grep -q "^HTTP/1.1 431"; then
    pass "HTTPS head of $((HL_HEADER_MAX * 4)) bytes: $(head -n 1 "$T/big.out" | tr -d '\r'), $(tail -c 80 "$T/big.out" | tr -d "\r\n")"
else
    fail "HTTPS oversized head: $(head -c 200 "$T/big.out") $(tail -n 2 "$T/big.err")"
fi

# ---- 2. a slow head ------------------------------------------------------------------------------
t0=$SECONDS
printf 'GET /admin/v2/tenants HTTP/1.1\r\nHost: x\r\nX-Slow: ' | tls_raw slow 60
took=$((SECONDS - t0))
if head -n 1 "$T/slow.out" | grep -q "^HTTP/1.1 408" && [ "$took" -ge $((HL_READ_TIMEOUT - 1)) ]; then
    pass "HTTPS head not ended: $(head -n 1 "$T/slow.out" | tr -d '\r') after ~${took} s (httpRequestReadTimeoutSeconds=$HL_READ_TIMEOUT)"
else
    fail "HTTPS slow head after $took s: $(head -c 200 "$T/slow.out") $(tail -n 2 "$T/slow.err")"
fi

# ---- 3. the connection cap -----------------------------------------------------------------------
mkfifo "$T/hold"
exec 7<>"$T/hold" # keeps the holders' stdin open until they are stopped
for i in $(seq 1 "$HL_CONNS"); do
    (exec openssl s_client -quiet -connect "127.0.0.1:$WT" -CAfile "$T/ca.pem" <"$T/hold") \
        >"$T/hold$i.out" 2>"$T/hold$i.err" &
    register "hold$i" $!
done
# each holder is connected once its handshake is done (s_client prints the chain on stderr)
for _ in $(seq 1 100); do
    n=0
    for i in $(seq 1 "$HL_CONNS"); do grep -q "verify return:1" "$T/hold$i.err" && n=$((n + 1)); done
    [ "$n" = "$HL_CONNS" ] && break
    sleep 0.1
done
[ "$n" = "$HL_CONNS" ] || fail "only $n of $HL_CONNS TLS holders connected"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$T/ca.pem" "$HTTPS/admin/v2/tenants")
[ "$code" = 000 ] && pass "with $HL_CONNS HTTPS connections open, one more gets no answer (maxHttpServerConnections=$HL_CONNS)" \
    || fail "with $HL_CONNS HTTPS connections open, one more was answered $code"
for i in $(seq 1 "$HL_CONNS"); do kill_proc "hold$i"; done
exec 7>&-
code=000
for _ in $(seq 1 20); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$T/ca.pem" "$HTTPS/admin/v2/tenants")
    [ "$code" = 200 ] && break
    sleep 0.25
done
[ "$code" = 200 ] && pass "once they closed, HTTPS requests are answered again" \
    || fail "after the HTTPS holders closed: $code"

# ---- 4. replies over TLS on connections the server closes after them ------------------------------
# A reply many TLS records long (the topic list of a partitioned topic of 2000 partitions)
# to HTTP/1.0 and to "Connection: close" arrives whole, as on a kept-alive connection, and
# the port goes on answering (the connection's end must not lose the reply's tail or leave
# the socket behind).
expect_http 204 "a partitioned topic of 2000 partitions" --cacert "$T/ca.pem" -X PUT \
    -H 'Content-Type: application/json' -d 2000 "$HTTPS/admin/v2/persistent/public/default/big/partitions"
full=$(curl -s --max-time 20 --cacert "$T/ca.pem" "$HTTPS/admin/v2/persistent/public/default" | wc -c)
ok=1
for i in 1 2 3; do
    for how in --http1.0 "-HConnection: close"; do
        got=$(curl -s --max-time 20 --cacert "$T/ca.pem" "$how" "$HTTPS/admin/v2/persistent/public/default" | wc -c)
        [ "$got" = "$full" ] || { ok=0; fail "HTTPS reply with $how, round $i: $got of $full bytes"; }
    done
done
[ $ok = 1 ] && [ "$full" -gt 65536 ] && pass "a $full-byte reply arrives whole over HTTPS with HTTP/1.0 and Connection: close (3 rounds)"
expect_http 200 "HTTPS still answers after the closed connections" --cacert "$T/ca.pem" "$HTTPS/admin/v2/tenants"

# ---- 5. -------------------------------------------------------------------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$(port_of sa webServicePort)/admin/v2/tenants")
[ "$code" = 200 ] && pass "the plain port still answers" || fail "plain port: $code"
grep -q "magnetar_admin_refused_total" <(curl -s --max-time 5 --cacert "$T/ca.pem" "$HTTPS/metrics") \
    && pass "refusals counted in /metrics" || fail "no magnetar_admin_refused_total in /metrics"
alive sa && pass "the broker kept serving" || fail "the broker died"
stop_clean 20 sa
