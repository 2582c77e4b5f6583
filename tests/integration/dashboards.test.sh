#!/usr/bin/env bash
# dashboards.test.sh - conf/grafana's dashboards and conf/prometheus's scrape configs against
# what magnetar really exposes (issue 16).
#
#   1. A standalone (port 0, statsUpdateFrequencyInSecs=1) with traffic: `magnetar client
#      produce` and a `consume` subscription on two topics, the consumer stopped half way so a
#      backlog stays. /metrics is saved once it shows per-topic rates above 0, subscription
#      backlogs and the ledger client's per-bookie add latency buckets (bounded wait).
#      A real bookie (`magnetar bookie` on a ZooKeeper, prometheusStatsHttpPort set, its
#      autorecovery on) written to by a broker with ensemble 1: its /metrics is saved once
#      the journal's add and fsync summaries count the adds (bounded wait), with the bookie
#      writable and the autorecovery's metrics present.
#   2. tests/console/dashboards.js checks every PromQL expression of every dashboard (panel
#      queries, template variables) names only metrics those answers expose, with labels
#      their samples carry; and that the ServiceMonitors and the scrape configs select the
#      broker and bookie Services of conf/kubernetes/cluster/ by their labels and ports.
#   3. The check can fail: a copy of the dashboard with one broker and one bookie metric
#      name changed and a copy of the ServiceMonitor with another port are each refused,
#      naming what is wrong.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init dashboards
need_magnetar
command -v node >/dev/null 2>&1 || { fail "node not found"; exit 1; }
if [ ! -d "$IT_TOP/tests/console/node_modules/yaml" ]; then
    (cd "$IT_TOP/tests/console" && PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund \
        --loglevel=error) || { fail "npm ci in tests/console"; exit 1; }
fi
TMO=30

start_magnetar sa standalone "brokerServicePort webServicePort" 60 -- \
    --set "dataDirectory=$T/data" --set brokerServicePort=0 --set webServicePort=0 \
    --set statsUpdateFrequencyInSecs=1 || exit 1
WEB="http://127.0.0.1:$(port_of sa webServicePort)"
SVC="pulsar://127.0.0.1:$(port_of sa brokerServicePort)"

# ---- 1. traffic, then /metrics -----------------------------------------------------------
for t in dash-a dash-b; do
    "$BIN" client --url "$SVC" consume "$t" -s dash-sub -n 50 >"$T/consume-$t.out" 2>&1 &
    register "consume-$t" $!
