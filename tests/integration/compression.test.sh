#!/usr/bin/env bash
# compression.test.sh - compressed messages end to end, with every codec of Pulsar's
# MessageMetadata.compression (LZ4, ZLIB, ZSTD, SNAPPY), on a standalone broker that stores
# and dispatches them as they are.
#
#   1. Per codec, `magnetar client produce -z CODEC` sends a batch of three messages and one
#      message on its own (-db), each entry's payload compressed.
#   2. `magnetar client consume -p Earliest` gets exactly the four messages, decompressed, in
#      order.
#   3. The admin peek (GET .../subscription/SUB/position/N) of the message on its own answers
#      200 with its decompressed bytes (it answered 500 before the broker had codecs) and the
#      X-Pulsar-compression header of the stored entry.
#   4. `magnetar client produce -z gzip` is refused as bad usage (exit 2), naming the value.
#   5. The broker maps no libsnappy once ready (it is loaded on the first SNAPPY payload,
#      docs/design.md §10: linked, it cost every start its C++ runtime; libstdc++ itself is
#      not checked, the sanitizers' runtime brings it), and maps it after step 3 decompressed
#      a SNAPPY entry.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid.
#
# Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init compression
need_bin
start_standalone sa
TMO=30
snappy_mapped() { grep -c 'libsnappy' "/proc/${IT_PID[sa]}/maps"; }
n=$(snappy_mapped)
[ "$n" = 0 ] && pass "ready broker maps no libsnappy" ||
    fail "ready broker maps $n libsnappy regions"

run() { # run WHAT ARGS...: the magnetar command, bounded in time; RC, $T/out, $T/err
    local what=$1
    shift
    timeout "$TMO" "$BIN" "$@" >"$T/out" 2>"$T/err"
    RC=$?
    [ "$RC" = 124 ] && fail "$what: no answer within ${TMO}s"
}

for codec in LZ4 ZLIB ZSTD SNAPPY; do
    tp="persistent://public/default/z-$codec-$$"
    admin="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default/z-$codec-$$"
    read -r code _ <<<"$(curl_json PUT "$admin/subscription/peek" '"earliest"')"
    [ "$code" = 204 ] || fail "$codec: create subscription: $code"
    batch="$codec-a $codec-a $codec-a,$codec-b,$codec-c"
    solo="$codec on its own; $codec on its own; $codec on its own"
    run "$codec produce batch" client --url "$URL" produce "$tp" -z "$codec" -m "$batch"
    [ "$RC" = 0 ] || fail "$codec: produce a batch: exit $RC $(head -c 300 "$T/err")"
    run "$codec produce one" client --url "$URL" produce "$tp" --compression "$codec" -db -m "$solo"
    [ "$RC" = 0 ] || fail "$codec: produce one: exit $RC $(head -c 300 "$T/err")"

    run "$codec consume" client --url "$URL" consume "$tp" -s s -p Earliest -n 4
    want="----- got message -----
key:[null], properties:[], content:$codec-a $codec-a $codec-a
----- got message -----
key:[null], properties:[], content:$codec-b
----- got message -----
key:[null], properties:[], content:$codec-c
----- got message -----
key:[null], properties:[], content:$solo
4 messages successfully consumed"
    if [ "$RC" = 0 ] && [ "$(cat "$T/out")" = "$want" ]; then
        pass "$codec: consume gets the batch's three and the single message, decompressed"
    else
        fail "$codec: consume: exit $RC, stdout '$(head -c 400 "$T/out")', stderr '$(head -c 300 "$T/err")'"
    fi

    code=$(curl -s -D "$T/peek.h" -o "$T/peek.body" -w '%{http_code}' --max-time 10 \
        "$admin/subscription/peek/position/2")
    if [ "$code" = 200 ] && [ "$(cat "$T/peek.body")" = "$solo" ] &&
        grep -qi "^X-Pulsar-compression: $codec" "$T/peek.h"; then
        pass "$codec: peek answers the single message decompressed"
    else
        fail "$codec: peek: $code '$(head -c 300 "$T/peek.body")' $(grep -i compression "$T/peek.h")"
    fi
done

n=$(snappy_mapped)
[ "$n" -gt 0 ] && pass "the broker loaded libsnappy for the SNAPPY peek" ||
    fail "no libsnappy mapped after the SNAPPY peek"

run "produce -z gzip" client --url "$URL" produce "persistent://public/default/z-bad-$$" -z gzip -m x
if [ "$RC" = 2 ] && grep -q "gzip" "$T/err"; then pass "produce -z gzip: usage error naming gzip"; else
    fail "produce -z gzip: exit $RC, stderr '$(head -c 300 "$T/err")'"; fi

stop_standalone sa
it_finish compression "every codec: produce, consume, peek"
