#!/usr/bin/env bash
# bench.sh - magnetar measured side by side with Redis Streams and NATS JetStream, next to
# this machine's physical limits, in one run on loopback with the real disk.
# Not part of `make check`; reports figures, asserts nothing. scripts/bench/README.md
# explains every number.
#
#   scripts/bench.sh [--quick] [--seconds S] [--out FILE] [--bin MAGNETAR | --head]
#                    [--dir DIR] [--no-install] [--keep] [--catchup-mb MB]
#                    [--pulsar-perf PATH]
#
#   --quick        smoke run (~2 min): 3 s measurements, shorter probes, 3 start-ups
#   --seconds S    length of each throughput / latency measurement (10; --quick: 3)
#   --out FILE     raw results as JSON (default scripts/bench/results-<date>.json)
#   --bin FILE     magnetar binary to measure (default: scripts/build.sh, -O2 -g, no
#                  sanitizers, into $BUILD_DIR or build/)
#   --head         build the last commit (git archive HEAD into the work directory) instead
#                  of the work tree, which may hold someone's unfinished change
#   --dir DIR      parent of the work directory (default /var/tmp; must be the real disk,
#                  not tmpfs: every system here writes its log there)
#   --no-install   do not apt-get install the peers and tools (default as root: install
#                  what is missing from Debian)
#   --keep         keep the work directory (data, logs, raw JSON of every run)
#   --catchup-mb MB  backlog written before each catch-up read (2048; --quick: 128)
#   --pulsar-perf PATH  also drive the standalone with the official C++ client's
#                  perfProducer (pulsar-client-cpp perf/perfProducer) at full rate and at 50%,
#                  beside `magnetar perf`; skipped when not given
#
# Parts, in this order (the group-commit probe runs before and after each system):
#   4. limits: fio 4 KiB and 64 KiB write+fdatasync, ideal group-commit log (gc_probe.c),
#      iperf3 loopback TCP
#   1. magnetar standalone, durable (managedLedgerStore=bookkeeper, journalSyncData=true);
#      then 1 KiB over pulsar+ssl:// to the same process (the cost of TLS); end-to-end
#      latency; the official perfProducer (--pulsar-perf); restarted: many topics (1,000
#      topics, one producer each, fixed total rate: p99 and RSS per topic); catch-up read
#   2. magnetar 1 broker + 3 bookies (+ ZooKeeper), E=3 Qw=2 Qa=2; catch-up read
#   3. Redis Streams (appendonly yes, appendfsync always), XADD over 1 and 10 connections;
#      NATS JetStream (nats-server 2.9 -js, file store); end-to-end latency and catch-up
#      read of each (Redis with 10 connections)
#   5. footprint: magnetar standalone beside nats-server -js: idle RSS, RSS under load,
#      start-to-ready, binary size
# For every system and message size (1 KiB, 100 B): max throughput with ~1000 publishes
# outstanding, then latency at 50% of that rate. magnetar is driven by `magnetar perf
# produce` (batching on: -bm 1000 -bb 131072 -b 1), Redis by redis_xadd.c (hiredis), NATS
# by nats_js_pub.c (libnats); all three keep ~1000 publishes outstanding.
# End-to-end latency (1 KiB, 50% of the system's own max): one consumer receives while the
# publisher runs; latency is publish -> receipt: magnetar perf consume on a Shared
# subscription (now - MessageMetadata.publish_time, ms resolution), redis_xread.c
# (XREADGROUP BLOCK) and nats_js_sub.c (pull consumer), which read the send time the peer
# publishers stamp in each payload. Catch-up read: --catchup-mb of 1 KiB messages written
# at full speed, then one consumer drains them from the start (magnetar: Earliest, after a
# restart of the broker, so nothing is in its cache and every entry is read from the
# bookies; the peers read their backlogs as they are: Redis from memory, JetStream from its
# file store); the figure is MB/s from the first message to the last.
# If the magnetar build has no "bookkeeper" managed-ledger store yet, magnetar runs with the
# memory store and the table says, in its durability column, that nothing is on disk.
#
# Every server gets a free loopback port and a directory under the work directory, runs
# under a time bound and is stopped by PID (trap on exit). No MAGNETAR_* variable reaches a
# magnetar process (magnetar reads them as configuration).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib/common.sh"
here=$top/scripts/bench
QUICK=0 SECS= OUT= BIN= PARENT=/var/tmp INSTALL=1 KEEP=0 HEAD=0 CU_MB= PULSAR_PERF=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --seconds) SECS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --dir) PARENT=$2; shift ;;
    --head) HEAD=1 ;;
    --no-install) INSTALL=0 ;;
    --keep) KEEP=1 ;;
    --catchup-mb) CU_MB=$2; shift ;;
    --pulsar-perf) PULSAR_PERF=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# magnetar treats every MAGNETAR_* variable as a config key: none may reach it.
for v in $(compgen -e | grep '^MAGNETAR_' || true); do unset "$v"; done

