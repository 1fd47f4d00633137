#!/usr/bin/env bash
# Issue 5, requirement 3 (a page that keeps failing): after some pages have committed, the
# list endpoint starts failing on every request (fault rate 1, added at run time through
# /__admin/faults). The job stops with exit 1 and one line naming the job and the page, the
# rows committed before stay, and the checkpoint is the one of the last good page, so the next
# run resumes there. Two ways to fail:
#   part 1  a 200 whose body is not JSON ("malformed"): fetched again at once, then given up;
#   part 2  HTTP 503: retried with exponential backoff (1 s .. 30 s), then given up. keapsync
#           runs with its clocks sped up tenfold by libfaketime so the backoff takes seconds.
# Part 3 clears the fault: the next run resumes at the checkpoint and ends equal to the truth.
# `keapsync status` exits 1 and says so while the last run failed, 0 once one succeeded.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=50
# keapsim's per-key windows off (keapsync's sped-up clock would overrun them); a slow pace
# for keapsync so the fault lands mid-run.
it_keapsim --seed 51 --size 3000 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="3/s,1200/min,30000/day"
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
ntruth=$(sql "SELECT count(*) FROM truth_contacts")

rows() { sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0; }
ckpt() { sql "SELECT state->'window'->>'$1' FROM keapsync.checkpoints WHERE job = 'contacts'"; }

