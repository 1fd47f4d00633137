#!/usr/bin/env bash
# Backfill: `keapsync backfill contacts --from A --to B` records a backfill of the job's
# history; plain `run`s then read it in windows on the job's changed-since filter, after the
# incrementals, a small daily budget at a time, over several UTC days (faketime), until the
# table holds exactly keapsim's records of that range. status shows how far it is. Bad input
# exits 2 with one line and writes nothing.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM"
mkdir -p "$IT_TMP/jobs"
# Small pages, so the range costs many requests; no sweep, so the budget is the backfill's.
jq '.page_size = 100 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
cp "$KEAPSYNC_SRC/jobs/products.json" "$IT_TMP/jobs/"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
day=12
export KEAPSYNC_LIMITS="50/s,3000/min,$day/day"
it_keapsim --seed 31 --size 3000 --api-key "$KEAP_API_KEY" --limits "50/s,3000/min,0/day"
from=2020-01-01
to=2025-01-01

it_make_db
"$KS" migrate >/dev/null
backfills() { sql "SELECT count(*) FROM keapsync.backfills"; }

# ---- bad input: exit 2, one clear line, nothing written
bad() { # DESCRIPTION PATTERN ARGS...
    local what=$1 pat=$2 rc=0
    shift 2
    "$KS" backfill "$@" >"$IT_TMP/bad.out" 2>"$IT_TMP/bad.err" || rc=$?
    eq "$what: exit 2" 2 "$rc"
    eq "$what: one line" 1 "$(grep -c . "$IT_TMP/bad.err" || true)"
    check "$what: says what is wrong ($(head -c 160 "$IT_TMP/bad.err"))" grep -q -- "$pat" "$IT_TMP/bad.err"
}
bad "unknown job" 'no job is named "contact".*hint' contact --from "$from"
bad "a job that is not incremental" 'job "products" is not incremental.*hint' products --from "$from"
bad "--from after --to" '\-\-from "2024-02-01" is not before \-\-to 2024-01-01.*hint' contacts --from 2024-02-01 --to 2024-01-01
bad "a date in the future" '\-\-to "2999-01-01" is in the future.*hint' contacts --from "$from" --to 2999-01-01
bad "not a date" '\-\-from "last year" is not a date.*YYYY-MM-DD' contacts --from "last year"
bad "not a day" '\-\-from "2024-13-01" is not a date' contacts --from 2024-13-01
bad "no --from" 'backfill needs a job name and \-\-from' contacts
eq "bad input wrote nothing" 0 "$(backfills)"

# The incremental job has synced up to now (set up today): its windows read only what changes
# from here on, and the history before is the backfill's.
now_ms=$(date +%s%3N)
sql "INSERT INTO keapsync.checkpoints (job, state) VALUES ('contacts',
     '{\"v\":1,\"watermark_ms\":$now_ms,\"completed_ms\":$now_ms,\"window\":null}')"
rc=0; "$KS" backfill contacts --from "$from" --to "${to}T00:00:00Z" >"$IT_TMP/bf.out" 2>&1 || rc=$?
eq "the backfill is recorded" 0 "$rc"
check "it says so" grep -q "backfill 1 of \"contacts\" recorded: ${from}T00:00:00.000Z to ${to}T00:00:00.000Z" "$IT_TMP/bf.out"
eq "one backfill" 1 "$(backfills)"

# The truth for the range: keapsim's contacts updated in [from, to) (last_updated is shown to
# the second, and the range's ends are whole seconds, so the comparison is exact).
ksim_truth_to_pg contacts
in_range="(t.doc->>'last_updated')::timestamptz >= '$from' AND (t.doc->>'last_updated')::timestamptz < '$to'"
want=$(sql "SELECT count(*) FROM truth_contacts t WHERE $in_range")
check "the range holds many pages of records ($want)" test "$want" -gt $((day * 100))
off() { # rows that differ from the truth of the range, either way
    sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE $in_range AND NOT EXISTS
                   (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
              + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
                   (SELECT 1 FROM truth_contacts t WHERE $in_range AND (t.doc->>'id')::bigint = c.id))"
}

