#!/usr/bin/env bash
# delayed.test.sh - delayed delivery through a real broker, across a restart.
#
#   1. A standalone (conf/standalone.yaml: delayedDeliveryEnabled=true, tick 1000 ms) gets a
#      Shared subscription "sh" and an Exclusive one "ex" on a new topic.
#   2. A raw client (delayed-probe.js: MessageMetadata.deliver_at_time, unbatched, as the
#      Java client's deliverAfter/deliverAt send it) sends 40 messages cycling no time, an
#      hour ago, -1 and now + 5 s; then one due in a day and 10 due in 20 s.
#   3. A Shared consumer gets the 30 undelayed ones before any delayed one, and each of the
#      10 delayed ones no earlier than its time minus one tick and its rounding (1.6 s): a
#      lower bound, which a slow machine only makes easier to meet; that they come at all is
#      bounded by the consumer's deadline (60 s), not by a window after their time. An
#      Exclusive consumer gets all 51 in publish order (Pulsar delays only Shared and
#      Key_Shared: holding one back would put later ones before it), the one due in a day
#      too. The sub's stats show msgDelayed 11 (the day and the 20 s ones). When exactly a
#      tick releases what is due is tested on the simulated clock (check_topic's
#      test_delayed_*).
#   4. The standalone is stopped (SIGTERM: its cursors are written, so no acknowledged message
#      comes again) and restarted; nothing of the index is stored.
#   5. A Shared consumer again: the index is rebuilt from the backlog (msgDelayed >= 10 while
#      they wait), the 10 come no earlier than the same bound, the day one stays held
#      (msgDelayed 1).
#   6. A namespace whose delayedDelivery policy says active=false: a Shared consumer gets
#      messages due in 10 minutes at once.
#   7. A topic of that namespace with its own delayedDelivery (active=true): the topic's wins
#      (GET ?applied=true shows it), messages due in 10 minutes are held (msgDelayed); after
#      DELETE the namespace's applies again.
# Prints PASS:/FAIL: lines and a SUMMARY line; exits non-zero on failure. Everything started is
# stopped by pid. Environment: MAGNETAR_BIN.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init delayed
need_bin

TOPIC="delayed-$$"
FULL="persistent://public/default/$TOPIC"
start_standalone sa
ADMIN="http://127.0.0.1:$WPORT/admin/v2/persistent/public/default"

# msg_delayed SUB: the subscription's msgDelayed in the topic stats ("" when not there)
msg_delayed() {
    curl -s --max-time 10 "$ADMIN/$TOPIC/stats" | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d));
        process.stdin.on("end", () => { try { const j = JSON.parse(s);
        console.log(j.subscriptions[process.argv[1]].msgDelayed) } catch (e) { console.log("") } })' "$1"
}
# wait_delayed SUB OP N S: until msgDelayed OP N (-eq, -ge), at most S seconds
wait_delayed() {
    local end=$((SECONDS + $4)) v
    while :; do
        v=$(msg_delayed "$1")
        [ -n "$v" ] && [ "$v" "$2" "$3" ] && { echo "$v"; return 0; }
        [ $SECONDS -ge $end ] && { echo "${v:-none}"; return 1; }
        sleep 0.2
    done
}
# check_times FILE N: "received distinct delayed early behind min max" of N messages: early,
# the delayed ones that came before their time less 1.6 s (a tick and the 512 ms rounding);
# behind, the undelayed ones that came after the first delayed one; min..max, how long after
# its time each delayed one came (a figure)
check_times() {
    node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1])); const n = Number(process.argv[2]);
        const delayed = j.messages.filter((m) => m.at > Date.now() - 600000 && m.at < Date.now() + 3600000);
        const plain = j.messages.filter((m) => !delayed.includes(m));
        const firstDelayed = Math.min(...delayed.map((m) => m.arrived));
        const early = delayed.filter((m) => m.arrived < m.at - 1600).length;
        const slow = plain.filter((m) => m.arrived > firstDelayed).length;
        const uniq = new Set(j.messages.map((m) => m.c)).size;
        const spread = delayed.map((m) => m.arrived - m.at);
        console.log(`${j.received} ${uniq} ${delayed.length} ${early} ${slow} ${Math.min(...spread)} ${Math.max(...spread)}`)' "$1" "$2"
}

# ---- 1. subscriptions ----------------------------------------------------------------------
subscribe s1 "$URL" "$TOPIC" sh
subscribe s2 "$URL" "$TOPIC" ex

