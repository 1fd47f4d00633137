#!/usr/bin/env bash
# keapsync daemon and a database that goes away: Postgres is stopped for a few seconds and
# started again under a running daemon, mid-sync. The daemon does not exit: it reconnects
# with backoff, resumes from the last commit, and the table ends equal to the truth.
# The cluster is this test's own (deploy/lib/pg.sh), so no other test sees the restart.
. "$(dirname "$0")/lib.sh"
it_own_cluster pgrestart

export KEAP_API_KEY="it-key-$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 50 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="4/s,240/min,30000/day"
it_keapsim --seed 43 --size 3000 --api-key "$KEAP_API_KEY" --limits "10/s,600/min,0/day"
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
cp "$IT_TMP/truth.contacts.jsonl" "$IT_TMP/truth.saved"
rows() { sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo -1; }
rows_ge() { [ "$(rows)" -ge "$1" ]; }

LOG="$IT_TMP/daemon.log"
"$KS" daemon >"$LOG" 2>&1 &
DPID=$!
IT_PIDS+=("$DPID")
check "the daemon is paging" wait_for 30 rows_ge 300
before=$(rows)
pg_stop
it_log "Postgres stopped with $before rows committed"
sleep 4
check "the daemon survives the database going away" kill -0 "$DPID"
pg_start
it_log "Postgres started again"
check "it reconnects" wait_for 90 grep -q 'reconnected to the database' "$LOG"
done_after() { sed -n '/reconnected to the database/,$p' "$LOG" | grep -q '^keapsync: INFO: job=contacts outcome=done'; }
check "and finishes the sync" wait_for 60 done_after
check "the daemon is still running" kill -0 "$DPID"
grep -E 'reconnect|database|job=|run:' "$LOG" | sed 's/^/  /' >&2
eq "contacts equal the truth" 0 "$(sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE NOT EXISTS
        (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
      + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
        (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id))")"
check "nothing committed before the restart was lost" test "$(rows)" -ge "$before"
eq "no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
lease_live() { [ "$(sql "SELECT count(*) FROM keapsync.leases WHERE name LIKE 'daemon:%' AND expires_at > now()")" = 1 ]; }
check "the heartbeat lease is back" wait_for 15 lease_live
kill -TERM "$DPID"
rc=0; wait "$DPID" || rc=$?
IT_PIDS=("$KSIM_PID")
eq "the daemon exits 0 on SIGTERM" 0 "$rc"

it_done
