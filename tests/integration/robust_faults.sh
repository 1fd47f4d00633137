#!/usr/bin/env bash
# Issue 5, requirement 3 (transient faults): pages that fail now and then are fetched again
# and the sync still ends equal to keapsim's truth. One phase per keapsim fault kind, each
# at a moderate rate on the list endpoint, each into a fresh database: malformed JSON, a
# truncated body, an HTML 502 page, a connection reset mid-body, 503, 429 without body or
# headers, x-keap headers missing or blank, a slowly dripping body, a late response. Then all
# of them at once, on v1 and on v2 (page tokens). Every phase: exit 0, every id once, every
# record exactly as served, and keapsim really injected the fault.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=50
lim="20/s,1200/min,30000/day"
it_keapsim --seed 41 --size 900 --api-key "$KEAP_API_KEY" --limits "$lim"
export KEAPSYNC_LIMITS="$lim"
mkdir -p "$IT_TMP/v1" "$IT_TMP/v2"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/v1/contacts.json"
jq --argjson p "$page" '.page_size = $p | del(.incremental)' \
    "$KEAPSYNC_SRC/tests/integration/jobs/contacts_v2.json" >"$IT_TMP/v2/contacts_v2.json"
truth_rows() { # the truth as a psql-loadable file, per API version
    curl -sf "$KSIM_URL/__admin/truth?resource=contacts&version=$1" >"$IT_TMP/truth.$1.jsonl"
}
truth_rows v1
truth_rows v2
ntruth=$(wc -l <"$IT_TMP/truth.v1.jsonl")
check "keapsim serves a tenant ($ntruth contacts)" test "$ntruth" -gt 0

# phase NAME API SPEC...: a fresh database, the faults SPEC (on the API's contacts list), one
# run; then the checks.
phase() {
    local name=$1 api=$2 before r429 rc=0 t0 t1 fired tbl job cast s
    shift 2
    it_make_db
    curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
    for s in "$@"; do
        curl -sf -X POST "$KSIM_URL/__admin/faults?spec=$s:/$api/contacts" >/dev/null
    done
    eq "$name: faults configured" "$#" "$(curl -sf "$KSIM_URL/__admin/faults" | jq length)"
    if [ "$api" = v1 ]; then tbl=keap.contacts job=contacts cast="::bigint"; else tbl=keap.contacts_v2 job=contacts_v2 cast=""; fi
    KEAPSYNC_JOBS="$IT_TMP/$api" "$KS" migrate >/dev/null
    before=$(ksim_stat .faults)
    r429=$(ksim_stat .rejected_429)
    t0=$(date +%s%N)
    KEAPSYNC_JOBS="$IT_TMP/$api" "$KS" run >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err" || rc=$?
    t1=$(date +%s%N)
    fired=$(($(ksim_stat .faults) - before))
    cat "$IT_TMP/$name.out" >&2
    grep -vE ' (INFO|WARNING): ' "$IT_TMP/$name.err" | head -20 >&2 || true
    it_log "$name: $fired faults injected, $(( (t1 - t0) / 1000000 )) ms"
    eq "$name: run exits 0" 0 "$rc"
    check "$name: keapsim injected the fault ($fired times)" test "$fired" -gt 0
    eq "$name: pacing stayed within keapsim's windows (no 429 of its own)" 0 \
       "$(($(ksim_stat .rejected_429) - r429))"
    check "$name: the job is reported done" grep -q "^job \"$job\": done" "$IT_TMP/$name.out"
    sql "DROP TABLE IF EXISTS truth; CREATE TABLE truth (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth (doc) FROM '$IT_TMP/truth.$api.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    eq "$name: row count equals the truth" "$ntruth" "$(sql "SELECT count(*) FROM $tbl")"
    eq "$name: no id twice" "$ntruth" "$(sql "SELECT count(DISTINCT id) FROM $tbl")"
    eq "$name: every record exactly as served" 0 \
       "$(sql "SELECT count(*) FROM truth t LEFT JOIN $tbl c ON c.id = (t.doc->>'id')$cast WHERE c.data IS DISTINCT FROM t.doc")"
    eq "$name: the window closed (checkpoint without a window)" "null" \
       "$(sql "SELECT state->'window' FROM keapsync.checkpoints WHERE job = '$job'")"
}

rate=0.25
phase malformed v1 "malformed:$rate"
phase truncate v1 "truncate:$rate"
phase html v1 "html:$rate"
phase reset v1 "reset:$rate"
phase 5xx v1 "5xx=503:$rate"
phase 429-bare v1 "429-bare:0.2"
phase no-headers v1 "no-headers:$rate"
phase blank-headers v1 "blank-headers:$rate"
phase drip v1 "drip=2:$rate"
phase latency v1 "latency=400:$rate"
all=(malformed:0.03 truncate:0.03 html:0.03 reset:0.03 5xx=500:0.03 429-bare:0.02
     no-headers:0.03 blank-headers:0.03 drip=2:0.03)
phase mixed-v1 v1 "${all[@]}"
phase mixed-v2 v2 "${all[@]}"

it_done
