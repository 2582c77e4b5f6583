#!/usr/bin/env bash
# backlog-age.test.sh - the message_age backlog quota, end to end (issue 11): the broker's
# default (backlogQuotaDefaultLimitSecond) refuses producers once the oldest unacknowledged
# message is older than the limit, and a namespace's message_age quota with
# consumer_backlog_eviction acknowledges the old messages instead.
#
#   1. A standalone with backlogQuotaDefaultLimitSecond=LIMIT_S, the check every second and
#      backlogQuotaDefaultRetentionPolicy=producer_exception. A durable subscription is
#      made (nobody consumes it); a producer sends for 1 s: every send acknowledged.
#   2. Topic stats: backlogQuotaLimitTime is LIMIT_S; oldestBacklogMessageAgeSeconds grows
#      past it (polled, 30 s bound). Then a new producer is refused with the quota error,
#      and /metrics shows pulsar_storage_backlog_quota_limit_time and
#      pulsar_storage_backlog_age_seconds for the topic.
#   3. POST .../backlogQuota?backlogQuotaType=message_age with consumer_backlog_eviction:
#      the subscription's backlog drops to 0 (polled, 30 s bound), the time evictions count
#      in /metrics is at least 1, and a producer is accepted again.
# Environment: MAGNETAR_BIN, LIMIT_S (3). Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init backlog-age
need_bin

it_env LIMIT_S=3
start_magnetar sa standalone "brokerServicePort webServicePort" 60 -- \
    --config "$IT_TOP/conf/standalone.yaml" --set dataDirectory="$T/data" \
    --set brokerServicePort=0 --set webServicePort=0 --set bookiePort=0 \
    --set backlogQuotaDefaultLimitSecond="$LIMIT_S" --set backlogQuotaCheckIntervalInSeconds=1 \
    --set backlogQuotaDefaultRetentionPolicy=producer_exception || exit 1
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
WEB="http://127.0.0.1:$(port_of sa webServicePort)"
LOCAL="age-$$"
TOPIC="persistent://public/default/$LOCAL"
STATS="$WEB/admin/v2/persistent/public/default/$LOCAL/stats"

# probe NAME: a producer that sends for 1 s (lib/probe-produce.js); its exit code
probe() {
    run_node 60 "$1" lib/probe-produce.js --url "$URL" --topic "$TOPIC" --out "$T/$1.json" \
        --deadline-s 1
}
# stat FILTER: a jq value of the topic's stats
stat() { curl -s --max-time 10 "$STATS" | jq -r "$1" 2>/dev/null; }
# metric NAME [LABEL]: the topic's sample of NAME (with LABEL, e.g. quota_type="time")
metric() {
    curl -s --max-time 10 "$WEB/metrics" |
        grep -F "$1{" | grep -F "topic=\"$TOPIC\"" | grep -F "${2:-}" | awk '{print $2}' | head -n 1
}
# poll S CMD...: until CMD succeeds, at most S seconds
poll() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# 1. a subscription nobody consumes, then messages
subscribe sub "$URL" "$TOPIC" s
if probe p1 && [ "$(jq -r '.acked > 0 and .failed == 0' "$T/p1.json")" = true ]; then
    pass "producer: $(jq -r .acked "$T/p1.json") sends, all acknowledged"
else
    fail "first producer: $(cat "$T/p1.json" 2>/dev/null) $(cat "$T/p1.err")"
fi
backlog=$(stat '.subscriptions.s.msgBacklog')
if [ "${backlog:-0}" -gt 0 ]; then pass "subscription backlog $backlog"; else fail "backlog '$backlog'"; fi

# 2. older than the limit: refused
lim=$(stat .backlogQuotaLimitTime)
if [ "$lim" = "$LIMIT_S" ]; then
    pass "stats: backlogQuotaLimitTime $lim"
else
    fail "stats: backlogQuotaLimitTime '$lim', want $LIMIT_S"
fi
age_over() { [ "$(stat ".oldestBacklogMessageAgeSeconds > $LIMIT_S")" = true ]; }
if poll 30 age_over; then
    pass "stats: oldestBacklogMessageAgeSeconds $(stat .oldestBacklogMessageAgeSeconds) > $LIMIT_S"
else
    fail "stats: oldestBacklogMessageAgeSeconds '$(stat .oldestBacklogMessageAgeSeconds)' never passed $LIMIT_S"
fi
probe p2
rc=$?
why=$(jq -r '.startError // empty' "$T/p2.json" 2>/dev/null)
if [ "$rc" = 1 ] && [[ "$why" == *"backlog quota exceeded"* ]]; then
    pass "a new producer is refused: $why"
else
    fail "a new producer over the age quota: exit $rc, '$why'"
fi
m_lim=$(metric pulsar_storage_backlog_quota_limit_time)
m_age=$(metric pulsar_storage_backlog_age_seconds)
if [ "$m_lim" = "$LIMIT_S.0" ] && awk -v a="${m_age:-0}" -v l="$LIMIT_S" 'BEGIN { exit !(a > l) }'; then
    pass "metrics: quota limit time $m_lim, backlog age $m_age"
else
    fail "metrics: quota limit time '$m_lim', backlog age '$m_age'"
fi

# 3. the namespace's message_age quota evicts instead
r=$(curl -s -o "$T/post.out" -w '%{http_code}' --max-time 10 -X POST \
    -H 'Content-Type: application/json' \
    --data "{\"limitSize\":-1,\"limitTime\":$LIMIT_S,\"policy\":\"consumer_backlog_eviction\"}" \
    "$WEB/admin/v2/namespaces/public/default/backlogQuota?backlogQuotaType=message_age")
if [ "$r" = 204 ]; then
    pass "namespace message_age quota set (eviction)"
else
    fail "POST backlogQuota answered $r: $(cat "$T/post.out")"
fi
drained() { [ "$(stat .subscriptions.s.msgBacklog)" = 0 ]; }
if poll 30 drained; then
    pass "eviction: the subscription's backlog is 0"
else
    fail "eviction: backlog still '$(stat .subscriptions.s.msgBacklog)'"
fi
ev=$(metric pulsar_storage_backlog_quota_exceeded_evictions_total 'quota_type="time"')
if awk -v e="${ev:-0}" 'BEGIN { exit !(e >= 1) }'; then
    pass "metrics: time evictions $ev"
else
    fail "metrics: time evictions '$ev'"
fi
if probe p3 && [ "$(jq -r '.acked > 0' "$T/p3.json")" = true ]; then
    pass "a producer is accepted again"
else
    fail "producer after the eviction: $(cat "$T/p3.json" 2>/dev/null)"
fi

stop_clean 30 sa
check_sanitizers
