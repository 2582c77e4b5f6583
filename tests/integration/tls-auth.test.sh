#!/usr/bin/env bash
# tls-auth.test.sh - Pulsar's TLS authentication provider (the client certificate's CN is
# the role) and token authentication over the TLS ports, on a standalone broker with
# authentication and authorization on; a CA and certificates are made here with openssl
# (nothing is committed).
#
#   1. Binary protocol, pulsar+ssl://: `magnetar perf` with AuthenticationTls (tlsCertFile,
#      tlsKeyFile) as CN=alice produces once alice was granted produce, and is refused
#      (AuthorizationError) before; CN=bob, as trusted, is still refused: the role is the
#      certificate's CN. A bad token over TLS is refused (Failed to authenticate); a
#      certificate of another CA fails the handshake.
#   2. `magnetar perf` with a token (AuthenticationToken, file:// of the token) over
#      pulsar+ssl:// produces every message (issue 12: perf over TLS with a token).
#   3. HTTPS admin: a client certificate of the super user (CN=admin) gets 200, alice's 401,
#      none 401; a Bearer token of the super user over HTTPS 200, a wrong one 401.
#      authenticateMetricsEndpoint=true: /metrics needs a credential. A partitioned topic's
#      stats, asked for with a certificate, are fanned out with the broker's own token
#      (brokerClientAuthenticationPlugin/Parameters).
#   4. tlsRequireTrustedClientCertOnConnect=true (a second broker, authentication off, bound
#      to 0.0.0.0): a client without a certificate fails the handshake, one with a trusted
#      certificate produces; the broker logs one WARN naming authenticationEnabled at start
#      (authentication off on a non-loopback address), the first broker none.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init tls-auth
need_magnetar
need_cmds openssl curl
it_env TLSA_MESSAGES=200

# ---- a CA, the server's certificate, clients admin/alice/bob, and mallory of another CA ---
mk_ca() { # mk_ca NAME
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/$1.key" -out "$T/$1.pem" -days 2 \
        -subj "/CN=$1" 2>/dev/null
}
mk_cert() { # mk_cert NAME CN CA [EXTFILE]
    openssl req -newkey rsa:2048 -nodes -keyout "$T/$1.key" -out "$T/$1.csr" \
        -subj "/O=magnetar-test/CN=$2" 2>/dev/null &&
        openssl x509 -req -in "$T/$1.csr" -CA "$T/$3.pem" -CAkey "$T/$3.key" -CAcreateserial \
            -days 2 ${4:+-extfile "$4"} -out "$T/$1.pem" 2>/dev/null
}
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/ext"
mk_ca ca && mk_ca otherca && mk_cert server 127.0.0.1 ca "$T/ext" && mk_cert admin admin ca &&
    mk_cert alice alice ca && mk_cert bob bob ca && mk_cert mallory alice otherca ||
    { fail "openssl could not make the test certificates"; exit 1; }

"$BIN" tokens create-secret-key --output "$T/secret.key" || { fail "create-secret-key"; exit 1; }
"$BIN" tokens create-secret-key --output "$T/other.key" || { fail "create-secret-key"; exit 1; }
"$BIN" tokens create --secret-key "file://$T/secret.key" --subject admin >"$T/admin.token" &&
    WRONG=$("$BIN" tokens create --secret-key "file://$T/other.key" --subject admin) ||
    { fail "tokens create"; exit 1; }
ADMIN_TOKEN=$(cat "$T/admin.token")

TLS_SET=(--set tlsCertificateFilePath="$T/server.pem" --set tlsKeyFilePath="$T/server.key"
    --set tlsTrustCertsFilePath="$T/ca.pem")
start_magnetar sa standalone "brokerServicePortTls webServicePortTls" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa" \
    --set brokerServicePortTls=0 --set webServicePortTls=0 "${TLS_SET[@]}" \
    --set authenticationEnabled=true \
    --set authenticationProviders="org.apache.pulsar.broker.authentication.AuthenticationProviderToken,org.apache.pulsar.broker.authentication.AuthenticationProviderTls" \
    --set tokenSecretKey="file://$T/secret.key" --set authorizationEnabled=true \
    --set superUserRoles=admin --set authenticateMetricsEndpoint=true \
    --set brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken \
    --set brokerClientAuthenticationParameters="file://$T/admin.token" || exit 1
