#!/usr/bin/env bash
# cli.test.sh - `magnetar admin` and `magnetar client` against a standalone (issue 16).
#
#   1. Every `magnetar admin` command of the issue runs against a standalone started on
#      127.0.0.1 with port 0: lists are checked line by line, JSON answers by their fields
#      (jq), mutations by what a later read shows, each exit code is checked; the commands
#      the server does not serve yet say so in one line and exit 1. peek-messages and
#      examine-message show the stored messages (ids, times, keys, properties, text and a
#      hex dump of a binary payload; a batch split into its messages), and their REST
#      answers carry Pulsar's X-Pulsar-* headers and the raw payload.
#   2. Bad input: an unknown flag, a missing argument, a missing flag, an unreachable URL and
#      a server error each print exactly one line on stderr, nothing on stdout, and exit
#      non-zero within the timeout.
#   3. `magnetar client produce` -> `consume` round trip (every message, in order), and
#      `read` from earliest; keys and properties; `--help` on every level; the bash
#      completion script is valid bash and completes a group's commands.
#   4. A second standalone with TLS (a CA made here with openssl) and token authentication:
#      admin over https and client over pulsar+ssl, from flags and from a client.conf
#      (--conf, $PULSAR_CLIENT_CONF); no token, an untrusted CA, bad --auth-params and a
#      missing --conf file each give one line and a non-zero exit.
# Every command runs under `timeout`; the standalone is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init cli
need_bin
need_cmds jq

TMO=20
start_standalone sa

# run WHAT ARGS...: magnetar ARGS under timeout; stdout in $T/out, stderr in $T/err, RC
run() {
    local what=$1
    shift
    local t0=$SECONDS
    timeout "$TMO" "$BIN" "$@" >"$T/out" 2>"$T/err"
    RC=$?
    if [ "$RC" = 124 ]; then
        fail "$what: no answer within ${TMO}s"
    fi
    ELAPSED=$((SECONDS - t0))
}
adm() { run "$1" admin --admin-url "$WEB" "${@:2}"; }
cli() { run "$1" client --url "$URL" "${@:2}"; }

# ok WHAT: exit 0 and nothing on stderr
ok() {
    if [ "$RC" = 0 ] && [ ! -s "$T/err" ]; then pass "$1"; else
        fail "$1: exit $RC, stderr: $(head -c 300 "$T/err")"
    fi
}
# out_is WHAT TEXT: stdout is exactly TEXT
out_is() {
    if [ "$RC" = 0 ] && [ "$(cat "$T/out")" = "$2" ]; then pass "$1"; else
        fail "$1: exit $RC, stdout '$(head -c 300 "$T/out")', stderr '$(head -c 300 "$T/err")', want '$2'"
    fi
}
# jq_is WHAT FILTER VALUE: stdout is JSON and FILTER gives VALUE
jq_is() {
    local got
    got=$(jq -c "$2" "$T/out" 2>/dev/null)
    if [ "$RC" = 0 ] && [ "$got" = "$3" ]; then pass "$1"; else
        fail "$1: exit $RC, $2 = '$got', want '$3' (stderr '$(head -c 200 "$T/err")')"
    fi
}
# one_line_error WHAT RC REGEX: exit RC, stdout empty, stderr one line matching REGEX
one_line_error() {
    local lines
    lines=$(wc -l <"$T/err")
    if [ "$RC" = "$2" ] && [ "$lines" = 1 ] && [ ! -s "$T/out" ] && grep -Eq -- "$3" "$T/err"; then
        pass "$1 (exit $RC in ${ELAPSED}s): $(cat "$T/err")"
    else
        fail "$1: exit $RC (want $2), $lines stderr lines: '$(head -c 300 "$T/err")', stdout '$(head -c 100 "$T/out")', want /$3/"
    fi
}

# ---- 1. every admin command ------------------------------------------------------------
adm "clusters list" clusters list
out_is "clusters list" standalone
adm "clusters get" clusters get standalone
jq_is "clusters get" '.serviceUrl | startswith("http://")' true
adm "brokers list" brokers list
out_is "brokers list" "${WEB#http://}"
adm "brokers list CLUSTER" brokers list standalone
out_is "brokers list CLUSTER" "${WEB#http://}"
adm "brokers leader-broker" brokers leader-broker
jq_is "brokers leader-broker" .serviceUrl "\"$WEB\""
adm "brokers healthcheck" brokers healthcheck
out_is "brokers healthcheck" ok

