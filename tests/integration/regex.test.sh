#!/usr/bin/env bash
# regex.test.sh - pattern (regex) subscriptions and the auto-creation policies against a
# standalone (issue 15).
#
#   1. `magnetar client consume --regex` (the project's client: WATCH_TOPIC_LIST, then one
#      WATCH_TOPIC_UPDATE per topic created) starts on a namespace with one matching topic.
#      Once it is subscribed there, another process produces to a matching topic that did not
#      exist and to one that does not match. The consumer must subscribe to the new matching
#      topic and receive its message (both messages in all), and never subscribe to the other.
#   2. `/admin/v2/namespaces/{t}/{ns}/autoTopicCreation`: 204 before anything is set; POST of
#      Pulsar's override answered 204 and read back by GET; bodies Pulsar refuses (unknown
#      topicType, partitioned without partitions, non-partitioned with partitions) 400, more
#      partitions than maxNumPartitionsPerPartitionedTopic 406; under the partitioned
#      override, PARTITIONED_METADATA (a raw request, as Java and C++ clients
#      send it) on a new topic answers 3 and creates it with 3 partitions; with
#      {"allowAutoTopicCreation":false} a producer on a new topic is refused; DELETE restores
#      the broker's default (the producer then works, a new topic is not partitioned).
#   3. `.../autoSubscriptionCreation` {"allowAutoSubscriptionCreation":false}: a consumer with
#      a new subscription is refused (SubscriptionNotFound), one on an existing subscription is
#      served; DELETE restores creation.
# Every client command runs under `timeout`; loops are bounded; the standalone is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init regex
need_bin
need_cmds jq

TMO=30
start_standalone sa --set maxNumPartitionsPerPartitionedTopic=8
NS=public/default
P="rx$$"

# client NAME ARGS...: `magnetar client` under timeout; stdout/stderr in $T/NAME.out/.err, RC
client() {
    local name=$1
    shift
    timeout "$TMO" "$BIN" client --url "$URL" "$@" >"$T/$name.out" 2>"$T/$name.err"
    RC=$?
}

# subs_of TOPIC: the topic's subscriptions as the admin API lists them (JSON array)
subs_of() { curl -s --max-time 10 "$WEB/admin/v2/persistent/$NS/$1/subscriptions"; }

# wait_sub TOPIC SUB S: until TOPIC has subscription SUB, at most S seconds
wait_sub() {
    local n=$(($3 * 10))
    for _ in $(seq 1 "$n"); do
        subs_of "$1" | grep -q "\"$2\"" && return 0
        sleep 0.1
    done
    return 1
}

# ---- 1. a regex consumer picks up a topic created after it subscribed ------------------------
client prod-a produce "persistent://$NS/$P-a" -m from-a
[ "$RC" = 0 ] || fail "produce to $P-a: exit $RC $(cat "$T/prod-a.err")"
(exec timeout -s KILL 60 "$BIN" client --url "$URL" consume "persistent://$NS/$P-.*" --regex \
    -s rxsub -p Earliest -n 2) >"$T/rx.out" 2>"$T/rx.err" &
register rx $!
if wait_sub "$P-a" rxsub 20; then
    pass "regex consumer subscribed to the matching topic that existed"
else
    fail "regex consumer not subscribed to $P-a within 20 s: $(cat "$T/rx.err")"
fi
client prod-other produce "persistent://$NS/other$$" -m from-other
t0=$(now_ms)
client prod-b produce "persistent://$NS/$P-b" -m from-b
[ "$RC" = 0 ] || fail "produce to $P-b: exit $RC $(cat "$T/prod-b.err")"
if wait_exit rx 30; then
    note "the new topic's message reached the regex consumer $(($(now_ms) - t0)) ms after its producer started"
    if grep -qx 'key:\[null\], properties:\[\], content:from-a' "$T/rx.out" &&
        grep -qx 'key:\[null\], properties:\[\], content:from-b' "$T/rx.out" &&
        tail -n 1 "$T/rx.out" | grep -qx '2 messages successfully consumed'; then
        pass "regex consumer received the message of the topic created after it subscribed"
    else
        fail "regex consumer output: $(cat "$T/rx.out" "$T/rx.err")"
    fi
else
    fail "regex consumer did not finish within 30 s: $(cat "$T/rx.out" "$T/rx.err")"
fi
if subs_of "other$$" | grep -q rxsub; then
    fail "the non-matching topic other$$ got the regex consumer's subscription"
else
    pass "the non-matching topic was not subscribed"
fi

# ---- 2. autoTopicCreation -------------------------------------------------------------------
ATC="$WEB/admin/v2/namespaces/$NS/autoTopicCreation"
J=(-H 'Content-Type: application/json')
expect_http 204 "GET autoTopicCreation before any is set" "$ATC"
expect_http 204 "POST autoTopicCreation partitioned/3" -X POST "${J[@]}" \
    -d '{"allowAutoTopicCreation":true,"topicType":"partitioned","defaultNumPartitions":3}' "$ATC"
if expect_http 200 "GET autoTopicCreation after POST" "$ATC"; then
    if grep -q '"topicType": *"partitioned"' "$T/body" && grep -q '"defaultNumPartitions": *3' "$T/body"; then
        pass "autoTopicCreation reads back as set: $(cat "$T/body")"
    else
        fail "autoTopicCreation read back: $(cat "$T/body")"
    fi
