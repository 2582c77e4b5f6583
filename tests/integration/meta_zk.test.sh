#!/usr/bin/env bash
# meta_zk.sh - the metadata store against a real ZooKeeper.
#
#   tests/integration/meta_zk.test.sh [BUILD_DIR]   (default: $BUILD_DIR, else the current directory)
#
# 1. Starts a throwaway ZooKeeper (zk.sh) and runs the unit contract suite with
#    MAGNETAR_TEST_ZK set, so the zk backend runs every contract test.
# 2. Session handling with a long-lived client (check_meta probe), which prints its session
#    events and re-creates an ephemeral key on each CONNECTED:
#    - ZooKeeper restarted (same port and data, within the session timeout):
#      DISCONNECTED then RECONNECTED (the same session);
#    - the client frozen (SIGSTOP) for longer than its session timeout: after SIGCONT,
#      EXPIRED, then a new session (CONNECTED) and the ephemeral key created again.
# Needs: java and Debian's zookeeper package (see zk.sh), a build with check_meta.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-${BUILD_DIR:-.}}" && pwd)
check="$build/tests/unit/check_meta"
[ -x "$check" ] || { echo "meta_zk.sh: $check not built (make tests/unit/check_meta)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/meta_zk.XXXXXX")
probe_pid=""
cleanup() {
    local rc=$?
    [ -n "$probe_pid" ] && kill -CONT "$probe_pid" 2>/dev/null && kill "$probe_pid" 2>/dev/null
    "$here/zk.sh" stop "$dir" || true
    if [ $rc -ne 0 ]; then
        echo "--- probe output" >&2; cat "$dir/probe.out" 2>/dev/null >&2 || true
        echo "--- probe log (tail)" >&2; tail -n 40 "$dir/probe.log" 2>/dev/null >&2 || true
        echo "--- zookeeper log (tail)" >&2; tail -n 40 "$dir/zk.log" 2>/dev/null >&2 || true
        echo "meta_zk.sh: FAILED (files kept in $dir)" >&2
    else
        rm -rf "$dir"
    fi
    exit $rc
}
trap cleanup EXIT

port=$("$here/zk.sh" start "$dir")
echo "meta_zk.sh: ZooKeeper on 127.0.0.1:$port"

echo "meta_zk.sh: contract suite against ZooKeeper"
MAGNETAR_TEST_ZK="127.0.0.1:$port" CK_FORK=no CK_DEFAULT_TIMEOUT=60 timeout 600 "$check"

# wait_for N "LINE" SECONDS: until probe.out holds LINE at least N times
wait_for() {
    local n=$1 line=$2 deadline=$((SECONDS + $3))
    while [ "$(grep -cx "$line" "$dir/probe.out" 2>/dev/null || true)" -lt "$n" ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "meta_zk.sh: no '$line' (#$n) within $3 s" >&2
            return 1
        fi
        sleep 0.2
    done
}

echo "meta_zk.sh: session events"
session_ms=4000
"$check" probe "zk:127.0.0.1:$port" 120 "$session_ms" >"$dir/probe.out" 2>"$dir/probe.log" &
probe_pid=$!
wait_for 1 "session CONNECTED" 30
wait_for 1 "ephemeral ok" 30

"$here/zk.sh" stop "$dir"
wait_for 1 "session DISCONNECTED" 30
"$here/zk.sh" start "$dir" >/dev/null
wait_for 1 "session RECONNECTED" 60
echo "meta_zk.sh: restart: DISCONNECTED, RECONNECTED - ok"

kill -STOP "$probe_pid"
sleep $(( session_ms * 3 / 1000 ))
kill -CONT "$probe_pid"
wait_for 1 "session EXPIRED" 60
wait_for 2 "session CONNECTED" 60
wait_for 2 "ephemeral ok" 30
echo "meta_zk.sh: expiry: EXPIRED, new session CONNECTED, ephemeral re-created - ok"

kill "$probe_pid" 2>/dev/null || true
wait "$probe_pid" 2>/dev/null || true
probe_pid=""
echo "meta_zk.sh: PASS"
