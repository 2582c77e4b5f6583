# shellcheck shell=bash disable=SC2034
# common.sh - helpers for the crash/durability integration tests (source it, bash).
#
#   . "$(dirname "$0")/lib/common.sh"
#   it_init NAME            work dir $T (mktemp), PASS/FAIL counters, EXIT trap (cleanup)
#   pass MSG / fail MSG     print PASS:/FAIL: lines (fail marks the run failed)
#   it_skip REASON          print "SKIP: REASON" and exit 77 (scripts/test.sh counts a skip,
#                           not a pass): for a test that cannot run here, never for a failure
#   need_bin                checks $BIN (from MAGNETAR_BIN, which is then unset)
#   start_magnetar NAME ROLE KEYS TIMEOUT_S -- ARGS...
#                           runs `magnetar ROLE --port-file $T/NAME.ports ARGS...` in the
#                           background (log $T/NAME.log, pid registered under NAME), waits up
#                           to TIMEOUT_S for the port file to hold every key of KEYS (a
#                           space-separated list such as "brokerServicePort webServicePort");
#                           IT_CWD=DIR runs it from DIR, IT_NOFILE="SOFT HARD" with that
#                           descriptor limit (both only for that process)
#   port_of NAME KEY        a port from NAME's port file
#   pid_of NAME             its pid
#   alive NAME              0 if it is running
#   stop_proc NAME [S]      SIGCONT, SIGTERM, SIGKILL after S seconds (default 15); waits
#   kill_proc NAME          SIGKILL, waits
#   wait_exit NAME S        until a background child exits (bounded); its exit code
#   run_node TIMEOUT_S NAME ARGS...   node ARGS under `timeout`, stdout $T/NAME.out,
#                           stderr $T/NAME.err; returns node's exit code
#   start_node NAME TIMEOUT_S ARGS... the same in the background (pid registered as NAME)
#   wait_file FILE S        until FILE exists (bounded)
#   wait_log NAME REGEX S   until NAME's log matches REGEX (bounded)
#   kv FILE KEY             a value from a "k=v k=v" progress file
#   wait_progress NAME FILE KEY MIN S   until KEY >= MIN there (or NAME exited), bounded
#   json FILE KEY           a top-level value of a JSON file (node)
#   cfg_value KEY ARGS...   the value of KEY that `magnetar config show ARGS...` resolves
#                           (--config FILE --set k=v ...): what a process started with those
#                           arguments uses, defaults included
#   now_ms                  epoch milliseconds (the clock verify-produce.js stamps sends with)
#   start_standalone NAME [ARGS...]
#                           `magnetar standalone` on conf/standalone.yaml, data in $T/data, on
#                           127.0.0.1 and free ports, plus ARGS (--set k=v ...); the test exits
#                           if it does not start; sets BPORT, WPORT, URL (sa_ports)
#   restart_standalone NAME the same again on the same data directory and ports (free ones if
#                           those were taken meanwhile); sets BPORT, WPORT, URL
#   stop_standalone NAME    NAME still running, then SIGTERM stops it with exit 0, and no
#                           sanitizer report in the logs (PASS/FAIL lines)
#   it_finish WHAT SUMMARY  prints SUMMARY and the test's PASS/FAIL line, exits with its status
#   curl_json METHOD URL [BODY]
#                           one HTTP request (10 s bound; BODY sent as application/json):
#                           prints "STATUS BODY"
#   subscribe NAME URL TOPIC SUB
#                           the durable subscription SUB of TOPIC, made through URL by
#                           verify-consume.js --subscribe-only (output $T/NAME.*): PASS, or FAIL
#                           and the test exits
#   produce_all NAME OUT TMO N WHAT ARGS...
#                           verify-produce.js ARGS --count N --out OUT under a TMO s timeout
#                           (output $T/NAME.*): PASS "WHAT: all N messages acknowledged" when
#                           it exits 0 with all N acknowledged, else FAIL with its exit code,
#                           the count and its output, and return 1; sets PRODUCE_ACKED
#   stop_clean S NAME...    stop each (stop_proc, S seconds) and FAIL for any exit code but 0
#   check_failed_sends WHAT FAULTS MAX SUMMARY[,SUMMARY..]
#                           every send of those verify-produce summaries that got no receipt
#                           was given up while one of FAULTS was on ("NAME@START-END[:MAX],.."
#                           in epoch ms, each extended by IT_HEAL_MS, default 10000, for the
#                           cluster to notice a process is back; at most MAX counted for it),
#                           and at most MAX failed in all (-1: no count bound); PASS/FAIL line
#                           with the counts per fault (lib/verify-failed.js); sets FAILED_SENDS
#                           (the count) and FAILED_BY_FAULT (JSON)
#   tls_test_certs NAME     a CA ($T/ca.pem, $T/ca.key) and a server certificate for
#                           127.0.0.1 and localhost ($T/srv.pem, $T/srv.key) made with openssl,
#                           NAME its CN prefix; FAIL and return 1 when openssl cannot
#   tls_token_setup NAME    tls_test_certs NAME, an HS256 secret ($T/secret.key) and a token
#                           for the role admin ($T/token) made with `magnetar tokens`; sets
#                           TLS_TOKEN_SETS: the --set arguments of a broker serving TLS with
#                           those certificates and token authentication on (ports not set);
#                           FAIL and return 1 when something cannot be made
#   zk_start / zk_stop      a ZooKeeper for this test (tests/integration/zk.sh) in $T/zk;
#                           sets ZK_PORT and ZKURL (zk:127.0.0.1:PORT)
#   bk_cluster_start N [ARGS...]
#                           zk_start, then N `magnetar bookie`s bk1..bkN (start_bookie, ARGS
#                           added to each), and waits until every one is registered in
#                           ZooKeeper (30 s); exits the test (failed) if one is not
#   start_bookie I [ARGS...] the bookie bkI of that cluster, as a user runs it
#                           (conf/bookie.yaml; port 0 on 127.0.0.1; data under $T/bkI; ARGS
#                           added); again, a restart on the same data
#   start_zk_broker NAME [ARGS...]
#                           a `magnetar broker` NAME on conf/broker.yaml and $ZKURL (ports 0 on
#                           127.0.0.1, data under $T/NAME, ARGS added: a later --set wins)
#
# Every process is started in the background with its pid remembered; the EXIT trap stops
# them all by pid (never by name), prints the logs' tails if anything failed, and removes $T
# unless it failed or IT_KEEP=1 (then it is kept and named). The caller's MAGNETAR_* variables never reach
# a magnetar process: magnetar treats every MAGNETAR_ variable as a config key.

