#!/usr/bin/env bash
# Deletes: a delete sweep marks exactly the rows whose records keapsim deleted (deleted_at,
# never a DELETE); a full pass of a job that reads everything does the same at no extra
# request, and products' /v1/products/sync reports what was deleted between its passes; a
# sweep stopped at the quota or killed (SIGKILL) halfway marks nothing, and the
# next run completes it and marks exactly them; a record listed again is live again; a parent
# deleted after its row was read ends with its child rows marked, and exit 0.
# Expected values come from keapsim's truth (/__admin/truth), never from constants.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM"
mkdir -p "$IT_TMP/jobs"
for j in contacts companies; do cp "$KEAPSYNC_SRC/jobs/$j.json" "$IT_TMP/jobs/"; done
# products reads everything each pass: every run, so its full pass can be checked
jq '.refresh_hours = 0' "$KEAPSYNC_SRC/jobs/products.json" >"$IT_TMP/jobs/products.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="200/s,12000/min,30000/day"
size=5000
it_keapsim --seed 21 --size "$size" --api-key "$KEAP_API_KEY" --limits "200/s,12000/min,0/day"

run_ks() { # OUT ARGS...: runs keapsync, returns its exit code
    local out=$1 rc=0
    shift
    "$KS" "$@" >"$IT_TMP/$out.out" 2>"$IT_TMP/$out.err" || rc=$?
    return $rc
}
# Rows of keap.<table> whose deleted_at disagrees with the truth: marked but listed, or not
# marked but gone. Contacts: gone = not in the truth; others: the truth's meta says deleted.
contacts_off() {
    ksim_truth_to_pg contacts
    sql "SELECT count(*) FROM keap.contacts c
         WHERE (c.deleted_at IS NOT NULL) <> NOT EXISTS
               (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id)"
}
meta_off() { # RESOURCE
    curl -sf "$KSIM_URL/__admin/truth?resource=$1&meta=1" >"$IT_TMP/meta.$1.jsonl"
    sql "DROP TABLE IF EXISTS meta_$1; CREATE TABLE meta_$1 (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy meta_$1 (doc) FROM '$IT_TMP/meta.$1.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    sql "SELECT count(*) FROM keap.$1 c JOIN meta_$1 m ON (m.doc->>'id')::bigint = c.id
         WHERE (c.deleted_at IS NOT NULL) <> (m.doc->>'deleted')::boolean"
}
marked() { sql "SELECT count(*) FROM keap.$1 WHERE deleted_at IS NOT NULL"; }
sweep_open() { sql "SELECT COALESCE((SELECT (state->'window' <> 'null'::jsonb)::text FROM keapsync.checkpoints WHERE job = '$1#sweep'), 'none')"; }

# ---- a sweep marks exactly what keapsim deleted
it_make_db
"$KS" migrate >/dev/null
rc=0; run_ks load run || rc=$?
eq "the first run exits 0" 0 "$rc"
check "the first run sweeps nothing (it read every record anyway)" \
    bash -c "! grep -q 'contacts#sweep' '$IT_TMP/load.err'"
before=$(ksim_stat .requests)
rc=0; run_ks clock run || rc=$?
eq "a run right after exits 0" 0 "$rc"
check "it starts the sweeps' clock" grep -q 'job "contacts#sweep": its first sweep is due in 7 days' "$IT_TMP/clock.err"
eq "and sweeps nothing: a request per job (products: its pass and its sync)" 4 "$(( $(ksim_stat .requests) - before ))"
ncont=$(sql "SELECT count(*) FROM keap.contacts")
ncomp=$(sql "SELECT count(*) FROM keap.companies")
curl -sf -X POST "$KSIM_URL/__admin/mutate?deletes=$((ncont / 100))" >/dev/null
curl -sf -X POST "$KSIM_URL/__admin/delete?resource=companies&count=$((ncomp / 100))" >"$IT_TMP/delco.json"
curl -sf -X POST "$KSIM_URL/__admin/delete?resource=products&count=1" >/dev/null
eq "keapsim deleted 1 % of the companies" "$((ncomp / 100))" "$(jq '.deleted | length' "$IT_TMP/delco.json")"
# The plan, 8 days on, counts the sweeps that are due, after the jobs they sweep.
rc=0; it_faketime +8d "$KS" plan --json >"$IT_TMP/plan.json" 2>"$IT_TMP/plan.err" || rc=$?
eq "plan exits 0" 0 "$rc"
plan_sweep=$(jq '[.jobs[] | select(.name == "contacts#sweep" and .kind == "sweep") | .requests] | add // 0' "$IT_TMP/plan.json")
check "plan counts the contacts sweep ($plan_sweep requests)" test "$plan_sweep" -gt 0
check "plan puts every sweep after every list job" \
    jq -e '[.jobs[] | .kind] as $k | ([$k | indices("sweep")[]] | min) > ([$k | indices("list")[]] | max)' "$IT_TMP/plan.json"
