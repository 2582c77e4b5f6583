#!/usr/bin/env bash
# admin-http.test.sh - limits and timeouts of the admin HTTP server (issue 9, item 5).
#
# A standalone runs with httpMaxRequestHeaderSize=8192 (the default) and short timeouts
# (httpRequestReadTimeoutSeconds=2, httpIdleTimeoutSeconds=3); lib/admin-http.js talks to
# its admin port over raw sockets and checks, each with a bounded wait:
#   - a header just under the limit is served; 1 MB and 64 MB headers are answered 431 (or
#     the connection is closed) at once, while another client is served meanwhile;
#   - more than 100 header fields: 431; 92 fields: served;
#   - a partial head that stalls, a head dripped a byte at a time, a body that never ends:
#     408 (or the close) after the read timeout;
#   - an idle kept-alive connection and a silent one are closed after the idle timeout;
#   - 100 stalled connections are all closed; no admin request is left open; the refusals
#     are counted (magnetar_admin_refused_total); descriptors return to where they were.
# The broker must stay up, exit 0 on SIGTERM and log no sanitizer report.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init admin-http
need_bin

READ_S=2
IDLE_S=3
start_magnetar sa standalone "webServicePort" 60 -- --config "$IT_TOP/conf/standalone.yaml" \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa" \
    --set httpRequestReadTimeoutSeconds=$READ_S --set httpIdleTimeoutSeconds=$IDLE_S || exit 1

if timeout -s KILL 300 node "$IT_DIR/lib/admin-http.js" --port "$(port_of sa webServicePort)" \
    --read-timeout $READ_S --idle-timeout $IDLE_S --header-limit 8192 >"$T/http.out" 2>&1; then
    pass "admin HTTP limits and timeouts"
else
    fail "admin HTTP limits and timeouts"
fi
grep -E '^(PASS|FAIL|FIGURES)' "$T/http.out" | sed 's/^/  /'

alive sa || fail "the standalone died"
stop_proc sa 20
rc=$?
[ $rc -eq 0 ] || fail "standalone exit code $rc on SIGTERM"
check_sanitizers
exit "$IT_FAILED"