IT_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IT_DIR=$(cd "$IT_LIB/.." && pwd)
IT_TOP=$(cd "$IT_DIR/../.." && pwd)
BIN=${MAGNETAR_BIN:-$IT_TOP/magnetar}
unset MAGNETAR_BIN
# Strip every MAGNETAR_* variable from what child processes inherit.
for _v in $(compgen -e | grep '^MAGNETAR_' || true); do unset "$_v"; done
unset _v


IT_FAILED=0
IT_PASSES=0
IT_FAILS=0
IT_NAMES=()
declare -A IT_PID=()

pass() { IT_PASSES=$((IT_PASSES + 1)); echo "PASS: $*"; }
it_skip() { IT_SKIPPED=1; echo "SKIP: $*"; exit 77; }
fail() { IT_FAILS=$((IT_FAILS + 1)); IT_FAILED=1; echo "FAIL: $*"; }
note() { echo "$(date +%H:%M:%S) $IT_NAME: $*"; }

it_init() {
    IT_NAME=$1
    T=$(mktemp -d "${TMPDIR:-/tmp}/magnetar-$IT_NAME.XXXXXX")
    trap it_cleanup EXIT
    trap 'exit 130' INT TERM
    note "work directory $T"
}

# it_env NAME=DEFAULT...: each NAME keeps its value from the environment when set and not
# empty, else takes DEFAULT (a test's tunables, named as its header documents them).
it_env() {
    local kv name
    for kv in "$@"; do
        name=${kv%%=*}
        [ -n "${!name:-}" ] || printf -v "$name" '%s' "${kv#*=}"
    done
}

# need_magnetar: the magnetar binary is there, else the test fails at once.
need_magnetar() {
    if [ ! -x "$BIN" ]; then
        fail "magnetar binary not found at $BIN (set MAGNETAR_BIN)"
        exit 1
    fi
}

# need_bin: need_magnetar, and node with pulsar-flex for the clients.
# need_cmds CMD...: skip the test when one of the commands is not installed
need_cmds() {
    local c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || it_skip "$c not found"; done
}