TN=t$$
adm "tenants create" tenants create "$TN" -r admin1,admin2
ok "tenants create"
adm "tenants get" tenants get "$TN"
jq_is "tenants get (all clusters by default)" '[.adminRoles, .allowedClusters]' '[["admin1","admin2"],["standalone"]]'
adm "tenants update" tenants update "$TN" --admin-roles admin3 -c standalone
ok "tenants update"
adm "tenants get after update" tenants get "$TN"
jq_is "tenants get after update" .adminRoles '["admin3"]'
adm "tenants list" tenants list
if [ "$RC" = 0 ] && grep -qx "$TN" "$T/out" && grep -qx public "$T/out"; then
    pass "tenants list: one name per line"
else fail "tenants list: $(cat "$T/out")"; fi

NS=$TN/ns1
adm "namespaces create" namespaces create "$NS" -b 4
ok "namespaces create"
adm "namespaces create $TN/ns2" namespaces create "$TN/ns2"
adm "namespaces list" namespaces list "$TN"
out_is "namespaces list" "$NS
$TN/ns2"
adm "namespaces bundles" namespaces bundles "$NS"
jq_is "namespaces bundles" '[.numBundles, (.boundaries|length)]' '[4,5]'
adm "namespaces set-retention" namespaces set-retention "$NS" --size 2G --time 3h
ok "namespaces set-retention"
adm "namespaces get-retention" namespaces get-retention "$NS"
jq_is "namespaces get-retention" . '{"retentionTimeInMinutes":180,"retentionSizeInMB":2048}'
adm "namespaces set-message-ttl" namespaces set-message-ttl "$NS" -ttl 1h
ok "namespaces set-message-ttl"
adm "namespaces set-backlog-quota" namespaces set-backlog-quota "$NS" -l 1G -p producer_exception
ok "namespaces set-backlog-quota"
adm "namespaces grant-permission" namespaces grant-permission "$NS" --role r1 --actions produce,consume
ok "namespaces grant-permission"
adm "namespaces permissions" namespaces permissions "$NS"
jq_is "namespaces permissions" '.r1 | sort' '["consume","produce"]'
adm "namespaces policies" namespaces policies "$NS"
jq_is "namespaces policies" '[.message_ttl_in_seconds, .retention_policies.retentionSizeInMB, .backlog_quota_map.destination_storage.policy, .bundles.numBundles]' '[3600,2048,"producer_exception",4]'
adm "namespaces revoke-permission" namespaces revoke-permission "$NS" --role r1
ok "namespaces revoke-permission"
adm "namespaces permissions after revoke" namespaces permissions "$NS"
jq_is "namespaces permissions after revoke" 'has("r1")' false
adm "namespaces unload" namespaces unload "$NS"
ok "namespaces unload"
adm "namespaces unload -b" namespaces unload "$NS" -b 0x40000000_0x80000000
ok "namespaces unload --bundle"

adm "namespaces set-deduplication" namespaces set-deduplication "$NS" --enable
ok "namespaces set-deduplication"
adm "namespaces set-schema-compatibility-strategy" namespaces set-schema-compatibility-strategy \
    "$NS" -c BACKWARD
ok "namespaces set-schema-compatibility-strategy"
adm "namespaces policies (deduplication, schema strategy)" namespaces policies "$NS"
jq_is "namespaces policies (deduplication, schema strategy)" \
    '[.deduplicationEnabled, .schema_compatibility_strategy]' '[true,"BACKWARD"]'

TP=persistent://$NS/topic1
adm "topics create" topics create "$TP"
ok "topics create"
adm "topics create-partitioned-topic" topics create-partitioned-topic "$NS/part1" -p 2
ok "topics create-partitioned-topic"
adm "topics update-partitioned-topic" topics update-partitioned-topic "$NS/part1" --partitions 3
ok "topics update-partitioned-topic"
adm "topics get-partitioned-topic-metadata" topics get-partitioned-topic-metadata "$NS/part1"
jq_is "topics get-partitioned-topic-metadata" .partitions 3
adm "topics list" topics list "$NS"
if [ "$RC" = 0 ] && grep -qx "$TP" "$T/out" && grep -qx "persistent://$NS/part1-partition-2" "$T/out"; then
    pass "topics list: one name per line"
else fail "topics list: $(cat "$T/out")"; fi
adm "topics create-subscription" topics create-subscription "$TP" -s sub1 -m earliest
ok "topics create-subscription"
adm "topics subscriptions" topics subscriptions "$TP"
out_is "topics subscriptions" sub1

