#!/usr/bin/env bash
# zk.sh - run a throwaway standalone ZooKeeper for tests (Debian's `zookeeper` package).
#
#   tests/integration/zk.sh start DIR   start one (config, data and log under DIR) on a free
#                                       loopback port; prints the port; writes DIR/zk.pid and
#                                       DIR/zk.port. Starting again after a stop reuses the
#                                       port and the data (a restart: sessions survive).
#   tests/integration/zk.sh stop DIR    stop it (SIGTERM, then SIGKILL after 10 s)
#   tests/integration/zk.sh port DIR    print its port
#   tests/integration/zk.sh registered DIR S ID...
#                                       wait (at most S seconds) until every bookie ID
#                                       (host:port) holds its registration, an ephemeral node
#                                       /ledgers/available/ID (a read-only bookie's is one level
#                                       lower and does not count); prints the ones missing and
#                                       fails if some still are
#
# Environment: ZK_JAVA (default: java), ZK_CLASSPATH (default: /usr/share/java/zookeeper.jar,
# whose manifest lists its dependencies), ZK_START_TIMEOUT (seconds, default 60),
# ZK_TICK_MS (default 500: sessions may be as short as 2 ticks).
# Readiness is checked with the four-letter word "ruok", registrations with "dump" (sessions
# and their ephemeral nodes), over bash's /dev/tcp (the config whitelists every four-letter
# word, which ZooKeeper 3.5+ requires).
set -euo pipefail

die() { echo "zk.sh: $*" >&2; exit 1; }

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    # no python: probe random high ports until one refuses connections
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

fourlw() { # fourlw PORT WORD → the server's answer to a four-letter word (empty if none)
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf '%s' "$2" >&3 && timeout 2 cat <&3) 2>/dev/null || true
}

ruok() { # ruok PORT → 0 if the server answers imok
    [ "$(fourlw "$1" ruok)" = "imok" ]
}

registered() {
    local dir=$1 s=$2 port reg id missing deadline
    shift 2
    port=$(cat "$dir/zk.port") || die "no ZooKeeper in $dir"
    deadline=$((SECONDS + s))
    while :; do
        reg=$(fourlw "$port" dump | sed -n 's|^[[:space:]]*/ledgers/available/\([^/]*\)$|\1|p')
        missing=""
        for id in "$@"; do
            grep -qxF "$id" <<<"$reg" || missing="$missing $id"
        done
        [ -z "$missing" ] && return 0
        if [ $SECONDS -ge $deadline ]; then
            echo "not registered:$missing" >&2
            return 1
        fi
        sleep 0.1
    done
}

start() {
    local dir=$1
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null; then
        die "already running in $dir (pid $(cat "$dir/zk.pid"))"
    fi
    local port
    if [ -f "$dir/zk.port" ]; then port=$(cat "$dir/zk.port"); else port=$(free_port); fi
    cat >"$dir/zoo.cfg" <<EOF
tickTime=${ZK_TICK_MS:-500}
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
minSessionTimeout=$(( 2 * ${ZK_TICK_MS:-500} ))
maxSessionTimeout=60000
EOF
    echo "$port" >"$dir/zk.port"
    local java=${ZK_JAVA:-java} cp=${ZK_CLASSPATH:-/usr/share/java/zookeeper.jar}
    command -v "$java" >/dev/null 2>&1 || die "java not found (apt-get install default-jre-headless)"
    [ -r "${cp%%:*}" ] || die "${cp%%:*} not found (apt-get install zookeeper)"
    # setsid: its own process group, so that the caller's signals do not reach it
    setsid "$java" -Xmx256m -XX:+UseSerialGC -Dzookeeper.admin.enableServer=false \
        -Dzookeeper.4lw.commands.whitelist='*' -cp "$cp" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
        >>"$dir/zk.log" 2>&1 </dev/null &
    echo $! >"$dir/zk.pid"
    local pid=$! deadline=$((SECONDS + ${ZK_START_TIMEOUT:-60}))
    until ruok "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$dir/zk.log" >&2 || true
            rm -f "$dir/zk.pid"
            die "ZooKeeper exited during start (log: $dir/zk.log)"
        fi
        if [ $SECONDS -ge $deadline ]; then
            tail -n 30 "$dir/zk.log" >&2 || true
            stop "$dir"
            die "ZooKeeper did not answer ruok on port $port"
        fi
        sleep 0.2
    done
    echo "$port"
}

stop() {
    local dir=$1 pid
    [ -f "$dir/zk.pid" ] || return 0
    pid=$(cat "$dir/zk.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/zk.pid"
}

case "${1:-}" in
start) [ $# -eq 2 ] || die "usage: zk.sh start DIR"; start "$2" ;;
stop) [ $# -eq 2 ] || die "usage: zk.sh stop DIR"; stop "$2" ;;
port) [ $# -eq 2 ] || die "usage: zk.sh port DIR"; cat "$2/zk.port" ;;
registered) [ $# -ge 4 ] || die "usage: zk.sh registered DIR S ID..."; shift; registered "$@" ;;
*) die "usage: zk.sh start|stop|port DIR, zk.sh registered DIR S ID..." ;;
esac
