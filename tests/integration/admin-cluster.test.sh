#!/usr/bin/env bash
# admin-cluster.test.sh - the admin API of a 2-broker cluster (issue 9, item 9).
#
# One ZooKeeper (zk.sh), two `magnetar bookie` and two `magnetar broker` processes, all on
# their defaults (managedLedgerStore bookkeeper, E=Qw=Qa=2) apart from ports and addresses.
# tests/compat/admin.test.js runs against each broker in turn (MAGNETAR_ADMIN the broker,
# MAGNETAR_ADMIN_PEER the other one): every admin path with Pulsar's statuses and bodies,
# following 307 redirects as pulsar-admin does, plus its cluster test: topics created,
# read, unloaded and deleted through either broker on bundles nobody owns yet are served or
# redirected at once (never "503 retry"), each call taking effect exactly once; partitioned
# topics whose partitions are served by both brokers; no admin request left unanswered.
# Both brokers must stay up and exit 0 on SIGTERM; no sanitizer report.
# Environment: MAGNETAR_BIN (the binary).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init admin-cluster
need_bin

bk_cluster_start 2
for i in 1 2; do
    start_zk_broker "br$i" --set keepAliveIntervalSeconds=2 || exit 1
done
pass "ZooKeeper, 2 bookies and 2 brokers up"

admin_url() { echo "http://127.0.0.1:$(port_of "$1" webServicePort)"; }
for pair in "br1 br2" "br2 br1"; do
    set -- $pair
    if (cd "$IT_TOP/tests/compat" && MAGNETAR_URL="pulsar://127.0.0.1:$(port_of "$1" brokerServicePort)" \
        MAGNETAR_ADMIN="$(admin_url "$1")" MAGNETAR_ADMIN_PEER="$(admin_url "$2")" \
        MAGNETAR_PID="$(pid_of "$1")" timeout -s KILL 900 node --test admin.test.js) \
        >"$T/admin-$1.out" 2>&1; then
        pass "admin.test.js against $1 (peer $2): $(grep -E '^# (pass|fail)' "$T/admin-$1.out" | tr '\n' ' ')"
    else
        fail "admin.test.js against $1 (peer $2):"
        grep -E '^not ok|error:|HTTP [0-9]+' "$T/admin-$1.out" | head -n 40
    fi
done

for n in br1 br2; do alive "$n" || fail "broker $n died"; done
stop_clean 30 br1 br2 bk1 bk2
check_sanitizers
[ "$IT_FAILED" -eq 0 ] && pass "admin API of a 2-broker cluster"
exit "$IT_FAILED"
