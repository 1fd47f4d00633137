#!/usr/bin/env bash
# Issue 12, logs and progress: with stderr not a terminal, keapsync's default log form is
# logfmt (time, level, run, job, msg on every line) and progress comes as plain log lines
# every KEAPSYNC_PROGRESS_SECONDS, with no escape byte and no secret; on a terminal (script(1))
# the log is the text form and progress is a live block redrawn at most ~4 times a second.
# Fatal errors keep their one line "keapsync: error: ...".
. "$(dirname "$0")/lib.sh"
unset KEAPSYNC_LOG_FORMAT # the default, not lib.sh's text form

it_make_db
export KEAP_API_KEY="it-secret-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 100' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
it_keapsim --seed 7 --size 1500 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
"$KS" migrate >/dev/null 2>"$IT_TMP/migrate.err"

# ---- not a terminal: logfmt and progress lines
rc=0; KEAPSYNC_PROGRESS_SECONDS=1 KEAPSYNC_LIMITS="5/s,240/min,30000/day" \
    "$KS" run >"$IT_TMP/run.out" 2>"$IT_TMP/run.err" || rc=$?
eq "run exits 0" 0 "$rc"
run=$(sql "SELECT max(id) FROM keapsync.runs")
head -5 "$IT_TMP/run.err" >&2
cat "$IT_TMP/migrate.err" "$IT_TMP/run.err" >"$IT_TMP/all.err"
lf='^time=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z level=(debug|info|warning|error) run=([0-9]+|-) job=[^ ]+ msg=("([^"\\]|\\.)*"|[^ "]+)$'
check "every log line is logfmt with time, level, run, job and msg ($(wc -l <"$IT_TMP/all.err") lines)" \
    bash -c "[ -s '$IT_TMP/all.err' ] && ! grep -Evq '$lf' '$IT_TMP/all.err'"
check "migrate's lines (before any run) say run=-" grep -q '^time=.* level=info run=- job=- msg="applied migration 0001_init"$' "$IT_TMP/migrate.err"
check "the run's lines carry its keapsync.runs id (run=$run)" bash -c "! grep -v ' run=$run ' '$IT_TMP/run.err' | grep -q ."
check "a job's lines carry job=contacts" grep -q ' job=contacts msg="job \\"contacts\\": done: 1500 rows' "$IT_TMP/run.err"
np=$(grep -c ' job=contacts msg="job \\"contacts\\": [0-9]* records, [0-9]* pages, [0-9]* requests, [0-9]* records/s (progress)"$' "$IT_TMP/run.err" || true)
secs=$(sql "SELECT floor(extract(epoch FROM finished_at - started_at)) FROM keapsync.runs WHERE id = $run")
check "a progress line per second for the job ($np lines over ${secs} s)" test "$np" -ge $((secs - 2)) -a "$np" -le $((secs + 1))
check "run progress lines say the quota left" grep -Eq 'msg="run: [0-9]+ requests \([0-9.]+/s\), [0-9]+ s, quota left [0-9]+ requests' "$IT_TMP/run.err"
check "no escape byte on a non-terminal stderr" bash -c "! grep -q $'\x1b' '$IT_TMP/run.err' '$IT_TMP/run.out'"
check "the key appears in no output" bash -c "! grep -qF '$KEAP_API_KEY' '$IT_TMP/run.err' '$IT_TMP/run.out'"
rc=0; DATABASE_URL="postgresql://nobody@127.0.0.1:1/none" "$KS" status >"$IT_TMP/fatal.out" 2>"$IT_TMP/fatal.err" || rc=$?
eq "a fatal error: exit 2 and one line \"keapsync: error: ...\"" "2 1" "$rc $(grep -c '^keapsync: error: ' "$IT_TMP/fatal.err")"
rc=0; KEAPSYNC_LOG_FORMAT=json "$KS" status >/dev/null 2>"$IT_TMP/badfmt.err" || rc=$?
eq "KEAPSYNC_LOG_FORMAT=json is refused (exit 2)" 2 "$rc"

# ---- a terminal: text log lines and a live display
if command -v script >/dev/null; then
    sql "DELETE FROM keapsync.checkpoints; TRUNCATE keap.contacts"
    rc=0; KEAPSYNC_LIMITS="5/s,240/min,30000/day" script -q -e -c "$KS run" "$IT_TMP/tty.log" >/dev/null 2>&1 || rc=$?
    eq "run on a terminal exits 0" 0 "$rc"
    check "the terminal gets the text log form" grep -q 'keapsync: INFO: job "contacts": done' "$IT_TMP/tty.log"
    check "... no logfmt" bash -c "! grep -q '^time=' '$IT_TMP/tty.log'"
    redraws=$(grep -o $'\x1b\\[1A' "$IT_TMP/tty.log" | wc -l)
    lines=$(grep -c 'job "contacts": [0-9]* records, [0-9]* pages' "$IT_TMP/tty.log" || true)
    secs=$(sql "SELECT extract(epoch FROM finished_at - started_at) FROM keapsync.runs ORDER BY id DESC LIMIT 1")
    it_log "terminal: $lines live job lines, $redraws cursor-ups over $secs s"
    check "a live line per job, redrawn in place (cursor up)" test "$lines" -ge 3 -a "$redraws" -ge "$lines"
    check "redrawn at most ~4 times a second ($lines in $secs s)" \
        awk -v n="$lines" -v s="$secs" 'BEGIN { exit !(n <= 4 * s + 2) }'
    check "the live display is erased before the summary, and not drawn after it" \
        awk '/job "contacts": done, 1500 rows written/ { s = 1 } s && /records, [0-9]+ pages/ { bad = 1 }
             END { exit !(s && !bad) }' "$IT_TMP/tty.log"
else
    it_log "script(1) not installed: the terminal path is not tested"
fi

it_done
