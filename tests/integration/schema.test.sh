#!/usr/bin/env bash
# schema.test.sh - the schema registry's admin resources on real processes, and its versions
# surviving a crash (issue 14, "Schema registry").
#
#   1. A standalone (embedded metadata store): POST a schema (202 {"version":{"version":0}}),
#      a compatible evolution (version 1), an incompatible one (409, nothing stored), the
#      compatibility test (202, false under FULL), an invalid definition (422), the namespace
#      strategy set to ALWAYS_COMPATIBLE (the refused one is then version 2).
#   2. The standalone is SIGKILLed and started again on the same data directory: the latest
#      version, an older one and the namespace strategy are still there; DELETE appends a
#      marker (version 3), the schema is gone (404), a new POST is version 4.
#   3. The same registry through a broker on ZooKeeper, read back by a second broker process.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init schema
need_bin

# expect WHAT GOT WANT: a PASS or FAIL line
expect() {
    if [ "$2" = "$3" ]; then pass "$1: $3"; else fail "$1: got '$2', want '$3'"; fi
}

# payload TYPE DEFINITION: a PostSchemaPayload (the definition JSON-escaped)
payload() {
    printf '{"type":"%s","schema":"%s","properties":{}}' "$1" "$(printf '%s' "$2" | sed 's/"/\\"/g')"
}

V1='{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}'
V2='{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}'
BAD='{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}'
TOPIC=orders-$$
P=/admin/v2/schemas/public/default/$TOPIC
NSP=/admin/v2/namespaces/public/default

# 1 -----------------------------------------------------------------------------------------
sa_args=(--config "$IT_TOP/conf/standalone.yaml" --set brokerServicePort=0
    --set webServicePort=0 --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1
    --set bookiePort=0 --set dataDirectory="$T/sa")
start_magnetar sa standalone "webServicePort" 60 -- "${sa_args[@]}" || exit 1
URL="http://127.0.0.1:$(port_of sa webServicePort)"
expect "no schema yet" "$(curl_json GET "$URL$P/schema")" "404 "
expect "register" "$(curl_json POST "$URL$P/schema" "$(payload AVRO "$V1")")" \
    '202 {"version":{"version":0}}'
expect "the same again" "$(curl_json POST "$URL$P/schema" "$(payload AVRO "$V1")")" \
    '202 {"version":{"version":0}}'
expect "compatible evolution" "$(curl_json POST "$URL$P/schema" "$(payload AVRO "$V2")")" \
    '202 {"version":{"version":1}}'
r=$(curl_json POST "$URL$P/schema" "$(payload AVRO "$BAD")")
expect "incompatible refused" "${r%% *}" 409
expect "compatibility test" "$(curl_json POST "$URL$P/compatibility" "$(payload AVRO "$BAD")")" \
    '202 {"compatibility":false,"schemaCompatibilityStrategy":"FULL"}'
r=$(curl_json POST "$URL$P/schema" "$(payload AVRO '{"type":"record"}')")
expect "invalid Avro refused" "${r%% *}" 422
r=$(curl_json POST "$URL$P/schema" 'not json')
expect "a body that is not JSON refused" "${r%% *}" 400
expect "strategy set" "$(curl_json PUT "$URL$NSP/schemaCompatibilityStrategy" '"ALWAYS_COMPATIBLE"')" "204 "
expect "now accepted" "$(curl_json POST "$URL$P/schema" "$(payload AVRO "$BAD")")" \
    '202 {"version":{"version":2}}'
r=$(curl_json GET "$URL$P/schemas")
n=$(printf '%s' "${r#* }" | grep -o '"version":' | wc -l)
expect "versions stored" "${r%% *} $n" "200 3"

# 2 -----------------------------------------------------------------------------------------
kill_proc sa
start_magnetar sa2 standalone "webServicePort" 60 -- "${sa_args[@]}" || exit 1
URL="http://127.0.0.1:$(port_of sa2 webServicePort)"
r=$(curl_json GET "$URL$P/schema")
case "$r" in
'200 {"version":2,"type":"AVRO",'*) pass "after kill -9: latest is version 2" ;;
*) fail "after kill -9: GET schema answered '$r'" ;;
esac
r=$(curl_json GET "$URL$P/schema/0")
case "$r" in
*'"data":"{\"type\":\"record\",\"name\":\"Order\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}"'*)
    pass "after kill -9: version 0 kept its definition" ;;
*) fail "after kill -9: GET schema/0 answered '$r'" ;;
esac
expect "after kill -9: a version that does not exist" "$(curl_json GET "$URL$P/schema/9")" "404 "
expect "after kill -9: the namespace strategy" \
    "$(curl_json GET "$URL$NSP/schemaCompatibilityStrategy")" '200 "ALWAYS_COMPATIBLE"'
expect "delete" "$(curl_json DELETE "$URL$P/schema")" '200 {"version":3}'
expect "deleted" "$(curl_json GET "$URL$P/schema")" "404 "
expect "versions go on after a delete" "$(curl_json POST "$URL$P/schema" "$(payload STRING "")")" \
    '202 {"version":{"version":4}}'
stop_proc sa2 20 || fail "sa2 exit code $? on SIGTERM"

# 3 -----------------------------------------------------------------------------------------
zk_start
br_args=(--config "$IT_TOP/conf/broker.yaml" --set brokerServicePort=0 --set webServicePort=0
    --set bindAddress=127.0.0.1 --set advertisedAddress=127.0.0.1
    --set metadataStoreUrl="$ZKURL" --set managedLedgerStore=memory
    --set allowVolatileTopics=true)
start_magnetar br1 broker "webServicePort" 60 -- "${br_args[@]}" --set dataDirectory="$T/br1" || exit 1
URL1="http://127.0.0.1:$(port_of br1 webServicePort)"
expect "ZooKeeper: register" "$(curl_json POST "$URL1$P/schema" "$(payload JSON "$V1")")" \
    '202 {"version":{"version":0}}'
start_magnetar br2 broker "webServicePort" 60 -- "${br_args[@]}" --set dataDirectory="$T/br2" || exit 1
URL2="http://127.0.0.1:$(port_of br2 webServicePort)"
expect "ZooKeeper: another broker evolves it" \
    "$(curl_json POST "$URL2$P/schema" "$(payload JSON "$V2")")" '202 {"version":{"version":1}}'
r=$(curl_json GET "$URL1$P/schema")
case "$r" in
'200 {"version":1,"type":"JSON",'*) pass "ZooKeeper: the first broker reads version 1" ;;
*) fail "ZooKeeper: GET schema answered '$r'" ;;
esac
stop_proc br1 20 || fail "br1 exit code $? on SIGTERM"
stop_proc br2 20 || fail "br2 exit code $? on SIGTERM"

check_sanitizers
exit "$IT_FAILED"