# ---- 3. client round trip ---------------------------------------------------------------
# -db: one entry per message, so the backlogs below (entries, as Pulsar counts) are messages
N=5
cli "client produce" produce "$TP" -m "m1,m2,m3,m4,m5" -n 1 -db
out_is "client produce" "$N messages successfully produced"
cli "client produce -db" produce "$TP" -m "solo" -n 2 -db -r 50
out_is "client produce -n 2 -db -r 50" "2 messages successfully produced"
adm "topics stats" topics stats "$TP"
jq_is "topics stats" '[.msgInCounter, .subscriptions.sub1.msgBacklog]' '[7,7]'
adm "topics stats-internal" topics stats-internal "$TP"
jq_is "topics stats-internal" '.cursors | has("sub1")' true
adm "topics partitioned-stats" topics partitioned-stats "$NS/part1" --per-partition
jq_is "topics partitioned-stats" '[.metadata.partitions, (.partitions|length)]' '[3,3]'
adm "topics lookup" topics lookup "$TP"
out_is "topics lookup" "$URL"

cli "client consume" consume "$TP" -s sub1 -n 3
want="----- got message -----
key:[null], properties:[], content:m1
----- got message -----
key:[null], properties:[], content:m2
----- got message -----
key:[null], properties:[], content:m3
3 messages successfully consumed"
out_is "client consume: the first 3 messages in order" "$want"
adm "topics stats after consume" topics stats "$TP"
jq_is "backlog after consuming 3" .subscriptions.sub1.msgBacklog 4
cli "client consume --hex" consume "$TP" -s sub1 -n 1 --hex -t Exclusive -p Earliest
if [ "$RC" = 0 ] && grep -q '|00000000| 6d 34 ' "$T/out"; then pass "client consume --hex: m4 as a hex dump"; else
    fail "client consume --hex: $(cat "$T/out" "$T/err")"; fi
cli "client read earliest" read "$TP" -m earliest -n 7
if [ "$RC" = 0 ] && [ "$(grep -c '^key:' "$T/out")" = 7 ] && grep -q 'content:m1$' "$T/out" &&
    tail -1 "$T/out" | grep -qx "7 messages successfully read"; then
    pass "client read -m earliest: all 7 messages"
else fail "client read: $(cat "$T/out" "$T/err")"; fi
# keys and properties, batched and not, as pulsar-client prints them
KP=persistent://$NS/keyed
cli "client produce -k -p" produce "$KP" -m a,b -k key1 -p x=1 -p y=two
out_is "client produce -k -p (batched)" "2 messages successfully produced"
cli "client produce -k -p -db" produce "$KP" -m c -k key2 -p z=3 -db
out_is "client produce -k -p -db" "1 messages successfully produced"
cli "client read keyed" read "$KP" -m earliest -n 3
want="----- got message -----
key:[key1], properties:[x=1, y=two], content:a
----- got message -----
key:[key1], properties:[x=1, y=two], content:b
----- got message -----
key:[key2], properties:[z=3], content:c
3 messages successfully read"
out_is "client read: keys and properties" "$want"
# read from a message id: after it (pulsar-client's default), or from it with -i
adm "stats-internal keyed" topics stats-internal "$KP"
LAST=$(jq -r .lastConfirmedEntry "$T/out")
PREV="${LAST%%:*}:$((${LAST##*:} - 1))"
cli "client read -m id" read "$KP" -m "$PREV" -n 1
out_is "client read -m L:E starts after that entry" "----- got message -----
key:[key2], properties:[z=3], content:c
1 messages successfully read"
cli "client read -m id -i" read "$KP" -m "$PREV" -i -n 2
out_is "client read -m L:E -i starts at that entry (the batch of a and b)" "----- got message -----
key:[key1], properties:[x=1, y=two], content:a
----- got message -----
key:[key1], properties:[x=1, y=two], content:b
2 messages successfully read"
# peek-messages and examine-message: id, publish time, key, properties and payload of the
# stored messages (a batch split into its messages), text or a hex dump of a binary payload
adm "sub on keyed" topics create-subscription "$KP" -s peeker -m earliest
ok "create-subscription from earliest on keyed"
BATCH_ID=${PREV}
ts_re='Publish time: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z'
adm "topics peek-messages" topics peek-messages "$KP" -s peeker -n 3
sep='-------------------------------------------------------------------------'
if [ "$RC" = 0 ] && [ ! -s "$T/err" ] &&
    [ "$(grep -c '^Batch Message ID: ' "$T/out")" = 2 ] && [ "$(grep -c '^Message ID: ' "$T/out")" = 1 ] &&
    grep -qx "Batch Message ID: $BATCH_ID:0" "$T/out" && grep -qx "Batch Message ID: $BATCH_ID:1" "$T/out" &&
    grep -qx "Message ID: $LAST" "$T/out" && [ "$(grep -Ec "^$ts_re\$" "$T/out")" = 3 ] &&
    [ "$(grep -cx 'Key: key1' "$T/out")" = 2 ] && grep -qx 'Key: key2' "$T/out" &&
    [ "$(grep -cx '  "y": "two"' "$T/out")" = 2 ] && grep -qx '  "z": "3"' "$T/out" &&
    [ "$(grep -cx -- "$sep" "$T/out")" = 2 ] &&
    [ "$(grep -Ex 'a|b|c' "$T/out" | tr '\n' ,)" = "a,b,c," ]; then
    pass "topics peek-messages -n 3: the batch's two messages and the third, with ids, times, keys, properties and payloads"