if [ "$QUICK" = 1 ]; then
  : "${SECS:=3}" "${CU_MB:=128}"; FIO_S=2; IPERF_S=2; FSYNC_S=1; GC_S=2; READY_N=3; IDLE_S=1.5
else
  : "${SECS:=10}" "${CU_MB:=2048}"; FIO_S=5; IPERF_S=5; FSYNC_S=1; GC_S=3; READY_N=5; IDLE_S=2
fi
CU_N=$((CU_MB * 1024)) # 1 KiB messages in a catch-up backlog
# many topics: this many topics, one producer each, at this total msg/s (1 KiB)
MANY_N=1000 MANY_RATE=10000
if [ -n "$PULSAR_PERF" ]; then
  PULSAR_PERF=$(command -v "$PULSAR_PERF") || { echo "bench.sh: --pulsar-perf: no program $PULSAR_PERF" >&2; exit 2; }
fi
DATE=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$OUT" ] || OUT=$here/results-$DATE.json
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# 0. tools
PKGS="redis-server redis-tools libhiredis-dev nats-server libnats-dev fio iperf3 gcc libc6-dev
      python3 zookeeper default-jre-headless procps"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then
    log "installing from Debian:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
      die "apt-get install$missing failed"
  else
    log "warning: missing packages:$missing (run as root, or install them); parts needing them are skipped"
  fi
fi
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3) || die "python3 is required"

mkdir -p "$PARENT" || die "cannot create $PARENT"
WORK=$(mktemp -d "$PARENT/magnetar-bench.XXXXXX") || die "mktemp in $PARENT"
FSTYPE=$(stat -f -c %T "$WORK")
[ "$FSTYPE" = tmpfs ] && log "warning: $WORK is on tmpfs: the disk figures are not the disk's"
R=$WORK/results; mkdir -p "$R" "$WORK/bin"
INDEX=$R/index.tsv; : >"$INDEX"
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$INDEX"; } # kind key value-or-path

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [ -n "${ZKDIR:-}" ] && [ -f "$ZKDIR/zk.pid" ] && "$top/tests/integration/zk.sh" stop "$ZKDIR" >/dev/null 2>&1
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---------------------------------------------------------------------------------------
# magnetar binary
src=$top
if [ -z "$BIN" ]; then
  if [ "$HEAD" = 1 ]; then
    src=$WORK/src; mkdir -p "$src"
    (cd "$top" && git archive HEAD) | tar -x -C "$src" || die "git archive HEAD failed"
    export BUILD_DIR=$src/build
  fi
  # the build's own dependencies (compiler, autotools, libraries), as the README's commands do
  if [ "$INSTALL" = 1 ]; then
    "$top/scripts/setup.sh" >"$WORK/setup.log" 2>&1 || { tail -n 20 "$WORK/setup.log" >&2; die "scripts/setup.sh failed"; }
  fi
  log "building magnetar from $([ "$HEAD" = 1 ] && echo "HEAD $(cd "$top" && git rev-parse --short HEAD)" || echo "the work tree") (scripts/build.sh: -O2 -g)"
  BIN=$(env -u CFLAGS "$src/scripts/build.sh" 2>"$WORK/build.log" | tail -n 1)
  if [ ! -x "$BIN" ]; then
    tail -n 20 "$WORK/build.log" >&2
    die "build failed (log above); try --head, or give a binary with --bin"
  fi
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -x "$BIN" ] || die "no magnetar binary at $BIN"
bdir=$(dirname "$BIN")
if [ -f "$bdir/.configure-flags" ] && grep -q 'sanitize\|-O0' "$bdir/.configure-flags"; then
  die "$BIN was configured with '$(cat "$bdir/.configure-flags")': benchmarks need an optimized, non-sanitizer build"
