#!/usr/bin/env bash
# Issue 12, "seeing what it does": every command's --help; keapsync status in words and as
# JSON (ISO times, nulls, no -1, exit 1 after a failed run); keapsync.runs history (outcome,
# requests, 429s by window, records and bytes per job, a failed run's message, a crashed
# run's row closed by the next start while a live one's is left alone); a run stopped by
# SIGTERM or SIGINT exits 130 with its progress saved.
. "$(dirname "$0")/lib.sh"

# ---- --help: every command, stdout, exit 0; an unknown option names itself and the command
for cmd in run migrate status check backfill plan auth report; do
    rc=0; "$KS" "$cmd" --help >"$IT_TMP/help.out" 2>"$IT_TMP/help.err" || rc=$?
    eq "$cmd --help exits 0" 0 "$rc"
    check "$cmd --help prints its usage on stdout" grep -q "^Usage: keapsync $cmd" "$IT_TMP/help.out"
    eq "$cmd --help prints nothing on stderr" "" "$(cat "$IT_TMP/help.err")"
    rc=0; "$KS" "$cmd" --frobnicate >/dev/null 2>"$IT_TMP/bad.err" || rc=$?
    eq "$cmd --frobnicate exits 2" 2 "$rc"
    check "$cmd --frobnicate: one line naming the option and the command" \
        bash -c "[ \$(wc -l <'$IT_TMP/bad.err') -eq 1 ] && grep -q '^keapsync: error: .*\"--frobnicate\".* $cmd' '$IT_TMP/bad.err'"
done

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 100' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
it_keapsim --seed 12 --size 1500 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
"$KS" migrate >/dev/null 2>&1

# ---- status before any run
rc=0; "$KS" status --json >"$IT_TMP/s0.json" 2>"$IT_TMP/s0.err" || rc=$?
eq "status before any run exits 0" 0 "$rc"
eq "status --json before any run: nulls, not sentinels" "null null null [] null" \
    "$(jq -c -r '.jobs[0] | "\(.last_run) \(.watermark) \(.checkpoint) \(.backfills) \(.next_run)"' "$IT_TMP/s0.json")"

# ---- a crashed run's row (no lock held) and a live one's (its lock held by another session)
sql "INSERT INTO keapsync.runs (jobs, started_at) VALUES ('contacts', now() - interval '1 hour')"
dead=$(sql "SELECT max(id) FROM keapsync.runs")
live=$(sql "INSERT INTO keapsync.runs (jobs) VALUES ('other') RETURNING id")
psql "$DATABASE_URL" -qAt -c "SELECT pg_advisory_lock(1802728053, $live)" -c "SELECT pg_sleep(20)" >/dev/null 2>&1 &
holder=$!
IT_PIDS+=("$holder")
for _ in $(seq 1 100); do
    [ "$(sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = 1802728053 AND objid = $live")" = 1 ] && break
    sleep 0.05
done

# ---- a complete run
rc=0; "$KS" run >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" || rc=$?
eq "run exits 0" 0 "$rc"
run1=$(sql "SELECT max(id) FROM keapsync.runs")
eq "the crashed run's row is closed as crashed, with a message" "crashed|t|t" \
    "$(sql "SELECT outcome, finished_at IS NOT NULL, message LIKE '%closed at the start of run $run1%' FROM keapsync.runs WHERE id = $dead")"
eq "the live run's row (lock held) is left open" "t" \
    "$(sql "SELECT finished_at IS NULL AND outcome IS NULL FROM keapsync.runs WHERE id = $live")"
check "the run said it closed one crashed run" grep -q "closed 1 earlier run as crashed" "$IT_TMP/run1.err"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
nrows=$(sql "SELECT count(*) FROM keap.contacts")
served=$(ksim_stat .requests)
eq "runs: outcome, exit code, finished" "complete|0|t" \
    "$(sql "SELECT outcome, exit_code, finished_at >= started_at FROM keapsync.runs WHERE id = $run1")"
