#!/usr/bin/env bash
# Issue 5, requirement 4: v2 page-token paging with a filter. The test job
# jobs/contacts_v2.json reads /v2/contacts (text ids, order_by "id asc", the window as
# filter=start_update_time==...;end_update_time==...) into keap.contacts_v2.
#   A  a small day quota stops run 1 mid-window (exit 75) with the next page's token in the
#      checkpoint; run 2 resumes with that token at the exact page and ends equal to
#      /__admin/truth?resource=contacts&version=v2; run 3, after keapsim changed records,
#      reads only the changed ones through the filter.
#   B  the saved token expires (keapsim's clock moved past --token-ttl): the next run is
#      refused once, restarts the window from its start and still ends equal to the truth.
#   C  a token refused on every request (keapsim's clock sped up past --token-ttl): the job
#      fails with exit 1 instead of restarting the window forever.
# Every run has a time limit: a run that loops on a refused token fails instead of hanging.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=100
ttl=300
day=10
reserve_pct=10
budget=$((day * (100 - reserve_pct) / 100))
# sim DAY_LIMIT: (re)starts keapsim with that day quota (keapsync trusts the server's quota
# headers, so both must be small to stop a run). Tokens outlive a restart: they are minted
# from the query and keapsim's clock, not from process state.
sim() {
    if [ -n "${KSIM_PID:-}" ]; then kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true; fi
    it_keapsim --seed 61 --size 1450 --api-key "$KEAP_API_KEY" --limits "20/s,1200/min,$1/day" \
        --token-ttl "$ttl"
}
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/tests/integration/jobs/contacts_v2.json" \
    >"$IT_TMP/jobs/contacts_v2.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_RESERVE="$reserve_pct%"
job_filter=$(jq -r '.incremental.filter_since + "," + .incremental.filter_until' "$KEAPSYNC_JOBS/contacts_v2.json")
eq "the job pages by token and filters by update time" "start_update_time,end_update_time" "$job_filter"