else fail "topics peek-messages: exit $RC: $(cat "$T/out" "$T/err")"; fi
adm "topics peek-messages -n 1" topics peek-messages "$KP" -s peeker -n 1
if [ "$RC" = 0 ] && [ "$(grep -c 'Message ID: ' "$T/out")" = 1 ] && grep -qx 'a' "$T/out" &&
    ! grep -qx 'b' "$T/out"; then pass "topics peek-messages -n 1: only the first message of the batch"
else fail "topics peek-messages -n 1: exit $RC: $(cat "$T/out" "$T/err")"; fi
adm "topics peek-messages past the backlog" topics peek-messages "$KP" -s peeker -n 50
if [ "$RC" = 0 ] && [ "$(grep -c 'Message ID: ' "$T/out")" = 3 ] && [ ! -s "$T/err" ]; then
    pass "topics peek-messages -n 50 on a backlog of 3 messages: those 3, exit 0 (as pulsar-admin)"
else fail "topics peek-messages -n 50: exit $RC: $(cat "$T/out" "$T/err")"; fi
adm "topics peek-messages bad sub" topics peek-messages "$KP" -s nosuch -n 1
one_line_error "topics peek-messages of a missing subscription" 1 "Subscription nosuch not found"
# a binary payload: shown as a hex dump, the newest message (examine latest 1)
printf '\000\001\002\377binary\n' >"$T/bin.dat"
cli "client produce -f binary" produce "$KP" -f "$T/bin.dat" -db
out_is "client produce -f (binary)" "1 messages successfully produced"
adm "topics examine-message latest" topics examine-message "$KP" -i latest -m 1
if [ "$RC" = 0 ] && grep -q '^|00000000| 00 01 02 ff 62 69 6e 61 72 79 0a ' "$T/out" &&
    grep -Eq '^Message ID: [0-9]+:[0-9]+$' "$T/out" && ! grep -qx "Message ID: $LAST" "$T/out"; then
    pass "topics examine-message -i latest -m 1: the newest message, its binary payload as a hex dump"
else fail "topics examine-message latest: exit $RC: $(cat "$T/out" "$T/err")"; fi
adm "topics examine-message earliest 2" topics examine-message "$KP" -i earliest -m 2
if [ "$RC" = 0 ] && grep -qx "Message ID: $LAST" "$T/out" && grep -qx 'Key: key2' "$T/out" &&
    grep -qx 'c' "$T/out"; then pass "topics examine-message -i earliest -m 2: the second entry, c"
else fail "topics examine-message earliest 2: exit $RC: $(cat "$T/out" "$T/err")"; fi
# the REST answers themselves: Pulsar's headers and the raw payload; 404 past the backlog,
# 405 on a partitioned topic
PK="$WEB/admin/v2/persistent/$NS/keyed"
peek_rest() { curl -s -D "$T/hdrs" -o "$T/body" -w '%{http_code}' --max-time 10 "$@"; }
hdr() { tr -d '\r' <"$T/hdrs" | grep -ix "$1"; }
code=$(peek_rest "$PK/subscription/peeker/position/1")
if [ "$code" = 200 ] && hdr "X-Pulsar-Message-ID: $BATCH_ID" >/dev/null &&
    hdr 'X-Pulsar-num-batch-message: 2' >/dev/null && hdr 'X-Pulsar-batch-size: [0-9]*' >/dev/null &&
    hdr 'Content-Type: application/octet-stream' >/dev/null && grep -q 'key1' "$T/body"; then
    pass "GET .../position/1: the batch entry, X-Pulsar-num-batch-message 2, the batch payload"
