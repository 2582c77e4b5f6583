#!/usr/bin/env bash
# auth-token.test.sh - token authentication with a real Pulsar client (pulsar-flex, which
# sends its `jwt` option as CONNECT's auth_data with auth_method_name "token") and the
# admin HTTP server, against a standalone with authenticationEnabled=true.
#
#   1. Keys are made here with `magnetar tokens` (an HS256 secret written as raw bytes, read
#      by the broker through file://) and with openssl (an RSA key pair, the public key as
#      DER, for a second broker with tokenPublicKey); nothing is committed.
#   2. With a valid token pulsar-flex subscribes, produces N messages and receives all N in
#      order.
#   3. Without a token, with a token signed by another key and with an expired one it gets
#      nowhere (bounded by a timeout), and the broker logs each refusal.
#   4. Admin HTTP: 401 without or with a wrong bearer token, 200 with a valid one;
#      /metrics open (authenticateMetricsEndpoint=false).
#   5. A broker with an unknown provider refuses to start, naming the key.
#   6. An RS256 broker (openssl key pair, tokenPublicKey as DER) accepts a token made with
#      `magnetar tokens create --private-key` and pulsar-flex produces and consumes.
#   7. Authorization (authorizationEnabled=true, superUserRoles=root): pulsar-flex as a role
#      with no grant gets nowhere (the broker logs the refusal); the super-user grants it
#      produce and consume on the namespace through Pulsar's permissions path (204, and the
#      GET shows it); then the same client produces and consumes. The role cannot grant
#      itself (403). Authorization without authentication stops the start.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init auth-token
need_bin
it_env AUTH_MESSAGES=50

"$BIN" tokens create-secret-key --output "$T/secret.key" || { fail "create-secret-key"; exit 1; }
"$BIN" tokens create-secret-key --output "$T/other.key" || { fail "create-secret-key"; exit 1; }
TOKEN=$("$BIN" tokens create --secret-key "file://$T/secret.key" --subject alice --expiry-time 1h)
WRONG=$("$BIN" tokens create --secret-key "file://$T/other.key" --subject alice)
EXPIRED=$("$BIN" tokens create --secret-key "file://$T/secret.key" --subject alice --expiry-time 0s)
[ -n "$TOKEN" ] && [ -n "$WRONG" ] && [ -n "$EXPIRED" ] || { fail "tokens create"; exit 1; }

start_magnetar sa standalone "brokerServicePort webServicePort" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa" \
    --set authenticationEnabled=true \
    --set authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken \
    --set tokenSecretKey="file://$T/secret.key" || exit 1
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
HTTP="http://127.0.0.1:$(port_of sa webServicePort)"

# flex NAME TOPIC [TOKEN]: run auth-flex.js; its JSON line in $T/NAME.out
flex() {
    run_node 60 "$1" lib/auth-flex.js --url "$URL" --topic "$2" --count "$AUTH_MESSAGES" \
        --timeout-ms 10000 ${3:+--token "$3"}
}

if flex valid "persistent://public/default/auth-$$" "$TOKEN"; then
    pass "pulsar-flex with a valid token: $AUTH_MESSAGES messages produced and consumed in order"
else
    fail "pulsar-flex with a valid token: $(cat "$T/valid.out") $(tail -n 3 "$T/valid.err")"
fi

refusals_before=$(grep -c "authentication failed" "$T/sa.log")
refusals_start=$SECONDS
for c in none wrong expired; do
    case $c in none) tok="" ;; wrong) tok=$WRONG ;; expired) tok=$EXPIRED ;; esac
    if flex "$c" "persistent://public/default/auth-$c-$$" "$tok"; then
        fail "pulsar-flex with $c token got through: $(cat "$T/$c.out")"
    elif grep -qF "Failed to authenticate" "$T/$c.out" "$T/$c.err"; then
        pass "pulsar-flex with $c token refused: $(cat "$T/$c.out")"
    else
        fail "pulsar-flex with $c token failed, but not with Failed to authenticate: $(cat "$T/$c.out") $(tail -n 3 "$T/$c.err")"
    fi
done
refusals=$(( $(grep -c "authentication failed" "$T/sa.log") - refusals_before ))
# Each client is refused (and retries); the log gets one line per 10 s, not one per attempt.
refusal_lines_max=$(( 1 + (SECONDS - refusals_start) / 10 ))
if [ "$refusals" -ge 1 ] && [ "$refusals" -le "$refusal_lines_max" ]; then
    pass "the broker logged the refused credentials in $refusals line(s) (at most one per 10 s)"
else
    fail "the broker logged $refusals lines for the refused credentials, want 1..$refusal_lines_max"
fi
grep -q "role alice" "$T/sa.log" && pass "the connection kept role alice" \
    || fail "no connection logged role alice"

expect_http 401 "admin without a token" "$HTTP/admin/v2/tenants" &&
    { grep -q "Authentication required" "$T/body" || fail "401 without 'Authentication required'"; }
