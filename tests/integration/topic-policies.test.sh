#!/usr/bin/env bash
# topic-policies.test.sh - the topic-level deduplicationEnabled policy is durable and wins over
# the broker's setting, and deleting a topic deletes its schema and policies, in a real
# `magnetar standalone` (brokerDeduplicationEnabled=false, conf/standalone.yaml).
#
#   1. A new topic: GET .../deduplicationEnabled answers 204 (unset), applied=true false.
#   2. POST true: 204; the topic's deduplicationStatus becomes Enabled (polled, bounded).
#   3. A schema is registered; the standalone is SIGKILLed and restarted on the same
#      dataDirectory: the policy is still there (GET 200 true) and the topic, loaded again,
#      is Enabled.
#   4. DELETE the topic: its schema answers 404, and the topic created again has no policy.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init topic-policies
need_bin
need_cmds curl

TOPIC="tpol-$$"
start_standalone sa
P="$WEB/admin/v2/persistent/public/default/$TOPIC"
POL="$P/deduplicationEnabled"
SCH="$WEB/admin/v2/schemas/public/default/$TOPIC/schema"

# wait_status WANT: poll the topic's deduplicationStatus (stats loads it) for up to 20 s
wait_status() {
    local want=$1 got="" i
    for ((i = 0; i < 100; i++)); do
        if [ "$(http_code "$P/stats")" = 200 ]; then
            got=$(json "$T/body" deduplicationStatus)
            [ "$got" = "$want" ] && return 0
        fi
        sleep 0.2
    done
    note "deduplicationStatus ${got:-none}, want $want"
    return 1
}

# ---- 1. unset ------------------------------------------------------------------------------
expect_http 204 "PUT topic" -X PUT "$P"
expect_http 204 "GET deduplicationEnabled while unset" "$POL"
expect_http 200 "GET deduplicationEnabled?applied=true" "$POL?applied=true" \
    && { [ "$(cat "$T/body")" = false ] && pass "applied: the broker's false" \
        || fail "applied: $(cat "$T/body"), want false"; }

# ---- 2. set: the loaded topic follows at once ------------------------------------------------
expect_http 204 "POST deduplicationEnabled true" -X POST -H 'Content-Type: application/json' \
    --data true "$POL"
wait_status Enabled && pass "topic deduplication Enabled by its own policy" \
    || fail "topic deduplication not Enabled by its own policy"
expect_http 400 "POST a body that is not a boolean" -X POST -H 'Content-Type: application/json' \
    --data '"x"' "$POL"
expect_http 412 "a partition's name" "$WEB/admin/v2/persistent/public/default/$TOPIC-partition-0/deduplicationEnabled"

# ---- 3. durable across a crash ----------------------------------------------------------------
expect_http 202 "POST schema" -X POST -H 'Content-Type: application/json' \
    --data '{"type":"STRING","schema":"","properties":{}}' "$SCH"
kill_proc sa
restart_standalone sa
P="$WEB/admin/v2/persistent/public/default/$TOPIC"
POL="$P/deduplicationEnabled"
SCH="$WEB/admin/v2/schemas/public/default/$TOPIC/schema"
expect_http 200 "GET deduplicationEnabled after the restart" "$POL" \
    && { [ "$(cat "$T/body")" = true ] && pass "policy kept: true" \
        || fail "policy after restart: $(cat "$T/body"), want true"; }
wait_status Enabled && pass "the topic loaded again is Enabled" \
    || fail "the topic loaded again is not Enabled"
expect_http 200 "GET schema after the restart" "$SCH"

# ---- 4. deleted with the topic -------------------------------------------------------------------
expect_http 204 "DELETE topic" -X DELETE "$P?force=true"
expect_http 404 "GET schema of the deleted topic" "$SCH"
expect_http 204 "PUT topic again" -X PUT "$P"
expect_http 204 "GET deduplicationEnabled of the new topic (unset)" "$POL"
wait_status Disabled && pass "the new topic is Disabled (broker default)" \
    || fail "the new topic is not Disabled"

stop_standalone sa
it_finish "topic-policies test" "topic=$TOPIC"
