#!/usr/bin/env bash
# bench-rss.sh - does the broker's memory stay bounded while a producer floods a topic
# whose only consumer has stopped reading? Prints figures, asserts nothing.
#
# Starts its own `magnetar standalone` on free loopback ports with a temporary data
# directory, runs tests/compat/lib/flood.js against it (raw consumer: SUBSCRIBE, FLOW 1000,
# then never reads its socket; raw producer floods 1 KiB messages), which prints one row
# per second: time, messages sent, receipts, broker VmRSS. Stops the broker by PID.
#
# usage: scripts/bench-rss.sh [SECONDS]        (default 20)
# env:   MAGNETAR_BIN (default ./magnetar), FLOOD_SIZE (1024), FLOOD_WINDOW (1000),
#        FLOOD_CONSUMER (stalled | none: no subscription, for comparison)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib/common.sh"
secs=${1:-20}
bin=${MAGNETAR_BIN:-./magnetar}
[ -x "$bin" ] || bin=$top/magnetar
[ -x "$bin" ] || { echo "bench-rss: no magnetar binary (set MAGNETAR_BIN)" >&2; exit 1; }
command -v node >/dev/null || { echo "bench-rss: node is required" >&2; exit 1; }

work=$(mktemp -d /tmp/magnetar-rss.XXXXXX)
pid=""
trap 'stop_pid "$pid"; rm -rf "$work"' EXIT

# The broker reads MAGNETAR_<key> variables as configuration and refuses unknown keys.
env -u MAGNETAR_BIN -u MAGNETAR_URL -u MAGNETAR_ADMIN -u MAGNETAR_PID \
  "$bin" standalone --config "$top/conf/standalone.yaml" --set brokerServicePort=0 \
  --set webServicePort=0 --set "dataDirectory=$work/data" --port-file "$work/ports" \
  >"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/ports" ] && grep -q '^webServicePort=' "$work/ports" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
bport=$(sed -n 's/^brokerServicePort=//p' "$work/ports" 2>/dev/null)
if [ -z "$bport" ]; then
  echo "bench-rss: broker did not start; its log:" >&2
  cat "$work/broker.log" >&2
  exit 1
fi
echo "bench-rss: broker $bin pid $pid on 127.0.0.1:$bport; idle VmRSS $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
node "$top/tests/compat/lib/flood.js" --url "pulsar://127.0.0.1:$bport" --pid "$pid" --seconds "$secs" \
  --size "${FLOOD_SIZE:-1024}" --window "${FLOOD_WINDOW:-1000}" --consumer "${FLOOD_CONSUMER:-stalled}"
rc=$?
if kill -0 "$pid" 2>/dev/null; then
  echo "bench-rss: broker still running; final VmRSS $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
else
  echo "bench-rss: broker exited during the flood; last log lines:"
  tail -n 20 "$work/broker.log"
fi
exit $rc