truth_v2_to_pg() {
    curl -sf "$KSIM_URL/__admin/truth?resource=contacts&version=v2" >"$IT_TMP/truth.v2.jsonl"
    sql "DROP TABLE IF EXISTS truth_v2; CREATE TABLE truth_v2 (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth_v2 (doc) FROM '$IT_TMP/truth.v2.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}
# run NAME DAY_LIMIT: one run with that day quota, at most 10 s; sets RC, OUT, ERR, SENT
# (requests keapsim received).
run() {
    local before
    before=$(ksim_stat .requests)
    OUT="$IT_TMP/$1.out" ERR="$IT_TMP/$1.err" RC=0
    KEAPSYNC_LIMITS="20/s,1200/min,$2/day" timeout 10 "$KS" run >"$OUT" 2>"$ERR" || RC=$?
    SENT=$(($(ksim_stat .requests) - before))
    cat "$OUT" >&2
    grep -vE ' (INFO|WARNING): ' "$ERR" | head -20 >&2 || true
    grep -E ' WARNING: ' "$ERR" | sort | uniq -c | head -5 >&2 || true
    it_log "$1: exit $RC, $SENT requests"
}
ckpt() { sql "SELECT state #>> '{window,$1}' FROM keapsync.checkpoints WHERE job = 'contacts_v2'"; }
written() { sed -n 's/^job "contacts_v2": [a-z]*, \([0-9]*\) rows written.*/\1/p' "$OUT"; }
equal_truth() { # NAME: the table equals keapsim's v2 truth
    local n
    truth_v2_to_pg
    n=$(sql "SELECT count(*) FROM truth_v2")
    eq "$1: row count equals the v2 truth" "$n" "$(sql "SELECT count(*) FROM keap.contacts_v2")"
    eq "$1: every record exactly as served (ids as text)" 0 \
       "$(sql "SELECT count(*) FROM truth_v2 t FULL JOIN keap.contacts_v2 c ON c.id = t.doc->>'id'
               WHERE c.data IS DISTINCT FROM t.doc")"
    eq "$1: typed columns from the v2 shape" 0 \
       "$(sql "SELECT count(*) FROM truth_v2 t JOIN keap.contacts_v2 c ON c.id = t.doc->>'id'
               WHERE c.update_time IS DISTINCT FROM (t.doc->>'update_time')::timestamptz
                  OR c.company_name IS DISTINCT FROM t.doc #>> '{company,company_name}'
                  OR c.email IS DISTINCT FROM t.doc #>> '{email_addresses,0,email}'")"
}
# stopped_midway NAME: run 1 stopped by the day quota with a token saved.
stopped_midway() {
    local n
    eq "$1: stops at the day quota with exit 75" 75 "$RC"
    eq "$1: spent exactly the budget" "$budget" "$SENT"
    n=$(sql "SELECT count(*) FROM keap.contacts_v2")
    eq "$1: one page committed per request" "$((budget * page))" "$n"
    eq "$1: the committed rows are the first ones in id order" 0 \
       "$(sql "SELECT count(*) FROM (SELECT doc FROM truth_v2 ORDER BY (doc->>'id')::bigint LIMIT $n) t
               LEFT JOIN keap.contacts_v2 c ON c.id = t.doc->>'id' WHERE c.data IS DISTINCT FROM t.doc")"
    TOKEN=$(ckpt page_token)
    check "$1: the checkpoint holds the next page's token [$TOKEN]" test -n "$TOKEN"
    check "$1: the checkpoint holds the window" test -n "$(ckpt until_ms)"
}

# ---- A: stop mid-way, resume with the saved token, then an incremental window
sim 30000
it_make_db
"$KS" migrate >/dev/null
truth_v2_to_pg
ntruth=$(sql "SELECT count(*) FROM truth_v2")
full=$(((ntruth + page - 1) / page))
sim "$day"
run a1 "$day"
stopped_midway a1
sim 30000
run a2 30000
eq "a2: exit 0" 0 "$RC"
check "a2: no window restarted" bash -c "! grep -q 'restarting the window' '$ERR'"
eq "a2: resumed at the saved page (requests = pages left)" "$((full - budget))" "$SENT"
eq "a2: rows written = rows left" "$((ntruth - budget * page))" "$(written)"
equal_truth a2
eq "a2: window closed" "" "$(ckpt until_ms)"
check "a2: watermark saved" test -n "$(sql "SELECT state->>'watermark_ms' FROM keapsync.checkpoints WHERE job = 'contacts_v2' AND (state->>'watermark_ms')::bigint > 0")"

# Records change a little in the past (inside the next window, which ends lag_seconds ago).
curl -sf -X POST "$KSIM_URL/__admin/clock?offset_ms=-120000" >/dev/null
curl -sf -X POST "$KSIM_URL/__admin/mutate?creates=7&updates=30&deletes=0" >/dev/null
curl -sf -X POST "$KSIM_URL/__admin/clock?offset_ms=0" >/dev/null
truth_v2_to_pg
changed=$(sql "SELECT count(*) FROM truth_v2 WHERE (doc->>'update_time')::timestamptz > now() - interval '1 hour'")
check "keapsim changed records ($changed)" test "$changed" -gt 0
run a3 30000
eq "a3: exit 0" 0 "$RC"
eq "a3: the filtered window holds only the changed records" "$changed" "$(written)"
eq "a3: pages for the changed records only" "$(((changed + page - 1) / page))" "$SENT"
equal_truth a3

# ---- B: the saved token expires before the next run
sim "$day"
it_make_db
"$KS" migrate >/dev/null
truth_v2_to_pg
run b1 "$day"
stopped_midway b1
sim 30000
curl -sf -X POST "$KSIM_URL/__admin/clock?offset_ms=$(((ttl + 60) * 1000))" >/dev/null
run b2 30000
curl -sf -X POST "$KSIM_URL/__admin/clock?offset_ms=0" >/dev/null
eq "b2: exit 0" 0 "$RC"
eq "b2: the window restarted once" 1 "$(grep -c 'restarting the window' "$ERR" || true)"
check "b2: because the token expired" grep -q 'expired; restarting the window' "$ERR"
eq "b2: one refused request, then the whole window" "$((1 + full))" "$SENT"
equal_truth b2
eq "b2: window closed" "" "$(ckpt until_ms)"

# ---- C: a token refused every time (keapsim's clock runs 200 times faster, so each token has
# expired before keapsync, at 2 requests a second, sends it). Restarting the window cannot help:
# the job must stop, exit 1, naming the job, instead of re-reading page 1 until the day's quota
# is gone.
port=${KSIM_URL##*:}
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" it_keapsim_at "+0 x200" "$port" --seed 61 --size 1450 --api-key "$KEAP_API_KEY" \
    --limits 0/s,0/min,30000/day --token-ttl 60
it_make_db
"$KS" migrate >/dev/null
before=$(ksim_stat .requests)
rc=0
KEAPSYNC_LIMITS="2/s,120/min,30000/day" timeout 20 "$KS" run >"$IT_TMP/c.out" 2>"$IT_TMP/c.err" || rc=$?
sent=$(($(ksim_stat .requests) - before))
cat "$IT_TMP/c.out" >&2
grep -vE ' (INFO|WARNING): ' "$IT_TMP/c.err" | head -20 >&2 || true
grep -E ' WARNING: ' "$IT_TMP/c.err" | sort | uniq -c | head -5 >&2 || true
it_log "c: exit $rc, $sent requests"
eq "c: a token refused every time fails the job (exit 1, not a loop until killed)" 1 "$rc"
check "c: the job line says failed" grep -q '^job "contacts_v2": failed' "$IT_TMP/c.out"

it_done
