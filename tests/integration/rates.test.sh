#!/usr/bin/env bash
# rates.test.sh - the broker's rate keys measured with a real client (pulsar-flex).
#
# A standalone with maxPublishRatePerTopicInMessages=100 and
# dispatchThrottlingRatePerSubscriptionInMsg=80 (no namespace policy: the keys apply). A
# Shared subscription is made; one producer sends N messages as fast as the broker reads them;
# once all are stored a Shared consumer takes the backlog (lib/rate-probe.js). The first 2 R
# of each side are left out (the bursts of the start: a full bucket, two when a namespace's
# rate replaces the key's once its policies are read); a token bucket of R msg/s holding one
# period (R) lets the other N - 2 R through in no less than (N - 2 R - R) / R seconds; the
# checks allow one more period (the sends in flight when the producer's connection is
# paused): each side took at least (N - 4 R) / R s. Slowness only lengthens that; without the
# limits the same messages take a fraction of it. An upper bound only an order of magnitude
# out (10 N / R s) catches a limiter that lets (almost) nothing through. Then the namespace's
# publishRate and subscriptionDispatchRate (admin) replace the keys on a new topic: 60/s and
# 50/s. The throttled topic's stats count publishRateLimitedTimes > 0 (and its subscription
# dispatchThrottledMsgEventsBySubscriptionLimit > 0); a topic sent fewer messages than its
# bucket holds counts 0. The exact bucket behaviour is in check_topic's test_dispatch_rate and
# test_publish_rate on the simulated clock.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid. Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init rates
need_bin

start_standalone sa --set maxPublishRatePerTopicInMessages=100 \
    --set dispatchThrottlingRatePerSubscriptionInMsg=80 --set statsUpdateFrequencyInSecs=3600
NS="http://127.0.0.1:$WPORT/admin/v2/namespaces/public/default"

# paced WHAT MS N RATE: MS, the time the messages after the first 2 RATE of N took, is at
# least (N - 4 RATE) / RATE s and at most 10 N / RATE s
paced() {
    local what=$1 ms=$2 n=$3 rate=$4
    local lo=$(((n - 4 * rate) * 1000 / rate)) hi=$((10 * n * 1000 / rate))
    if [ "$ms" -ge "$lo" ] && [ "$ms" -le "$hi" ]; then
        pass "$what: the last $((n - 2 * rate)) of $n messages took $ms ms at a limit of $rate msg/s (at least $lo ms)"
    else
        fail "$what: the last $((n - 2 * rate)) of $n messages took $ms ms at a limit of $rate msg/s (want $lo..$hi ms)"
    fi
}

# probe NAME TOPIC COUNT PUBLISH DISPATCH: one measurement, checked against the two limits
probe() {
    local name=$1 topic=$2 count=$3 pub=$4 disp=$5 out
    if ! run_node 240 "$name" lib/rate-probe.js --url "$URL" --topic "persistent://public/default/$topic" \
        --count "$count" --skip-publish $((2 * pub)) --skip-dispatch $((2 * disp)) \
        --deadline-s $((20 * count / disp + 20)); then
        fail "$name: probe failed: $(tail -n 3 "$T/$name.err")"
        return
    fi
    out=$(tail -n 1 "$T/$name.out")
    [ "$(json_of "$out" sent)" = "$count" ] && [ "$(json_of "$out" received)" = "$count" ] \
        && pass "$name: all $count messages acknowledged and delivered" \
        || fail "$name: not every message went through ($out)"
    paced "$name: receipts" "$(json_of "$out" publishMs)" "$count" "$pub"
    paced "$name: deliveries" "$(json_of "$out" dispatchMs)" "$count" "$disp"
}
json_of() { node -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$1" "$2"; }
# stat TOPIC FIELD...: a field of the topic's stats, down the path given ("none" when not
# there); publishRateLimitedTimes is not reset during the test (the stats interval is an hour)
stat() {
    local topic=$1
    shift
    curl -s --max-time 10 "http://127.0.0.1:$WPORT/admin/v2/persistent/public/default/$topic/stats" \
        | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d));
            process.stdin.on("end", () => { try { let v = JSON.parse(s);
            for (const k of process.argv.slice(1)) v = v[k]; console.log(v === undefined ? "none" : v) }
            catch (e) { console.log("none") } })' "$@"
}
limited() { stat "$1" publishRateLimitedTimes; }

probe keys "rates-keys-$$" 600 100 80
V=$(limited "rates-keys-$$")
[ "$V" -gt 0 ] 2>/dev/null && pass "publishRateLimitedTimes $V on the throttled topic" \
    || fail "publishRateLimitedTimes $V on the throttled topic, want > 0"
V=$(stat "rates-keys-$$" subscriptions rate dispatchThrottledMsgEventsBySubscriptionLimit)
[ "$V" -gt 0 ] 2>/dev/null && pass "dispatchThrottledMsgEventsBySubscriptionLimit $V on the throttled subscription" \
    || fail "dispatchThrottledMsgEventsBySubscriptionLimit $V on the throttled subscription, want > 0"
# fewer messages than the bucket holds: never throttled
produce_all under "$T/under.json" 60 20 "20 messages under the publish rate" --url "$URL" \
    --topic "persistent://public/default/rates-under-$$"
V=$(limited "rates-under-$$")
[ "$V" = 0 ] && pass "publishRateLimitedTimes 0 on a topic under its rate" \
    || fail "publishRateLimitedTimes $V on a topic under its rate, want 0"

curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'content-type: application/json' \
    -d '{"publishThrottlingRateInMsg":60,"publishThrottlingRateInByte":-1}' "$NS/publishRate" | grep -q 204 \
    && curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'content-type: application/json' \
        -d '{"dispatchThrottlingRateInMsg":50,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}' \
        "$NS/subscriptionDispatchRate" | grep -q 204 \
    && pass "namespace publishRate and subscriptionDispatchRate set" || fail "setting the namespace's rates"
probe policy "rates-policy-$$" 400 60 50

stop_standalone sa
it_finish rates "publish and dispatch rates from the keys and the namespace policies"
