#!/usr/bin/env bash
# The quota planner over a sync that needs several days: every shipped job against keapsim,
# the daily limit scaled down (keapsim --limits and KEAPSYNC_LIMITS alike), a 10 % reserve,
# and a third of today's budget already spent by another integration (in the ledger).
# `keapsync plan --json` first: it parses, its probes are few, counted in the ledger and in
# keapsim's stats (and find the same sizes when v1's count is only the page's length). Then
# `keapsync run` once per simulated UTC day (faketime for keapsync, a
# keapsim whose clock is as far ahead) until it exits 0: each earlier run exits 75 with the
# one line of what is left and when the next UTC day starts; no day spends more than its
# limit less the reserve; every table ends equal to keapsim's truth (ids); and the finish
# date plan printed before the start is off by at most one day.
. "$(dirname "$0")/lib.sh"

it_make_db
export PGOPTIONS="-c client_min_messages=warning"
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
export KEAPSYNC_JOBS="$KEAPSYNC_SRC/jobs"
export KEAPSYNC_TENANT="plan-days-tenant"
export KEAPSYNC_RESERVE="10%"
size=2000
per_day=800
budget=$(( per_day * 90 / 100 ))
prespent=300
# Per-second and per-minute limits scaled up, so four days take seconds.
export KEAPSYNC_LIMITS="200/s,12000/min,$per_day/day"
it_keapsim --seed 17 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS"
port=${KSIM_URL##*:}
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true

"$KS" migrate >/dev/null 2>&1
# Another integration of the tenant spent part of today: the ledger says so.
sql "INSERT INTO keapsync.quota_ledger (tenant, day, reserved, spent) VALUES ('$KEAPSYNC_TENANT', (now() AT TIME ZONE 'UTC')::date, $prespent, $prespent)"
ledger_today() { sql "SELECT coalesce(sum(reserved), 0) FROM keapsync.quota_ledger WHERE tenant = '$KEAPSYNC_TENANT' AND day = (now() AT TIME ZONE 'UTC')::date"; }

# ---- plan first
it_keapsim_at "+0d" "$port" --seed 17 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS"
pid=$KSIM_PID
rc=0; "$KS" plan --json >"$IT_TMP/plan.json" 2>"$IT_TMP/plan.err" || rc=$?
cat "$IT_TMP/plan.err" >&2
eq "plan --json exits 0" 0 "$rc"
check "plan --json parses with jq" sh -c "jq -e . \"$IT_TMP/plan.json\" >/dev/null"
jq -c '{total_requests, days, finish_date, today_left, daily_budget, probe_requests}' "$IT_TMP/plan.json" >&2
jq -r '.jobs[] | "  \(.name) \(.kind) \(.records) records \(.requests) requests \(.finish_date) \(.source): \(.detail)"' "$IT_TMP/plan.json" >&2
check "plan has total_requests, days and jobs[].requests" \
    jq -e '(.total_requests | type) == "number" and (.days | type) == "number" and (.jobs | length) > 0 and all(.jobs[]; (.requests | type) == "number")' "$IT_TMP/plan.json"
njobs=$(ls "$KEAPSYNC_JOBS"/*.json | wc -l)
eq "plan lists every job" "$njobs" "$(jq '.jobs | length' "$IT_TMP/plan.json")"
eq "total_requests is the jobs' sum" "$(jq '[.jobs[].requests] | add' "$IT_TMP/plan.json")" "$(jq .total_requests "$IT_TMP/plan.json")"
eq "list jobs come before the child stream" "contact_tags" "$(jq -r '.jobs[-1].name' "$IT_TMP/plan.json")"
probes=$(jq .probe_requests "$IT_TMP/plan.json")
check "plan spent a few probe requests ($probes), at most a few dozen" test "$probes" -ge 1 -a "$probes" -le 64
eq "keapsim saw exactly the probe requests" "$probes" "$(ksim_stat .requests)"
eq "the ledger counted them (on top of the other integration's $prespent)" $(( prespent + probes )) "$(ledger_today)"
eq "probes earned no 429" 0 "$(ksim_stat .rejected_429)"
eq "today's budget left is the day's less the reserve, the other integration and the probes" \
    $(( budget - prespent - probes )) "$(jq .today_left "$IT_TMP/plan.json")"
check "the text plan prints every job and the total days" \
    sh -c "\"$KS\" plan >\"$IT_TMP/plan.txt\" 2>/dev/null && grep -q '^contact_tags ' \"$IT_TMP/plan.txt\" && grep -q '^plan: .* requests over [0-9]* day' \"$IT_TMP/plan.txt\""
cat "$IT_TMP/plan.txt" >&2
plan_finish=$(jq -r .finish_date "$IT_TMP/plan.json")
plan_days=$(jq .days "$IT_TMP/plan.json")
check "the plan needs at least three UTC days ($plan_days)" test "$plan_days" -ge 3
plan_sent=$(ksim_stat .requests) # both plans' probes, sent on day 0 before the first run
kill "$pid"; wait "$pid" 2>/dev/null || true

# ---- the same plan where v1's count is only the page's length (KEAP_API.md: uncertain)
main_db=$DATABASE_URL
it_make_db
"$KS" migrate >/dev/null 2>&1
it_keapsim --seed 17 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS" --v1-count page
rc=0; "$KS" plan --json >"$IT_TMP/plan_page.json" 2>"$IT_TMP/plan_page.err" || rc=$?
eq "plan with page-length counts exits 0" 0 "$rc"
eq "page-length counts: the same records for every job (doubling and bisection)" \
    "$(jq -c '[.jobs[] | [.name, .records]]' "$IT_TMP/plan.json")" "$(jq -c '[.jobs[] | [.name, .records]]' "$IT_TMP/plan_page.json")"
probes_page=$(jq .probe_requests "$IT_TMP/plan_page.json")
check "page-length counts: still a few probe requests ($probes_page)" test "$probes_page" -le 64
eq "page-length counts: keapsim saw exactly them" "$probes_page" "$(ksim_stat .requests)"
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true
export DATABASE_URL=$main_db KSIM_URL="http://127.0.0.1:$port" KEAP_BASE_URL="http://127.0.0.1:$port/crm/rest"

# ---- one run per UTC day until done
finish_day=-1
for day in 0 1 2 3 4 5 6; do
    it_keapsim_at "+${day}d" "$port" --seed 17 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS"
    pid=$KSIM_PID
    before=$(ksim_stat .requests)
    rc=0; KEAPSYNC_LOG_LEVEL=warning it_faketime "+${day}d" timeout 100 "$KS" run >"$IT_TMP/day.$day.out" 2>"$IT_TMP/day.$day.err" || rc=$?
    sent=$(( $(ksim_stat .requests) - before ))
    it_log "day $day: exit $rc, $sent requests; $(tr '\n' ' ' <"$IT_TMP/day.$day.err")"
    eq "day $day: no 429" 0 "$(ksim_stat .rejected_429)"
    day_total=$(ksim_stat .requests)
    [ "$day" -eq 0 ] && day_total=$(( day_total + prespent + plan_sent ))
    check "day $day: the tenant spent at most the day's limit less the reserve ($day_total <= $budget)" \
        test "$day_total" -le "$budget"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    if [ "$rc" -ne 75 ]; then
        finish_day=$day
        break
    fi
    eq "day $day: exactly one line says it stopped" 1 "$(grep -c '^keapsync: stopped:' "$IT_TMP/day.$day.err" || true)"
    check "day $day: the line says what is left and when the next UTC day starts" \
        grep -Eq "^keapsync: stopped: the day's request budget is spent; left: [0-9]+ jobs?, ~[0-9]+ requests \(.*[a-z_]+ ~[0-9]+.*\).*; run again after 00:00 UTC: the next UTC day starts [0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z, in [0-9]+\.[0-9] h$" "$IT_TMP/day.$day.err"
    check "day $day: the line names a job that is not done" \
        sh -c "grep -o 'left: .*' \"$IT_TMP/day.$day.err\" | grep -q 'contact_tags ~'"
done
eq "the last run exits 0" 0 "$rc"
check "the sync crossed three UTC midnights (finished on day $finish_day)" test "$finish_day" -ge 3
eq "no day reserved more than the budget in the ledger" 0 \
    "$(sql "SELECT count(*) FROM keapsync.quota_ledger WHERE tenant = '$KEAPSYNC_TENANT' AND reserved > $budget")"
actual_finish=$(date -u -d "+$finish_day day" +%F)
diff_days=$(( ( $(date -u -d "$actual_finish" +%s) - $(date -u -d "$plan_finish" +%s) ) / 86400 ))
check "plan's finish date $plan_finish is within a day of the actual $actual_finish ($diff_days)" \
    test "${diff_days#-}" -le 1

# ---- every table equals keapsim's truth (ids), as sync_all.sh compares them
it_keapsim_at "+${finish_day}d" "$port" --seed 17 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS"
truth_to_pg() {
    curl -sf "$KSIM_URL/__admin/truth?resource=$2&version=$3" >"$IT_TMP/$1.jsonl"
    sql "DROP TABLE IF EXISTS $1; CREATE TABLE $1 (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy $1 (doc) FROM '$IT_TMP/$1.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}
KSIM_URL="http://127.0.0.1:$port"
for f in "$KEAPSYNC_JOBS"/*.json; do
    job=$(jq -r .name "$f")
    [ "$(jq -r '.parent // empty' "$f")" = "" ] || continue
    table=$(jq -r '.table // .name' "$f")
    version=$(jq -r '.endpoint | split("/")[1]' "$f")
    idpath=$(jq -r '.id.path // "id"' "$f")
    truth_to_pg "truth_$job" "$job" "$version"
    eq "$job: every truth id landed, none other" 0 "$(sql "
        SELECT count(*) FROM (SELECT doc #>> '{$idpath}' id FROM truth_$job) t
        FULL JOIN keap.$table c ON c.id::text = t.id WHERE c.id IS NULL OR t.id IS NULL")"
done
truth_to_pg truth_contact_list contacts v1
eq "contact_tags: every contact's tags landed, as its tag_ids say" 0 "$(sql "
    SELECT count(*) FROM truth_contact_list t
    WHERE COALESCE((SELECT array_agg(x.id ORDER BY x.id) FROM keap.contact_tags x WHERE x.contact_id = (t.doc->>'id')::bigint), '{}')
          IS DISTINCT FROM
          COALESCE((SELECT array_agg(v::bigint ORDER BY v::bigint) FROM jsonb_array_elements_text(t.doc->'tag_ids') v), '{}')")"

# ---- after the sync, a plan reads history and parents in Postgres: no probe
before=$(ksim_stat .requests)
rc=0; it_faketime "+${finish_day}d" "$KS" plan --json >"$IT_TMP/plan2.json" 2>"$IT_TMP/plan2.err" || rc=$?
eq "plan after the sync exits 0" 0 "$rc"
eq "plan after the sync probes nothing" 0 "$(jq .probe_requests "$IT_TMP/plan2.json")"
eq "and keapsim saw nothing" "$before" "$(ksim_stat .requests)"
check "its list jobs' estimates come from history or freshness" \
    jq -e 'all(.jobs[] | select(.kind == "list"); .source == "history" or .source == "fresh")' "$IT_TMP/plan2.json"
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true
it_done