else fail "GET .../position/1: $code $(cat "$T/hdrs")"; fi
code=$(peek_rest "$PK/subscription/peeker/position/2")
if [ "$code" = 200 ] && hdr "X-Pulsar-Message-ID: $LAST" >/dev/null &&
    hdr 'X-Pulsar-PROPERTY-z: 3' >/dev/null && hdr 'X-Pulsar-partition-key: key2' >/dev/null &&
    hdr 'X-Pulsar-publish-time: [0-9T:.-]*Z' >/dev/null && hdr 'X-Pulsar-Is-Encrypted: false' >/dev/null &&
    ! hdr 'X-Pulsar-num-batch-message: .*' >/dev/null && [ "$(cat "$T/body")" = c ]; then
    pass "GET .../position/2: id, property, key, publish time headers and the raw payload"
else fail "GET .../position/2: $code $(cat "$T/hdrs" "$T/body")"; fi
code=$(peek_rest "$PK/subscription/peeker/position/4")
if [ "$code" = 404 ] && grep -q '"Message not found"' "$T/body"; then
    pass "GET .../position/4 past a backlog of 3 entries: 404 Message not found"
else fail "GET .../position/4: $code $(cat "$T/body")"; fi
code=$(peek_rest "$PK/subscription/peeker/position/0")
if [ "$code" = 400 ]; then pass "GET .../position/0: 400"; else fail "GET .../position/0: $code $(cat "$T/body")"; fi
code=$(peek_rest "$WEB/admin/v2/persistent/$NS/part1/subscription/s/position/1")
if [ "$code" = 405 ] && grep -q 'Peek messages on a partitioned topic is not allowed' "$T/body"; then
    pass "peek on a partitioned topic: 405 with Pulsar's reason"
else fail "peek on a partitioned topic: $code $(cat "$T/body")"; fi
code=$(peek_rest "$WEB/admin/v2/persistent/$NS/part1/examinemessage?initialPosition=earliest&messagePosition=1")
if [ "$code" = 405 ] && grep -q 'Examine messages on a partitioned topic is not allowed' "$T/body"; then
    pass "examinemessage on a partitioned topic: 405 with Pulsar's reason"
else fail "examinemessage on a partitioned topic: $code $(cat "$T/body")"; fi
adm "topics delete keyed" topics delete "$KP" -f

# consume --regex: every matching topic of the namespace, and only those
for t in rx-a rx-b other-c; do
    cli "produce $t" produce "persistent://$NS/$t" -m "from-$t" -db
done
for t in rx-a rx-b other-c; do
    adm "sub $t" topics create-subscription "persistent://$NS/$t" -s rxsub -m earliest
done
cli "client consume --regex" consume "persistent://$NS/rx-.*" --regex -s rxsub -n 2
if [ "$RC" = 0 ] && grep -qx 'key:\[null\], properties:\[\], content:from-rx-a' "$T/out" &&
    grep -qx 'key:\[null\], properties:\[\], content:from-rx-b' "$T/out" &&
    ! grep -q other "$T/out" && tail -1 "$T/out" | grep -qx "2 messages successfully consumed"; then
    pass "client consume --regex: the two matching topics, not the third"
else fail "client consume --regex: $RC $(cat "$T/out" "$T/err")"; fi
cli "client consume --regex none" consume "persistent://$NS/nomatch-.*" --regex -s x
one_line_error "client consume --regex matching nothing" 1 "no topic matches"
cli "client consume --regex bad" consume "persistent://$NS/(" --regex -s x
one_line_error "client consume --regex with a bad pattern" 2 "--regex"
for t in rx-a rx-b other-c; do
    adm "delete $t" topics delete "persistent://$NS/$t" -f
done

adm "subscriptions after read" topics subscriptions "$TP"
out_is "the reader left no subscription" sub1