# ---- 2/3. send, consume ----------------------------------------------------------------------
start_node csh 90 lib/delayed-probe.js --mode consume --url "$URL" --topic "$FULL" --sub sh --type Shared \
    --count 40 --out "$T/csh.json" --deadline-s 60
start_node cex 90 lib/delayed-probe.js --mode consume --url "$URL" --topic "$FULL" --sub ex --type Exclusive \
    --count 51 --out "$T/cex.json" --deadline-s 60
run_node 60 p1 lib/delayed-probe.js --mode produce --url "$URL" --topic "$FULL" --count 40 \
    --kinds none,past,neg,delay --delay-ms 5000 --far --out "$T/p1.json" \
    && run_node 60 p2 lib/delayed-probe.js --mode produce --url "$URL" --topic "$FULL" --count 10 \
        --kinds delay --delay-ms 20000 --first 100 --out "$T/p2.json"
[ "$(json "$T/p1.json" acked)" = 41 ] && [ "$(json "$T/p2.json" acked)" = 10 ] \
    && pass "51 messages stored (40 mixed, 1 due in a day, 10 due in 20 s)" \
    || fail "produce: $(cat "$T/p1.json" "$T/p2.json" 2>/dev/null) $(tail -n 3 "$T/p1.err" "$T/p2.err")"
wait_exit csh 70 || fail "Shared consumer exit $?: $(tail -n 3 "$T/csh.err")"
wait_exit cex 70 || fail "Exclusive consumer exit $?: $(tail -n 3 "$T/cex.err")"
read -r R U D E S MIN MAX <<<"$(check_times "$T/csh.json" 40)"
[ "$R" = 40 ] && [ "$U" = 40 ] && [ "$D" = 10 ] && [ "$E" = 0 ] && [ "$S" = 0 ] \
    && pass "Shared: the 30 undelayed ones first, the 10 delayed ones none early ($MIN..$MAX ms from their time)" \
    || fail "Shared: received $R ($U distinct, $D delayed), $E early, $S undelayed ones after a delayed one; $MIN..$MAX ms"
# received, out of publish order, arrived a day before their time
EX=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1])); const m = j.messages;
    console.log(`${j.received} ${m.filter((x, i) => i > 0 && x.c <= m[i - 1].c).length} ${m.filter((x) => x.at > x.arrived + 3600000).length}`)' "$T/cex.json")
[ "$EX" = "51 0 1" ] && pass "Exclusive: all 51 in publish order, none held (the one due in a day too)" \
    || fail "Exclusive: received / out of order / the day one: $EX (want 51 0 1)"
V=$(wait_delayed sh -eq 11 10) && pass "stats: msgDelayed $V on the Shared subscription" \
    || fail "stats: msgDelayed $V, want 11"

# ---- 4. restart ------------------------------------------------------------------------------
stop_proc sa 30 || fail "standalone exit code $? on SIGTERM"
restart_standalone sa
URL="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"
ADMIN="http://127.0.0.1:$(port_of sa webServicePort)/admin/v2/persistent/public/default"
pass "standalone stopped (SIGTERM) and restarted"

# ---- 5. the index is rebuilt from the backlog ------------------------------------------------
start_node csh2 90 lib/delayed-probe.js --mode consume --url "$URL" --topic "$FULL" --sub sh --type Shared \
    --count 10 --out "$T/csh2.json" --deadline-s 60
V=$(wait_delayed sh -ge 10 15) && pass "after the restart msgDelayed $V: rebuilt by reading the backlog" \
    || fail "after the restart msgDelayed $V, want >= 10"
wait_exit csh2 70 || fail "Shared consumer after the restart exit $?: $(tail -n 3 "$T/csh2.err")"
read -r R U D E S MIN MAX <<<"$(check_times "$T/csh2.json" 10)"
LATE=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
    console.log(j.messages.filter((m) => m.c >= 100).length)' "$T/csh2.json")
[ "$R" = 10 ] && [ "$U" = 10 ] && [ "$D" = 10 ] && [ "$E" = 0 ] && [ "$LATE" = 10 ] \
    && pass "after the restart the 10 came, none early ($MIN..$MAX ms from their time)" \
    || fail "after the restart: received $R ($U distinct, $D delayed, $LATE of the 20 s ones), $E early; $MIN..$MAX ms"
