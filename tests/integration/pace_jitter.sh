#!/usr/bin/env bash
# Pacing under arrival jitter: keapsim counts every request 0..60 ms after it was sent
# (--arrival-jitter 60) and answers 50 +- 30 ms later. That jitter sits in front of the
# server's counter, where keapsync cannot measure it (its margin follows the send delays and
# the connection's jitter, which it measures, not the server's time); it learns it from spike
# 429s, widening the margin at each and keeping it. Two syncs: one the per-second limit
# binds (about 80 requests at 10/s), one that crosses a rolling minute (about 45 requests at
# 20/s and 30/min: 30, then the rest once the first ones leave the minute). Asserted: every
# contact lands; never a 429 of the rolling minute; at most 3 spike 429s (10 -> 35 -> 70 ->
# 140 ms covers 60 ms), and after them a learnt margin of at least 35 ms still in force at
# the end; never over either limit at arrival; the margin covers the arrival jitter measured.
# Speed is the bench's business (tests/bench/bench_pacing.sh).
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 10' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LOG_LEVEL=debug

# one_sync NAME REQUESTS LIMITS: a fresh keapsim and database; a sync of about REQUESTS pages
# of 10 (9 new contacts a page: pages overlap by one record), then the checks.
one_sync() {
    local name=$1 want=$2 lim=$3 per_s per_min size rc=0 n margin arrival learnt spikes
    per_s=${lim%%/s*}
    per_min=${lim#*/s,}
    per_min=${per_min%%/min*}
    size=$(((want - 1) * 9))
    it_make_db
    it_keapsim --seed 11 --size "$size" --api-key "$KEAP_API_KEY" --limits "$lim" \
        --latency 50:30 --arrival-jitter 60
    export KEAPSYNC_LIMITS="$lim"
    check "$name: migrate" "$KS" migrate
    "$KS" run >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err" || rc=$?
    grep -v '^.*debug' "$IT_TMP/$name.err" | tail -5 >&2 || true
    eq "$name: run exits 0" 0 "$rc"
    n=$(ksim_stat .requests)
    it_log "$name: $n requests, span $(ksim_stat '.last_request_ms - .first_request_ms') ms"
    check "$name: the sync needed at least $((want - 2)) requests ($n)" test "$n" -ge $((want - 2))
    eq "$name: every contact landed" "$size" "$(sql "SELECT count(*) FROM keap.contacts")"
    spikes=$(ksim_stat .rejected_429_by_window.second)
    eq "$name: no 429 from the rolling minute" 0 "$(ksim_stat .rejected_429_by_window.minute)"
    check "$name: at most 3 spike 429s while the margin learns the jitter ($spikes)" \
        test "$spikes" -le 3
    eq "$name: every 429 was a spike 429" "$spikes" "$(ksim_stat .rejected_429)"
    check "$name: never more than $per_s in a rolling second at arrival" \
        test "$(ksim_stat .max_in_1s)" -le "$per_s"
    check "$name: never more than $per_min in a rolling minute at arrival" \
        test "$(ksim_stat .max_in_60s)" -le "$per_min"
    # the margin pace used at the last admission: at least the arrival jitter it measured,
    # and at least what the spike 429s taught, which is kept
    read -r margin arrival learnt <<<"$(sed -n 's/.*pace: admitted at .*(margin \([0-9]*\) ms, jitter -\{0,1\}[0-9]* ms, arrival \(-\{0,1\}[0-9]*\) ms, learnt \([0-9]*\) ms.*/\1 \2 \3/p' \
        "$IT_TMP/$name.err" | tail -1)"
    check "$name: pace logged its margin, the arrival jitter and what it learnt" \
        test -n "$margin" -a -n "$arrival" -a -n "$learnt"
    check "$name: sends were measured (arrival jitter $arrival ms)" test "${arrival:--1}" -ge 0
    check "$name: the margin ($margin ms) covers the measured arrival jitter ($arrival ms)" \
        test "${margin:-0}" -ge "${arrival:-1}"
    check "$name: the margin ($margin ms) covers what was learnt ($learnt ms)" \
        test "${margin:-0}" -ge "${learnt:-1}"
    if [ "$spikes" -gt 0 ]; then
        check "$name: $spikes spike 429s taught at least 35 ms, kept to the end ($learnt ms)" \
            test "${learnt:-0}" -ge 35
    fi
    kill "$KSIM_PID" 2>/dev/null || true
    wait "$KSIM_PID" 2>/dev/null || true
}

one_sync spike 80 10/s,240/min,30000/day
one_sync minute 45 20/s,30/min,30000/day

it_done