adm "topics skip" topics skip "$TP" -s sub1 -n 1
ok "topics skip"
adm "stats after skip" topics stats "$TP"
jq_is "backlog after skip 1" .subscriptions.sub1.msgBacklog 2
adm "topics clear-backlog" topics clear-backlog "$TP" -s sub1
ok "topics clear-backlog"
adm "stats after clear-backlog" topics stats "$TP"
jq_is "backlog after clear-backlog" .subscriptions.sub1.msgBacklog 0
adm "topics reset-cursor -t" topics reset-cursor "$TP" -s sub1 -t 1h
ok "topics reset-cursor --time"
adm "stats after reset-cursor" topics stats "$TP"
jq_is "backlog after reset-cursor 1h back" .subscriptions.sub1.msgBacklog 7
adm "topics reset-cursor -m" topics reset-cursor "$TP" -s sub1 -m latest
ok "topics reset-cursor --messageId"
adm "topics expire-messages" topics expire-messages "$TP" -s sub1 -t 10
ok "topics expire-messages"
adm "topics grant-permission" topics grant-permission "$TP" --role r2 --actions consume
ok "topics grant-permission"
adm "topics permissions" topics permissions "$TP"
jq_is "topics permissions" .r2 '["consume"]'
adm "topics unload" topics unload "$TP"
ok "topics unload"
adm "topics compact" topics compact "$TP"
out_is "topics compact" "Topic compaction requested for $TP"
for _ in $(seq 1 100); do # bounded: 100 x 0.1 s
    adm "topics compaction-status" topics compaction-status "$TP"
    [ "$(jq -r .status "$T/out" 2>/dev/null)" = RUNNING ] || break
    sleep 0.1
done
jq_is "topics compaction-status" '.status' '"SUCCESS"'
adm "schemas get (none yet)" schemas get "$TP"
one_line_error "schemas get of a topic without a schema" 1 "HTTP 404"
echo '{"type":"STRING","schema":"","properties":{"k":"v"}}' >"$T/schema.json"
adm "schemas upload" schemas upload "$TP" -f "$T/schema.json"
ok "schemas upload"
adm "schemas get" schemas get "$TP"
jq_is "schemas get" '.type' '"STRING"'
adm "schemas delete" schemas delete "$TP"
ok "schemas delete"
adm "schemas get (deleted)" schemas get "$TP"
one_line_error "schemas get after the delete" 1 "HTTP 404"
adm "topics terminate" topics terminate "$TP"
if [ "$RC" = 0 ] && grep -Eq "^Topic $TP successfully terminated at [0-9]+:[0-9]+:-1\$" "$T/out"; then
    pass "topics terminate: $(cat "$T/out")"
else
    fail "topics terminate: exit $RC, stdout '$(head -c 200 "$T/out")', stderr '$(head -c 200 "$T/err")'"
fi
cli "client produce to a terminated topic" produce "$TP" -m after
[ "$RC" != 0 ] && pass "client produce to a terminated topic refused (exit $RC): $(head -n 1 "$T/err")" \
    || fail "client produce to a terminated topic: exit 0"
adm "topics unsubscribe" topics unsubscribe "$TP" -s sub1
ok "topics unsubscribe"
adm "topics delete" topics delete "$TP"
ok "topics delete"
adm "topics delete-partitioned-topic" topics delete-partitioned-topic "$NS/part1"
ok "topics delete-partitioned-topic"
adm "topics list after delete" topics list "$NS"
out_is "topics list after delete" ""
adm "namespaces delete" namespaces delete "$TN/ns2"
ok "namespaces delete"
adm "namespaces delete $NS" namespaces delete "$NS"
adm "tenants delete" tenants delete "$TN"
ok "tenants delete"

# ---- 2. bad input -------------------------------------------------------------------------
adm "bad flag" topics stats "$TP" --bogus
one_line_error "unknown flag" 2 "unknown flag '--bogus'"
adm "missing argument" topics stats
one_line_error "missing argument" 2 "needs TOPIC"
adm "missing flag" topics skip "$TP" -n 1
one_line_error "missing required flag" 2 "-s/--subscription"
adm "bad value" namespaces set-retention "$NS" -s 10Q -t 1h
one_line_error "bad size" 2 "--size"
adm "unknown group" nope list
one_line_error "unknown group" 2 "unknown group 'nope'"
adm "missing command" topics
one_line_error "missing command" 2 "give a command"
run "unreachable URL" admin --admin-url http://127.0.0.1:1 clusters list
one_line_error "unreachable URL" 1 "cannot reach 127.0.0.1:1"
# a server that accepts and never answers: bounded by --request-timeout
if command -v node >/dev/null 2>&1; then
    start_node silent 60 -e "require('net').createServer(() => {}).listen(0, '127.0.0.1',
        function () { console.log(this.address().port); })"
    if wait_file "$T/silent.out" 10; then
        run "silent server" admin --admin-url "http://127.0.0.1:$(head -1 "$T/silent.out")" \
            --request-timeout 2 clusters list
        one_line_error "a server that never answers" 1 "no answer from 127.0.0.1:[0-9]+ within 2 s"
        # it waited (SECONDS counts whole seconds: 2 s show as 1 at least) and gave up by
        # itself, an order of magnitude before the outer timeout would have
        [ "$ELAPSED" -ge 1 ] && [ "$ELAPSED" -lt "$TMO" ] && pass "gave up after ${ELAPSED}s (--request-timeout 2)" ||
            fail "gave up after ${ELAPSED}s, want at least 1 and less than $TMO"
    else
        fail "the silent node server did not start: $(cat "$T/silent.err")"
    fi
    kill_proc silent
