#!/usr/bin/env bash
# perf.sh - integration test of `magnetar perf` against a real standalone broker.
#
# Starts `magnetar standalone` on free ports (port 0 + --port-file), runs `perf consume`
# (Exclusive subscription, created before anything is produced) in the background and
# `perf produce -m 20000` against one topic, then checks both JSON summaries (20000 sent and
# acked, 20000 received), that its event loop holds no timerfd, and that bad input fails
# fast: an unknown flag and an unreachable
# broker each exit non-zero with exactly one line on stderr, within the timeout.
# Every process runs under `timeout`; everything started here is stopped by PID.
# Prints PASS/FAIL lines; exits non-zero on any failure (logs are printed then).
#
# Environment: MAGNETAR_BIN (default ./magnetar), PERF_IT_CONF (default conf/standalone.yaml
# of this repository), PERF_MESSAGES (default 20000). The broker treats every MAGNETAR_<key>
# variable as configuration, so MAGNETAR_BIN is removed from its environment.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${MAGNETAR_BIN:-./magnetar}
CONF=${PERF_IT_CONF:-$HERE/../../conf/standalone.yaml}
unset MAGNETAR_BIN
N=${PERF_MESSAGES:-20000}
T=$(mktemp -d "${TMPDIR:-/tmp}/magnetar-perf-it.XXXXXX")
BROKER_PID=
CONSUMER_PID=
FAILED=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }

cleanup() {
    [ -n "$CONSUMER_PID" ] && kill "$CONSUMER_PID" 2>/dev/null
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$BROKER_PID" 2>/dev/null
    fi
    if [ "$FAILED" -ne 0 ]; then
        for f in "$T"/*.log "$T"/*.out "$T"/*.err; do
            [ -s "$f" ] || continue
            echo "----- $f"
            tail -n 40 "$f"
        done
    fi
    rm -rf "$T"
}
trap cleanup EXIT

if [ ! -x "$BIN" ]; then
    echo "FAIL: magnetar binary not found at $BIN (set MAGNETAR_BIN)"
    exit 1
fi

# JSON check: node if available, else python3. Prints the value of a top-level key.
json_get() {
    local file=$1 key=$2
    if command -v node >/dev/null 2>&1; then
        node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
                 const v = j[process.argv[2]];
                 if (v === undefined) process.exit(3);
                 console.log(v);' "$file" "$key"
    else
        python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
if sys.argv[2] not in j: sys.exit(3)
print(j[sys.argv[2]])' "$file" "$key"
    fi
}

# --- broker ---------------------------------------------------------------------------
mkdir -p "$T/data"
timeout 300 "$BIN" standalone --config "$CONF" --set brokerServicePort=0 \
    --set webServicePort=0 --set dataDirectory="$T/data" --port-file "$T/ports" \
    >"$T/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
    [ -s "$T/ports" ] && break
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
done
PORT=$(sed -n 's/^brokerServicePort=//p' "$T/ports" 2>/dev/null)
if [ -z "$PORT" ]; then
    fail "broker did not start (no port file)"
    exit 1
fi
pass "broker started on port $PORT"
URL="pulsar://127.0.0.1:$PORT"
TOPIC="perf-it-$$"

# --- consumer first, so its subscription exists before the first message ---------------
timeout 120 "$BIN" perf consume -u "$URL" -s perf-it-sub -st Exclusive -p Earliest -m "$N" \
    -i 1 --json "$T/consume.json" "$TOPIC" >"$T/consume.out" 2>"$T/consume.err" &
CONSUMER_PID=$!
for _ in $(seq 150); do
    grep -q "subscribed" "$T/consume.out" 2>/dev/null && break
    kill -0 "$CONSUMER_PID" 2>/dev/null || break
    sleep 0.1
done
if grep -q "subscribed" "$T/consume.out" 2>/dev/null; then
    pass "consumer subscribed"
else
    fail "consumer did not subscribe"
    exit 1
fi
# The perf loop keeps precise timers without a timerfd (on epoll libevent re-arms one with
# a timerfd_settime call every loop turn: most of the client's CPU per message).
PERF_PID=$(pgrep -P "$CONSUMER_PID" | head -n 1)
if [ -z "$PERF_PID" ]; then
    fail "perf consume process not found under its timeout ($CONSUMER_PID)"
elif ls -l "/proc/$PERF_PID/fd" 2>/dev/null | grep -q "timerfd"; then
    fail "perf consume holds a timerfd: its loop re-arms a timer by syscall every turn"
else
    pass "perf loop without a timerfd"
fi

# --- producer -------------------------------------------------------------------------
timeout 120 "$BIN" perf produce -u "$URL" -r 0 -m "$N" -i 1 --json "$T/produce.json" "$TOPIC" \
    >"$T/produce.out" 2>"$T/produce.err"
rc=$?
if [ "$rc" -eq 0 ]; then pass "perf produce exited 0"; else fail "perf produce exited $rc"; fi

wait "$CONSUMER_PID"
rc=$?
CONSUMER_PID=
if [ "$rc" -eq 0 ]; then pass "perf consume exited 0"; else fail "perf consume exited $rc"; fi

sent=$(json_get "$T/produce.json" messages_sent 2>/dev/null)
acked=$(json_get "$T/produce.json" messages_acked 2>/dev/null)
received=$(json_get "$T/consume.json" messages_received 2>/dev/null)
if [ -n "$sent" ] && [ -n "$acked" ]; then pass "produce JSON parses"; else fail "produce JSON"; fi
if [ -n "$received" ]; then pass "consume JSON parses"; else fail "consume JSON"; fi
if [ "$sent" = "$N" ] && [ "$acked" = "$N" ]; then
    pass "producer sent and acked $N"
else
    fail "producer sent '$sent', acked '$acked', want $N"
fi
if [ "$received" = "$N" ]; then
    pass "consumer received $N"
else
    fail "consumer received '$received', want $N"
fi
grep -h "summary" "$T/produce.out" "$T/consume.out"

# --- bad input fails fast with one line on stderr -----------------------------------------
check_bad() {
    local what=$1
    shift
    local start end rc lines
    start=$(date +%s)
    timeout 20 "$BIN" perf "$@" >"$T/bad.out" 2>"$T/bad.err"
    rc=$?
    end=$(date +%s)
    lines=$(wc -l <"$T/bad.err")
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$lines" -eq 1 ] && [ $((end - start)) -le 11 ]
    then
        pass "$what: exit $rc, stderr: $(cat "$T/bad.err")"
    else
        fail "$what: exit $rc, $lines stderr line(s), $((end - start)) s"
        cat "$T/bad.err"
    fi
}
check_bad "unknown flag" produce --no-such-flag "$TOPIC"
check_bad "missing value" produce -u "$URL" "$TOPIC" -r
check_bad "bad URL" produce -u "http://127.0.0.1:$PORT" "$TOPIC"
# A closed port: the broker's own port after binding is taken, so use port 1.
check_bad "unreachable broker (produce)" produce -u "pulsar://127.0.0.1:1" "$TOPIC"
check_bad "unreachable broker (consume)" consume -u "pulsar://127.0.0.1:1" "$TOPIC"

if [ "$FAILED" -ne 0 ]; then
    echo "FAIL: perf integration test"
    exit 1
fi
echo "PASS: perf integration test"
exit 0
