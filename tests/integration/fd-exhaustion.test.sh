#!/usr/bin/env bash
# fd-exhaustion.test.sh - running out of descriptors pauses accepting: no busy loop, no log
# flood, and what the broker already serves keeps working.
#
# The standalone starts with a hard descriptor limit of 256 and a soft one of 100: it must
# raise the soft limit to the hard one (checked in /proc/PID/limits). It runs two in-process
# bookies, every ledger on both
# (E=Qw=Qa=2: no spare bookie to replace one it cannot reach). A probe producer is created
# before the first flood but sends its first message only once that flood holds the
# process's descriptors: the ledger client then has to open its connections to the bookies
# in the middle of the flood (the descriptor reserve), and with no spare bookie a failed
# connect is a failed send. From then on it publishes one message every 20 ms to the end.
# For each listening port in turn (Pulsar protocol, admin HTTP, bookie):
#   - 300 idle connections are opened and held for FLOOD_S seconds: more than the process
#     may open. Over that window the broker's CPU time (utime+stime from /proc/PID/stat)
#     stays under CPU_BOUND_CS hundredths of a second (a loop spinning on EMFILE burns about
#     one core: ~FLOOD_S seconds), and the log gains at most LOG_BOUND lines about
#     accepting;
#   - the flood's sockets are closed; then a new Pulsar client gets CONNECTED and the admin
#     port answers 200, each within a deadline.
# At the end: the probe never saw a failed send and kept publishing throughout.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init fd-exhaustion
need_bin

FLOOD=300
FLOOD_S=5
CPU_BOUND_CS=150 # 1.5 s of CPU in 5 s: generous for ASan builds on a shared machine
LOG_BOUND=10
NOFILE=256

# The standalone, with its descriptor limit lowered (a subshell, so only it is affected).
start_sa() {
    IT_NOFILE="100 $NOFILE" start_magnetar sa standalone "bookiePort" 60 -- \
        --set brokerServicePort=0 --set webServicePort=0 --set bookiePort=0 \
        --set dataDirectory="$T/sa" --set standaloneBookies=2 \
        --set managedLedgerDefaultEnsembleSize=2 --set managedLedgerDefaultWriteQuorum=2 \
        --set managedLedgerDefaultAckQuorum=2
}
start_sa || exit 1
PID=$(pid_of sa)
BPORT=$(port_of sa brokerServicePort)
WPORT=$(port_of sa webServicePort)
KPORT=$(port_of sa bookiePort)
limit=$(awk '/Max open files/ {print $4 "/" $5}' "/proc/$PID/limits")
note "standalone pid $PID: descriptor limit (soft/hard) $limit, ports $BPORT/$WPORT/$KPORT"
if [ "$limit" = "$NOFILE/$NOFILE" ]; then
    pass "the soft descriptor limit was raised to the hard one ($limit)"
else
    fail "descriptor limit (soft/hard) $limit, want $NOFILE/$NOFILE"
fi

start_node probe 600 lib/probe-produce.js --url "pulsar://127.0.0.1:$BPORT" \
    --topic persistent://public/default/fd-probe --out "$T/probe.json" --stop-file "$T/probe.stop" \
    --interval-ms 20 --deadline-s 500 --start-file "$T/probe.start"
if ! wait_progress probe "$T/probe.json.progress" ready 1 30; then
    fail "the probe producer was not created: $(cat "$T/probe.json.progress" 2>/dev/null)"
    exit 1
fi

cpu_cs() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
accept_lines() { grep -ciE 'accept' "$T/sa.log"; }

# connect_ok: a new Pulsar client gets CONNECTED within 20 s
connect_ok() {
    local f="$T/check.$1"
    rm -f "$f" "$f.release"
    start_node "check$1" 60 lib/conn-flood.js --port "$BPORT" --count 1 --pulsar \
        --status "$f" --hold-file "$f.release" --connect-timeout-ms 20000 --deadline-s 50
    local deadline=$((SECONDS + 20)) ok=1
    until [ "$(kv "$f" connected_answers)" = 1 ]; do
        [ $SECONDS -lt $deadline ] || { ok=0; break; }
        sleep 0.1
    done
    touch "$f.release"
    wait_exit "check$1" 10 >/dev/null
    [ $ok = 1 ]
}