done
deadline=$((SECONDS + TMO))
until [ "$(curl -s --max-time 5 "$WEB/metrics" | grep -c '^pulsar_subscription_back_log{.*subscription="dash-sub"')" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || { fail "the subscriptions did not show in /metrics within $TMO s"; exit 1; }
    sleep 0.2
done
for t in dash-a dash-b; do
    "$BIN" client --url "$SVC" produce "$t" -m dash -n 3000 -r 100 >"$T/produce-$t.out" 2>&1 &
    register "produce-$t" $!
done
# per-topic rates above 0 (the statistics roll every second), backlogs once a consumer stopped
# at its 50, and the ledger client's buckets
ready() {
    curl -s --max-time 5 "$WEB/metrics" >"$T/metrics.txt" || return 1
    grep -qE '^pulsar_rate_in\{.*topic="persistent://public/default/dash-a"\} [1-9]' "$T/metrics.txt" &&
        grep -qE '^pulsar_subscription_back_log\{.*subscription="dash-sub".*\} [1-9]' "$T/metrics.txt" &&
        grep -qE '^pulsar_managedLedger_client_bookie_add_latency_seconds_bucket\{.*bookie=' "$T/metrics.txt"
}
deadline=$((SECONDS + TMO))
until ready; do
    [ $SECONDS -lt $deadline ] || { fail "/metrics did not show rates, backlogs and bookie buckets within $TMO s"; exit 1; }
    sleep 0.5
done
pass "/metrics after a short run: $(grep -vc '^#' "$T/metrics.txt") samples of $(grep -v '^#' "$T/metrics.txt" | sed 's/[{ ].*//' | sort -u | wc -l) metrics"

# a real bookie with its metrics port, and a broker writing to it alone
zk_start
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
start_bookie 1 --set prometheusStatsHttpPort="$MPORT" || exit 1
"$IT_DIR/zk.sh" registered "$T/zk" 30 "127.0.0.1:$(port_of bk1 bookiePort)" ||
    { fail "the bookie did not register within 30 s"; exit 1; }
start_zk_broker zb --set managedLedgerDefaultEnsembleSize=1 --set managedLedgerDefaultWriteQuorum=1 \
    --set managedLedgerDefaultAckQuorum=1 || exit 1
ZSVC="pulsar://127.0.0.1:$(port_of zb brokerServicePort)"
timeout "$TMO" "$BIN" client --url "$ZSVC" produce dash-bk -m x -n 40 -db >"$T/produce-bk.out" 2>&1 ||
    fail "produce through the ZooKeeper broker: $(tail -c 300 "$T/produce-bk.out")"
bk_ready() {
    curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" >"$T/bookie-metrics.txt" || return 1
    local adds syncs
    adds=$(sed -n 's/^bookie_journal_JOURNAL_ADD_ENTRY_count{success="true"} //p' "$T/bookie-metrics.txt")
    syncs=$(sed -n 's/^bookie_journal_JOURNAL_SYNC_count{success="true"} //p' "$T/bookie-metrics.txt")
    [ "${adds:-0}" -ge 40 ] && [ "${syncs:-0}" -ge 1 ] &&
        grep -qx 'bookie_SERVER_STATUS 1' "$T/bookie-metrics.txt" &&
        grep -q '^replication_auditor_NUM_UNDER_REPLICATED_LEDGERS ' "$T/bookie-metrics.txt" &&
        grep -qE '^magnetar_bookie_disk_usage\{dir="ledger"\} 0\.[0-9]+' "$T/bookie-metrics.txt"
}
deadline=$((SECONDS + TMO))
until bk_ready; do
    [ $SECONDS -lt $deadline ] || { fail "the bookie's /metrics did not count the 40 adds within $TMO s: $(head -c 600 "$T/bookie-metrics.txt")"; break; }
    sleep 0.5
done
bk_ready && pass "bookie /metrics: $(sed -n 's/^bookie_journal_JOURNAL_ADD_ENTRY_count{success="true"} //p' "$T/bookie-metrics.txt") journal adds, $(sed -n 's/^bookie_journal_JOURNAL_SYNC_count{success="true"} //p' "$T/bookie-metrics.txt") fsyncs, p99 add $(sed -n 's/^bookie_journal_JOURNAL_ADD_ENTRY{success="true",quantile="0.99"} //p' "$T/bookie-metrics.txt") ms, writable, autorecovery metrics, disk usage"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/nope")
[ "$code" = 404 ] && pass "bookie metrics port: another path 404" || fail "GET /nope on the bookie's metrics port: $code"

# ---- 2. the dashboards and scrape configs --------------------------------------------------
if (cd "$IT_TOP/tests/console" && timeout 60 node dashboards.js --metrics "$T/metrics.txt,$T/bookie-metrics.txt") >"$T/check.out" 2>&1; then
    pass "conf/grafana and conf/prometheus match what magnetar exposes"
else
    fail "dashboards.js: exit $?"
fi
grep -E '^(PASS|FAIL): ' "$T/check.out" | sed 's/^/  /'

# ---- 3. the check can fail ---------------------------------------------------------------
mkdir -p "$T/top/conf/grafana" "$T/top/conf/prometheus" "$T/top/conf/kubernetes"
cp -r "$IT_TOP/conf/kubernetes/cluster" "$T/top/conf/kubernetes/"
cp "$IT_TOP"/conf/prometheus/*.yaml "$T/top/conf/prometheus/"
sed -e 's/pulsar_subscription_back_log{/pulsar_subscription_backlog{/' \
    -e 's/bookie_journal_JOURNAL_SYNC{/bookie_journal_JOURNAL_FSYNC{/' "$IT_TOP/conf/grafana/magnetar.json" \
    >"$T/top/conf/grafana/magnetar.json"
sed -i 's/- port: http$/- port: metrics/' "$T/top/conf/prometheus/servicemonitor.yaml"
(cd "$IT_TOP/tests/console" && timeout 60 node dashboards.js --metrics "$T/metrics.txt,$T/bookie-metrics.txt" --top "$T/top") >"$T/broken.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q '^FAIL: .*metric pulsar_subscription_backlog is not exposed' "$T/broken.out" &&
    grep -q '^FAIL: .*metric bookie_journal_JOURNAL_FSYNC is not exposed' "$T/broken.out"; then
    pass "a dashboard naming a broker or bookie metric magnetar does not expose is refused"
else
    fail "the broken dashboard: exit $rc, $(grep FAIL "$T/broken.out" | head -3)"
fi
if grep -q '^FAIL: servicemonitor.yaml: ServiceMonitor' "$T/broken.out"; then
    pass "a ServiceMonitor on a port the broker Service does not have is refused"
else
    fail "the broken ServiceMonitor was not refused"
fi

for t in dash-a dash-b; do
    stop_proc "produce-$t" 10
    stop_proc "consume-$t" 10
done
stop_clean 20 sa zb bk1
zk_stop
check_sanitizers
exit "$IT_FAILED"
