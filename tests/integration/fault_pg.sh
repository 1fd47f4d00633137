#!/usr/bin/env bash
# Fault matrix (issue 13), Postgres trouble under `keapsync run`, on a cluster of this test's
# own (deploy/lib/pg.sh), each case in a fresh database, each fault put in mid-run (once some
# pages are committed):
#   restart     the server stopped for 3 s and started again;
#   terminate   keapsync's backend killed with pg_terminate_backend;
#   timeout     a statement timeout (the database's statement_timeout 300 ms, and another
#               session holding an EXCLUSIVE lock on the table for 3 s);
#   disk-full   a statement trigger raising SQLSTATE 53100 (disk_full) for the next 3
#               statements. Postgres cannot be given a full disk without root (a tablespace on
#               a tiny file system): this simulates what the server says then, not the disk;
# each: exit 0, reconnected or retried with backoff (the warnings say so), and the table equal
# to keapsim's truth. Then what retrying cannot fix:
#   disk-full-for-good  53100 on every statement: the retries (6 tries, 1 s doubling; keapsync
#               runs with its clock sped up tenfold so that takes 3 s) end in exit 1;
#   bad-data    a trigger raising a non-transient error (P0001): exit 1 at once, no retry;
# each: one error naming the page and the cause, nothing half committed (the rows are exactly
# the first N of the truth and the checkpoint is the Nth's), and a rerun without the trigger
# resumes there and ends equal to the truth.
. "$(dirname "$0")/lib.sh"
it_own_cluster faultpg

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=50
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" \
    >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="8/s,600/min,30000/day"
it_keapsim --seed 61 --size 1500 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
curl -sf "$KSIM_URL/__admin/truth?resource=contacts" >"$IT_TMP/truth.jsonl"
ntruth=$(wc -l <"$IT_TMP/truth.jsonl")