eq "runs: rows = the table's rows" "$nrows" "$(sql "SELECT rows FROM keapsync.runs WHERE id = $run1")"
eq "runs: requests = what keapsim served" "$served" "$(sql "SELECT requests FROM keapsync.runs WHERE id = $run1")"
eq "runs: 429s by window sum to the 429s" "t" \
    "$(sql "SELECT rejected_429 = rejected_429_second + rejected_429_minute + rejected_429_day + rejected_429_other FROM keapsync.runs WHERE id = $run1")"
eq "run_jobs: the job's records, requests and bytes add up to the run's" "t|t|t" \
    "$(sql "SELECT sum(j.records) = r.rows, sum(j.requests) = r.requests, sum(j.bytes) = r.bytes FROM keapsync.run_jobs j JOIN keapsync.runs r ON r.id = j.run_id WHERE r.id = $run1 GROUP BY r.id, r.rows, r.requests, r.bytes")"
check "run_jobs: bytes received exceed the records' JSON ($(sql "SELECT bytes FROM keapsync.run_jobs WHERE run_id = $run1") bytes)" \
    test "$(sql "SELECT bytes FROM keapsync.run_jobs WHERE run_id = $run1 AND job = 'contacts'")" -gt $((nrows * 100))

# ---- status after it: text and JSON
rc=0; "$KS" status >"$IT_TMP/s1.out" 2>"$IT_TMP/s1.err" || rc=$?
cat "$IT_TMP/s1.out" >&2
eq "status exits 0 after a complete run" 0 "$rc"
check "status text: a header of columns" grep -Eq '^JOB +LAST RUN +OUTCOME +RECORDS +WATERMARK +CHECKPOINT +BACKFILL +NEXT RUN$' "$IT_TMP/s1.out"
check "status text: columns aligned (OUTCOME starts where \"complete\" does)" \
    bash -c "h=\$(grep '^JOB' '$IT_TMP/s1.out'); r=\$(grep '^contacts' '$IT_TMP/s1.out'); \
             p=\${h%%OUTCOME*}; q=\${r%%complete*}; [ \${#p} -eq \${#q} ]"
check "status text: the job's run, outcome, records in words and readable UTC times" \
    grep -Eq "^contacts +#$run1 20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}Z +complete +$nrows +20[0-9-]+ [0-9:]+Z +idle " "$IT_TMP/s1.out"
check "status text: the tenant's quota used, left and reset at 00:00 UTC" \
    grep -Eq '^tenant ".+": today \([0-9-]+\) [0-9]+ of 30000 requests used, [0-9]+ left; the quota resets [0-9-]+ 00:00:00Z \(in ' "$IT_TMP/s1.out"
check "status text: no epoch milliseconds or -1" bash -c "! grep -Eq '(^|[^0-9])(-1|1[0-9]{12})([^0-9]|$)' '$IT_TMP/s1.out'"
"$KS" status --json >"$IT_TMP/s1.json"
tenant=$(jq -r .tenant.name "$IT_TMP/s1.json")
used=$(sql "SELECT reserved FROM keapsync.quota_ledger WHERE tenant = '$tenant' AND day = (now() AT TIME ZONE 'UTC')::date")
eq "status --json: tenant used and left from the ledger" "$used $((30000 - used))" \
    "$(jq -r '"\(.tenant.used) \(.tenant.left)"' "$IT_TMP/s1.json")"
eq "status --json: resets at the next UTC midnight" "$(date -u -d tomorrow +%Y-%m-%d)T00:00:00Z" \
    "$(jq -r .tenant.resets_at "$IT_TMP/s1.json")"
eq "status --json: the last run" "$run1 complete 0 $nrows false" \
    "$(jq -r '.jobs[0] | "\(.last_run.id) \(.last_run.outcome) \(.last_run.exit_code) \(.last_run.records) \(.last_run_failed)"' "$IT_TMP/s1.json")"
wm_ms=$(sql "SELECT (state->>'watermark_ms')::bigint FROM keapsync.checkpoints WHERE job = 'contacts'")
eq "status --json: the watermark as ISO time" "$(date -u -d "@$((wm_ms / 1000))" +%Y-%m-%dT%H:%M:%SZ)" \
    "$(jq -r '.jobs[0].watermark' "$IT_TMP/s1.json")"
