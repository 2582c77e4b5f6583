#!/usr/bin/env bash
# console.test.sh - the web console (GET / of the admin port) in a real headless browser
# (issue 16): Debian's chromium driven by puppeteer-core (tests/console, installed here with
# npm ci when missing) against a standalone with traffic, over HTTPS with token
# authentication on.
#
#   1. Over plain HTTP: / answers the page (text/html, a Content-Security-Policy allowing
#      this origin only), /console/console.js and /console/console.css their files, an
#      unknown file 404, PUT / 405; the console's files need no token while the REST API
#      answers 401 without one. Over HTTPS (a CA made here) / answers the same page.
#   2. Traffic: `magnetar client produce` at CONSOLE_RATE msg/s and a `consume` on the
#      topic; a topic named "<script>" is created through the REST API; another topic gets
#      a subscription and then CONSOLE_BACKLOG messages (25).
#   3. tests/console/console-browser.js loads the console over HTTPS, types the token (kept
#      in sessionStorage only), checks the topic table shows the topic with msg/s in > 0,
#      the "<script>" topic as text, creates a topic through the form (confirmed), and waits
#      for the topic view's chart to hold samples with msg/s in > 0; then saves a
#      screenshot, and clears the backlog of a subscription that has CONSOLE_BACKLOG
#      messages (confirmed), and peeks (confirmed) the first entry of a subscription's
#      backlog, a batch of two messages: both are shown with their ids, key, property and
#      payloads, as text (one payload is "<b>peeked</b>"). The topic it created and the
#      backlog it cleared are checked through the REST API, and the screenshot is a PNG of
#      the viewport's size.
# chromium missing or unable to start FAILS the test (never a skip). With CONSOLE_SCREENSHOT
# set, the screenshot is also copied there (docs/console.png in the README comes from it).
# Every wait is bounded; everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init console
need_magnetar
it_env CONSOLE_RATE=40 CONSOLE_BACKLOG=25 CHROMIUM=/usr/bin/chromium
TMO=20

if [ ! -x "$CHROMIUM" ]; then
    fail "chromium not found at $CHROMIUM: the console's browser test cannot run (scripts/setup.sh --test installs it)"
    exit 1
fi
command -v node >/dev/null 2>&1 || { fail "node not found"; exit 1; }
if [ ! -d "$IT_TOP/tests/console/node_modules/puppeteer-core" ]; then
    (cd "$IT_TOP/tests/console" && PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund \
        --loglevel=error) || { fail "npm ci in tests/console (puppeteer-core)"; exit 1; }
fi
tls_token_setup console-test || exit 1
TOKEN=$(cat "$T/token")

start_magnetar sa standalone "brokerServicePort webServicePort webServicePortTls" 60 -- \
    --set "dataDirectory=$T/data" --set brokerServicePort=0 --set webServicePort=0 \
    --set webServicePortTls=0 --set statsUpdateFrequencyInSecs=1 "${TLS_TOKEN_SETS[@]}" || exit 1
WEB="http://127.0.0.1:$(port_of sa webServicePort)"
HTTPS="https://127.0.0.1:$(port_of sa webServicePortTls)"
SVC="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"

# get NAME URL [CURL ARGS...]: status in $CODE, headers $T/NAME.h, body $T/NAME.b
get() {
    local name=$1 url=$2
    shift 2
    CODE=$(curl -s --max-time 10 -D "$T/$name.h" -o "$T/$name.b" -w '%{http_code}' "$@" "$url")
}
header() { sed -n "s/^$2: *//Ip" "$T/$1.h" | tr -d '\r' | head -n 1; }

# ---- 1. the console's files --------------------------------------------------------------
get index "$WEB/"
if [ "$CODE" = 200 ] && [ "$(header index Content-Type)" = "text/html; charset=utf-8" ] &&
    grep -q '<script src="/console/console.js" defer></script>' "$T/index.b"; then
    pass "GET / answers the console page without a token"
else
    fail "GET /: $CODE $(header index Content-Type) $(head -c 200 "$T/index.b")"
fi
csp=$(header index Content-Security-Policy)
case $csp in
*"script-src 'self'"*"connect-src 'self'"*) pass "the page carries a Content-Security-Policy: $csp" ;;
*) fail "Content-Security-Policy of /: '$csp'" ;;
esac
for f in console.js:text/javascript console.css:text/css; do
    get file "$WEB/console/${f%%:*}"
    if [ "$CODE" = 200 ] && [[ "$(header file Content-Type)" == "${f#*:}"* ]] && [ -s "$T/file.b" ] &&
        cmp -s "$T/file.b" "$IT_TOP/broker/admin/console/${f%%:*}"; then
        pass "GET /console/${f%%:*}: the file of broker/admin/console, ${f#*:}"
    else
        fail "GET /console/${f%%:*}: $CODE $(header file Content-Type)"
    fi
done
get nofile "$WEB/console/nope.js"
[ "$CODE" = 404 ] && pass "an unknown console file: 404" || fail "GET /console/nope.js: $CODE"
get put "$WEB/" -X PUT
[ "$CODE" = 405 ] && pass "PUT /: 405" || fail "PUT /: $CODE"
get rest "$WEB/admin/v2/tenants"
[ "$CODE" = 401 ] && pass "the REST API still wants a token (401)" || fail "GET tenants without a token: $CODE"
get tls "$HTTPS/" --cacert "$T/ca.pem"
if [ "$CODE" = 200 ] && cmp -s "$T/tls.b" "$T/index.b"; then
    pass "GET / over HTTPS answers the same page"
else
    fail "GET / over HTTPS: $CODE"
fi