# fail_midway NAME SPEC MIN_ROWS [PREFIX...]: starts a run (PREFIX before the binary), adds
# the fault SPEC once at least MIN_ROWS rows are stored, waits for the run; sets RC, OUT, ERR,
# AT (rows when the fault went in).
fail_midway() {
    local name=$1 spec=$2 min=$3 pid
    shift 3
    OUT="$IT_TMP/$name.out" ERR="$IT_TMP/$name.err" RC=0
    curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
    "$@" "$KS" run >"$OUT" 2>"$ERR" &
    pid=$!
    IT_PIDS+=("$pid")
    AT=0
    for _ in $(seq 1 1500); do
        AT=$(rows)
        [ "$AT" -ge "$min" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    curl -sf -X POST "$KSIM_URL/__admin/faults?spec=$spec" >/dev/null
    wait "$pid" || RC=$?
    cat "$OUT" >&2
    grep -vE ' (INFO|WARNING): ' "$ERR" | head -20 >&2 || true
    grep -E ' WARNING: ' "$ERR" | sort | uniq -c | head -5 >&2 || true
    it_log "$name: fault added at $AT rows"
}

# intact NAME ROWS_BEFORE: the committed rows and the checkpoint agree (overlapping pages:
# the cursor's offset is the last stored record's position, last_id its id).
intact() {
    local name=$1 before=$2 n off
    n=$(rows)
    off=$(ckpt offset)
    check "$name: rows committed before the fault stay ($n >= $before)" test "$n" -ge "$before"
    check "$name: the job did not finish ($n < $ntruth)" test "$n" -lt "$ntruth"
    eq "$name: checkpoint offset is the last stored record's position" "$((n - 1))" "$off"
    eq "$name: checkpoint last_id is the last stored id" "$(sql "SELECT max(id) FROM keap.contacts")" "$(ckpt last_id)"
    eq "$name: the stored rows are exactly the first $n of the truth, as served" 0 \
       "$(sql "SELECT count(*) FROM (SELECT doc FROM truth_contacts ORDER BY (doc->>'id')::bigint LIMIT $n) t
               LEFT JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
    eq "$name: the run is recorded with exit 1" 1 \
       "$(sql "SELECT exit_code FROM keapsync.runs ORDER BY id DESC LIMIT 1")"
}

written() { sed -n 's/^job "contacts": [a-z]*, \([0-9]*\) rows written.*/\1/p' "$1"; }

# ---- part 1: unparseable 200s from some page on
it_case_begin
before=$(ksim_stat .faults)
fail_midway malformed "malformed:1:/v1/contacts" $((2 * page))
fired=$(($(ksim_stat .faults) - before))
eq "malformed: exit 1" 1 "$RC"
check "malformed: the fault went in mid-run ($AT rows)" test "$AT" -gt 0 -a "$AT" -lt "$ntruth"
intact malformed "$AT"
off=$(ckpt offset)
line=$(grep -E "could not [a-z ]*page at offset [0-9]+ of \"contacts\"" "$OUT" "$ERR" | head -1 || true)
it_log "malformed: the error: $line"
check "malformed: a line names the job and the page at the checkpoint (offset $off)" \
   grep -qE "could not [a-z ]*page at offset $off of \"contacts\"" "$OUT"
check "malformed: the job line says failed" grep -q '^job "contacts": failed' "$OUT"
attempts=$(echo "$line" | sed -n 's/.* after \([0-9]*\) attempts.*/\1/p')
check "malformed: it says how often it tried ($attempts)" test -n "$attempts"
check "malformed: keapsim failed at least that many requests ($fired >= ${attempts:-?})" \
   test "$fired" -ge "${attempts:-1000000}"
rows1=$(rows)
rc=0; "$KS" status >"$IT_TMP/status1.out" 2>"$IT_TMP/status1.err" || rc=$?
eq "malformed: status exits 1 after the failed run" 1 "$rc"
check "malformed: status says the last run of the job failed" \
   grep -q 'the last run of job "contacts" failed' "$IT_TMP/status1.err"
check "malformed: status still shows the checkpoint mid-window" \
   grep -Eq '^contacts +#[0-9]+ 20[0-9-]+ [0-9:]+Z +failed .* reading' "$IT_TMP/status1.out"
rc=0; "$KS" status --json >"$IT_TMP/status1.json" 2>/dev/null || rc=$?
eq "malformed: status --json exits 1 too" 1 "$rc"
eq "malformed: status --json: the checkpoint's offset, the failed run and its message" \
   "reading $(ckpt offset) failed true true" \
   "$(jq -r '.jobs[] | select(.name == "contacts") | "\(.checkpoint.state) \(.checkpoint.offset) \(.last_run.outcome) \(.last_run_failed) \(.last_run.message | length > 0)"' "$IT_TMP/status1.json")"

it_case_end "a 200 that is never JSON, every page from mid-run on: exit 1 naming job and page, status says failed" "$fired"

# ---- part 2: 503 from some page on, keapsync's clocks ten times faster
it_case_begin
f0=$(ksim_stat .faults)
lib=$(it_faketime_lib)
fail_midway 503 "5xx=503:1:/v1/contacts" $((rows1 + 2 * page)) \
    env LD_PRELOAD="$lib" FAKETIME="+0 x10" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
eq "503: exit 1" 1 "$RC"
check "503: the fault went in mid-run ($AT rows)" test "$AT" -gt "$rows1" -a "$AT" -lt "$ntruth"
intact 503 "$AT"
rows2=$(rows)
eq "503: the run resumed at part 1's checkpoint (rows written = new rows)" \
   "$((rows2 - rows1))" "$(written "$OUT")"
errs=$(grep -c ' ERROR: ' "$ERR" || true)
eq "503: one error line" 1 "$errs"
check "503: it names the job and a page ($(grep ' ERROR: ' "$ERR" | head -1))" \
   grep -qE " ERROR: could not fetch page at offset [0-9]+ of \"contacts\": HTTP 503.* after [0-9]+ attempts" "$ERR"
eq "503: the page it names is at or after the checkpoint" 0 \
   "$(sed -n 's/.* ERROR: could not fetch page at offset \([0-9]*\) .*/\1/p' "$ERR" | awk -v o="$(ckpt offset)" '$1 < o {n++} END {print n+0}')"

it_case_end "HTTP 503 on every page from mid-run on: backoff, then exit 1 naming job and page" "$(($(ksim_stat .faults) - f0))"

# ---- part 3: Keap recovers
it_case_begin
curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
rc=0; KEAPSYNC_LIMITS="20/s,1200/min,30000/day" "$KS" run >"$IT_TMP/run3.out" 2>"$IT_TMP/run3.err" || rc=$?
cat "$IT_TMP/run3.out" >&2
eq "recovered: exit 0" 0 "$rc"
eq "recovered: resumed at the checkpoint (rows written = rows missing)" \
   "$((ntruth - rows2))" "$(written "$IT_TMP/run3.out")"
eq "recovered: row count equals the truth" "$ntruth" "$(rows)"
eq "recovered: every record exactly as served" 0 \
   "$(sql "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
eq "recovered: window closed" "null" "$(sql "SELECT state->'window' FROM keapsync.checkpoints WHERE job = 'contacts'")"
rc=0; "$KS" status >"$IT_TMP/status3.out" 2>"$IT_TMP/status3.err" || rc=$?
eq "recovered: status exits 0" 0 "$rc"
it_case_end "after both, Keap recovers: the run resumes at the checkpoint and equals the truth" 0
it_done
