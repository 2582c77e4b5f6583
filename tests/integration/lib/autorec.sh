# autorec.sh - helpers of the autorecovery integration tests (sourced after common.sh, once
# ZKURL is set): `magnetar shell` on the test's ZooKeeper and the ensembles it reports.
#
#   ar_shell ARGS...        magnetar shell ARGS on $ZKURL (warnings and errors on stderr)
#   ar_bookie_id I          bkI's bookie id (127.0.0.1:PORT)
#   ar_ensembles            one line per segment of every ledger: "LEDGER BOOKIE BOOKIE"
#                           (listledgers, then ledgermetadata of each)
#   ar_ledgers SEGMENTS     how many ledgers those lines name
#   ar_holders SEGMENTS     the I of every bkI named by those lines (AR_HOLDERS)
#   ar_replicated LIVE...   every segment of every ledger names 2 distinct bookies of LIVE and
#                           no ledger is marked under-replicated (sets AR_BAD, AR_UNDER, AR_LEDGERS)
#   ar_verify_all WHAT URL TOPIC SUB EXPECT
#                           a consumer (verify-consume.js) on SUB: every message acknowledged
#                           in the verify-produce summaries EXPECT (comma-separated) received,
#                           in order, none twice: PASS/FAIL "WHAT: ..."; sets AR_FOUND, AR_MISSING
#   ar_wait_replicated S LIVE...
#                           ar_replicated within S seconds (checked every second); sets
#                           AR_WAITED_MS (from the call) on success

ar_shell() { "$BIN" shell --set metadataStoreUrl="$ZKURL" --set logLevel=warn "$@"; }
ar_bookie_id() { echo "127.0.0.1:$(port_of "bk$1" bookiePort)"; }

ar_ensembles() {
    local ids id md
    ids=$(ar_shell listledgers | sed -n 's/^ledgerID: //p') || return 1
    for id in $ids; do
        md=$(ar_shell ledgermetadata -l "$id") || return 1
        echo "$md" | sed -n 's/.*ensembles={\(.*\)}, customMetadata.*/\1/p' |
            grep -o '\[[^]]*\]' | tr -d '[],' | sed "s/^/$id /"
    done
}

ar_ledgers() { echo "$1" | awk '{ print $1 }' | sort -u | grep -c .; }

ar_holders() {
    local i
    AR_HOLDERS=()
    for i in $(seq 1 "$NBK"); do
        [ -n "${IT_PID[bk$i]:-}" ] || continue
        echo "$1" | grep -q " $(ar_bookie_id "$i")\b" && AR_HOLDERS+=("$i")
    done
}

ar_replicated() {
    local live=" $* " segs l a b
    AR_BAD=0
    segs=$(ar_ensembles) || return 1
    AR_LEDGERS=$(ar_ledgers "$segs")
    while read -r l a b; do
        [ -n "$l" ] || continue
        if [ "$a" = "$b" ] || [[ "$live" != *" $a "* ]] || [[ "$live" != *" $b "* ]]; then
            AR_BAD=$((AR_BAD + 1))
        fi
    done <<<"$segs"
    AR_UNDER=$(ar_shell listunderreplicated | sed -n 's/^Under replicated ledger count: //p')
    [ "$AR_BAD" -eq 0 ] && [ "${AR_UNDER:-1}" = 0 ]
}

ar_wait_replicated() {
    local s=$1 t0 end
    shift
    t0=$(now_ms)
    end=$(($(date +%s) + s))
    while [ "$(date +%s)" -lt "$end" ]; do
        if ar_replicated "$@"; then
            AR_WAITED_MS=$(($(now_ms) - t0))
            return 0
        fi
        sleep 1
    done
    return 1
}

ar_verify_all() {
    local what=$1 url=$2 topic=$3 sub=$4 expect=$5
    if run_node 400 consumer lib/verify-consume.js --url "$url" --topic "$topic" --sub "$sub" \
        --out "$T/consume.json" --expect "$expect" --deadline-s 300; then
        pass "$what: every acknowledged message received, in order, none twice: $(cat "$T/consumer.out")"
    else
        fail "$what: $(cat "$T/consumer.out") $(tail -n 3 "$T/consumer.err")"
    fi
    AR_FOUND=$(json "$T/consume.json" unique)
    AR_MISSING=$(json "$T/consume.json" missing)
}