TLSURL="pulsar+ssl://127.0.0.1:$(port_of sa brokerServicePortTls)"
HTTPS="https://127.0.0.1:$(port_of sa webServicePortTls)"

perf() { # perf NAME ARGS...: stdout/stderr in $T/NAME.out/.err, summary in $T/NAME.json
    local name=$1
    shift
    timeout -s KILL 60 "$BIN" perf produce -u "$TLSURL" --trust-cert-file "$T/ca.pem" \
        -r 0 --connect-timeout 10 --json "$T/$name.json" "$@" >"$T/$name.out" 2>"$T/$name.err"
}
acked() { json "$T/$1.json" messages_acked 2>/dev/null; }
as_tls() { echo --auth-plugin org.apache.pulsar.client.impl.auth.AuthenticationTls \
    --auth-params "tlsCertFile:$T/$1.pem,tlsKeyFile:$T/$1.key"; }
CA=(--cacert "$T/ca.pem")
code() { http_code "${CA[@]}" "$@"; }
cert_of() { echo --cert "$T/$1.pem" --key "$T/$1.key"; }

# ---- 1. the binary protocol: the certificate's CN is the role ---------------------------------
TOPIC=persistent://public/default/tls-auth-$$
if ! perf before -m 5 $(as_tls alice) "$TOPIC" && grep -q "not authorized" "$T/before.err"; then
    pass "CN=alice before any grant: refused ($(grep -m1 -o "Client is not authorized[^\"]*" "$T/before.err"))"
else
    fail "CN=alice before the grant: $(tail -n 2 "$T/before.err") $(tail -n 1 "$T/before.out")"
fi
[ "$(code $(cert_of admin) -X POST -H 'Content-Type: application/json' \
    -d '["produce"]' "$HTTPS/admin/v2/namespaces/public/default/permissions/alice")" = 204 ] \
    && pass "the super user (CN=admin over HTTPS) granted alice produce: 204" \
    || fail "grant as CN=admin: $(cat "$T/body")"
if perf alice -m "$TLSA_MESSAGES" $(as_tls alice) "$TOPIC" && [ "$(acked alice)" = "$TLSA_MESSAGES" ]; then
    pass "CN=alice over pulsar+ssl:// (AuthenticationTls): $TLSA_MESSAGES messages acknowledged"
else
    fail "CN=alice: $(tail -n 2 "$T/alice.err") $(tail -n 1 "$T/alice.out")"
fi
grep -q "connected: client .* role alice" "$T/sa.log" && pass "the broker logged role alice" \
    || fail "no connection with role alice logged"
if ! perf bob -m 5 $(as_tls bob) "$TOPIC" && grep -q "not authorized" "$T/bob.err"; then
    pass "CN=bob (trusted, no grant) refused: the role is the certificate's CN"
else
    fail "CN=bob: $(tail -n 2 "$T/bob.err")"
fi
if ! perf nocert -m 5 --auth-plugin token --auth-params "token:x.y.z" "$TOPIC" &&
    grep -q "Failed to authenticate" "$T/nocert.err"; then
    pass "a bad token over TLS refused: Failed to authenticate"
else
    fail "bad token over TLS: $(tail -n 2 "$T/nocert.err")"
fi
if ! perf mallory -m 5 $(as_tls mallory) "$TOPIC"; then
    pass "a certificate of another CA (CN=alice) refused: $(tail -n 1 "$T/mallory.err")"
else
    fail "a certificate of another CA got through"
fi

# ---- 2. perf with a token over pulsar+ssl:// ---------------------------------------------------
if perf tok -m "$TLSA_MESSAGES" --auth-plugin org.apache.pulsar.client.impl.auth.AuthenticationToken \
    --auth-params "file://$T/admin.token" "$TOPIC" && [ "$(acked tok)" = "$TLSA_MESSAGES" ]; then
    pass "perf over pulsar+ssl:// with a token: $TLSA_MESSAGES messages acknowledged"