eq "status --json: every time is ISO-8601 UTC" 0 \
    "$(jq '[.. | strings | select(test("^[0-9]{4}-"))| select(test("^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?$") | not)] | length' "$IT_TMP/s1.json")"
eq "status --json: no -1 sentinel anywhere" 0 "$(jq '[.. | numbers | select(. < 0)] | length' "$IT_TMP/s1.json")"

# ---- a failed run: its message is filled, status exits 1 and says why
curl -sf -X POST "$KSIM_URL/__admin/faults?spec=malformed:1:/v1/contacts" >/dev/null
rc=0; "$KS" run >"$IT_TMP/run2.out" 2>"$IT_TMP/run2.err" || rc=$?
eq "a run against a broken list exits 1" 1 "$rc"
run2=$(sql "SELECT max(id) FROM keapsync.runs")
eq "runs: the failed run's outcome and exit code" "failed|1" \
    "$(sql "SELECT outcome, exit_code FROM keapsync.runs WHERE id = $run2")"
check "runs: the failed run's message names the job and why ($(sql "SELECT message FROM keapsync.runs WHERE id = $run2"))" \
    test "$(sql "SELECT message LIKE 'job \"contacts\": %' AND length(message) > 20 FROM keapsync.runs WHERE id = $run2")" = t
eq "run_jobs: the job failed, with its error" "failed|t" \
    "$(sql "SELECT state, error <> '' FROM keapsync.run_jobs WHERE run_id = $run2")"
rc=0; "$KS" status >"$IT_TMP/s2.out" 2>"$IT_TMP/s2.err" || rc=$?
eq "status exits 1 after a failed run" 1 "$rc"
check "status says which run failed and why" grep -q "the last run of job \"contacts\" failed (run $run2, failed, exit code 1): job \"contacts\": " "$IT_TMP/s2.err"
rc=0; "$KS" status --json >"$IT_TMP/s2.json" 2>/dev/null || rc=$?
eq "status --json exits 1 too, and says failed" "1 true failed" "$rc $(jq -r '"\(.failed) \(.jobs[0].last_run.outcome)"' "$IT_TMP/s2.json")"
curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null

# ---- SIGTERM and SIGINT: exit 130, progress saved, not a failure
stop_with() { # SIGNAL: a slow run stopped by SIGNAL after a few pages
    local sig=$1 pid before
    sql "DELETE FROM keapsync.checkpoints; TRUNCATE keap.contacts"
    KEAPSYNC_LIMITS="4/s,240/min,30000/day" "$KS" run >"$IT_TMP/$sig.out" 2>"$IT_TMP/$sig.err" &
    pid=$!
    IT_PIDS+=("$pid")
    for _ in $(seq 1 200); do
        [ "$(sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0)" -ge 200 ] && break
        sleep 0.05
    done
    kill "-$sig" "$pid"
    RC=0; wait "$pid" || RC=$?
}
for sig in TERM INT; do
    stop_with $sig
    eq "SIG$sig: exit 130" 130 "$RC"
    saved=$(sql "SELECT count(*) FROM keap.contacts")
    check "SIG$sig: progress saved ($saved of 1500 rows, the checkpoint mid-window)" \
        test "$saved" -gt 0 -a "$saved" -lt 1500 -a "$(sql "SELECT state->'window'->>'offset' FROM keapsync.checkpoints WHERE job = 'contacts'")" -gt 0
    eq "SIG$sig: the run is recorded as interrupted, with a message" "interrupted|130|t" \
        "$(sql "SELECT outcome, exit_code, message <> '' FROM keapsync.runs ORDER BY id DESC LIMIT 1")"
    rc=0; "$KS" status >/dev/null 2>&1 || rc=$?
    eq "SIG$sig: status does not count it as a failure" 0 "$rc"
done
rc=0; "$KS" run >"$IT_TMP/run3.out" 2>&1 || rc=$?
eq "the next run resumes and completes" "0 1500" "$rc $(sql "SELECT count(*) FROM keap.contacts")"

it_done
