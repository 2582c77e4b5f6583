#!/usr/bin/env bash
# rates.test.sh - the broker's rate keys measured with a real client (pulsar-flex).
#
# A standalone with maxPublishRatePerTopicInMessages=80 and
# dispatchThrottlingRatePerSubscriptionInMsg=50 (no namespace policy: the keys apply). One
# producer sends 480 messages as fast as the broker reads them while a Shared consumer takes
# everything (lib/rate-probe.js). Over a 3 s window after the first 1.5 s (the burst of a
# full bucket), the receipts come at 80/s and the messages at 50/s, each within 20 %
# (counted over the window, divided by its length). Then the namespace's publishRate and
# subscriptionDispatchRate (admin) replace the keys on the loaded topic: 40/s and 30/s.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started
# is stopped by pid. Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init rates
need_bin

start_standalone sa --set maxPublishRatePerTopicInMessages=80 \
    --set dispatchThrottlingRatePerSubscriptionInMsg=50
NS="http://127.0.0.1:$WPORT/admin/v2/namespaces/public/default"

# within VALUE LIMIT: VALUE in [0.8 LIMIT, 1.2 LIMIT]
within() { node -e 'const v = Number(process.argv[1]), l = Number(process.argv[2]);
    process.exit(v >= 0.8 * l && v <= 1.2 * l ? 0 : 1)' "$1" "$2"; }

# probe NAME TOPIC COUNT PUBLISH DISPATCH: one measurement, checked against the two limits
probe() {
    local name=$1 topic=$2 count=$3 pub=$4 disp=$5 out pr dr
    if ! run_node 90 "$name" lib/rate-probe.js --url "$URL" --topic "persistent://public/default/$topic" \
        --count "$count" --skip-ms 1500 --window-ms 3000 --deadline-s 80; then
        fail "$name: probe failed: $(tail -n 3 "$T/$name.err")"
        return
    fi
    out=$(tail -n 1 "$T/$name.out")
    pr=$(json_of "$out" publishRate)
    dr=$(json_of "$out" dispatchRate)
    within "$pr" "$pub" && pass "$name: publish rate $pr msg/s for a limit of $pub" \
        || fail "$name: publish rate $pr msg/s for a limit of $pub ($out)"
    within "$dr" "$disp" && pass "$name: dispatch rate $dr msg/s for a limit of $disp" \
        || fail "$name: dispatch rate $dr msg/s for a limit of $disp ($out)"
}
json_of() { node -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$1" "$2"; }

probe keys "rates-keys-$$" 480 80 50

curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'content-type: application/json' \
    -d '{"publishThrottlingRateInMsg":40,"publishThrottlingRateInByte":-1}' "$NS/publishRate" | grep -q 204 \
    && curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'content-type: application/json' \
        -d '{"dispatchThrottlingRateInMsg":30,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}' \
        "$NS/subscriptionDispatchRate" | grep -q 204 \
    && pass "namespace publishRate and subscriptionDispatchRate set" || fail "setting the namespace's rates"
probe policy "rates-policy-$$" 240 40 30

stop_standalone sa
it_finish rates "publish and dispatch rates from the keys and the namespace policies"