else
    fail "perf with a token over TLS: $(tail -n 2 "$T/tok.err") $(tail -n 1 "$T/tok.out")"
fi

# ---- 3. HTTPS admin -------------------------------------------------------------------------------
expect_http 200 "HTTPS with CN=admin's certificate (super user)" "${CA[@]}" $(cert_of admin) "$HTTPS/admin/v2/tenants"
expect_http 401 "HTTPS with CN=alice's certificate on a super-user path" "${CA[@]}" $(cert_of alice) \
    "$HTTPS/admin/v2/tenants"
expect_http 401 "HTTPS without a credential" "${CA[@]}" "$HTTPS/admin/v2/tenants" &&
    { grep -q "Authentication required" "$T/body" || fail "401 without 'Authentication required'"; }
expect_http 200 "HTTPS with the super user's token" "${CA[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$HTTPS/admin/v2/tenants"
expect_http 401 "HTTPS with a token of another key" "${CA[@]}" -H "Authorization: Bearer $WRONG" \
    "$HTTPS/admin/v2/tenants"
expect_http 401 "authenticateMetricsEndpoint=true: /metrics without a credential" "${CA[@]}" "$HTTPS/metrics"
expect_http 200 "authenticateMetricsEndpoint=true: /metrics with CN=bob's certificate" "${CA[@]}" $(cert_of bob) \
    "$HTTPS/metrics"
# a partitioned topic's stats are fanned out to the web service, one sub-request per
# partition: they carry the broker's own token (brokerClientAuthenticationParameters), the
# caller (CN=admin's certificate) having no Authorization header to pass on
PT=persistent/public/default/tls-auth-pt-$$
[ "$(code $(cert_of admin) -X PUT -H 'Content-Type: application/json' \
    -d 3 "$HTTPS/admin/v2/$PT/partitions")" = 204 ] || fail "create partitioned topic: $(cat "$T/body")"
if [ "$(code $(cert_of admin) "$HTTPS/admin/v2/$PT/partitioned-stats?perPartition=true")" = 200 ] &&
    grep -q "tls-auth-pt-$$-partition-2" "$T/body"; then
    pass "partitioned-stats as CN=admin (3 sub-requests with the broker's token): 200"
else
    fail "partitioned-stats as CN=admin: $(head -c 300 "$T/body")"
fi
expect_http 200 "/status.html without a credential" "${CA[@]}" "$HTTPS/status.html"
grep -q "authentication is off" "$T/sa.log" && fail "the secured broker warned it is open" \
    || pass "the secured broker logged no open-broker warning"
alive sa && pass "the broker kept serving" || fail "the broker died"
stop_clean 20 sa

# ---- 4. tlsRequireTrustedClientCertOnConnect, and the open-broker warning ----------------------
start_magnetar req standalone "brokerServicePortTls" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/req" \
    --set bindAddress=0.0.0.0 --set brokerServicePortTls=0 "${TLS_SET[@]}" \
    --set tlsRequireTrustedClientCertOnConnect=true || exit 1
TLSURL="pulsar+ssl://127.0.0.1:$(port_of req brokerServicePortTls)"
if ! perf reqnone -m 5 "$TOPIC"; then
    pass "tlsRequireTrustedClientCertOnConnect: no certificate, refused ($(tail -n 1 "$T/reqnone.err"))"
else
    fail "tlsRequireTrustedClientCertOnConnect: a client without a certificate got through"
fi
if perf reqcert -m 20 $(as_tls bob) "$TOPIC" && [ "$(acked reqcert)" = 20 ]; then
    pass "tlsRequireTrustedClientCertOnConnect: with a trusted certificate, 20 acknowledged"
else
    fail "tlsRequireTrustedClientCertOnConnect with a certificate: $(tail -n 2 "$T/reqcert.err")"
fi
n=$(grep -c "WARN .*authentication is off and bindAddress is 0.0.0.0.*authenticationEnabled=true" "$T/req.log")
[ "$n" = 1 ] && pass "authentication off on 0.0.0.0: one WARN naming the keys" \
    || fail "open-broker warning logged $n times: $(grep -m1 "authentication is off" "$T/req.log")"
stop_clean 20 req