else
    fail "node not found: the silent-server case cannot run"
fi
adm "bad timeout" clusters list --request-timeout 0
one_line_error "bad --request-timeout" 2 "--request-timeout"
adm "server error" tenants get "no-such-$$"
one_line_error "server error (Pulsar's reason)" 1 "Tenant does not exist"
adm "server error 409" tenants create public
one_line_error "server error 409" 1 "already exist"
cli "client: missing -s" consume "$TP"
one_line_error "client consume without -s" 2 "--subscription-name"
run "client: unreachable" client --url pulsar://127.0.0.1:1 produce "$TP" -m x
one_line_error "client produce, unreachable URL" 1 "cannot create the producer"
cli "client: no messages" produce "$TP"
one_line_error "client produce without -m/-f" 2 "-m MSG or -f FILE"
# --chunking: a file four times the broker's default maxMessageSize (5 MB) goes as chunks and
# comes back from consume as one message, byte for byte
CT="persistent://public/default/chunked-$$"
head -c $((20 << 20)) /dev/urandom >"$T/big.dat"
cli "client: produce too big" produce "$CT" -f "$T/big.dat"
one_line_error "client produce of 20 MB without --chunking" 1 "too (big|large)"
TMO=60 cli "client: chunking" produce "$CT" -f "$T/big.dat" --chunking
out_is "client produce -f (20 MB) --chunking" "1 messages successfully produced"
TMO=60 cli "client: consume the chunked message" consume "$CT" -s chunksub -n 1 -p Earliest
head_txt="----- got message -----
key:[null], properties:[], content:"
tail_txt="
1 messages successfully consumed"
hn=$((${#head_txt} + 1))
tn=$((${#tail_txt} + 1))
got_sum=$(tail -c +$hn "$T/out" | head -c -$tn | sha256sum | cut -d' ' -f1)
want_sum=$(sha256sum <"$T/big.dat" | cut -d' ' -f1)
if [ "$RC" = 0 ] && [ "$(head -c $((hn - 1)) "$T/out")" = "$head_txt" ] &&
    [ "$(tail -c $tn "$T/out")" = "$tail_txt" ] && [ "$got_sum" = "$want_sum" ]; then
    pass "client consume: the 20 MB chunked message as one message, sha256 equal"
else fail "client consume of the chunked message: exit $RC, sha256 $got_sum (want $want_sum), $(wc -c <"$T/out") bytes, stderr $(head -c 300 "$T/err")"; fi
adm "chunked: stats-internal" topics stats-internal "$CT"
jq_is "the 20 MB message is stored as 5 chunks of at most 5 MB" .numberOfEntries 5
cli "client: bad property" produce "$TP" -m x -p novalue
one_line_error "client produce -p without =" 2 "is not key=value"

# ---- help and completion --------------------------------------------------------------------
run "admin --help" admin --help
[ "$RC" = 0 ] && grep -q "namespaces" "$T/out" && pass "admin --help" || fail "admin --help: $RC"
run "admin topics --help" admin topics --help
[ "$RC" = 0 ] && grep -q "peek-messages" "$T/out" && pass "admin topics --help" || fail "admin topics --help: $RC"
run "admin topics skip --help" admin topics skip --help
[ "$RC" = 0 ] && grep -q -- "-n/--count" "$T/out" && pass "admin topics skip --help" || fail "skip --help: $RC"
run "client produce --help" client produce --help
[ "$RC" = 0 ] && grep -q -- "-db/--disable-batching" "$T/out" && pass "client produce --help" || fail "produce --help: $RC"
run "completion" admin completion bash
cp "$T/out" "$T/completion.bash"
if [ "$RC" = 0 ] && bash -n "$T/completion.bash"; then pass "completion bash: valid bash"; else fail "completion: $RC"; fi
got=$(bash -c '. "$1"; COMP_WORDS=(magnetar admin topics sk); COMP_CWORD=3; _magnetar_admin; echo "${COMPREPLY[*]}"' _ "$T/completion.bash")
[ "$got" = "skip" ] && pass "completion: 'magnetar admin topics sk' -> skip" || fail "completion gave '$got'"
got=$(bash -c '. "$1"; COMP_WORDS=(magnetar admin topics skip --cou); COMP_CWORD=4; _magnetar_admin; echo "${COMPREPLY[*]}"' _ "$T/completion.bash")
[ "$got" = "--count" ] && pass "completion: a command's flags" || fail "completion of flags gave '$got'"

stop_clean 20 sa

# ---- 4. https, pulsar+ssl and a token, from flags and from a client.conf ---------------------
if tls_token_setup cli-test; then
    start_magnetar tls standalone "brokerServicePortTls webServicePortTls" 60 -- \
        --set "dataDirectory=$T/tlsdata" --set brokerServicePort=0 --set webServicePort=0 \
        --set brokerServicePortTls=0 --set webServicePortTls=0 "${TLS_TOKEN_SETS[@]}" || exit 1
    HTTPS="https://127.0.0.1:$(port_of tls webServicePortTls)"
    SSL="pulsar+ssl://127.0.0.1:$(port_of tls brokerServicePortTls)"
    PLUGIN=org.apache.pulsar.client.impl.auth.AuthenticationToken
    run "https + token flags" admin --admin-url "$HTTPS" --tls-trust-cert-path "$T/ca.pem" \
        --auth-plugin "$PLUGIN" --auth-params "file://$T/token" clusters list
    out_is "admin over https with --tls-trust-cert-path and a token (file://)" standalone
    run "https + token:" admin --admin-url "$HTTPS" --tls-trust-cert-path "$T/ca.pem" \
        --auth-plugin "$PLUGIN" --auth-params "token:$(cat "$T/token")" tenants list
    [ "$RC" = 0 ] && grep -qx public "$T/out" && pass "admin with --auth-params token:..." ||
        fail "admin with token:...: $RC $(cat "$T/err")"
    cat >"$T/client.conf" <<CONF
# as Pulsar's conf/client.conf
webServiceUrl=$HTTPS
brokerServiceUrl=$SSL
authPlugin=$PLUGIN
authParams=file://$T/token
tlsTrustCertsFilePath=$T/ca.pem
CONF
    run "client.conf" admin --conf "$T/client.conf" brokers healthcheck
    out_is "admin from a client.conf (--conf)" ok
    PULSAR_CLIENT_CONF="$T/client.conf" run "PULSAR_CLIENT_CONF" admin tenants get public
    jq_is "admin from \$PULSAR_CLIENT_CONF" '.allowedClusters' '["standalone"]'
    run "client.conf produce" client --conf "$T/client.conf" produce tls-t -m s1,s2 -n 2 -db
    out_is "client produce over pulsar+ssl with a token (client.conf)" "4 messages successfully produced"
    run "client.conf read" client --conf "$T/client.conf" read tls-t -m earliest -n 4
    [ "$RC" = 0 ] && [ "$(grep -c '^key:' "$T/out")" = 4 ] && pass "client read over pulsar+ssl" ||
        fail "client read over pulsar+ssl: $RC $(cat "$T/out" "$T/err")"
    run "no token" admin --admin-url "$HTTPS" --tls-trust-cert-path "$T/ca.pem" clusters list
    one_line_error "https without a token: the server's refusal" 1 "HTTP 401: Authentication required"
    run "untrusted" admin --admin-url "$HTTPS" --auth-plugin "$PLUGIN" \
        --auth-params "file://$T/token" clusters list
    one_line_error "https with a CA the client does not trust" 1 "TLS with 127.0.0.1"
    run "bad params" admin --admin-url "$HTTPS" --auth-plugin "$PLUGIN" --auth-params "bogus" \
        clusters list
    one_line_error "bad --auth-params" 2 "auth-params"
    run "bad conf" admin --conf "$T/nope.conf" clusters list
    one_line_error "missing --conf file" 2 "--conf"
    stop_clean 20 tls
fi
check_sanitizers
exit "$IT_FAILED"
