#!/usr/bin/env bash
# compaction.test.sh - topic compaction end to end: keyed messages, compaction through the
# admin API, and a compacted read that gives exactly the latest value per key, also after a
# restart and an unload.
#
#   1. A standalone (conf/standalone.yaml) gets durable subscriptions on a new topic before
#      anything is produced (pulsar-flex subscribes at Latest): "full" (it keeps every message:
#      retention drops what only the __compaction cursor held) and c1, c2, c3 for the
#      compacted reads below (nothing acknowledged: they read the compacted view from its
#      start).
#   2. `magnetar client produce` sends COMPACT_ROUNDS rounds of two messages per key for
#      COMPACT_KEYS keys (batched in even rounds, one entry per message in odd ones), and one
#      message without a key.
#   3. PUT .../compaction -> 204; GET .../compaction until {"status":"SUCCESS"} (bounded).
#   4. One more message for key k0, after the horizon.
#   5. Subscription c1 with readCompacted (tests/compat/lib/compact-read.js, pulsar-flex)
#      must get exactly one message per key, each the key's last value before the horizon, in
#      the order they were published, then k0's message after the horizon; nothing without
#      a key. The "full" subscription (without readCompacted) gets every message.
#   6. The standalone stops (SIGTERM) and starts again on the same dataDirectory: c2 with
#      readCompacted reads exactly the same.
#   7. PUT .../unload, then c3 with readCompacted: exactly the same again.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid.
#
# Environment: MAGNETAR_BIN, COMPACT_KEYS (5), COMPACT_ROUNDS (3).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init compaction
need_bin
it_env COMPACT_KEYS=5 COMPACT_ROUNDS=3

K=$COMPACT_KEYS
R=$COMPACT_ROUNDS
TOPIC="compact-$$"
FULL="persistent://public/default/$TOPIC"
start_standalone sa
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default/$TOPIC"

# ---- 1. subscriptions ------------------------------------------------------------------------------
for s in full c1 c2 c3; do subscribe "sub-$s" "$URL" "$TOPIC" "$s"; done

# ---- 2. keyed messages ------------------------------------------------------------------------
produce() { # produce WHAT ARGS...: `magnetar client produce` must succeed
    local what=$1
    shift
    if "$BIN" client --url "$URL" produce "$FULL" "$@" >"$T/produce.out" 2>"$T/produce.err"; then
        return 0
    fi
    fail "$what: $(cat "$T/produce.out") $(tail -n 3 "$T/produce.err")"
    exit 1
}
SENT=0
for r in $(seq 1 "$R"); do
    db=()
    [ $((r % 2)) -eq 1 ] && db=(-db)
    for k in $(seq 0 $((K - 1))); do
        produce "round $r key k$k" -k "k$k" -m "k$k-r$r-a,k$k-r$r-b" "${db[@]}"
        SENT=$((SENT + 2))
    done
done
produce "a message without a key" -m "no-key"
SENT=$((SENT + 1))
pass "$SENT messages produced ($R rounds of 2 per key for $K keys, one without a key)"

# ---- 3. compaction through the admin API ---------------------------------------------------------
read -r code body <<<"$(curl_json GET "$ADMIN/compaction")"
[ "$code" = 200 ] && [ "$(echo "$body" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).status))')" = NOT_RUN ] \
    && pass "GET compaction before any run: NOT_RUN" || fail "GET compaction before any run: $code $body"
read -r code body <<<"$(curl_json PUT "$ADMIN/compaction")"
[ "$code" = 204 ] && pass "PUT compaction: 204" || fail "PUT compaction: $code $body"
STATUS=
for _ in $(seq 1 300); do
    read -r code body <<<"$(curl_json GET "$ADMIN/compaction")"
    STATUS=$(echo "$body" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).status)}catch(e){console.log("?")}})')
    [ "$STATUS" = RUNNING ] || break
    sleep 0.1
done
[ "$STATUS" = SUCCESS ] && pass "GET compaction: SUCCESS ($body)" || fail "compaction ended as $STATUS: $body"

# ---- 4. one message after the horizon -------------------------------------------------------------
produce "k0 after the horizon" -k k0 -m "k0-after" -db
SENT=$((SENT + 1))

# expected compacted read: each key's last value in publish order (k0..k(K-1)), then k0-after
EXPECT=$(for k in $(seq 0 $((K - 1))); do printf 'k%s=k%s-r%s-b\n' "$k" "$k" "$R"; done; echo "k0=k0-after")

# compacted_read NAME WHAT: subscription NAME with readCompacted gets exactly EXPECT
compacted_read() {
    local name=$1 what=$2 got
    if ! run_node 90 "$name" lib/compact-read.js --url "$URL" --topic "$FULL" --sub "$name" \
        --out "$T/$name.json" --expect $((K + 1)) --quiet-ms 1500 --deadline-s 60; then
        fail "$what: compacted reader failed: $(tail -n 3 "$T/$name.err")"
        return
    fi
    got=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
        for (const m of j.messages) console.log(`${m.key}=${m.value}`)' "$T/$name.json")
    if [ "$got" = "$EXPECT" ]; then
        pass "$what: exactly the latest value of each of the $K keys, then k0's message after the horizon"
    else
        fail "$what: compacted read gave [$(echo "$got" | tr '\n' ' ')], want [$(echo "$EXPECT" | tr '\n' ' ')]"
    fi
}

# ---- 5. compacted and full reads -------------------------------------------------------------------
compacted_read c1 "after compaction"
if run_node 90 full lib/compact-read.js --url "$URL" --topic "$FULL" --sub full --compacted false \
    --out "$T/full.json" --expect "$SENT" --quiet-ms 1500 --deadline-s 60; then
    n=$(json "$T/full.json" count)
    [ "$n" = "$SENT" ] && pass "subscription without readCompacted: all $SENT messages" \
        || fail "subscription without readCompacted: $n messages, want $SENT"
else
    fail "full reader failed: $(tail -n 3 "$T/full.err")"
fi

# ---- 6. restart on the same data directory ----------------------------------------------------------
stop_proc sa 30 || fail "standalone exit code $? on SIGTERM"
restart_standalone sa
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default/$TOPIC"
pass "standalone restarted on the same dataDirectory"
compacted_read c2 "after a restart"

# ---- 7. unload --------------------------------------------------------------------------------------
read -r code body <<<"$(curl_json PUT "$ADMIN/unload")"
[ "$code" = 204 ] && pass "PUT unload: 204" || fail "PUT unload: $code $body"
compacted_read c3 "after an unload"

stop_standalone sa

summary="compaction keys=$K rounds=$R sent=$SENT status=$STATUS compacted_read=$(json "$T/c1.json" count 2>/dev/null || echo ?)/$(json "$T/c2.json" count 2>/dev/null || echo ?)/$(json "$T/c3.json" count 2>/dev/null || echo ?)"
it_finish "compaction test" "$summary"