# admin_ok: the admin port answers 200 within 20 s
admin_ok() {
    local deadline=$((SECONDS + 20)) code
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 \
            "http://127.0.0.1:$WPORT/admin/v2/brokers/ready")
        [ "$code" = 200 ] && return 0
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

flood_port() { # NAME PORT
    local name=$1 port=$2 f="$T/flood.$1"
    local acked0 cpu0 cpu1 lines0 lines1
    acked0=$(kv "$T/probe.json.progress" acked)
    lines0=$(accept_lines)
    cpu0=$(cpu_cs)
    start_node "flood$name" 120 lib/conn-flood.js --port "$port" --count "$FLOOD" \
        --status "$f" --hold-file "$f.release" --connect-timeout-ms 3000 --deadline-s 100
    if [ ! -e "$T/probe.start" ]; then
        # the probe's first send waits until the flood holds the descriptors
        local n deadline=$((SECONDS + 10))
        while n=$(ls "/proc/$PID/fd" | wc -l) && [ "$n" -lt $((NOFILE - 40)) ] &&
            [ $SECONDS -lt $deadline ]; do
            sleep 0.1
        done
        note "$n descriptors open: the probe starts sending"
        touch "$T/probe.start"
    fi
    sleep "$FLOOD_S" # the measurement window itself
    cpu1=$(cpu_cs)
    lines1=$(accept_lines)
    note "$name flood: $(cat "$f"); $(ls "/proc/$PID/fd" | wc -l) descriptors open"
    echo "figure: $name flood of $FLOOD connections for ${FLOOD_S} s: broker CPU $((cpu1 - cpu0)) cs, $((lines1 - lines0)) accept log lines"
    if [ $((cpu1 - cpu0)) -lt $CPU_BOUND_CS ]; then
        pass "$name flood: broker CPU $((cpu1 - cpu0)) cs in ${FLOOD_S} s (bound $CPU_BOUND_CS)"
    else
        fail "$name flood: broker CPU $((cpu1 - cpu0)) cs in ${FLOOD_S} s (bound $CPU_BOUND_CS): busy loop"
    fi
    if [ $((lines1 - lines0)) -le $LOG_BOUND ]; then
        pass "$name flood: $((lines1 - lines0)) log lines about accepting (bound $LOG_BOUND)"
    else
        fail "$name flood: $((lines1 - lines0)) log lines about accepting (bound $LOG_BOUND)"
        grep -iE 'accept' "$T/sa.log" | tail -n 3
    fi
    if [ "$(kv "$T/probe.json.progress" acked)" -gt "$acked0" ] &&
        [ "$(kv "$T/probe.json.progress" failed)" = 0 ]; then
        pass "$name flood: the probe's sends kept succeeding ($(cat "$T/probe.json.progress"))"
    else
        fail "$name flood: the probe stalled or failed ($(cat "$T/probe.json.progress"))"
    fi
    touch "$f.release"
    wait_exit "flood$name" 20 >/dev/null
    if connect_ok "$name"; then
        pass "$name flood over: a new Pulsar client gets CONNECTED"
    else
        fail "$name flood over: a new Pulsar client got no CONNECTED within 20 s"
    fi
    if admin_ok; then
        pass "$name flood over: the admin port answers 200"
    else
        fail "$name flood over: the admin port did not answer 200 within 20 s"
    fi
}

flood_port pulsar "$BPORT"
flood_port admin "$WPORT"
flood_port bookie "$KPORT"

acked_before=$(kv "$T/probe.json.progress" acked)
wait_progress probe "$T/probe.json.progress" acked $((acked_before + 20)) 20 ||
    fail "the probe stopped publishing after the floods"
touch "$T/probe.stop"
wait_exit probe 30 >/dev/null
if [ "$(json "$T/probe.json" failed)" = 0 ] && [ "$(json "$T/probe.json" acked)" -gt 0 ]; then
    pass "probe: $(json "$T/probe.json" acked) sends acknowledged, none failed, slowest $(json "$T/probe.json" maxMs) ms"
else
    fail "probe: $(cat "$T/probe.json")"
fi
echo "figure: probe slowest send $(json "$T/probe.json" maxMs) ms"
check_sanitizers
stop_proc sa
exit 0
