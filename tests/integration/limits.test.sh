#!/usr/bin/env bash
# limits.test.sh - connection limits refuse cleanly, and bad topic names are refused on the
# admin API.
#
# A standalone with brokerMaxConnectionsPerIp=3, brokerMaxConnections=5 and
# maxHttpServerConnections=4:
#   1. Pulsar port: 3 clients from 127.0.0.1 get CONNECTED; a 4th from 127.0.0.1 gets ERROR
#      NotAllowedError "Reached the maximum number of connections on address..." and is
#      closed by the broker; 2 clients from 127.0.0.2 get CONNECTED (5 in all); a third from
#      127.0.0.2 gets ERROR NotAllowedError "Reached the maximum number of connections".
#      Once the clients of 127.0.0.1 are gone, a new one connects. The refusals are logged
#      in at most 2 lines (one per 10 s interval), not one per refused connection.
#   2. Admin port: with 4 idle HTTP connections open, a request on a 5th connection gets no
#      answer (the listener waits, the connection stays in the backlog); once they close,
#      requests are answered again, also after 240 connections that end in every way
#      (request, keep-alive, 404, garbage, nothing sent, half a request): each is counted
#      closed.
#   3. Admin topic paths: a name with %00 or %01 answers 412 "Topic name is not valid" (Pulsar's AdminResource) and
#      creates nothing (no topic named after what precedes the %00).
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init limits
need_bin

start_magnetar sa standalone "brokerServicePort webServicePort" 60 -- \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa" \
    --set brokerMaxConnectionsPerIp=3 --set brokerMaxConnections=5 \
    --set maxHttpServerConnections=4 || exit 1
BPORT=$(port_of sa brokerServicePort)
WPORT=$(port_of sa webServicePort)

