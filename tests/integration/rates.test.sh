#!/usr/bin/env bash
# rates.test.sh - the broker's rate keys measured with a real client (pulsar-flex).
#
# A standalone with maxPublishRatePerTopicInMessages=80 and
# dispatchThrottlingRatePerSubscriptionInMsg=50 (no namespace policy: the keys apply). A
# Shared subscription is made; one producer sends N messages as fast as the broker reads them;
# once all are stored a Shared consumer takes the backlog (lib/rate-probe.js). A token bucket
# of R msg/s that starts full (one period: R) lets N messages through in no less than
# (N - R) / R seconds; the checks allow two more periods of burst and debt (a read sized to
# the room, the sends in flight; up to 1.5 periods seen): the receipts span at least
# (N - 3 R) / R s and so do the deliveries. Slowness only lengthens them; without
# the limits both take a fraction of that. An upper bound only an order of magnitude out
# (10 N / R s) catches a limiter that lets (almost) nothing through. Then the namespace's
# publishRate and subscriptionDispatchRate (admin) replace the keys on a new topic: 40/s and
# 30/s. The exact bucket behaviour is in check_topic's test_dispatch_rate and
# test_publish_rate on the simulated clock.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid. Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init rates
need_bin

start_standalone sa --set maxPublishRatePerTopicInMessages=80 \
    --set dispatchThrottlingRatePerSubscriptionInMsg=50
NS="http://127.0.0.1:$WPORT/admin/v2/namespaces/public/default"

# paced WHAT MS N RATE: MS, the time N messages took, is at least (N - 3 RATE) / RATE s and
# at most 10 N / RATE s
paced() {
    local what=$1 ms=$2 n=$3 rate=$4
    local lo=$(((n - 3 * rate) * 1000 / rate)) hi=$((10 * n * 1000 / rate))
    if [ "$ms" -ge "$lo" ] && [ "$ms" -le "$hi" ]; then
        pass "$what: $n messages took $ms ms at a limit of $rate msg/s (at least $lo ms)"
    else
        fail "$what: $n messages took $ms ms at a limit of $rate msg/s (want $lo..$hi ms)"
    fi
}

# probe NAME TOPIC COUNT PUBLISH DISPATCH: one measurement, checked against the two limits
probe() {
    local name=$1 topic=$2 count=$3 pub=$4 disp=$5 out
    if ! run_node 240 "$name" lib/rate-probe.js --url "$URL" --topic "persistent://public/default/$topic" \
        --count "$count" --deadline-s $((20 * count / disp + 20)); then
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

probe keys "rates-keys-$$" 480 80 50

curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'content-type: application/json' \
    -d '{"publishThrottlingRateInMsg":40,"publishThrottlingRateInByte":-1}' "$NS/publishRate" | grep -q 204 \
    && curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'content-type: application/json' \
        -d '{"dispatchThrottlingRateInMsg":30,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}' \
        "$NS/subscriptionDispatchRate" | grep -q 204 \
    && pass "namespace publishRate and subscriptionDispatchRate set" || fail "setting the namespace's rates"
probe policy "rates-policy-$$" 300 40 30

stop_standalone sa
it_finish rates "publish and dispatch rates from the keys and the namespace policies"
