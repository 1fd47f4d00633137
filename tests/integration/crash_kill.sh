#!/usr/bin/env bash
# Crash safety (issue 5): SIGKILL the engine at 20 random points of a 100,000-record sync and
# restart it each time. At the end the table equals keapsim's ground truth, no id appears
# twice, and the requests spent exceed those of one clean, uninterrupted sync of the same
# tenant (measured here, in a database of its own) by at most the pages one kill can lose.
#
# Words: a "kill" is one SIGKILL of a running `keapsync run`; "progress" is the checkpoint's
# committed offset of the open window (a closed window counts as past every offset); a kill's
# "waste" is the requests its run sent minus the pages it committed.
#
# CRASH_SEED=N replays the kill delays of an earlier run (the seed is printed).
. "$(dirname "$0")/lib.sh"

size=100000
page=500
kills=20
depth=4 # pages of one job in flight at once: the scheduler's pipeline depth
seed=${CRASH_SEED:-$(((RANDOM << 15) | RANDOM))}
RANDOM=$seed
it_log "seed $seed (CRASH_SEED=$seed replays these kill points)"

it_make_db
crash_url=$DATABASE_URL
clean_db="it_crash_clean_$$"
clean_url=$(it_new_db "$clean_db")

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
it_keapsim --seed 31 --size "$size" --api-key "$KEAP_API_KEY" --no-limits
export KEAPSYNC_LIMITS=0/s,0/min,0/day

# Smaller pages than the shipped job, so that 20 kills land between page commits.
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"

now_ms() { date +%s%3N; }

# run_sync OUT: one `keapsync run`; sets RC and RUN_MS.
run_sync() {
    local t0
    t0=$(now_ms)
    RC=0
    "$KS" run >"$1.out" 2>"$1.err" || RC=$?
    RUN_MS=$(($(now_ms) - t0))
}

# --- the minimum: one clean, uninterrupted sync of the same tenant ------------------------
DATABASE_URL=$clean_url
"$KS" migrate >/dev/null
before=$(ksim_stat .requests)
run_sync "$IT_TMP/clean"
cat "$IT_TMP/clean.out" >&2
[ "$RC" -eq 0 ] || tail -n 20 "$IT_TMP/clean.err" >&2
eq "clean sync exits 0" 0 "$RC"
min_requests=$(($(ksim_stat .requests) - before))
clean_ms=$RUN_MS
eq "clean sync wrote every record" "$size" "$(sql "SELECT count(*) FROM keap.contacts")"
it_log "clean sync: $min_requests requests in $clean_ms ms"

# --- the same sync, killed 20 times ----------------------------------------------------------
DATABASE_URL=$crash_url
"$KS" migrate >/dev/null

# Kill delays: uniform in [0.1, 1.1] x (clean duration / kills), so the kills together cover
# about 60 % of the clean run's time and the last run still has pages left to fetch.
slot=$((clean_ms / kills))
lo=$((slot / 10))
hi=$((slot * 11 / 10))
[ "$lo" -ge 20 ] || lo=20
[ "$hi" -gt "$lo" ] || hi=$((lo + 1))
it_log "kill delays uniform in [$lo, $hi] ms"

closed=9223372036854775807 # the progress of a closed window
# progress: the committed offset of the open window; a closed window is past every offset.
progress() {
    sql "SELECT CASE WHEN state->'window' = 'null'::jsonb THEN $closed
                     ELSE (state->'window'->>'offset')::bigint END
         FROM keapsync.checkpoints WHERE job = 'contacts'" | grep . || echo 0
}

# pages_of ROWS: the pages that committed ROWS rows (each page after the first adds page - 1).
pages_of() {
    if [ "$1" -gt 0 ]; then echo $((($1 - 1 + page - 2) / (page - 1))); else echo 0; fi
}

# forget_pid PID: PID is reaped; the EXIT trap must not signal whatever reuses it.
forget_pid() {
    local p keep=()
    for p in "${IT_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    IT_PIDS=("${keep[@]}")
}