V=$(wait_delayed sh -eq 1 10) && pass "the one due in a day stays held (msgDelayed $V)" \
    || fail "msgDelayed $V at the end, want 1"

# consume_and_send_later C P TOPIC SUB N S: a Shared consumer C of SUB (N messages, S s
# deadline) started, then N messages due in 10 minutes sent by P and all acknowledged
consume_and_send_later() {
    start_node "$1" 60 lib/delayed-probe.js --mode consume --url "$URL" --topic "$3" --sub "$4" \
        --type Shared --count "$5" --out "$T/$1.json" --deadline-s "$6"
    run_node 60 "$2" lib/delayed-probe.js --mode produce --url "$URL" --topic "$3" --count "$5" \
        --kinds delay --delay-ms 600000 --out "$T/$2.json" \
        && [ "$(json "$T/$2.json" acked)" = "$5" ] && pass "$5 messages due in 10 minutes stored" \
        || fail "produce to $3: $(cat "$T/$2.json" 2>/dev/null) $(tail -n 3 "$T/$2.err")"
}

# ---- 6. a namespace whose delayedDelivery policy is off delivers at once ---------------------
NSA="http://127.0.0.1:$(port_of sa webServicePort)/admin/v2/namespaces/public/nodelay"
NDT="persistent://public/nodelay/$TOPIC"
expect_http 204 "namespace public/nodelay" -X PUT "$NSA"
expect_http 204 "its delayedDelivery: active=false" -X POST -H 'Content-Type: application/json' \
    --data '{"tickTime":1000,"active":false}' "$NSA/delayedDelivery"
expect_http 200 "GET its delayedDelivery" "$NSA/delayedDelivery" \
    && { grep -q '"active":false' "$T/body" && pass "delayedDelivery reads back active=false" \
        || fail "delayedDelivery reads back $(cat "$T/body")"; }
subscribe s3 "$URL" "$NDT" nd
consume_and_send_later cnd p3 "$NDT" nd 10 30
wait_exit cnd 40 || fail "Shared consumer on public/nodelay exit $?: $(tail -n 3 "$T/cnd.err")"
ND=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
    console.log(`${j.received} ${j.messages.filter((m) => m.at > 0 && m.arrived < m.at - 300000).length}`)' "$T/cnd.json")
[ "$ND" = "10 10" ] && pass "delayed delivery off for the namespace: all 10 at once" \
    || fail "public/nodelay: received / at once: $ND (want 10 10)"

# ---- 7. a topic's own delayedDelivery wins over its namespace's ------------------------------
TDT="persistent://public/nodelay/$TOPIC-own"
TPA="http://127.0.0.1:$(port_of sa webServicePort)/admin/v2/persistent/public/nodelay/$TOPIC-own"
subscribe s4 "$URL" "$TDT" own
expect_http 204 "the topic's delayedDelivery: active=true" -X POST -H 'Content-Type: application/json' \
    --data '{"tickTime":1000,"active":true}' "$TPA/delayedDelivery"
expect_http 200 "GET its applied delayedDelivery" "$TPA/delayedDelivery?applied=true" \
    && { grep -q '"active":true' "$T/body" && pass "applied delayedDelivery is the topic's (active=true)" \
        || fail "applied delayedDelivery $(cat "$T/body"), want the topic's active=true"; }
consume_and_send_later cown p4 "$TDT" own 5 50
ADMIN="http://127.0.0.1:$(port_of sa webServicePort)/admin/v2/persistent/public/nodelay"
TOPIC0=$TOPIC
TOPIC="$TOPIC0-own"
V=$(wait_delayed own -eq 5 20) && pass "the topic's policy holds them (msgDelayed $V)" \
    || fail "msgDelayed $V on $TDT, want 5 (the topic's active=true over the namespace's false)"
expect_http 204 "DELETE the topic's delayedDelivery" -X DELETE "$TPA/delayedDelivery"
expect_http 200 "GET its applied delayedDelivery" "$TPA/delayedDelivery?applied=true" \
    && { grep -q '"active":false' "$T/body" && pass "after DELETE the namespace's applies (active=false)" \
        || fail "applied delayedDelivery after DELETE $(cat "$T/body"), want active=false"; }
TOPIC=$TOPIC0
kill_proc cown

stop_standalone sa
it_finish "delayed test" "delayed shared_spread_ms=${MIN:-?}..${MAX:-?}"