before=$(ksim_stat .requests)
rc=0; KEAPSYNC_LOG_LEVEL=debug it_faketime +8d "$KS" run >"$IT_TMP/sweep1.out" 2>"$IT_TMP/sweep1.err" || rc=$?
eq "the run 8 days on, with the sweeps, exits 0" 0 "$rc"
# Admission by kind: no sweep request before every incremental and full pass is over.
last_main=$(grep -nE 'job "(contacts|companies|products)": paging -> ' "$IT_TMP/sweep1.err" | tail -1 | cut -d: -f1)
first_sweep=$(grep -nE 'job "[a-z]+#(sweep|sync)": GET ' "$IT_TMP/sweep1.err" | head -1 | cut -d: -f1)
check "the sweeps' first request ($first_sweep) comes after the last main job ended ($last_main)" \
    test "${first_sweep:-0}" -gt "${last_main:-999999}"
eq "contacts: exactly the deleted rows are marked" 0 "$(contacts_off)"
eq "contacts: 1 % marked" "$((ncont / 100))" "$(marked contacts)"
eq "companies: exactly the deleted rows are marked" 0 "$(meta_off companies)"
eq "companies: 1 % marked" "$((ncomp / 100))" "$(marked companies)"
eq "products: the full pass marked exactly the deleted one" 0 "$(meta_off products)"
eq "products: one marked" 1 "$(marked products)"
eq "no row was removed" "$ncont" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "the sweep's seen ids are cleared" 0 "$(sql "SELECT count(*) FROM keapsync.sweep_seen")"
# contacts: a request per 1,000 ids (and a few sent ahead of the end), companies one, the
# incrementals one each, products its pass
spent=$(( $(ksim_stat .requests) - before ))
check "the sweeps read 1,000 ids a request ($spent requests)" test "$spent" -le $((size / 1000 + 12))
spent_sweep=$(sql "SELECT coalesce(sum(requests), 0) FROM keapsync.job_stats WHERE job = 'contacts#sweep'")
# (planned from the last full pass's count: the 1 % deleted since may save a page)
sweep_off=$(( plan_sweep > spent_sweep ? plan_sweep - spent_sweep : spent_sweep - plan_sweep ))
check "plan's sweep requests ($plan_sweep) within a page or 10 % of those it spent ($spent_sweep)" \
    test "$sweep_off" -le 1 -o $((100 * sweep_off)) -le $((10 * spent_sweep))
check "the sweep read ids only (no custom fields)" \
    bash -c "! grep -q 'contacts#sweep.*optional_properties' '$IT_TMP/sweep1.err'"
check "status shows the sweeps" grep -q '^sweep "contacts": every 7 days, last completed 20' \
    <("$KS" status 2>/dev/null || true)
rc=0; it_faketime +8d "$KS" run >"$IT_TMP/sweep2.out" 2>"$IT_TMP/sweep2.err" || rc=$?
eq "a run right after exits 0" 0 "$rc"
check "and sweeps nothing (not due for 7 days)" bash -c "! grep -q 'contacts#sweep' '$IT_TMP/sweep2.out'"

# ---- a record listed again is live again (the next sweep, 8 days on)
back=$(jq '.deleted[0]' "$IT_TMP/delco.json")
curl -sf -X POST "$KSIM_URL/__admin/delete?resource=companies&restore=$back" >/dev/null
rc=0; it_faketime +16d "$KS" run >"$IT_TMP/back.out" 2>"$IT_TMP/back.err" || rc=$?
eq "the sweep 8 days on exits 0" 0 "$rc"
eq "the company listed again is live again" "" "$(sql "SELECT deleted_at FROM keap.companies WHERE id = $back")"
eq "companies: the marks equal the truth" 0 "$(meta_off companies)"
eq "companies: one mark fewer" "$((ncomp / 100 - 1))" "$(marked companies)"

# ---- interrupted sweeps mark nothing: stopped at the quota, then killed; then completed
it_make_db
"$KS" migrate >/dev/null
rc=0; run_ks i_load run --only contacts || rc=$?
eq "load: exit 0" 0 "$rc"
rc=0; run_ks i_clock run --only contacts || rc=$?
eq "load, the run after: exit 0" 0 "$rc"
curl -sf -X POST "$KSIM_URL/__admin/mutate?deletes=$((ncont / 100))" >/dev/null
# 8 days on (a new UTC day): the incremental (a page) and two pages of the sweep fit in the
# day's budget
rc=0; KEAPSYNC_LIMITS="200/s,12000/min,3/day" it_faketime +8d "$KS" run --only contacts \
    >"$IT_TMP/i_quota.out" 2>"$IT_TMP/i_quota.err" || rc=$?
