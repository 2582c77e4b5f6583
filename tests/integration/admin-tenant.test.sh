#!/usr/bin/env bash
# admin-tenant.test.sh - a tenant's adminRoles are stored, not only answered (issue 9, item 10).
#
#   1. A standalone (embedded metadata store) is started; a tenant is created with adminRoles
#      [alice] and updated (POST) to [bob, carol]; GET shows the update.
#   2. The standalone is stopped (SIGTERM) and started again on the same data directory:
#      GET still shows [bob, carol], and the tenant list still has the tenant.
#   3. The same on a broker with ZooKeeper: the roles written through one broker process are
#      read back by a new process.
# Everything started is stopped by pid.
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init admin-tenant
need_bin

# check_roles NAME URL WANT: GET of the tenant shows WANT (a JSON array, compact)
check_roles() {
    local got
    got=$(curl_json GET "$2/admin/v2/tenants/$TENANT")
    if [ "$got" = "200 {\"adminRoles\":$3,\"allowedClusters\":[\"$CLUSTER\"]}" ]; then
        pass "$1: adminRoles $3"
    else
        fail "$1: GET tenant answered '$got', want adminRoles $3"
    fi
}

TENANT=roles-$$
run_case() { # run_case WHAT NAME ROLE ARGS...
    local what=$1 name=$2 role=$3
    shift 3
    start_magnetar "$name" "$role" "webServicePort" 60 -- "$@" || exit 1
    local url="http://127.0.0.1:$(port_of "$name" webServicePort)"
    CLUSTER=$(curl -s --max-time 10 "$url/admin/v2/clusters" | tr -d '[]"')
    local r
    r=$(curl_json PUT "$url/admin/v2/tenants/$TENANT" "{\"adminRoles\":[\"alice\"],\"allowedClusters\":[\"$CLUSTER\"]}")
    [ "${r%% *}" = 204 ] || fail "$what: create tenant answered '$r'"
    check_roles "$what, created" "$url" '["alice"]'
    r=$(curl_json POST "$url/admin/v2/tenants/$TENANT" "{\"adminRoles\":[\"bob\",\"carol\"],\"allowedClusters\":[\"$CLUSTER\"]}")
    [ "${r%% *}" = 204 ] || fail "$what: update tenant answered '$r'"
    check_roles "$what, updated" "$url" '["bob","carol"]'
    stop_proc "$name" 20 || fail "$what: $name exit code $? on SIGTERM"

    start_magnetar "$name-2" "$role" "webServicePort" 60 -- "$@" || exit 1
    url="http://127.0.0.1:$(port_of "$name-2" webServicePort)"
    check_roles "$what, after a restart" "$url" '["bob","carol"]'
    if curl -s --max-time 10 "$url/admin/v2/tenants" | grep -q "\"$TENANT\""; then
        pass "$what: the tenant is listed after a restart"
    else
        fail "$what: the tenant is not listed after a restart"
    fi
    stop_proc "$name-2" 20 || fail "$what: $name-2 exit code $? on SIGTERM"
}

# 1, 2 ------------------------------------------------------------------------------------
run_case "standalone" sa standalone --config "$IT_TOP/conf/standalone.yaml" \
    --set brokerServicePort=0 --set webServicePort=0 --set dataDirectory="$T/sa"

# 3 ---------------------------------------------------------------------------------------
zk_start
TENANT=roles-zk-$$
run_case "broker on ZooKeeper" br broker --config "$IT_TOP/conf/broker.yaml" \
    --set brokerServicePort=0 --set webServicePort=0 --set bindAddress=127.0.0.1 \
    --set advertisedAddress=127.0.0.1 --set metadataStoreUrl="$ZKURL" \
    --set dataDirectory="$T/br" --set managedLedgerStore=memory --set allowVolatileTopics=true

check_sanitizers
exit "$IT_FAILED"