rows() { sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo -1; }
ckpt() { sql "SELECT state->'window'->>'$1' FROM keapsync.checkpoints WHERE job = 'contacts'"; }
load_truth() {
    sql "DROP TABLE IF EXISTS truth_contacts; CREATE TABLE truth_contacts (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth_contacts (doc) FROM '$IT_TMP/truth.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}
equal_truth() { # NAME
    eq "$1: the table equals the truth (missing + extra + different)" 0 \
       "$(sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE NOT EXISTS
            (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
          + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
            (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id))")"
    eq "$1: no id twice" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
}
# The raising trigger: the first N statements on keap.contacts from now on fail with SQLSTATE
# STATE (a sequence counts them: nextval survives the failed transaction's rollback).
# It goes in while the run ($PID) is stopped, so that the run cannot finish first on a loaded
# machine; a stopped run inside a page's transaction holds keap.contacts, so each try waits
# for the table at most 200 ms and the run is let go on between tries.
add_trigger() { # N STATE
    local i
    for i in $(seq 1 100); do
        kill -STOP "$PID"
        if PGOPTIONS="-c lock_timeout=200ms" add_trigger_sql "$@" 2>/dev/null; then
            local n
            n=$(rows)
            check "the trigger went in with pages left to commit ($n of $ntruth rows committed)" \
                test "$n" -lt "$ntruth"
            kill -CONT "$PID"
            return 0
        fi
        kill -CONT "$PID"
        sleep 0.05
    done
    it_log "could not add the trigger in 100 tries"
    return 1
}
add_trigger_sql() { # N STATE
    sql "CREATE SEQUENCE IF NOT EXISTS fault_n; SELECT setval('fault_n', 1, false);
         CREATE OR REPLACE FUNCTION fault_raise() RETURNS trigger LANGUAGE plpgsql AS \$\$
         BEGIN
           IF nextval('fault_n') <= $1 THEN
             RAISE EXCEPTION 'simulated by fault_pg.sh' USING ERRCODE = '$2';
           END IF;
           RETURN NULL;
         END \$\$;
         CREATE TRIGGER fault_raise AFTER INSERT OR UPDATE ON keap.contacts
           FOR EACH STATEMENT EXECUTE FUNCTION fault_raise()" >/dev/null
}
fired() { sql "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fault_n"; }

# start_case NAME [PREFIX...]: a fresh database, migrated; the run started in the background
# (PREFIX before the binary); returns once MIN rows are committed. Sets PID, OUT, ERR.
start_case() {
    local name=$1
    shift
    it_case_begin
    it_make_db
    "$KS" migrate >/dev/null
    load_truth
    OUT="$IT_TMP/$name.out" ERR="$IT_TMP/$name.err"
    "$@" "$KS" run >"$OUT" 2>"$ERR" &
    PID=$!
    IT_PIDS+=("$PID")
    for _ in $(seq 1 600); do
        [ "$(rows)" -ge $((6 * page)) ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.02
    done
    AT=$(rows)
    check "$name: the fault goes in mid-run ($AT of $ntruth rows committed)" test "$AT" -gt 0 -a "$AT" -lt "$ntruth"
}
finish_case() { # NAME: waits; sets RC
    RC=0
    wait "$PID" || RC=$?
    cat "$OUT" >&2
    grep -E ' (WARNING|ERROR): ' "$ERR" | sed 's/^/  /' | head -12 >&2 || true
}
retries() { grep -c 'the database failed: .*trying again in' "$ERR" || true; }

survived() { # NAME: the checks of a case keapsync got through
    eq "$1: exit 0" 0 "$RC"
    check "$1: the job is done" grep -q '^job "contacts": done' "$OUT"
    equal_truth "$1"
    eq "$1: the window closed" "null" "$(sql "SELECT state->'window' FROM keapsync.checkpoints WHERE job = 'contacts'")"
}

# ---- restart
start_case restart
pg_stop
it_log "restart: Postgres stopped"
sleep 3
check "restart: keapsync waits for it (still running)" kill -0 "$PID"
pg_start
it_log "restart: Postgres started again"
finish_case restart
check "restart: it reconnected" grep -q 'reconnected to the database' "$ERR"
n=$(retries)
check "restart: with backoff, a bounded number of tries ($n <= 5)" test "$n" -ge 1 -a "$n" -le 5
survived restart
it_case_end "Postgres restarted mid-run (down 3 s)" 1

# ---- terminate
start_case terminate
killed=$(psql "$IT_ADMIN_URL" -qAt -c "WITH k AS MATERIALIZED (SELECT pid FROM pg_stat_activity
    WHERE application_name = 'keapsync' AND datname = '${DATABASE_URL##*/}')
    SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM k")
check "terminate: a keapsync backend was terminated ($killed)" test "$killed" -ge 1
finish_case terminate
check "terminate: it reconnected" grep -q 'reconnected to the database' "$ERR"
survived terminate
it_case_end "connection killed (pg_terminate_backend)" "$killed"

# ---- statement timeout
it_make_db
it_admin_sql "ALTER DATABASE ${DATABASE_URL##*/} SET statement_timeout = '300ms'" # (its owner's)
db=${DATABASE_URL##*/}
it_case_begin
"$KS" migrate >/dev/null
load_truth
OUT="$IT_TMP/timeout.out" ERR="$IT_TMP/timeout.err"
"$KS" run >"$OUT" 2>"$ERR" &
PID=$!
IT_PIDS+=("$PID")
for _ in $(seq 1 600); do
    [ "$(rows)" -ge $((6 * page)) ] && break
    sleep 0.02
done
AT=$(rows)
check "timeout: the lock goes in mid-run ($AT rows)" test "$AT" -gt 0 -a "$AT" -lt "$ntruth"
psql "$DATABASE_URL" -qAt -c "SET statement_timeout = 0" -c "BEGIN" \
    -c "LOCK TABLE keap.contacts IN EXCLUSIVE MODE" -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null
finish_case timeout
n=$(grep -c 'the database failed: .*statement timeout.*trying again' "$ERR" || true)
check "timeout: the statement timed out and was tried again ($n times)" test "$n" -ge 1 -a "$n" -le 5
survived timeout
it_admin_sql "ALTER DATABASE $db RESET statement_timeout"
it_case_end "statement timeout (300 ms, table locked 3 s)" "$n"

# ---- disk full for a while
start_case disk-full
add_trigger 3 53100
finish_case disk-full
n=$(grep -c 'the database failed: .*simulated by fault_pg.sh.*trying again' "$ERR" || true)
eq "disk-full: each of the 3 refusals was tried again" 3 "$n"
check "disk-full: the trigger refused 3 statements, then let them through ($(fired) counted)" test "$(fired)" -gt 3
survived disk-full
it_case_end "disk full (SQLSTATE 53100, simulated by a trigger) for 3 commits" 3

# what retrying cannot fix: NAME STATE EXPECTED_TRIES [PREFIX...]
for_good() {
    local name=$1 state=$2 tries=$3 n off
    shift 3
    start_case "$name" "$@"
    add_trigger 1000000 "$state"
    finish_case "$name"
    eq "$name: exit 1" 1 "$RC"
    check "$name: the job line says failed" grep -q '^job "contacts": failed' "$OUT"
    check "$name: the error names the page, the table and the cause" \
       grep -qE 'could not commit page of "contacts": simulated by fault_pg.sh' "$OUT"
    eq "$name: statements tried" "$tries" "$(fired)"
    n=$(rows)
    off=$(ckpt offset)
    check "$name: the rows committed before stay ($n >= $AT)" test "$n" -ge "$AT"
    eq "$name: nothing half committed: the checkpoint is the last stored record's" "$((n - 1))" "$off"
    eq "$name: the stored rows are exactly the first $n of the truth" 0 \
       "$(sql "SELECT count(*) FROM (SELECT doc FROM truth_contacts ORDER BY (doc->>'id')::bigint LIMIT $n) t
               LEFT JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
    sql "DROP TRIGGER fault_raise ON keap.contacts"
    RC=0
    "$KS" run >"$IT_TMP/$name.rerun" 2>&1 || RC=$?
    eq "$name: the rerun exits 0" 0 "$RC"
    eq "$name: the rerun resumed at the checkpoint (rows written = rows missing)" "$((ntruth - n))" \
       "$(sed -n 's/^job "contacts": done, \([0-9]*\) rows written.*/\1/p' "$IT_TMP/$name.rerun")"
    equal_truth "$name"
}

lib=$(it_faketime_lib)
# Ten times faster clocks pace ten times faster too: 1/s here is 10/s, so the run lasts long
# enough (31 pages, 3 s) for the trigger to go in mid-run.
for_good disk-full-for-good 53100 6 env LD_PRELOAD="$lib" FAKETIME="+0 x10" KEAPSYNC_LIMITS=1/s,0/min,30000/day \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
check "disk-full-for-good: the error says it gave up after 6 attempts" \
   grep -qE 'could not commit page of "contacts": simulated by fault_pg.sh \(after 6 attempts in [0-9]+ s\)' "$OUT"
it_case_end "disk full for good: exit 1 after 6 tries, nothing half committed" 6
for_good bad-data P0001 1
eq "bad-data: not tried again" 0 "$(retries)"
it_case_end "a non-transient SQL error: exit 1 at once, nothing half committed" 1

it_done