# ---- 2. traffic and a topic named <script> -----------------------------------------------
AUTH=(--auth-plugin org.apache.pulsar.client.impl.auth.AuthenticationToken --auth-params "token:$TOKEN")
"$BIN" client --url "$SVC" "${AUTH[@]}" consume console-traffic -s console-sub -n 0 \
    >"$T/consume.out" 2>"$T/consume.err" &
register consume $!
wait_log_file() { # FILE REGEX S
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
# the subscription exists before the first message is sent
deadline=$((SECONDS + TMO))
until curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" \
    "$WEB/admin/v2/persistent/public/default/console-traffic/subscriptions" | grep -q console-sub; do
    [ $SECONDS -lt $deadline ] && alive consume || { fail "the consumer did not subscribe: $(cat "$T/consume.err")"; exit 1; }
    sleep 0.2
done
"$BIN" client --url "$SVC" "${AUTH[@]}" produce console-traffic -m hello-console \
    -n $((CONSOLE_RATE * 120)) -r "$CONSOLE_RATE" >"$T/produce.out" 2>"$T/produce.err" &
register produce $!
if wait_log_file "$T/consume.out" hello-console $TMO; then
    pass "traffic: messages produced and consumed"
else
    fail "no message consumed within $TMO s: $(tail -c 300 "$T/produce.err") $(tail -c 300 "$T/consume.err")"
fi
get script "$WEB/admin/v2/persistent/public/default/%3Cscript%3E" -X PUT -H "Authorization: Bearer $TOKEN"
[ "$CODE" = 204 ] && pass "topic <script> created" || fail "PUT topic <script>: $CODE $(cat "$T/script.b")"
# a subscription with a backlog of exactly CONSOLE_BACKLOG messages, for the clear action
BL="$WEB/admin/v2/persistent/public/default/console-backlog"
get blsub "$BL/subscription/console-idle" -X PUT -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' --data '{"entryId":-1,"ledgerId":-1}'
[ "$CODE" = 204 ] || fail "PUT subscription console-idle: $CODE $(cat "$T/blsub.b")"
timeout $TMO "$BIN" client --url "$SVC" "${AUTH[@]}" produce console-backlog -m kept -db \
    -n "$CONSOLE_BACKLOG" >"$T/produce-bl.out" 2>&1 || fail "produce to console-backlog: $(tail -c 300 "$T/produce-bl.out")"
backlog() { # the subscription's msgBacklog through the REST API
    curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" "$BL/stats" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.subscriptions["console-idle"].msgBacklog)})'
}
[ "$(backlog)" = "$CONSOLE_BACKLOG" ] && pass "console-idle has a backlog of $CONSOLE_BACKLOG" ||
    fail "console-idle backlog $(backlog), want $CONSOLE_BACKLOG"

# a subscription whose backlog starts with one batch entry of two messages, for the peek
PK="$WEB/admin/v2/persistent/public/default/console-peek"
get pksub "$PK/subscription/peeker" -X PUT -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' --data '"earliest"'
[ "$CODE" = 204 ] || fail "PUT subscription peeker: $CODE $(cat "$T/pksub.b")"
timeout $TMO "$BIN" client --url "$SVC" "${AUTH[@]}" produce console-peek -m '<b>peeked</b>,second' \
    -k pk1 -p src=console >"$T/produce-pk.out" 2>&1 || fail "produce to console-peek: $(tail -c 300 "$T/produce-pk.out")"

# ---- 3. the browser ----------------------------------------------------------------------
t0=$SECONDS
(cd "$IT_TOP/tests/console" && exec timeout -s KILL 120 node console-browser.js --admin "$HTTPS" \
    --token "$TOKEN" --topic console-traffic --script-topic '<script>' --create console-created \
    --screenshot "$T/console.png" --chromium "$CHROMIUM" --insecure-tls 1 \
    --clear "console-backlog/console-idle/$CONSOLE_BACKLOG" --peek-topic console-peek \
    --peek-sub peeker --peek-payloads '<b>peeked</b>,second' --peek-key pk1 --peek-prop src=console) \
    >"$T/browser.out" 2>&1
rc=$?
cat "$T/browser.out"
[ $rc = 0 ] && pass "browser checks ($((SECONDS - t0)) s)" || fail "browser checks: exit $rc"
echo "figure: console browser test $((SECONDS - t0)) s"

get list "$WEB/admin/v2/persistent/public/default" -H "Authorization: Bearer $TOKEN"
if [ "$CODE" = 200 ] && grep -q '"persistent://public/default/console-created"' "$T/list.b"; then
    pass "the topic created in the console is in the REST API's list"
else
    fail "topic list after the console's create: $CODE $(head -c 300 "$T/list.b")"
fi

[ "$(backlog)" = 0 ] && pass "the backlog the console cleared is 0 in the REST API's stats" ||
    fail "console-idle backlog after the console's clear: $(backlog)"

png_ok() { # a PNG (signature, IHDR) of the viewport's size
    [ -s "$1" ] && [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(od -An -tu1 -j16 -N8 "$1" | tr -s ' ' | sed 's/^ //')" = "0 0 4 76 0 0 3 132" ]
}
if png_ok "$T/console.png"; then
    pass "screenshot: a non-empty 1100x900 PNG ($(stat -c %s "$T/console.png") bytes)"
    echo "figure: screenshot $(stat -c %s "$T/console.png") bytes"
    [ -z "${CONSOLE_SCREENSHOT:-}" ] || cp "$T/console.png" "$CONSOLE_SCREENSHOT"
else
    fail "screenshot $T/console.png is not a 1100x900 PNG"
fi

stop_proc produce 10
stop_proc consume 10
stop_clean 20 sa
check_sanitizers
exit "$IT_FAILED"