need_bin() {
    need_magnetar
    if ! command -v node >/dev/null 2>&1; then
        fail "node not found"
        exit 1
    fi
    if [ ! -d "$IT_TOP/tests/compat/node_modules/pulsar-flex" ]; then
        fail "pulsar-flex not installed (cd tests/compat && npm ci)"
        exit 1
    fi
}

tls_test_certs() {
    if ! command -v openssl >/dev/null 2>&1; then
        fail "openssl not found: no test certificates"
        return 1
    fi
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/ext"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 \
        -subj "/CN=$1-ca" 2>/dev/null &&
        openssl req -newkey rsa:2048 -nodes -keyout "$T/srv.key" -out "$T/srv.csr" \
            -subj /CN=127.0.0.1 2>/dev/null &&
        openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -set_serial 7 \
            -days 2 -extfile "$T/ext" -out "$T/srv.pem" 2>/dev/null ||
        { fail "openssl could not make the test certificates"; return 1; }
}

tls_token_setup() {
    tls_test_certs "$1" || return 1
    "$BIN" tokens create-secret-key --output "$T/secret.key" || { fail "create-secret-key"; return 1; }
    "$BIN" tokens create --secret-key "file://$T/secret.key" --subject admin >"$T/token" ||
        { fail "tokens create"; return 1; }
    TLS_TOKEN_SETS=(--set tlsCertificateFilePath="$T/srv.pem" --set tlsKeyFilePath="$T/srv.key"
        --set authenticationEnabled=true
        --set authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken
        --set tokenSecretKey="file://$T/secret.key")
}

pid_of() { echo "${IT_PID[$1]:-}"; }