# clients NAME COUNT [LOCAL_ADDRESS]: COUNT Pulsar clients that send CONNECT and stay
clients() {
    local name=$1 count=$2 from=${3:-}
    rm -f "$T/$name" "$T/$name.release"
    start_node "$name" 120 lib/conn-flood.js --port "$BPORT" --count "$count" --pulsar \
        --status "$T/$name" --hold-file "$T/$name.release" --connect-timeout-ms 5000 \
        --deadline-s 100 ${from:+--local-address "$from"}
}
# until KEY of client group NAME reaches N (10 s)
wait_kv() {
    local deadline=$((SECONDS + 10))
    until [ "$(kv "$T/$1" "$2")" = "$3" ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}
release() {
    touch "$T/$1.release"
    wait_exit "$1" 10 >/dev/null
}

# 1 ---------------------------------------------------------------------------------------
clients a 3
wait_kv a connected_answers 3 && pass "3 clients from 127.0.0.1 connected" ||
    fail "3 clients from 127.0.0.1: $(cat "$T/a")"
clients a4 1
if wait_kv a4 error_answers 1 && wait_kv a4 closed_by_peer 1; then
    msg=$(cat "$T/a4.error")
    if [[ "$msg" == "22 Reached the maximum number of connections on address"* ]]; then
        pass "a 4th client from 127.0.0.1: ERROR NotAllowedError '$msg', then closed"
    else
        fail "a 4th client from 127.0.0.1: ERROR '$msg'"
    fi
else
    fail "a 4th client from 127.0.0.1 was not refused: $(cat "$T/a4")"
fi
[ "$(kv "$T/a4" connected_answers)" = 0 ] || fail "the refused client got CONNECTED"
release a4
clients b 2 127.0.0.2
wait_kv b connected_answers 2 && pass "2 clients from 127.0.0.2 connected (5 in all)" ||
    fail "2 clients from 127.0.0.2: $(cat "$T/b")"
clients b3 1 127.0.0.2
if wait_kv b3 error_answers 1 && wait_kv b3 closed_by_peer 1; then
    msg=$(cat "$T/b3.error")
    if [ "$msg" = "22 Reached the maximum number of connections" ]; then
        pass "a 6th client: ERROR NotAllowedError '$msg', then closed"
    else
        fail "a 6th client: ERROR '$msg'"
    fi
else
    fail "a 6th client was not refused: $(cat "$T/b3")"
fi
release b3
release a
clients a2 1
wait_kv a2 connected_answers 1 && pass "once 127.0.0.1's clients left, a new one connects" ||
    fail "a new client after the others left: $(cat "$T/a2")"
release a2
release b
lines=$(grep -c "refused .* connection" "$T/sa.log")
if [ "$lines" -ge 1 ] && [ "$lines" -le 2 ]; then
    pass "refusals logged in $lines line(s): $(grep -m1 "refused .* connection" "$T/sa.log" | cut -c1-160)"
else
    fail "refusals logged in $lines lines (want 1 or 2)"
fi

# 2 ---------------------------------------------------------------------------------------
rm -f "$T/h" "$T/h.release"
start_node h 120 lib/conn-flood.js --port "$WPORT" --count 4 --status "$T/h" \
    --hold-file "$T/h.release" --connect-timeout-ms 5000 --deadline-s 100
wait_kv h connected 4 || fail "4 idle HTTP connections: $(cat "$T/h")"
sleep 0.5 # the broker accepts them (nothing to wait for on the client side)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$WPORT/admin/v2/brokers/ready")
if [ "$code" = 000 ]; then
    pass "with 4 HTTP connections open, a 5th gets no answer (maxHttpServerConnections=4)"
else
    fail "with 4 HTTP connections open, a 5th was answered $code"
fi
release h
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$WPORT/admin/v2/brokers/ready")
[ "$code" = 200 ] && pass "once they closed, requests are answered again" ||
    fail "after the idle connections closed: $code"

# 2b: every way an HTTP connection can end is counted as closed (a leak would hold the
# admin port shut at 4): 200 connections of all kinds, then a request is still answered.
ready="http://127.0.0.1:$WPORT/admin/v2/brokers/ready"
for i in $(seq 1 40); do
    curl -s -o /dev/null --max-time 5 "$ready"                      # one request
    curl -s --max-time 5 "$ready" "$ready" "$ready" >/dev/null      # keep-alive, 3 requests
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$WPORT/nope" # 404
    { exec 3<>"/dev/tcp/127.0.0.1/$WPORT" && printf 'GARBAGE\r\n\r\n' >&3 && exec 3>&-; } 2>/dev/null
    { exec 3<>"/dev/tcp/127.0.0.1/$WPORT" && exec 3>&-; } 2>/dev/null # nothing sent
    { exec 3<>"/dev/tcp/127.0.0.1/$WPORT" && printf 'GET / HTTP/1.1\r\nHost: x\r\n' >&3 &&
        exec 3>&-; } 2>/dev/null # half a request
done
code=000
for _ in $(seq 1 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ready")
    [ "$code" = 200 ] && break
    sleep 0.2
done
[ "$code" = 200 ] && pass "after 240 HTTP connections ending every way, the admin port still answers" ||
    fail "after 240 HTTP connections ending every way, the admin port answers $code (connections not counted closed)"

# 3 ---------------------------------------------------------------------------------------
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default"
for enc in 'a%00b' 'a%01b' 'c%00'; do
    out=$(curl -s -X PUT -w ' %{http_code}' "$ADMIN/$enc")
    if [ "${out##* }" = 412 ] && [[ "$out" == *"Topic name is not valid"* ]]; then
        pass "PUT topic $enc: $out"
    else
        fail "PUT topic $enc: $out (want 412 Topic name is not valid)"
    fi
done
out=$(curl -s -X PUT -H 'Content-Type: application/json' -d 2 -w ' %{http_code}' "$ADMIN/d%00x/partitions")
[ "${out##* }" = 412 ] && pass "PUT partitions d%00x: $out" || fail "PUT partitions d%00x: $out"
listing=$(curl -s "$ADMIN")
if ! echo "$listing" | grep -qE '/(a|c|d)"'; then
    pass "no topic was created under the name cut at the NUL"
else
    fail "a topic was created under a cut name: $listing"
fi
check_sanitizers
stop_proc sa
exit 0