# ---- the plan counts the backfill before a request of it is spent
rc=0; "$KS" plan --json >"$IT_TMP/plan.json" 2>"$IT_TMP/plan.err" || rc=$?
eq "plan exits 0" 0 "$rc"
jq -r '.jobs[] | "  \(.name) \(.kind) \(.records) records \(.requests) requests \(.source): \(.detail)"' "$IT_TMP/plan.json" >&2
plan_bf=$(jq '[.jobs[] | select(.name == "contacts#backfill1" and .kind == "backfill") | .requests] | add // 0' "$IT_TMP/plan.json")
plan_bf_records=$(jq '[.jobs[] | select(.name == "contacts#backfill1") | .records] | add // -1' "$IT_TMP/plan.json")
eq "plan estimates the backfill's records from a probe of its range" "$want" "$plan_bf_records"
check "plan puts the backfill after the incremental" \
    jq -e '[.jobs[].name] | index("contacts") < index("contacts#backfill1")' "$IT_TMP/plan.json"
plan_days=$(jq .days "$IT_TMP/plan.json")
probes=$(jq .probe_requests "$IT_TMP/plan.json")
check "the probes stayed within the plan's cap ($probes)" test "$probes" -le 64
# The probes spent today's budget too: the runs below start on what they left.

# ---- plain runs, one a UTC day, until it is done
d=0 stopped=0 rc=75 prev=0 grew=1
while [ "$rc" -eq 75 ] && [ "$d" -lt 12 ]; do
    rc=0; it_faketime "+${d}d" "$KS" run >"$IT_TMP/day$d.out" 2>"$IT_TMP/day$d.err" || rc=$?
    have=$(sql "SELECT count(*) FROM keap.contacts")
    it_log "day $d: exit $rc, $have rows"
    [ "$have" -gt "$prev" ] || [ "$rc" -eq 0 ] || grew=0
    prev=$have
    if [ "$rc" -eq 75 ]; then
        stopped=$((stopped + 1))
        [ "$d" -eq 0 ] && it_faketime +0d "$KS" status >"$IT_TMP/status0.out" 2>/dev/null || true
    fi
    d=$((d + 1))
done
eq "the backfill ends with exit 0" 0 "$rc"
check "it took several UTC days ($d runs, $stopped stopped at the budget)" test "$stopped" -ge 2
eq "each day's run went further" 1 "$grew"
check "each day's run read the incremental first" \
    bash -c "grep -q '^job \"contacts\": done' '$IT_TMP/day0.out' && grep -q '^job \"contacts#backfill1\": stopped' '$IT_TMP/day0.out'"
check "status showed its progress on day 0" \
    grep -Eq "^backfill 1 \"contacts\": from ${from}T00:00:00.000Z to ${to}T00:00:00.000Z, read through 20[0-9-]+T[0-9:.]+Z \([0-9]+ %\), not done" "$IT_TMP/status0.out"
eq "the table equals the truth of the range" 0 "$(off)"
left0=$(sed -n 's/.*(contacts#backfill1 ~\([0-9]*\)).*/\1/p' "$IT_TMP/day0.err")
check "day 0's stop line says what the backfill has left (~${left0:-none} requests, plan said $plan_bf)" \
    test "${left0:-0}" -gt 1 -a "${left0:-0}" -lt "$plan_bf"
spent_bf=$(sql "SELECT coalesce(sum(requests), 0) FROM keapsync.job_stats WHERE job = 'contacts#backfill1'")
it_log "backfill: plan said $plan_bf requests over $plan_days days; it spent $spent_bf over $d runs"
check "plan's backfill requests ($plan_bf) within 10 % of those spent ($spent_bf)" \
    test $((100 * (plan_bf > spent_bf ? plan_bf - spent_bf : spent_bf - plan_bf))) -le $((10 * spent_bf))
check "plan's days ($plan_days) within one of the runs it took ($d)" test $(( plan_days > d ? plan_days - d : d - plan_days )) -le 1
eq "no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
"$KS" status >"$IT_TMP/status.out" 2>/dev/null || true
check "status shows it done" grep -q "^backfill 1 \"contacts\": from .* (100 %), done" "$IT_TMP/status.out"
rc=0; it_faketime "+${d}d" "$KS" run >"$IT_TMP/after.out" 2>&1 || rc=$?
eq "a run after it exits 0" 0 "$rc"
check "and reads no more of it" bash -c "! grep -q 'contacts#backfill1' '$IT_TMP/after.out'"

it_done