alive() {
    local pid=${IT_PID[$1]:-}
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_pid PID S: until PID has exited (it must be our child), at most S seconds
wait_pid() {
    local pid=$1 n=$(($2 * 10))
    for _ in $(seq 1 "$n"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null
}

register() { # register NAME PID
    IT_PID[$1]=$2
    local n
    for n in "${IT_NAMES[@]}"; do [ "$n" = "$1" ] && return; done
    IT_NAMES+=("$1")
}

# IT_START_SOFT=1: a failed start is only noted (the caller decides)
start_failed() { if [ "${IT_START_SOFT:-0}" = 1 ]; then note "$*"; else fail "$*"; fi; }

start_magnetar() {
    local name=$1 role=$2 keys=$3 tmo=$4
    shift 4
    [ "${1:-}" = "--" ] && shift
    rm -f "$T/$name.ports"
    # no `timeout` wrapper: the pid must be magnetar's own (SIGKILL/SIGSTOP go to it; the
    # subshell execs it)
    (
        [ -z "${IT_CWD:-}" ] || cd "$IT_CWD" || exit 127
        if [ -n "${IT_NOFILE:-}" ]; then
            ulimit -Sn "${IT_NOFILE% *}" && ulimit -Hn "${IT_NOFILE#* }" || exit 127
        fi
        exec "$BIN" "$role" "$@" --port-file "$T/$name.ports"
    ) >>"$T/$name.log" 2>&1 &
    register "$name" $!
    local deadline=$((SECONDS + tmo)) k ok
    while :; do
        ok=1
        for k in $keys; do
            grep -q "^$k=" "$T/$name.ports" 2>/dev/null || ok=0
        done
        [ $ok = 1 ] && break
        if ! alive "$name"; then
            start_failed "$name ($role) exited during start"
            tail -n 30 "$T/$name.log"
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            start_failed "$name ($role) wrote no port file within $tmo s"
            return 1
        fi
        sleep 0.1
    done
    note "$name ($role) pid $(pid_of "$name") up: $(tr '\n' ' ' <"$T/$name.ports")"
}


port_of() { sed -n "s/^$2=//p" "$T/$1.ports" 2>/dev/null | head -n 1; }

# restart_on_ports NAME ROLE KEYS TMO BPORT WPORT -- ARGS...: start_magnetar again on the
# broker and web ports it had (BPORT, WPORT), or on free ones when another process took them
# meanwhile (noted: not the broker's fault); any other failure to start fails the test and
# exits.
restart_on_ports() {
    local name=$1 role=$2 keys=$3 tmo=$4 bport=$5 wport=$6 lines_before
    shift 6
    [ "${1:-}" = "--" ] && shift
    lines_before=$(wc -l <"$T/$name.log")
    IT_START_SOFT=1 start_magnetar "$name" "$role" "$keys" "$tmo" -- \
        "$@" --set brokerServicePort="$bport" --set webServicePort="$wport" && return 0
    if tail -n +"$((lines_before + 1))" "$T/$name.log" | grep -qi "in use"; then
        note "ports $bport/$wport taken meanwhile: restarting on free ports"
        stop_proc "$name" 5
        start_magnetar "$name" "$role" "$keys" "$tmo" -- \
            "$@" --set brokerServicePort=0 --set webServicePort=0 || exit 1
    else
        fail "$name ($role) did not restart"
        exit 1
    fi
}

stop_proc() {
    local name=$1 s=${2:-15} pid=${IT_PID[$1]:-}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -CONT "$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
        if ! wait_pid "$pid" "$s"; then
            note "$name (pid $pid) ignored SIGTERM for $s s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            wait_pid "$pid" 5
        fi
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    IT_PID[$name]=""
    return $rc
}

kill_proc() {
    local name=$1 pid=${IT_PID[$1]:-}
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null
    wait_pid "$pid" 10
    wait "$pid"
    IT_PID[$name]=""
    return 0
} 2>/dev/null # (no "Killed" job notice)

# wait_exit NAME S: until NAME (a background child) exits, at most S seconds; returns its
# exit code, or 124 (after stopping it) if it did not exit in time
wait_exit() {
    local name=$1 pid=${IT_PID[$1]:-} rc
    [ -n "$pid" ] || return 0
    if ! wait_pid "$pid" "$2"; then
        note "$name (pid $pid) still running after $2 s: stopping it"
        stop_proc "$name" 5
        return 124
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    IT_PID[$name]=""
    return $rc
}

# Node clients: lib scripts under tests/compat/lib, run from tests/compat (node_modules).
run_node() {
    local tmo=$1 name=$2
    shift 2
    (cd "$IT_TOP/tests/compat" && timeout -s KILL "$tmo" node "$@") >"$T/$name.out" 2>"$T/$name.err"
}

start_node() {
    local name=$1 tmo=$2
    shift 2
    (cd "$IT_TOP/tests/compat" && exec timeout -s KILL "$tmo" node "$@") >"$T/$name.out" 2>"$T/$name.err" &
    register "$name" $!
}

wait_file() {
    local f=$1 n=$(($2 * 10))
    for _ in $(seq 1 "$n"); do
        [ -s "$f" ] && return 0
        sleep 0.1
    done
    [ -s "$f" ]
}

# wait_log NAME REGEX S: until NAME's log matches REGEX (grep -E), at most S seconds
wait_log() {
    local f="$T/$1.log" n=$(($3 * 10))
    for _ in $(seq 1 "$n"); do
        grep -qE "$2" "$f" 2>/dev/null && return 0
        sleep 0.1
    done
    grep -qE "$2" "$f" 2>/dev/null
}

# kv FILE KEY: the value of KEY in a "k=v k=v" file (a producer's --progress file)
kv() { tr ' ' '\n' 2>/dev/null <"$1" | sed -n "s/^$2=//p" | head -n 1; }

# wait_progress NAME PROGRESS_FILE KEY MIN S: until KEY >= MIN in the progress file of the
# client NAME, or NAME exited, at most S seconds; 0 if KEY >= MIN
wait_progress() {
    local name=$1 f=$2 key=$3 min=$4 n=$(($5 * 10)) v
    for _ in $(seq 1 "$n"); do
        v=$(kv "$f" "$key")
        [ -n "$v" ] && [ "$v" -ge "$min" ] && return 0
        alive "$name" || break
        sleep 0.1
    done
    v=$(kv "$f" "$key")
    [ -n "$v" ] && [ "$v" -ge "$min" ]
}

now_ms() { date +%s%3N; }

curl_json() {
    local args=(-s -o "$T/curl-body" -w '%{http_code}' -X "$1" --max-time 10)
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
    local code
    code=$(curl "${args[@]}" "$2")
    echo "$code $(cat "$T/curl-body" 2>/dev/null)"
}

subscribe() {
    local name=$1 url=$2 topic=$3 sub=$4
    if run_node 60 "$name" lib/verify-consume.js --url "$url" --topic "$topic" --sub "$sub" \
        --out "$T/$name.json" --subscribe-only; then
        pass "durable subscription $sub of $topic created through $url"
    else
        fail "could not subscribe $sub to $topic through $url: $(tail -n 3 "$T/$name.err")"
        exit 1
    fi
}

produce_all() {
    local name=$1 out=$2 tmo=$3 n=$4 what=$5 rc
    shift 5
    run_node "$tmo" "$name" lib/verify-produce.js "$@" --count "$n" --out "$out"
    rc=$?
    PRODUCE_ACKED=$(json "$out" ackedCount)
    if [ $rc -eq 0 ] && [ "${PRODUCE_ACKED:-0}" = "$n" ]; then
        pass "$what: all $n messages acknowledged"
        return 0
    fi
    fail "$what: exit $rc, ${PRODUCE_ACKED:-?} of $n acknowledged, first error: $(json "$out" firstError) $(cat "$T/$name.out") $(tail -n 3 "$T/$name.err")"
    return 1
}

stop_clean() {
    local s=$1 n rc
    shift
    for n in "$@"; do
        stop_proc "$n" "$s"
        rc=$?
        [ $rc -eq 0 ] || fail "$n exit code $rc on SIGTERM"
    done
}


cfg_value() {
    local key=$1
    shift
    "$BIN" config show "$@" 2>/dev/null | sed -n "s/^$key: //p" | tr -d '"' | head -n 1
}

check_failed_sends() {
    local what=$1 faults=$2 max=$3 files=$4 out
    out="$T/failed-$(echo "$what" | tr -c 'A-Za-z0-9' '-').json"
    if run_node 60 verify-failed lib/verify-failed.js --expect "$files" --faults "$faults" \
        --heal-ms "${IT_HEAL_MS:-10000}" --max "$max" --out "$out"; then
        pass "$what: $(json "$out" failed) failed send(s), each while a fault was on (by fault: $(json "$out" byFault), bounds $(json "$out" faultMax); in all at most $max)"
    else
        fail "$what: $(cat "$T/verify-failed.out") $(tail -n 2 "$T/verify-failed.err")"
    fi
    FAILED_SENDS=$(json "$out" failed)
    FAILED_BY_FAULT=$(json "$out" byFault)
}

# http_code CURL-ARGS...: the HTTP status of one request (000: no answer); body in $T/body
http_code() { curl -s -o "$T/body" -w '%{http_code}' --max-time 10 "$@"; }
# expect_http WANT WHAT CURL-ARGS...: pass when the request is answered WANT, else fail with
# what came back; returns whether it passed
expect_http() {
    local want=$1 what=$2 got
    shift 2
    got=$(http_code "$@")
    if [ "$got" = "$want" ]; then
        pass "$what: $want"
    else
        fail "$what: got $got, want $want: $(head -c 300 "$T/body")"
        return 1
    fi
}

json() {
    node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
             const v = j[process.argv[2]];
             if (v === undefined) process.exit(3);
             console.log(typeof v === "object" ? JSON.stringify(v) : v);' "$1" "$2" 2>/dev/null
}

zk_start() {
    mkdir -p "$T/zk"
    ZK_PORT=$("$IT_DIR/zk.sh" start "$T/zk") || { fail "ZooKeeper did not start"; exit 1; }
    ZKURL="zk:127.0.0.1:$ZK_PORT"
    IT_ZK=1
    note "ZooKeeper on 127.0.0.1:$ZK_PORT"
}

start_bookie() {
    local i=$1
    shift
    mkdir -p "$T/bk$i"
    start_magnetar "bk$i" bookie "bookiePort" 30 -- --config "$IT_TOP/conf/bookie.yaml" \
        --set bookiePort=0 --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 \
        --set metadataStoreUrl="$ZKURL" --set dataDirectory="$T/bk$i" \
        --set journalDirectory="$T/bk$i/journal" --set ledgerDirectories="$T/bk$i/ledgers" "$@"
}

bk_cluster_start() {
    local n=$1 i ids=()
    shift
    zk_start
    for i in $(seq 1 "$n"); do
        start_bookie "$i" "$@" || exit 1
        ids+=("127.0.0.1:$(port_of "bk$i" bookiePort)")
    done
    if ! "$IT_DIR/zk.sh" registered "$T/zk" 30 "${ids[@]}"; then
        fail "not every bookie registered in ZooKeeper within 30 s (${ids[*]})"
        exit 1
    fi
    note "$n bookies registered in ZooKeeper: ${ids[*]}"
}

start_zk_broker() {
    local name=$1
    shift
    mkdir -p "$T/$name"
    start_magnetar "$name" broker "brokerServicePort webServicePort" 60 -- \
        --config "$IT_TOP/conf/broker.yaml" --set bindAddress=127.0.0.1 \
        --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL" \
        --set dataDirectory="$T/$name" --set brokerServicePort=0 --set webServicePort=0 "$@"
}

zk_stop() {
    [ "${IT_ZK:-0}" = 1 ] && "$IT_DIR/zk.sh" stop "$T/zk"
    IT_ZK=0
}

# Tails of every log of the run.
dump_logs() {
    local f
    for f in "$T"/*.log "$T"/*.err "$T"/*.out "$T"/zk/zk.log; do
        [ -s "$f" ] || continue
        echo "----- $f (last ${IT_LOG_LINES:-60} lines)"
        tail -n "${IT_LOG_LINES:-60}" "$f"
    done
}

# Sanitizer reports in any magnetar log fail the run.
check_sanitizers() {
    local f bad=0
    for f in "$T"/*.log; do
        [ -s "$f" ] || continue
        if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
            fail "sanitizer report in $(basename "$f")"
            grep -m 5 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"
            bad=1
        fi
    done
    return $bad
}

SA_PORT_KEYS="brokerServicePort webServicePort bookiePort"

# sa_ports NAME: the standalone's ports (BPORT, WPORT) and URLs (URL: pulsar://, WEB: http://)
sa_ports() {
    BPORT=$(port_of "$1" brokerServicePort)
    WPORT=$(port_of "$1" webServicePort)
    URL="pulsar://127.0.0.1:$BPORT"
    WEB="http://127.0.0.1:$WPORT"
}

# start_standalone NAME [ARGS...]: a standalone (conf/standalone.yaml, ARGS added) on 127.0.0.1
# with every port 0; sets SA_ARGS (for restart_standalone) and what sa_ports sets.
start_standalone() {
    local name=$1
    shift
    SA_ARGS=(--config "$IT_TOP/conf/standalone.yaml" --set dataDirectory="$T/data"
        --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1 --set bookiePort=0 "$@")
    start_magnetar "$name" standalone "$SA_PORT_KEYS" 60 -- \
        "${SA_ARGS[@]}" --set brokerServicePort=0 --set webServicePort=0 || exit 1
    sa_ports "$name"
}

restart_standalone() {
    restart_on_ports "$1" standalone "$SA_PORT_KEYS" 90 "$BPORT" "$WPORT" -- "${SA_ARGS[@]}"
    sa_ports "$1"
}

stop_standalone() {
    local name=$1 rc
    alive "$name" && pass "standalone alive" || fail "standalone died"
    stop_proc "$name" 30
    rc=$?
    [ $rc -eq 0 ] && pass "standalone exit 0 on SIGTERM" || fail "standalone exit code $rc on SIGTERM"
    check_sanitizers
}

it_finish() {
    echo "SUMMARY: $2"
    [ "$IT_FAILED" -eq 0 ] && echo "PASS: $1: $2" || echo "FAIL: $1: $2"
    exit "$IT_FAILED"
}

it_cleanup() {
    local rc=$? n
    trap - EXIT
    for n in "${IT_NAMES[@]}"; do
        [ -n "${IT_PID[$n]:-}" ] && kill -CONT "${IT_PID[$n]}" 2>/dev/null
    done
    # clients first, then brokers, then bookies (reverse start order), then ZooKeeper
    local i
    for ((i = ${#IT_NAMES[@]} - 1; i >= 0; i--)); do
        stop_proc "${IT_NAMES[$i]}" 10 >/dev/null 2>&1
    done
    zk_stop >/dev/null 2>&1
    if [ "${IT_SKIPPED:-0}" = 1 ] && [ "$IT_FAILED" -eq 0 ]; then
        rm -rf "$T"
        exit 77
    fi
    [ $rc -ne 0 ] && IT_FAILED=1
    if [ "$IT_FAILED" -ne 0 ]; then
        dump_logs
        echo "$IT_NAME: FAILED ($IT_FAILS check(s) failed); files kept in $T"
        exit 1
    fi
    if [ "${IT_KEEP:-0}" = 1 ]; then
        echo "$IT_NAME: files kept in $T (IT_KEEP=1)"
    else
        rm -rf "$T"
    fi
    exit 0
}