fi
# PARTITIONED_METADATA on a new topic (what Java and C++ clients send first) creates it with
# the namespace's partitions
probe() { (cd "$IT_TOP/tests/compat" && timeout "$TMO" node lib/partitions-probe.js --url "$URL" --topic "$1"); }
got=$(probe "persistent://$NS/auto$$")
if [ "$(echo "$got" | jq -r .partitions 2>/dev/null)" = 3 ] &&
    expect_http 200 "GET partitions of the auto-created topic" \
        "$WEB/admin/v2/persistent/$NS/auto$$/partitions" &&
    [ "$(jq -r .partitions "$T/body")" = 3 ]; then
    pass "PARTITIONED_METADATA auto-created a topic of the namespace's 3 partitions"
else
    fail "PARTITIONED_METADATA under the partitioned override: '$got' $(cat "$T/body" 2>/dev/null)"
fi
expect_http 400 "autoTopicCreation with an unknown topicType" -X POST "${J[@]}" \
    -d '{"allowAutoTopicCreation":true,"topicType":"sharded"}' "$ATC"
expect_http 400 "autoTopicCreation partitioned without partitions" -X POST "${J[@]}" \
    -d '{"allowAutoTopicCreation":true,"topicType":"partitioned"}' "$ATC"
expect_http 400 "autoTopicCreation non-partitioned with partitions" -X POST "${J[@]}" \
    -d '{"allowAutoTopicCreation":true,"topicType":"non-partitioned","defaultNumPartitions":2}' "$ATC"
expect_http 406 "autoTopicCreation above maxNumPartitionsPerPartitionedTopic" -X POST "${J[@]}" \
    -d '{"allowAutoTopicCreation":true,"topicType":"partitioned","defaultNumPartitions":9}' "$ATC"
expect_http 400 "autoTopicCreation that is not JSON" -X POST "${J[@]}" -d 'yes' "$ATC"
expect_http 204 "POST autoTopicCreation off" -X POST "${J[@]}" \
    -d '{"allowAutoTopicCreation":false}' "$ATC"
client prod-off produce "persistent://$NS/noauto$$" -m x
if [ "$RC" != 0 ] && [ "$RC" != 124 ]; then
    pass "with autoTopicCreation off a producer on a new topic is refused: $(head -c 200 "$T/prod-off.err")"
else
    fail "producer on a new topic with autoTopicCreation off: exit $RC"
fi
expect_http 204 "DELETE autoTopicCreation" -X DELETE "$ATC"
expect_http 204 "GET autoTopicCreation after DELETE" "$ATC"
got=$(probe "persistent://$NS/plain$$")
[ "$(echo "$got" | jq -r .partitions 2>/dev/null)" = 0 ] &&
    pass "after DELETE a new topic is not partitioned (allowAutoTopicCreationType=non-partitioned)" ||
    fail "PARTITIONED_METADATA after DELETE: '$got'"
client prod-on produce "persistent://$NS/noauto$$" -m x
[ "$RC" = 0 ] && pass "after DELETE the broker's allowAutoTopicCreation applies again" ||
    fail "producer after DELETE: exit $RC $(cat "$T/prod-on.err")"

# ---- 3. autoSubscriptionCreation -----------------------------------------------------------
ASC="$WEB/admin/v2/namespaces/$NS/autoSubscriptionCreation"
client sub-made consume "persistent://$NS/noauto$$" -s kept -p Earliest -n 1
[ "$RC" = 0 ] || fail "consume with a new subscription while allowed: exit $RC $(cat "$T/sub-made.err")"
expect_http 204 "GET autoSubscriptionCreation before any is set" "$ASC"
expect_http 400 "autoSubscriptionCreation without the boolean" -X POST "${J[@]}" -d '{}' "$ASC"
expect_http 204 "POST autoSubscriptionCreation off" -X POST "${J[@]}" \
    -d '{"allowAutoSubscriptionCreation":false}' "$ASC"
expect_http 200 "GET autoSubscriptionCreation" "$ASC" &&
    { grep -q '"allowAutoSubscriptionCreation": *false' "$T/body" &&
        pass "autoSubscriptionCreation reads back: $(cat "$T/body")" ||
        fail "autoSubscriptionCreation read back: $(cat "$T/body")"; }
client sub-new consume "persistent://$NS/noauto$$" -s brand-new -n 1
if [ "$RC" != 0 ] && [ "$RC" != 124 ] && grep -q "Subscription does not exist" "$T/sub-new.err"; then
    pass "with autoSubscriptionCreation off a new subscription is refused"
else
    fail "new subscription with autoSubscriptionCreation off: exit $RC $(cat "$T/sub-new.err")"
fi
client prod-more produce "persistent://$NS/noauto$$" -m y
client sub-old consume "persistent://$NS/noauto$$" -s kept -n 1
[ "$RC" = 0 ] && grep -q 'content:y' "$T/sub-old.out" &&
    pass "an existing subscription is still served" ||
    fail "existing subscription with autoSubscriptionCreation off: exit $RC $(cat "$T/sub-old.err")"
expect_http 204 "DELETE autoSubscriptionCreation" -X DELETE "$ASC"
client prod-last produce "persistent://$NS/noauto$$" -m z
client sub-new2 consume "persistent://$NS/noauto$$" -s brand-new -p Earliest -n 1
[ "$RC" = 0 ] && pass "after DELETE a new subscription is created again" ||
    fail "new subscription after DELETE: exit $RC $(cat "$T/sub-new2.err")"

stop_proc sa
echo "SUMMARY: regex passes=$IT_PASSES fails=$IT_FAILS"
[ "$IT_FAILED" -eq 0 ] && echo "PASS: regex test" || { echo "FAIL: regex test"; tail -n 30 "$T/sa.log"; }
exit "$IT_FAILED"
