#!/usr/bin/env bash
# keapsync daemon, a job that keeps failing: it is run again after its own backoff
# (KEAPSYNC_RETRY_SECONDS, here 1 s, doubling), not only at its next tick (here next year),
# while the job that did not fail waits for its tick. Once keapsim is healed the next retry
# completes the job, its tick is served, and nothing runs again. A bad KEAPSYNC_RETRY_SECONDS
# is exit 2 with one line.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs"
yearly='0 0 1 1 *'
jq --arg s "$yearly" '.page_size = 100 | .schedule = $s | del(.deletes)' \
    "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
jq --arg s "$yearly" '.schedule = $s' "$KEAPSYNC_SRC/jobs/products.json" >"$IT_TMP/jobs/products.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_RETRY_SECONDS=1
it_keapsim --seed 7 --size 300 --api-key "$KEAP_API_KEY" --limits "10/s,600/min,0/day"
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts

rc=0
KEAPSYNC_RETRY_SECONDS=0 "$KS" daemon >/dev/null 2>"$IT_TMP/bad.err" || rc=$?
eq "KEAPSYNC_RETRY_SECONDS=0: exit 2" 2 "$rc"
check "... one line with a hint" grep -qxE 'keapsync: error: invalid KEAPSYNC_RETRY_SECONDS "0" \(hint: .+\)' "$IT_TMP/bad.err"

# Every request for contacts gets an unparseable body: the job fails each time it runs.
curl -sf -X POST "$KSIM_URL/__admin/faults?spec=malformed:1:/v1/contacts" >/dev/null
LOG="$IT_TMP/daemon.log"
"$KS" daemon >"$LOG" 2>&1 &
DPID=$!
IT_PIDS+=("$DPID")
fails() { grep -c 'job=contacts outcome=failed' "$LOG" || true; }
four_fails() { [ "$(fails)" -ge 4 ]; }
check "contacts fails and is run again, again and again" wait_for 40 four_fails
check "... each time with a line saying when it runs next" \
    test "$(grep -c 'job "contacts" failed; running it again at ' "$LOG")" -ge 4
# The waits the daemon announced: 1 s, 2 s, 4 s, 8 s ...
waits=$(sed -n 's/.*job "contacts" failed; running it again at .* (in \([0-9.]*\) s).*/\1/p' "$LOG" | head -4 | tr '\n' ' ')
it_log "announced waits: $waits"
eq "the waits double from KEAPSYNC_RETRY_SECONDS" "1.0 2.0 4.0 8.0 " "$waits"
# The runs' start times (keapsync.runs) are at least those waits apart.
gaps=$(sql "SELECT string_agg(g::text, ' ' ORDER BY id) FROM (
    SELECT id, floor(extract(epoch FROM started_at - lag(finished_at) OVER (ORDER BY id)) * 10)::int AS g
    FROM keapsync.runs WHERE 'contacts' = ANY (string_to_array(jobs, ','))) x WHERE g IS NOT NULL")
it_log "gaps between a failed run's end and the next start (tenths of s): $gaps"
read -r g1 g2 g3 _ <<<"$gaps"
check "the second try waited ~1 s ($g1 tenths)" test "${g1:-0}" -ge 9
check "the third ~2 s ($g2 tenths)" test "${g2:-0}" -ge 19
check "the fourth ~4 s ($g3 tenths)" test "${g3:-0}" -ge 39
eq "products, which did not fail, ran once (its tick is next year)" 1 \
    "$(sql "SELECT count(*) FROM keapsync.run_jobs WHERE job = 'products'")"
eq "daemon_jobs: contacts' last outcome is failed" failed \
    "$(sql "SELECT last_outcome FROM keapsync.daemon_jobs WHERE job = 'contacts'")"
check "daemon_jobs: its next run is within the backoff, not next year" \
    test "$(sql "SELECT (next_at < now() + interval '1 minute')::text FROM keapsync.daemon_jobs WHERE job = 'contacts'")" = true

# Healed: the next retry completes it; then nothing runs until next year.
curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
done_once() { grep -q 'job=contacts outcome=done' "$LOG"; }
check "once keapsim is healed a retry completes contacts" wait_for 40 done_once
runs=$(sql "SELECT count(*) FROM keapsync.runs")
sleep 3
eq "... and no run follows (the backoff is over, the tick served)" "$runs" "$(sql "SELECT count(*) FROM keapsync.runs")"
eq "daemon_jobs: contacts done" done "$(sql "SELECT last_outcome FROM keapsync.daemon_jobs WHERE job = 'contacts'")"
check "daemon_jobs: its next run is its next tick (more than a day away)" \
    test "$(sql "SELECT (next_at > now() + interval '1 day')::text FROM keapsync.daemon_jobs WHERE job = 'contacts'")" = true
eq "contacts equal the truth" 0 "$(sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE NOT EXISTS
        (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
      + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
        (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id))")"
kill -TERM "$DPID"
rc=0; wait "$DPID" || rc=$?
IT_PIDS=("$KSIM_PID")
eq "the daemon exits 0 on SIGTERM" 0 "$rc"

it_done
