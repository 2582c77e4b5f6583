#!/usr/bin/env bash
# inactive-topics.test.sh - inactive topic deletion is on by default, as Pulsar's, and spares
# what a policy keeps, in a real `magnetar standalone` (conf/standalone.yaml, where
# brokerDeleteInactiveTopicsEnabled is not set: its default applies).
#
#   1. `magnetar config show` answers brokerDeleteInactiveTopicsEnabled: true.
#   2. The standalone runs with the default switch, only the timing shortened (a check every
#      second, 5 s of inactivity) so that the test takes seconds, not minutes.
#   3. Topics that must stay: one in a namespace whose retention time (60 min) covers its last
#      activity, one in a namespace whose inactiveTopicPolicies say deleteWhileInactive=false,
#      one whose own (topic-level) inactiveTopicPolicies say so, one with a subscription
#      (delete_when_no_subscriptions); then, last, a topic with none of these.
#   4. The last topic leaves the namespace's topic list (polled, bounded): every check that
#      deleted it also looked at the others, inactive for longer, and they are all still
#      listed.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init inactive-topics
need_bin
need_cmds curl

# ---- 1. the default ---------------------------------------------------------------------------
got=$(cfg_value brokerDeleteInactiveTopicsEnabled --config "$IT_TOP/conf/standalone.yaml")
[ "$got" = true ] && pass "brokerDeleteInactiveTopicsEnabled defaults to true" \
    || fail "brokerDeleteInactiveTopicsEnabled is '$got' by default, want true"

# ---- 2. a standalone on the default, checking every second ------------------------------------
start_standalone sa --set brokerDeleteInactiveTopicsFrequencySeconds=1 \
    --set brokerDeleteInactiveTopicsMaxInactiveDurationSeconds=5
A="$WEB/admin/v2"
J=(-H 'Content-Type: application/json')

# ---- 3. what must stay, then the idle topic ----------------------------------------------------
expect_http 204 "namespace public/retained" -X PUT "$A/namespaces/public/retained"
expect_http 204 "its retention: 60 minutes" -X POST "${J[@]}" \
    --data '{"retentionTimeInMinutes":60,"retentionSizeInMB":-1}' \
    "$A/namespaces/public/retained/retention"
expect_http 204 "namespace public/nogc" -X PUT "$A/namespaces/public/nogc"
expect_http 204 "its inactiveTopicPolicies: deleteWhileInactive=false" -X POST "${J[@]}" \
    --data '{"inactiveTopicDeleteMode":"delete_when_no_subscriptions","maxInactiveDurationSeconds":1,"deleteWhileInactive":false}' \
    "$A/namespaces/public/nogc/inactiveTopicPolicies"
KEPT=(public/retained/r public/nogc/n public/default/own public/default/withsub)
for t in "${KEPT[@]}"; do expect_http 204 "PUT $t" -X PUT "$A/persistent/$t"; done
expect_http 204 "topic-level inactiveTopicPolicies of public/default/own" -X POST "${J[@]}" \
    --data '{"inactiveTopicDeleteMode":"delete_when_no_subscriptions","maxInactiveDurationSeconds":1,"deleteWhileInactive":false}' \
    "$A/persistent/public/default/own/inactiveTopicPolicies"
expect_http 204 "a subscription on public/default/withsub" -X PUT \
    "$A/persistent/public/default/withsub/subscription/s"
expect_http 204 "PUT public/default/idle (last)" -X PUT "$A/persistent/public/default/idle"

# listed NS TOPIC: is persistent://NS/TOPIC in the namespace's topic list?
listed() {
    [ "$(http_code "$A/namespaces/$1/topics")" = 200 ] || return 2
    grep -q "\"persistent://$1/$2\"" "$T/body"
}

# ---- 4. the idle topic goes, the others stay -----------------------------------------------------
listed public/default idle && pass "public/default/idle listed before the check" \
    || fail "public/default/idle not listed after its PUT"
gone=0
for ((i = 0; i < 150; i++)); do # bounded: 150 x 0.2 s
    listed public/default idle
    [ $? = 1 ] && { gone=1; break; }
    sleep 0.2
done
[ $gone = 1 ] && pass "the idle topic was deleted by the inactive topic check" \
    || fail "the idle topic is still listed after 30 s"
for t in "${KEPT[@]}"; do
    listed "${t%/*}" "${t##*/}" && pass "$t kept" || fail "$t was deleted"
done
grep -q "persistent://public/default/idle: inactive for" "$T/sa.log" \
    && pass "the deletion is logged with its reason" || fail "no log line for the deletion"

stop_standalone sa
it_finish "inactive-topics test" "kept=${#KEPT[@]}"
