#!/usr/bin/env bash
# Fault matrix (issue 13), what keapsim can do to a response: each fault alone at 20 %, then
# all of them together at 3 % each, on the contacts list (v1), each phase into a fresh
# database. robust_faults.sh checks that such runs end equal to the truth; this one adds that
# the retries are bounded and never a hot loop:
#   - every request keapsync counts is one keapsim saw, and keapsim saw no more than
#     (pages + 1) x 8 (the page's attempts, SCHED_DEFAULT_ATTEMPTS; + 1: the custom field
#     model), and no fewer than the pages plus the faults (each fault costs one more try);
#   - keapsim's own windows (10/s, 240/min, on the real clock) never refused a request, and
#     the most requests it counted in any rolling second is at most its spike limit;
# then one fault at 100 % (malformed JSON from the first page on): exit 1, and the error line
# names the job, the page (offset 0) and the cause, after 8 tries, no more requests than that.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=50
attempts=8 # SCHED_DEFAULT_ATTEMPTS
spike=10
it_keapsim --seed 71 --size 600 --api-key "$KEAP_API_KEY" --limits "$spike/s,240/min,30000/day"
export KEAPSYNC_LIMITS="8/s,240/min,30000/day"
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" \
    >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
curl -sf "$KSIM_URL/__admin/truth?resource=contacts" >"$IT_TMP/truth.jsonl"
ntruth=$(wc -l <"$IT_TMP/truth.jsonl")

# phase NAME LABEL COSTS SPEC...: a fresh database, keapsim's counters zeroed, the faults, one
# run. COSTS 1: each fault fails its response (one more try); 0: not (a slow or odd success),
# or not all of them do.
phase() {
    local name=$1 label=$2 costs=$3 what s rc=0 seen fired pages req max1 r429 bound low
    shift 3
    it_case_begin
    it_make_db
    "$KS" migrate >/dev/null
    sql "CREATE TABLE truth (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth (doc) FROM '$IT_TMP/truth.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
    for s in "$@"; do
        curl -sf -X POST "$KSIM_URL/__admin/faults?spec=$s:/v1/contacts" >/dev/null
    done
    curl -sf -X POST "$KSIM_URL/__admin/reset" >/dev/null
    "$KS" run >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err" || rc=$?
    cat "$IT_TMP/$name.out" >&2
    seen=$(ksim_stat .requests)
    fired=$(ksim_stat .faults)
    max1=$(ksim_stat .max_in_1s)
    r429=$(ksim_stat .rejected_429)
    pages=$(sed -n 's/^job "contacts": [a-z]*, [0-9]* rows written, \([0-9]*\) pages.*/\1/p' "$IT_TMP/$name.out")
    req=$(sed -n 's/^run: \([0-9]*\) requests.*/\1/p' "$IT_TMP/$name.out")
    bound=$(((${pages:-0} + 1) * attempts))
    eq "$name: exit 0" 0 "$rc"
    check "$name: keapsim injected the fault ($fired times)" test "$fired" -gt 0
    eq "$name: every request keapsync counted is one keapsim saw" "$seen" "$req"
    check "$name: retries bounded: $seen requests <= (pages $pages + 1) x $attempts = $bound" test "$seen" -le "$bound"
    low=$((${pages:-0} + costs * fired))
    what="pages"
    [ "$costs" = 1 ] && what="pages + faults (each cost one more try)"
    check "$name: no fewer requests than $what: $seen >= $low" \
        test "$seen" -ge "$low"
    eq "$name: no hot loop: keapsim's windows refused nothing" 0 "$r429"
    check "$name: no hot loop: at most $spike requests in any second ($max1)" test "$max1" -le "$spike"
    eq "$name: the table equals the truth (missing + extra + different)" 0 \
       "$(sql "SELECT (SELECT count(*) FROM truth t WHERE NOT EXISTS
            (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
          + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
            (SELECT 1 FROM truth t WHERE (t.doc->>'id')::bigint = c.id))")"
    eq "$name: no id twice" "$ntruth" "$(sql "SELECT count(DISTINCT id) FROM keap.contacts")"
    it_case_end "$label" "$fired"
}

r=0.2
phase 5xx "HTTP 500 at 20 %" 1 "5xx=500:$r"
phase 503 "HTTP 503 at 20 %" 1 "5xx=503:$r"
phase reset "connection reset mid-body at 20 %" 1 "reset:$r"
phase truncate "body truncated at 20 %" 1 "truncate:$r"
phase malformed "malformed JSON at 20 %" 1 "malformed:$r"
phase html "HTML 502 error page at 20 %" 1 "html:$r"
phase drip "slow drip (64 B every 5 ms) at 20 %" 0 "drip=5:$r"
phase 429-bare "429 without headers or body at 20 %" 1 "429-bare:$r"
phase 429-blank "429 with blank headers and Retry-After at 20 %" 1 "429-blank:$r"
phase blank-headers "200 with blank x-keap headers at 20 %" 0 "blank-headers:$r"
phase all "all of the above together, 3 % each" 0 5xx=500:0.03 5xx=503:0.03 reset:0.03 \
    truncate:0.03 malformed:0.03 html:0.03 drip=5:0.03 429-bare:0.03 429-blank:0.03 blank-headers:0.03

# ---- a fault on every request: the job stops, and says which page and why
it_case_begin
it_make_db
"$KS" migrate >/dev/null
curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
curl -sf -X POST "$KSIM_URL/__admin/faults?spec=malformed:1:/v1/contacts" >/dev/null
curl -sf -X POST "$KSIM_URL/__admin/reset" >/dev/null
rc=0
"$KS" run >"$IT_TMP/all-fail.out" 2>"$IT_TMP/all-fail.err" || rc=$?
cat "$IT_TMP/all-fail.out" >&2
grep ' ERROR: ' "$IT_TMP/all-fail.err" >&2 || true
eq "100 %: exit 1" 1 "$rc"
check "100 %: the error names the job, the page and the cause, after $attempts attempts" \
    grep -qE "ERROR: could not parse page at offset 0 of \"contacts\" after $attempts attempts: .*JSON" "$IT_TMP/all-fail.err"
check "100 %: the job line says failed, with the same words" \
    grep -qE "^job \"contacts\": failed, 0 rows written.*could not parse page at offset 0 of \"contacts\" after $attempts attempts" "$IT_TMP/all-fail.out"
seen=$(ksim_stat .requests)
fired=$(ksim_stat .faults)
check "100 %: no more than $attempts tries of the page (+ $attempts of the model): $seen requests" test "$seen" -le $((2 * attempts))
check "100 %: every list request failed ($fired faults >= $attempts)" test "$fired" -ge "$attempts"
eq "100 %: nothing stored" 0 "$(sql "SELECT count(*) FROM keap.contacts")"
it_case_end "malformed JSON at 100 %: exit 1, the job, page and cause named" "$fired"

it_done