expect_http 401 "admin with a wrong token" -H "Authorization: Bearer $WRONG" "$HTTP/admin/v2/tenants"
expect_http 200 "admin with a valid token" -H "Authorization: Bearer $TOKEN" "$HTTP/admin/v2/tenants"
expect_http 200 "/metrics open without a token (authenticateMetricsEndpoint=false)" "$HTTP/metrics"
alive sa && pass "the broker kept serving" || fail "the broker died"
stop_clean 20 sa

# an unknown provider stops the start with the key named
(exec "$BIN" standalone --set brokerServicePort=0 --set webServicePort=0 \
    --set dataDirectory="$T/bad" --set authenticationEnabled=true \
    --set authenticationProviders=com.example.Nope) >"$T/bad.log" 2>&1 </dev/null &
register bad $!
wait_exit bad 30
if ! alive bad && grep -q "key 'authenticationProviders': unknown provider 'com.example.Nope'" "$T/bad.log"; then
    pass "an unknown provider stops the start: $(grep -m1 "authenticationProviders" "$T/bad.log")"
else
    fail "unknown provider: $(tail -n 3 "$T/bad.log")"
    kill_proc bad 2>/dev/null
fi

# RS256: an openssl key pair, the public key as DER (Pulsar's form)
if openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/rsa.pem" 2>/dev/null &&
    openssl pkey -in "$T/rsa.pem" -pubout -outform DER -out "$T/rsa.pub.der"; then
    RSTOKEN=$("$BIN" tokens create --private-key "file://$T/rsa.pem" --subject bob)
    start_magnetar rs standalone "brokerServicePort webServicePort" 60 -- \
        --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/rs" \
        --set authenticationEnabled=true --set authenticationProviders=token \
        --set tokenPublicKey="file://$T/rsa.pub.der" || exit 1
    URL="pulsar://127.0.0.1:$(port_of rs brokerServicePort)"
    if flex rs-valid "persistent://public/default/auth-rs-$$" "$RSTOKEN"; then
        pass "RS256 (openssl key pair): pulsar-flex produced and consumed"
    else
        fail "RS256: $(cat "$T/rs-valid.out") $(tail -n 3 "$T/rs-valid.err")"
    fi
    if flex rs-hs "persistent://public/default/auth-rs2-$$" "$TOKEN"; then
        fail "RS256 broker accepted an HS256 token"
    else
        pass "RS256 broker refused an HS256 token"
    fi
    stop_clean 20 rs
else
    fail "openssl could not make an RSA key pair"
fi
# authorization: a role without a grant is refused, granted then allowed
ROOT=$("$BIN" tokens create --secret-key "file://$T/secret.key" --subject root)
CAROL=$("$BIN" tokens create --secret-key "file://$T/secret.key" --subject carol)
start_magnetar az standalone "brokerServicePort webServicePort" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/az" \
    --set authenticationEnabled=true --set authenticationProviders=token \
    --set tokenSecretKey="file://$T/secret.key" \
    --set authorizationEnabled=true --set superUserRoles=root || exit 1
URL="pulsar://127.0.0.1:$(port_of az brokerServicePort)"
HTTP="http://127.0.0.1:$(port_of az webServicePort)"
PERM="$HTTP/admin/v2/namespaces/public/default/permissions"
if flex az-none "persistent://public/default/authz-$$" "$CAROL"; then
    fail "authorization: carol got through without a grant: $(cat "$T/az-none.out")"
else
    pass "authorization: carol without a grant refused: $(cat "$T/az-none.out")"
fi
grep -q "role carol not authorized" "$T/az.log" && pass "the broker logged carol's refusal" \
    || fail "no refusal of carol in the log"
[ "$(http_code -X POST -H "Authorization: Bearer $CAROL" -H 'Content-Type: application/json' \
    -d '["produce","consume"]' "$PERM/carol")" = 403 ] \
    && pass "carol cannot grant herself: 403" || fail "carol granting herself: $(cat "$T/body")"
[ "$(http_code -X POST -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' \
    -d '["produce","consume"]' "$PERM/carol")" = 204 ] \
    && pass "root grants carol produce,consume: 204" || fail "grant: $(cat "$T/body")"
[ "$(http_code -H "Authorization: Bearer $ROOT" "$PERM")" = 200 ] && grep -q '"carol"' "$T/body" \
    && pass "GET permissions: $(cat "$T/body")" || fail "GET permissions: $(cat "$T/body")"
if flex az-granted "persistent://public/default/authz-$$" "$CAROL"; then
    pass "authorization: carol granted, $AUTH_MESSAGES messages produced and consumed"
else
    fail "authorization: carol granted: $(cat "$T/az-granted.out") $(tail -n 3 "$T/az-granted.err")"
fi
stop_clean 20 az

(exec "$BIN" standalone --set brokerServicePort=0 --set webServicePort=0 \
    --set dataDirectory="$T/azbad" --set authorizationEnabled=true) >"$T/azbad.log" 2>&1 </dev/null &
register azbad $!
wait_exit azbad 30
if ! alive azbad && grep -q "authorizationEnabled=true needs authenticationEnabled=true" "$T/azbad.log"; then
    pass "authorization without authentication stops the start"
else
    fail "authorization without authentication: $(tail -n 3 "$T/azbad.log")"
    kill_proc azbad 2>/dev/null
fi
check_sanitizers
exit 0