fi
if grep -q '^CFLAGS = .*-fsanitize' "$bdir/Makefile" 2>/dev/null; then
  die "$BIN is a sanitizer build"
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_port_file() { # file key pid seconds
  local i
  for i in $(seq 1 $(($4 * 10))); do
    grep -q "^$2=" "$1" 2>/dev/null && { sed -n "s/^$2=//p" "$1"; return 0; }
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
wait_tcp() { # port seconds
  local i
  for i in $(seq 1 $(($2 * 20))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
wait_listen() { # port seconds: a listening socket, without connecting to it (iperf3 counts connections)
  local i hex
  hex=$(printf ':%04X ' "$1")
  for i in $(seq 1 $(($2 * 20))); do
    awk '$4 == "0A"' /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q -- "$hex" && return 0
    sleep 0.05
  done
  return 1
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# rss_sampler OUTFILE PID... : max of the summed VmRSS every 0.2 s, until killed
rss_sampler() {
  local out=$1; shift
  local max=0 s p
  while :; do
    s=0
    for p in "$@"; do s=$((s + $(rss_kb "$p"))); done
    [ "$s" -gt "$max" ] && { max=$s; echo "$max" >"$out"; }
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------
# drivers
CC=${CC:-gcc}
CFL="-O2 -Wall -Wextra -I$here"
$CC $CFL -o "$WORK/bin/gc_probe" "$here/gc_probe.c" || die "gc_probe.c does not compile"
$CC $CFL -o "$WORK/bin/ready_probe" "$here/ready_probe.c" || die "ready_probe.c does not compile"
HAVE_REDIS=0 HAVE_NATS=0 HAVE_ZK=0
if command -v redis-server >/dev/null && $CC $CFL -o "$WORK/bin/redis_xadd" "$here/redis_xadd.c" -lhiredis &&
   $CC $CFL -o "$WORK/bin/redis_xread" "$here/redis_xread.c" -lhiredis; then HAVE_REDIS=1; fi
if command -v nats-server >/dev/null && $CC $CFL -o "$WORK/bin/nats_js_pub" "$here/nats_js_pub.c" -lnats -lpthread &&
   $CC $CFL -o "$WORK/bin/nats_js_sub" "$here/nats_js_sub.c" -lnats -lpthread; then HAVE_NATS=1; fi
[ -r /usr/share/java/zookeeper.jar ] && command -v java >/dev/null && HAVE_ZK=1

# ---------------------------------------------------------------------------------------
# meta
rec meta date "$DATE"
rec meta host "$(uname -nr)"
rec meta cpus "$(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
rec meta mem "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
rec meta disk "$(df -h --output=source,fstype "$WORK" | tail -n 1 | tr -s ' ') ($FSTYPE)"
rec meta workdir "$WORK"
rec meta seconds "$SECS"
rec meta quick "$QUICK"
rec meta magnetar_bin "${BIN#"$top"/}" # relative when it is in this checkout
rec meta magnetar_rev "$(cd "$top" && git describe --always --dirty 2>/dev/null || echo unknown)"
rec meta redis_version "$(redis-server --version 2>/dev/null | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
rec meta nats_version "$(nats-server --version 2>/dev/null | sed 's/^nats-server: //')"
rec meta fio_version "$(fio --version 2>/dev/null)"
rec meta catchup_mb "$CU_MB"
rec meta many_topics "$MANY_N"
rec meta many_rate "$MANY_RATE"

PROBE_N=0
probe() { # label
  local f=$R/probe-$PROBE_N.json
  mkdir -p "$WORK/probe"
  if timeout -k 5 $((FSYNC_S + GC_S + 60)) "$WORK/bin/gc_probe" "$WORK/probe" --fsync-seconds "$FSYNC_S" \
      --seconds "$GC_S" --size 1024 --outstanding 1000 --group-ms 1 --json "$f" >/dev/null; then
    rec probe "$PROBE_N" "$f"
    rec probe_label "$PROBE_N" "$1"
    log "probe $PROBE_N ($1): $(cat "$f")"
  else
    log "probe $PROBE_N failed"
  fi
  PROBE_N=$((PROBE_N + 1))
}

# ---------------------------------------------------------------------------------------
# 4. the machine's limits
log "part 4: limits (fio, group-commit probe, iperf3); work dir $WORK ($FSTYPE)"
if command -v fio >/dev/null; then
  for bs in 4k 64k; do
    mkdir -p "$WORK/fio"
    timeout -k 5 $((FIO_S + 60)) fio --name="fsync$bs" --directory="$WORK/fio" --rw=write --bs=$bs \
      --size=256m --fdatasync=1 --runtime="$FIO_S" --time_based --output-format=json \
      >"$R/fio-$bs.json" 2>"$R/fio-$bs.err" && rec limit "fio$bs" "$R/fio-$bs.json"
    rm -rf "$WORK/fio"
  done
fi
if command -v iperf3 >/dev/null; then
  IP=$(free_port)
  iperf3 -s -B 127.0.0.1 -p "$IP" >/dev/null 2>&1 &
  ipid=$!; PIDS+=("$ipid")
  wait_listen "$IP" 5 && timeout -k 5 $((IPERF_S + 30)) iperf3 -c 127.0.0.1 -p "$IP" -t "$IPERF_S" -J \
    >"$R/iperf3.json" 2>/dev/null && rec limit iperf3 "$R/iperf3.json"
  stop_pid "$ipid"
fi
probe "start"

# ---------------------------------------------------------------------------------------
# one measurement: max throughput, then latency at 50% of it, for each size.
# run_unit SYSTEM DRIVER-FUNCTION [RSS-PIDS...]: DRIVER-FUNCTION size rate json
SIZES="1024 100"
run_unit() {
  local sys=$1 drv=$2; shift 2
  local size f max half sp
  for size in $SIZES; do
    f=$R/run-$sys-$size-max.json
    sp=""
    if [ $# -gt 0 ] && [ "$size" = 1024 ]; then
      rss_sampler "$R/rssload-$sys.txt" "$@" & sp=$!
    fi
    if "$drv" "$size" 0 "$f" >"$R/run-$sys-$size-max.log" 2>&1 && [ -s "$f" ]; then
      rec run "$sys.$size.max" "$f"
      max=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["msg_per_s"])' "$f")
      log "$sys ${size}B max: $(printf '%.0f' "$max") msg/s"
    else
      log "$sys ${size}B max: FAILED ($(tail -n 2 "$R/run-$sys-$size-max.log" | tr '\n' ' '))"
      max=0
    fi
    if [ -n "$sp" ]; then
      kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
      [ -s "$R/rssload-$sys.txt" ] && rec rssload "$sys" "$(cat "$R/rssload-$sys.txt")"
    fi
    half=$("$PY" -c 'import sys; print(int(float(sys.argv[1]) / 2))' "$max")
    [ "$half" -gt 0 ] || continue
    f=$R/run-$sys-$size-half.json
    if "$drv" "$size" "$half" "$f" >"$R/run-$sys-$size-half.log" 2>&1 && [ -s "$f" ]; then
      rec run "$sys.$size.half" "$f"
      log "$sys ${size}B at $half msg/s: $("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); l=j["latency_ms"]; print("%.0f msg/s, p50 %s ms, p99 %.2f ms" % (j["msg_per_s"], "%.2f" % l["p50"] if l.get("p50") is not None else "-", l["p99"]))' "$f")"
    else
      log "$sys ${size}B half: FAILED ($(tail -n 2 "$R/run-$sys-$size-half.log" | tr '\n' ' '))"
    fi
  done
}

PERF_URL=
PERF_TLS=() # --trust-cert-file CA for a pulsar+ssl:// PERF_URL
RUNSEQ=0
TOPIC= # the topic (or stream) of the next run; empty: a new one per run
drv_magnetar() { # size rate json [more perf options]
  RUNSEQ=$((RUNSEQ + 1))
  local size=$1 rate=$2 json=$3; shift 3
  timeout -k 5 $((SECS + 40)) "$BIN" perf produce -u "$PERF_URL" "${PERF_TLS[@]}" -r "$rate" -s "$size" -o 1000 \
    -bm 1000 -bb 131072 -b 1 -time "$SECS" --warmup-time 1 -i 1 --json "$json" "$@" \
    "persistent://public/default/${TOPIC:-bench-$RUNSEQ-$size}"
}
# one consumer on a Shared subscription: json seconds warmup [more perf options]
cons_magnetar() {
  local json=$1 secs=$2 warm=$3; shift 3
  timeout -k 5 $((secs > 0 ? secs + 40 : 1800)) "$BIN" perf consume -u "$PERF_URL" -st Shared -s bench \
    -time "$secs" --warmup-time "$warm" -i 1 --json "$json" "$@" "persistent://public/default/$TOPIC"
}
cons_magnetar_e2e() { cons_magnetar "$1" $((SECS + 3)) 1; }
fill_magnetar() { # N: N 1 KiB messages at full speed
  timeout -k 5 1800 "$BIN" perf produce -u "$PERF_URL" -r 0 -s 1024 -o 1000 -bm 1000 -bb 131072 -b 1 \
    -m "$1" -i 10 "persistent://public/default/$TOPIC"
}
drain_magnetar() { cons_magnetar "$2" 0 0 -p Earliest -m "$1"; }

# ---------------------------------------------------------------------------------------
# end-to-end latency and catch-up reads, the same for every system
max_of() { # sys size: the msg/s of its max run (0 when it has none)
  "$PY" -c 'import json,sys
try: print(int(json.load(open(sys.argv[1]))["msg_per_s"]))
except Exception: print(0)' "$R/run-$1-$2-max.json"
}
wait_line() { # file pattern pid seconds: the pattern appears in the file while pid lives
  local i
  for i in $(seq 1 $(($4 * 10))); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# e2e SYS CONSUMER-FN PUBLISHER-FN: CONSUMER-FN json receives (ready once it prints
# "subscribed" or "consumer ready") while PUBLISHER-FN size rate json publishes 1 KiB at 50%
# of SYS's own 1 KiB max; TOPIC names the topic/stream both use.
e2e() {
  local sys=$1 cons=$2 pub=$3 half cp f=$R/e2e-$1.json
  half=$(($(max_of "$sys" 1024) / 2))
  [ "$half" -gt 0 ] || { log "$sys end-to-end: skipped (no 1 KiB max)"; return; }
  "$cons" "$f" >"$R/e2e-$sys-cons.log" 2>&1 & cp=$!
  if ! wait_line "$R/e2e-$sys-cons.log" 'subscribed\|consumer ready' "$cp" 30; then
    log "$sys end-to-end: the consumer did not start ($(tail -n 2 "$R/e2e-$sys-cons.log" | tr '\n' ' '))"
    stop_pid "$cp"; return
  fi
  "$pub" 1024 "$half" "$R/e2e-$sys-pub.json" >"$R/e2e-$sys-pub.log" 2>&1 ||
    log "$sys end-to-end: the publisher failed ($(tail -n 2 "$R/e2e-$sys-pub.log" | tr '\n' ' '))"
  if wait "$cp" && [ -s "$f" ]; then
    rec e2e "$sys" "$f"
    rec e2e_rate "$sys" "$half"
    log "$sys end-to-end at $half msg/s: $("$PY" -c 'import json,sys; l=json.load(open(sys.argv[1]))["latency_ms"]; print("p50 %.2f ms, p99 %.2f ms" % (l["p50"], l["p99"]))' "$f")"
  else
    log "$sys end-to-end: FAILED ($(tail -n 2 "$R/e2e-$sys-cons.log" | tr '\n' ' '))"
  fi
}
# catchup SYS FILL-FN DRAIN-FN [BETWEEN-FN]: FILL-FN N writes N 1 KiB messages, BETWEEN-FN
# (a restart) runs, DRAIN-FN N json reads all N from the start
catchup() {
  local sys=$1 fill=$2 drain=$3 between=${4:-} f=$R/catchup-$1.json
  log "$sys catch-up: writing $CU_N x 1 KiB ($CU_MB MiB)"
  if ! "$fill" "$CU_N" >"$R/catchup-$sys-fill.log" 2>&1; then
    log "$sys catch-up: writing the backlog FAILED ($(tail -n 2 "$R/catchup-$sys-fill.log" | tr '\n' ' '))"
    return
  fi
  if [ -n "$between" ] && ! "$between"; then
    log "$sys catch-up: the restart FAILED"; return
  fi
  if "$drain" "$CU_N" "$f" >"$R/catchup-$sys.log" 2>&1 && [ -s "$f" ]; then
    rec catchup "$sys" "$f"
    log "$sys catch-up: $("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); n=j.get("messages_received", 0); mb=j.get("mb_per_s", j.get("mbit_per_s", 0) / 8); print("%d messages, %.1f MB/s" % (n, mb))' "$f")"
  else
    log "$sys catch-up: reading FAILED ($(tail -n 2 "$R/catchup-$sys.log" | tr '\n' ' '))"
  fi
}

# the store to use: bookkeeper if this build has it (a standalone start tells)
ML_STORE=bookkeeper
ml_try() {
  local d=$WORK/mltry
  rm -rf "$d"; mkdir -p "$d"
  "$BIN" standalone --config "$src/conf/standalone.yaml" --set brokerServicePort=0 \
    --set webServicePort=0 --set bookiePort=0 --set dataDirectory="$d/data" \
    --set managedLedgerStore=bookkeeper --set managedLedgerDefaultEnsembleSize=1 \
    --set managedLedgerDefaultWriteQuorum=1 --set managedLedgerDefaultAckQuorum=1 \
    --set logLevel=warn --port-file "$d/ports" >"$d/log" 2>&1 &
  local p=$!
  if wait_port_file "$d/ports" brokerServicePort "$p" 20 >/dev/null; then stop_pid "$p"; return 0; fi
  stop_pid "$p"
  sed -n '1,5p' "$d/log" >&2
  return 1
}
if ! ml_try; then
  ML_STORE=memory
  log "WARNING: this magnetar build has no working managedLedgerStore=bookkeeper: magnetar runs with the MEMORY store (not durable)"
fi
rec meta ml_store "$ML_STORE"
# standalone settings (one in-process bookie: E=Qw=Qa=1)
SA_ARGS=(--config "$src/conf/standalone.yaml" --set webServicePort=0 --set bookiePort=0
  --set managedLedgerStore="$ML_STORE" --set journalSyncData=true
  --set managedLedgerDefaultEnsembleSize=1 --set managedLedgerDefaultWriteQuorum=1
  --set managedLedgerDefaultAckQuorum=1 --set logLevel=warn)
if [ "$ML_STORE" = bookkeeper ]; then
  rec durability ms "fsync before receipt: bookie journal group commit (journalSyncData=true), 1 copy"
  rec durability mc "fsync before receipt on Qa=2 of 3 bookies (E=3 Qw=2 Qa=2), journal group commit"
else
  rec durability ms "NONE: memory store (no bookkeeper store in this build); receipt before any disk write"
  rec durability mc "NONE: memory store in the broker; bookies idle"
fi
rec durability r1 "fsync before reply: AOF appendfsync always, one fsync per event-loop pass"
rec durability r10 "fsync before reply: AOF appendfsync always, one fsync per event-loop pass"
rec durability js "ack BEFORE fsync: file store write() then PubAck; data synced later (2.9)"

# ---------------------------------------------------------------------------------------
# 1. magnetar standalone; the same process also serves pulsar+ssl:// (a CA and a certificate
#    made here with openssl), measured after plain text at 1 KiB: the cost of TLS ("mst")
log "part 1: magnetar standalone ($ML_STORE store, journalSyncData=true), ${SECS}s runs"
D=$WORK/ms; mkdir -p "$D"
TLS_SET=()
printf 'subjectAltName=IP:127.0.0.1\n' >"$D/ext"
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/ca.key" -out "$D/ca.pem" -days 1 \
     -subj /CN=bench-ca >/dev/null 2>&1 &&
   openssl req -newkey rsa:2048 -nodes -keyout "$D/tls.key" -out "$D/tls.csr" \
     -subj /CN=127.0.0.1 >/dev/null 2>&1 &&
   openssl x509 -req -in "$D/tls.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -set_serial 1 -days 1 \
     -extfile "$D/ext" -out "$D/tls.pem" >/dev/null 2>&1; then
  TLS_SET=(--set brokerServicePortTls=0 --set tlsCertificateFilePath="$D/tls.pem"
    --set tlsKeyFilePath="$D/tls.key")
else
  log "openssl could not make a certificate: the TLS runs are skipped"
fi
MS_START=0
ms_start() { # (re)start the standalone on $D/data; sets MS_PID and PERF_URL
  MS_START=$((MS_START + 1))
  rm -f "$D/ports"
  "$BIN" standalone "${SA_ARGS[@]}" --set brokerServicePort=0 "${TLS_SET[@]}" \
    --set dataDirectory="$D/data" --port-file "$D/ports" >"$D/log.$MS_START" 2>&1 &
  MS_PID=$!; PIDS+=("$MS_PID")
  local p
  p=$(wait_port_file "$D/ports" brokerServicePort "$MS_PID" 60) || {
    log "magnetar standalone did not start: $(tail -n 3 "$D/log.$MS_START")"; return 1; }
  PERF_URL=pulsar://127.0.0.1:$p
}
ms_stop() {
  kill -0 "$MS_PID" 2>/dev/null || log "magnetar standalone DIED during the runs: $(tail -n 5 "$D/log.$MS_START" | tr '\n' ' ')"
  stop_pid "$MS_PID"
  cat "$D/log.$MS_START" >>"$R/ms.log" 2>/dev/null
}
ms_restart() { ms_stop; ms_start; }

# the official C++ client's perfProducer: size rate json; its report lines (one per
# --sampling-period) go to json's .log, which report.py reads (the last sample counts)
drv_pulsar_perf() {
  local rate=$2
  [ "$rate" -gt 0 ] 2>/dev/null || rate=-1
  RUNSEQ=$((RUNSEQ + 1))
  timeout -k 5 $((2 * SECS + 60)) "$PULSAR_PERF" --service-url "$PERF_URL" --rate="$rate" --size "$1" \
    --producer-queue-size 1000 --batch-size 1000 --max-batch-size-in-bytes 131072 \
    --max-batch-publish-delay-in-ms 1 --sampling-period "$SECS" --num-of-samples 3 \
    "persistent://public/default/pp-$RUNSEQ-$1" >"$3.log" 2>&1
  "$PY" "$here/report.py" --perfproducer "$3.log" "$3"
}

# many topics: MANY_N topics, one producer each, MANY_RATE msg/s in all (1 KiB): p99 and
# the standalone's RSS growth per topic (peak during the run minus RSS before it)
many_topics() {
  local f=$R/many-ms.json rss0 sp
  rss0=$(rss_kb "$MS_PID")
  rss_sampler "$R/rssmany-ms.txt" "$MS_PID" & sp=$!
  if TOPIC=many drv_magnetar 1024 "$MANY_RATE" "$f" -t "$MANY_N" -o 100 >"$R/many-ms.log" 2>&1 && [ -s "$f" ]; then
    rec many ms "$f"
    log "many topics: $MANY_N topics at $MANY_RATE msg/s: $("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.0f msg/s, p99 %.2f ms" % (j["msg_per_s"], j["latency_ms"]["p99"]))' "$f")"
  else
    log "many topics: FAILED ($(tail -n 2 "$R/many-ms.log" | tr '\n' ' '))"
  fi
  kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
  rec many_rss0 ms "$rss0"
  [ -s "$R/rssmany-ms.txt" ] && rec many_rss ms "$(cat "$R/rssmany-ms.txt")"
}

if ms_start; then
  run_unit ms drv_magnetar "$MS_PID"
  PT=$(sed -n 's/^brokerServicePortTls=//p' "$D/ports")
  if [ ${#TLS_SET[@]} -gt 0 ] && [ -n "$PT" ]; then
    PLAIN_URL=$PERF_URL
    PERF_URL=pulsar+ssl://127.0.0.1:$PT PERF_TLS=(--trust-cert-file "$D/ca.pem")
    SIZES=1024 run_unit mst drv_magnetar
    PERF_TLS=() PERF_URL=$PLAIN_URL
  fi
  TOPIC=e2e e2e ms cons_magnetar_e2e drv_magnetar
  if [ -n "$PULSAR_PERF" ]; then
    log "part 1: the official perfProducer ($PULSAR_PERF) on the same standalone"
    SIZES=1024 run_unit pp drv_pulsar_perf
  fi
  # a fresh process for the many-topics RSS and for reading a backlog it has not cached
  if ms_restart; then
    many_topics
    TOPIC=catchup catchup ms fill_magnetar drain_magnetar ms_restart
  fi
fi
ms_stop
rm -rf "$D"
probe ms

# ---------------------------------------------------------------------------------------
# 2. magnetar 1 broker + 3 bookies (+ ZooKeeper), E=3 Qw=2 Qa=2
if [ "$HAVE_ZK" = 1 ]; then
  log "part 2: magnetar broker + 3 bookies + ZooKeeper, E=3 Qw=2 Qa=2"
  ZKDIR=$WORK/zk
  if ZKP=$(ZK_START_TIMEOUT=60 "$top/tests/integration/zk.sh" start "$ZKDIR" 2>"$WORK/zk.err"); then
    ZKURL=zk:127.0.0.1:$ZKP
    ok=1 BKP=()
    for i in 1 2 3; do
      D=$WORK/bk$i; mkdir -p "$D"
      "$BIN" bookie --config "$src/conf/bookie.yaml" --set bookiePort=0 --set bindAddress=127.0.0.1 \
        --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL" --set dataDirectory="$D" \
        --set journalDirectory="$D/journal" --set ledgerDirectories="$D/ledgers" \
        --set journalSyncData=true --set logLevel=info --port-file "$D/ports" >"$D/log" 2>&1 &
      BKP+=($!); PIDS+=($!)
      wait_port_file "$D/ports" bookiePort $! 30 >/dev/null || { ok=0; log "bookie $i did not start: $(tail -n 3 "$D/log")"; }
    done
    for i in 1 2 3; do
      for _ in $(seq 1 100); do grep -q 'registered ' "$WORK/bk$i/log" && break; sleep 0.1; done
    done
    D=$WORK/broker; mkdir -p "$D"
    br_start() { # (re)start the broker; sets BR_PID and PERF_URL
      rm -f "$D/ports"
      "$BIN" broker --config "$src/conf/broker.yaml" --set brokerServicePort=0 --set webServicePort=0 \
        --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL" \
        --set dataDirectory="$D" --set managedLedgerStore="$ML_STORE" \
        --set managedLedgerDefaultEnsembleSize=3 --set managedLedgerDefaultWriteQuorum=2 \
        --set managedLedgerDefaultAckQuorum=2 --set logLevel=warn --port-file "$D/ports" >>"$D/log" 2>&1 &
      BR_PID=$!; PIDS+=("$BR_PID")
      local p
      p=$(wait_port_file "$D/ports" brokerServicePort "$BR_PID" 60) || {
        log "magnetar broker did not start: $(tail -n 3 "$D/log")"; return 1; }
      PERF_URL=pulsar://127.0.0.1:$p
    }
    # the broker restarts (its cache is empty); the bookies keep running
    br_restart() { stop_pid "$BR_PID"; br_start; }
    if [ $ok = 1 ] && br_start; then
      run_unit mc drv_magnetar "$BR_PID" "${BKP[@]}"
      TOPIC=catchup catchup mc fill_magnetar drain_magnetar br_restart
    fi
    kill -0 "$BR_PID" 2>/dev/null || log "magnetar broker DIED during the runs: $(tail -n 5 "$D/log" | tr '\n' ' ')"
    for p in "${BKP[@]}"; do kill -0 "$p" 2>/dev/null || log "a bookie (pid $p) DIED during the runs"; done
    stop_pid "$BR_PID"
    for p in "${BKP[@]}"; do stop_pid "$p"; done
    for i in 1 2 3; do cp "$WORK/bk$i/log" "$R/mc-bk$i.log" 2>/dev/null; done
    cp "$WORK/broker/log" "$R/mc-broker.log" 2>/dev/null
  else
    log "ZooKeeper did not start: $(tail -n 3 "$WORK/zk.err")"
  fi
  "$top/tests/integration/zk.sh" stop "$ZKDIR" >/dev/null 2>&1
  rm -rf "$WORK"/bk? "$WORK/broker" "$ZKDIR"; ZKDIR=
  probe mc
else
  log "part 2 skipped: no ZooKeeper (apt-get install zookeeper default-jre-headless)"
fi

# ---------------------------------------------------------------------------------------
# 3. peers: Redis Streams, NATS JetStream
redis_start() {
  local d=$WORK/redis
  rm -rf "$d"; mkdir -p "$d"
  RPORT=$(free_port)
  # no RDB snapshots, no AOF rewrite during the run: fsync of every write is all that is measured
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$d" --appendonly yes \
    --appendfsync always --save '' --auto-aof-rewrite-percentage 0 --daemonize no \
    --protected-mode no --logfile "$d/log" >/dev/null 2>&1 &
  RPID=$!; PIDS+=("$RPID")
  wait_tcp "$RPORT" 10
}
RCONNS=1
drv_redis() { timeout -k 5 $((SECS + 40)) "$WORK/bin/redis_xadd" "$RPORT" --conns "$RCONNS" \
  --outstanding 1000 --size "$1" --rate "$2" --seconds "$SECS" --warmup 1 --stream "${TOPIC:-bench-$RANDOM}" --json "$3"; }
cons_redis_e2e() { timeout -k 5 $((SECS + 40)) "$WORK/bin/redis_xread" "$RPORT" --stream "$TOPIC" \
  --seconds $((SECS + 3)) --warmup 1 --json "$1"; }
fill_redis() { timeout -k 5 1800 "$WORK/bin/redis_xadd" "$RPORT" --conns "$RCONNS" --outstanding 1000 \
  --size 1024 --messages "$1" --seconds 1800 --stream "$TOPIC"; }
drain_redis() { timeout -k 5 1800 "$WORK/bin/redis_xread" "$RPORT" --stream "$TOPIC" --messages "$1" \
  --seconds 1800 --json "$2"; }
if [ "$HAVE_REDIS" = 1 ]; then
  for RCONNS in 1 10; do
    log "part 3: Redis Streams, appendfsync always, $RCONNS connection(s)"
    if redis_start; then
      run_unit "r$RCONNS" drv_redis "$RPID"
      if [ "$RCONNS" = 10 ]; then
        TOPIC=e2e e2e r10 cons_redis_e2e drv_redis
        TOPIC=catchup catchup r10 fill_redis drain_redis
      fi
    else
      log "redis-server did not start"
    fi
    stop_pid "$RPID"; rm -rf "$WORK/redis"
    probe "r$RCONNS"
  done
else
  log "Redis part skipped (redis-server / libhiredis-dev missing)"
fi

# TOPIC, when set, names the stream; its subject is TOPIC.x
drv_nats() {
  local st=${TOPIC:-B$RANDOM}
  timeout -k 5 $((SECS + 40)) "$WORK/bin/nats_js_pub" "$NPORT" --outstanding 1000 \
    --size "$1" --rate "$2" --seconds "$SECS" --warmup 1 --stream "$st" --subject "$st.x" --json "$3"
}
cons_nats_e2e() { timeout -k 5 $((SECS + 40)) "$WORK/bin/nats_js_sub" "$NPORT" --stream "$TOPIC" \
  --subject "$TOPIC.x" --seconds $((SECS + 3)) --warmup 1 --json "$1"; }
fill_nats() { timeout -k 5 1800 "$WORK/bin/nats_js_pub" "$NPORT" --outstanding 1000 --size 1024 \
  --messages "$1" --seconds 1800 --stream "$TOPIC" --subject "$TOPIC.x"; }
drain_nats() { timeout -k 5 1800 "$WORK/bin/nats_js_sub" "$NPORT" --stream "$TOPIC" --subject "$TOPIC.x" \
  --messages "$1" --seconds 1800 --json "$2"; }
if [ "$HAVE_NATS" = 1 ]; then
  log "part 3: NATS JetStream (nats-server -js, file store)"
  D=$WORK/nats; mkdir -p "$D"
  NPORT=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$NPORT" -sd "$D/store" >"$D/log" 2>&1 &
  NPID=$!; PIDS+=("$NPID")
  if wait_tcp "$NPORT" 10; then
    run_unit js drv_nats "$NPID"
    TOPIC=E2E e2e js cons_nats_e2e drv_nats
    TOPIC=CATCHUP catchup js fill_nats drain_nats
  else
    log "nats-server did not start"
  fi
  stop_pid "$NPID"; rm -rf "$D"
  probe js
else
  log "NATS part skipped (nats-server / libnats-dev missing)"
fi

# ---------------------------------------------------------------------------------------
# 5. footprint: magnetar standalone beside nats-server -js
log "part 5: footprint (start-to-ready x$READY_N, idle RSS after ${IDLE_S}s, binary size)"
for k in $(seq 1 "$READY_N"); do
  P=$(free_port); D=$WORK/fp; rm -rf "$D"; mkdir -p "$D"
  timeout -k 5 60 "$WORK/bin/ready_probe" --proto pulsar --port "$P" --idle "$IDLE_S" --log "$D/log" -- \
    "$BIN" standalone "${SA_ARGS[@]}" --set brokerServicePort="$P" --set dataDirectory="$D/data" \
    >"$R/ready-ms-$k.json" && rec ready "ms.$k" "$R/ready-ms-$k.json"
  if [ "$HAVE_NATS" = 1 ]; then
    P=$(free_port); rm -rf "$D"; mkdir -p "$D"
    timeout -k 5 60 "$WORK/bin/ready_probe" --proto nats --port "$P" --idle "$IDLE_S" --log "$D/log" -- \
      nats-server -js -a 127.0.0.1 -p "$P" -sd "$D/store" >"$R/ready-js-$k.json" &&
      rec ready "js.$k" "$R/ready-js-$k.json"
  fi
done
rm -rf "$WORK/fp"
rec binsize ms "$(stat -c %s "$BIN")"
strip -o "$WORK/magnetar.stripped" "$BIN" 2>/dev/null && rec binsize_stripped ms "$(stat -c %s "$WORK/magnetar.stripped")"
rec binlibs ms "$(ldd "$BIN" 2>/dev/null | grep -c '=>')"
if command -v nats-server >/dev/null; then
  NB=$(readlink -f "$(command -v nats-server)")
  rec binsize js "$(stat -c %s "$NB")"
  strip -o "$WORK/nats.stripped" "$NB" 2>/dev/null && rec binsize_stripped js "$(stat -c %s "$WORK/nats.stripped")"
  rec binlibs js "$(ldd "$NB" 2>/dev/null | grep -c '=>')"
fi

# ---------------------------------------------------------------------------------------
"$PY" "$here/report.py" "$INDEX" "$OUT"
rc=$?
log "raw results: $OUT"
exit $rc
