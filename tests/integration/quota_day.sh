#!/usr/bin/env bash
# The daily quota: a run stops at exactly the day's budget minus the reserve, with exit 75
# and zero 429s; started again the same day it sends nothing; on the next UTC day (under
# faketime) it resumes at the page where it stopped.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM"
day=100
reserve_pct=10
budget=$(( day * (100 - reserve_pct) / 100 ))
page=10
it_keapsim --seed 11 --size 5000 --api-key "$KEAP_API_KEY" --limits "20/s,1200/min,$day/day"
port=${KSIM_URL##*:}

# Small pages so the day's budget runs out long before the sync is done.
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="20/s,1200/min,$day/day"
export KEAPSYNC_RESERVE="$reserve_pct%"
"$KS" migrate >/dev/null

rc=0; "$KS" run >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" || rc=$?
cat "$IT_TMP/run1.out" "$IT_TMP/run1.err" >&2
eq "run 1 stops with exit 75" 75 "$rc"
eq "run 1 spent exactly the budget minus the reserve" "$budget" "$(ksim_stat .requests)"
eq "run 1 earned no 429" 0 "$(ksim_stat .rejected_429)"
rows1=$(sql "SELECT count(*) FROM keap.contacts")
eq "every request of run 1 committed its page (rows = first page + overlapped pages)" \
   $(( page + (budget - 1) * (page - 1) )) "$rows1"
check "the ledger holds the day's spend" \
   test "$(sql "SELECT sum(reserved) FROM keapsync.quota_ledger WHERE day = (now() AT TIME ZONE 'UTC')::date AND tenant NOT LIKE 'http%'")" -ge "$budget"
check "the hint says when to come back" grep -q '00:00 UTC' "$IT_TMP/run1.err"

# Same day again: nothing is sent.
rc=0; "$KS" run >"$IT_TMP/run2.out" 2>&1 || rc=$?
eq "run 2 (same day) exits 75" 75 "$rc"
eq "run 2 (same day) sends nothing" "$budget" "$(ksim_stat .requests)"

# The next UTC day, for keapsim and keapsync alike.
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true
it_keapsim_at "+1d" "$port" --seed 11 --size 5000 --api-key "$KEAP_API_KEY" \
    --limits "20/s,1200/min,$day/day"
rc=0; it_faketime "+1d" "$KS" run >"$IT_TMP/run3.out" 2>"$IT_TMP/run3.err" || rc=$?
cat "$IT_TMP/run3.out" >&2
eq "run 3 (next day) stops at the budget again" 75 "$rc"
sent=$(ksim_stat .requests)
eq "run 3 spent the new day's budget" "$budget" "$sent"
eq "run 3 earned no 429" 0 "$(ksim_stat .rejected_429)"
rows3=$(sql "SELECT count(*) FROM keap.contacts")
eq "run 3 resumed where run 1 stopped (each request brought page-1 new rows)" \
   $(( rows1 + sent * (page - 1) )) "$rows3"
eq "no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"

it_done