eq "the sweep stops at the quota" 75 "$rc"
eq "the sweep stays open" true "$(sweep_open contacts)"
eq "a sweep stopped at the quota marks nothing" 0 "$(marked contacts)"
# a slow key: the sweep's pages come 1 a second; killed once one more page is in
off0=$(sql "SELECT (state->'window'->>'offset')::bigint FROM keapsync.checkpoints WHERE job = 'contacts#sweep'")
# (keapsync itself in the background, not a shell around it, so the kill reaches it)
KEAPSYNC_LIMITS="1/s,12000/min,30000/day" LD_PRELOAD="$(it_faketime_lib)" FAKETIME=+8d \
    DONT_FAKE_MONOTONIC=1 "$KS" run --only contacts >"$IT_TMP/i_kill.out" 2>"$IT_TMP/i_kill.err" &
kpid=$!
for i in $(seq 1 200); do
    off=$(sql "SELECT (state->'window'->>'offset')::bigint FROM keapsync.checkpoints WHERE job = 'contacts#sweep'")
    [ "$off" -gt "$off0" ] && break
    sleep 0.05
done
kill -KILL "$kpid"; wait "$kpid" 2>/dev/null || true
check "the killed sweep had read more pages (offset $off0 -> $off)" test "$off" -gt "$off0"
eq "a killed sweep marks nothing" 0 "$(marked contacts)"
eq "and stays open" true "$(sweep_open contacts)"
rc=0; it_faketime +8d "$KS" run --only contacts >"$IT_TMP/i_done.out" 2>"$IT_TMP/i_done.err" || rc=$?
eq "the next run completes the sweep" 0 "$rc"
check "it resumed where the killed one stopped" grep -q 'job "contacts#sweep": resuming at offset' "$IT_TMP/i_done.err"
eq "and marks exactly the deleted rows" 0 "$(contacts_off)"
eq "1 % marked" "$((ncont / 100))" "$(marked contacts)"
eq "the sweep is closed" false "$(sweep_open contacts)"

# ---- products: /v1/products/sync reports deletions between full passes, at a request
mkdir -p "$IT_TMP/jobs3"
cp "$KEAPSYNC_SRC/jobs/products.json" "$IT_TMP/jobs3/" # refresh_hours 24: one pass a day
it_make_db
KEAPSYNC_JOBS="$IT_TMP/jobs3" "$KS" migrate >/dev/null
rc=0; KEAPSYNC_JOBS="$IT_TMP/jobs3" run_ks s_load run || rc=$?
eq "products: the first run exits 0" 0 "$rc"
curl -sf -X POST "$KSIM_URL/__admin/delete?resource=products&count=2" >/dev/null
before=$(ksim_stat .requests)
rc=0; KEAPSYNC_JOBS="$IT_TMP/jobs3" run_ks s_sync run || rc=$?
eq "products: the next run exits 0" 0 "$rc"
check "its full pass is fresh (skipped)" grep -q 'job "products": fresh' "$IT_TMP/s_sync.err"
eq "the sync cost one request" 1 "$(( $(ksim_stat .requests) - before ))"
eq "products: the sync marked exactly the deleted ones" 0 "$(meta_off products)"
eq "products: two marked" 2 "$(marked products)"

# ---- a parent deleted after its row was read: its child rows are marked, exit 0
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true
it_keapsim --seed 22 --size 300 --api-key "$KEAP_API_KEY" --limits "200/s,12000/min,0/day"
mkdir -p "$IT_TMP/jobs2"
cp "$KEAPSYNC_SRC/jobs/contacts.json" "$KEAPSYNC_SRC/jobs/contact_tags.json" "$IT_TMP/jobs2/"
export KEAPSYNC_JOBS="$IT_TMP/jobs2"
it_make_db
"$KS" migrate >/dev/null
rc=0; run_ks p_load run || rc=$?
eq "parents and children: exit 0" 0 "$rc"
curl -sf -X POST "$KSIM_URL/__admin/mutate?deletes=5" >/dev/null
ksim_truth_to_pg contacts
gone="SELECT c.id FROM keap.contacts c WHERE NOT EXISTS (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id)"
eq "keapsim deleted 5 contacts" 5 "$(sql "SELECT count(*) FROM ($gone) g")"
have=$(sql "SELECT count(*) FROM keap.contact_tags WHERE contact_id IN ($gone)")
check "the deleted contacts had tag rows ($have)" test "$have" -gt 0
# Their rows were written again just before Keap deleted them (as by a run's incremental in
# the minutes before): the child stream's next pass lists them, and Keap answers 404.
sql "UPDATE keap.contacts SET synced_at = now() WHERE id IN ($gone)"
rc=0; run_ks p_child run --only contact_tags || rc=$?
eq "a parent gone from Keap is not a failure: exit 0" 0 "$rc"
check "it says the parent is gone" grep -q 'is gone from Keap (HTTP 404)' "$IT_TMP/p_child.err"
eq "every child row of the deleted parents is marked" "$have" \
    "$(sql "SELECT count(*) FROM keap.contact_tags WHERE contact_id IN ($gone) AND deleted_at IS NOT NULL")"
eq "no other child row is marked" 0 \
    "$(sql "SELECT count(*) FROM keap.contact_tags WHERE contact_id NOT IN ($gone) AND deleted_at IS NOT NULL")"

it_done