crash_before=$(ksim_stat .requests)
prev_progress=0
prev_rows=0
landed=0
backwards=0
inconsistent=0
finished_early=0
max_waste=0
printf '%4s %6s %9s %9s %8s %6s %5s\n' kill "ms" offset rows requests pages waste >&2
it_case_begin
for i in $(seq 1 "$kills"); do
    delay=$((lo + RANDOM % (hi - lo + 1)))
    req0=$(ksim_stat .requests)
    "$KS" run >"$IT_TMP/kill$i.out" 2>"$IT_TMP/kill$i.err" &
    pid=$!
    IT_PIDS+=("$pid")
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -KILL "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" 2>/dev/null || rc=$? # (no "Killed" line from bash)
    forget_pid "$pid"
    if [ "$rc" -eq 137 ]; then
        landed=$((landed + 1))
    else
        it_log "run $i ended with exit $rc before its kill after $delay ms"
        cat "$IT_TMP/kill$i.err" >&2
        [ "$rc" -eq 0 ] && finished_early=$((finished_early + 1))
    fi
    # A killed process cannot release its job lease. Nothing here expires it: the next run
    # on this host sees its holder is dead and takes the job over (lease_jobs tests both
    # ways a lease is freed).
    sleep 0.05 # let keapsim count any request the dead process had on the wire
    req=$(($(ksim_stat .requests) - req0))
    prog=$(progress)
    # (a kill before the first page committed leaves no table yet: 0 rows)
    rows=$(sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0)
    # Rows and checkpoint commit together: with a one-record overlap between pages, the
    # committed rows are exactly the offset + 1 first ids, the last of them the last_id.
    if [ "$prog" -lt "$closed" ] && [ "$(sql "SELECT to_regclass('keap.contacts') IS NOT NULL")" = t ]; then
        ok=$(sql "SELECT CASE WHEN state->'window' ? 'last_id'
                  THEN (SELECT count(*) = (c.state->'window'->>'offset')::bigint + 1
                           AND max(id) = (c.state->'window'->>'last_id')::bigint
                        FROM keap.contacts)
                  ELSE (SELECT count(*) = 0 FROM keap.contacts) END
                  FROM keapsync.checkpoints c WHERE job = 'contacts'" | grep . || echo t)
        [ "$ok" = t ] || {
            inconsistent=$((inconsistent + 1))
            it_log "kill $i: rows ($rows) do not match the checkpoint ($(sql "SELECT state FROM keapsync.checkpoints"))"
        }
    fi
    [ "$prog" -ge "$prev_progress" ] || {
        backwards=$((backwards + 1))
        it_log "kill $i: checkpoint moved back from $prev_progress to $prog"
    }
    [ "$rows" -ge "$prev_rows" ] || backwards=$((backwards + 1))
    pages=$(($(pages_of "$rows") - $(pages_of "$prev_rows")))
    waste=$((req - pages))
    [ "$waste" -le "$max_waste" ] || max_waste=$waste
    printf '%4d %6d %9s %9d %8d %6d %5d\n' "$i" "$delay" \
        "$([ "$prog" -lt "$closed" ] && echo "$prog" || echo "done")" \
        "$rows" "$req" "$pages" "$waste" >&2
    prev_progress=$prog
    prev_rows=$rows
    if [ "$rc" -eq 0 ]; then
        break
    fi
done
before_final=$(progress)

run_sync "$IT_TMP/final"
cat "$IT_TMP/final.out" >&2
[ "$RC" -eq 0 ] || tail -n 20 "$IT_TMP/final.err" >&2
eq "the final run completes (exit 0)" 0 "$RC"
total=$(($(ksim_stat .requests) - crash_before))

eq "every kill landed while the engine ran (SIGKILL, exit 137)" "$kills" "$landed"
check "the last kill still left pages to fetch (offset $before_final)" \
    test "$before_final" -lt "$closed" -a "$finished_early" -eq 0
eq "the checkpoint only moved forward across restarts" 0 "$backwards"
eq "after every kill the committed rows matched the committed checkpoint" 0 "$inconsistent"
check "the checkpoint holds a closed window with a watermark" \
    test -n "$(sql "SELECT state->>'watermark_ms' FROM keapsync.checkpoints
                    WHERE job = 'contacts' AND state->'window' = 'null'::jsonb")"

# --- the table against the ground truth ---------------------------------------------------
PGOPTIONS="-c client_min_messages=warning" ksim_truth_to_pg contacts
truth_n=$(sql "SELECT count(*) FROM truth_contacts")
eq "keapsim served the configured tenant" "$size" "$truth_n"
eq "row count equals the ground truth" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
eq "every truth id landed" 0 \
    "$(sql "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts c
            ON c.id = (t.doc->>'id')::bigint WHERE c.id IS NULL")"
eq "no id that keapsim does not have" 0 \
    "$(sql "SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
            (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id)")"
eq "data jsonb equals the served record, every row" 0 \
    "$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.contacts c
            ON c.id = (t.doc->>'id')::bigint WHERE c.data <> t.doc")"
eq "last_updated equals the served one, every row" 0 \
    "$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.contacts c
            ON c.id = (t.doc->>'id')::bigint
            WHERE c.last_updated IS DISTINCT FROM (t.doc->>'last_updated')::timestamptz")"

# --- requests ---------------------------------------------------------------------------
bound=$((min_requests + kills * depth))
it_log "requests: clean $min_requests, killed $kills times $total (extra $((total - min_requests))," \
    "bound $bound = $min_requests + $kills x $depth); most lost by one kill: $max_waste"
check "total requests $total <= minimum $min_requests + $kills x $depth in flight" \
    test "$total" -le "$bound"
eq "keapsim answered no 429" 0 "$(ksim_stat .rejected_429)"
it_case_end "SIGKILL at a random point of a 100,000-record v1 sync, restarted at once" "$landed"

[ "$IT_FAILS" -eq 0 ] && psql "$IT_ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS $clean_db" >/dev/null
it_done
