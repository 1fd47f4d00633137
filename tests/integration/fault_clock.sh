#!/usr/bin/env bash
# Fault matrix (issue 13): the wall clock jumps. keapsync runs under libfaketime with its
# offset read from a file (FAKETIME_TIMESTAMP_FILE, no cache; the monotonic clock is left
# alone, as a real clock step would leave it), and the file is changed mid-run: +1 h once
# some pages are in, then -1 h. So that both jumps cross midnight, whatever the hour the test
# runs at, keapsync's clock starts 20 s before today's 00:00 UTC (behind the real clock:
# never ahead of keapsim's data) and the jumps are from there. keapsim stays on the real clock, and its per-key windows
# (5/s, 120/min) are keapsync's own KEAPSYNC_LIMITS, so a pacer fooled by the jump would be
# refused. Then:
#   - keapsim refused nothing and counted at most 5 requests in any second, 120 in any minute;
#   - the checkpoint, sampled all along, never went backwards (offset within the window,
#     watermark_ms and completed_ms across runs);
#   - a second run with the clock an hour behind after some contacts changed keeps the
#     watermark where it was (it does not take it back an hour), and a third with the clock
#     right reads what changed: the table equals the truth.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=20
lim="5/s,120/min,30000/day"
it_keapsim --seed 91 --size 1200 --api-key "$KEAP_API_KEY" --limits "$lim"
export KEAPSYNC_LIMITS="$lim"
mkdir -p "$IT_TMP/jobs"
# No lag: the changes made between runs are in the next window at once.
jq --argjson p "$page" '.page_size = $p | del(.deletes) | .incremental.lag_seconds = 0' \
    "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
"$KS" migrate >/dev/null
lib=$(it_faketime_lib)
clock="$IT_TMP/clock.rc"
now_s=$(date +%s)
base=$(( now_s / 86400 * 86400 - 20 - now_s )) # s: keapsync's clock at 23:59:40 yesterday
off() { printf '%+d\n' $((base + $1)); }      # the clock file's value for base + $1 s
echo "+0" >"$clock"
# keapsync with the wall clock of $clock
ks_clocked() {
    env -u FAKETIME LD_PRELOAD="$lib" FAKETIME_TIMESTAMP_FILE="$clock" FAKETIME_NO_CACHE=1 \
        DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        "$KS" "$@"
}
rows() { sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0; }
state() { sql "SELECT coalesce(state->'window'->>'offset', '-'), state->>'watermark_ms', state->>'completed_ms' FROM keapsync.checkpoints WHERE job = 'contacts'" 2>/dev/null || true; }
equal_truth() {
    ksim_truth_to_pg contacts
    sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE NOT EXISTS
          (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
        + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
          (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id))"
}

it_case_begin
check "keapsync's clock follows the file (now +0)" \
    test "$(( $(env -u FAKETIME LD_PRELOAD="$lib" FAKETIME_TIMESTAMP_FILE="$clock" FAKETIME_NO_CACHE=1 date +%s) - $(date +%s) ))" -le 1
echo "+1h" >"$clock"
jump=$(( $(env -u FAKETIME LD_PRELOAD="$lib" FAKETIME_TIMESTAMP_FILE="$clock" FAKETIME_NO_CACHE=1 date +%s) - $(date +%s) ))
check "and jumps when the file changes (+1h: $jump s)" test "$jump" -ge 3599 -a "$jump" -le 3601
echo "+0" >"$clock"

# ---- run 1: from 23:59:40, +1 h (into today, 01:00), then -1 h (yesterday, 23:00), mid-run
off 0 >"$clock"
rc=0
ks_clocked run >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" &
pid=$!
IT_PIDS+=("$pid")
: >"$IT_TMP/samples"
jumped=0
while kill -0 "$pid" 2>/dev/null; do
    state >>"$IT_TMP/samples"
    n=$(rows)
    if [ "$jumped" = 0 ] && [ "$n" -ge 300 ]; then
        off 3600 >"$clock"; jumped=1; it_log "clock +1 h at $n rows"
    elif [ "$jumped" = 1 ] && [ "$n" -ge 700 ]; then
        off -3600 >"$clock"; jumped=2; it_log "clock -1 h at $n rows"
    fi
    sleep 0.05
done
wait "$pid" || rc=$?
state >>"$IT_TMP/samples"
cat "$IT_TMP/run1.out" >&2
grep -E ' (WARNING|ERROR): ' "$IT_TMP/run1.err" | head -5 >&2 || true
eq "run 1: exit 0 (not 75: a clock set back across midnight does not drain the ledger)" 0 "$rc"
eq "run 1: the ledger reserved no more than a few grants beyond what was sent" 0 \
   "$(sql "SELECT count(*) FROM keapsync.quota_ledger WHERE reserved > spent + 200")"
eq "run 1: both jumps happened mid-run" 2 "$jumped"
eq "run 1: keapsim's windows (real clock) refused nothing" 0 "$(ksim_stat .rejected_429)"
check "run 1: at most 5 requests in any second ($(ksim_stat .max_in_1s))" test "$(ksim_stat .max_in_1s)" -le 5
check "run 1: at most 120 in any minute ($(ksim_stat .max_in_60s))" test "$(ksim_stat .max_in_60s)" -le 120
eq "run 1: the table equals the truth" 0 "$(equal_truth)"
# The samples: offset within the window never decreases (a closed window resets it).
back=$(awk -F'|' '$1 != "-" { if (prev != "" && $1 + 0 < prev + 0) n++; prev = $1 } END { print n + 0 }' "$IT_TMP/samples")
eq "run 1: the window's offset never went back ($(grep -vc '^-' "$IT_TMP/samples") samples)" 0 "$back"
w1=$(state | cut -d'|' -f2)
c1=$(state | cut -d'|' -f3)
check "run 1: a watermark ($w1)" test -n "$w1"

# ---- run 2: the clock an hour behind, after some contacts changed
curl -sf -X POST "$KSIM_URL/__admin/mutate?creates=5&updates=20&deletes=0" >/dev/null
off -3600 >"$clock"
rc=0
ks_clocked run >"$IT_TMP/run2.out" 2>"$IT_TMP/run2.err" || rc=$?
cat "$IT_TMP/run2.out" >&2
eq "run 2 (clock -1 h): exit 0" 0 "$rc"
w2=$(state | cut -d'|' -f2)
c2=$(state | cut -d'|' -f3)
check "run 2: the watermark did not go back ($w2 >= $w1)" test "$w2" -ge "$w1"
check "run 2: completed_ms did not go back ($c2 >= $c1)" test "$c2" -ge "$c1"

# ---- run 3: the clock right again
echo "+0" >"$clock"
rc=0
ks_clocked run >"$IT_TMP/run3.out" 2>"$IT_TMP/run3.err" || rc=$?
cat "$IT_TMP/run3.out" >&2
eq "run 3 (clock right): exit 0" 0 "$rc"
w3=$(state | cut -d'|' -f2)
check "run 3: the watermark moved on ($w3 > $w2)" test "$w3" -gt "$w2"
eq "run 3: the table equals the truth (the changes read)" 0 "$(equal_truth)"
eq "runs 1-3: keapsim's windows refused nothing" 0 "$(ksim_stat .rejected_429)"
check "runs 1-3: at most 5 requests in any second" test "$(ksim_stat .max_in_1s)" -le 5
it_case_end "wall clock +1 h then -1 h mid-run across midnight, -1 h for a whole run (faketime)" 3

it_done
