#!/usr/bin/env bash
# Fault matrix (issue 13): the key revoked mid-run, with keapsim's gateway propagation delay
# (POST /__admin/revoke?key=key1&delay_ms=800: the key still works for 800 ms, then 401). The
# run exits 77 with the auth error and its hint after a few refused requests (at most the
# pages in flight, SCHED_DEFAULT_DEPTH = 4, + 1), the rows and checkpoint agree (nothing half
# committed), and a rerun with another, good key resumes at the checkpoint: the table ends
# equal to the truth, nothing lost, no id twice.
. "$(dirname "$0")/lib.sh"

it_make_db
bad="it-key-a$RANDOM$RANDOM"
good="it-key-b$RANDOM$RANDOM"
page=50
depth=4
it_keapsim --seed 81 --size 1500 --api-key "$bad" --api-key "$good" --limits 10/s,600/min,30000/day
export KEAPSYNC_LIMITS="8/s,600/min,30000/day"
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" \
    >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
ntruth=$(sql "SELECT count(*) FROM truth_contacts")
rows() { sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0; }
ckpt() { sql "SELECT state->'window'->>'$1' FROM keapsync.checkpoints WHERE job = 'contacts'"; }

it_case_begin
rc=0
KEAP_API_KEY="$bad" "$KS" run >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" &
pid=$!
IT_PIDS+=("$pid")
for _ in $(seq 1 600); do
    [ "$(rows)" -ge $((5 * page)) ] && break
    sleep 0.02
done
at=$(rows)
r401=$(ksim_stat .rejected_401)
curl -sf -X POST "$KSIM_URL/__admin/revoke?key=key1&delay_ms=800" >/dev/null
it_log "key1 revoked (800 ms delay) at $at rows"
wait "$pid" || rc=$?
cat "$IT_TMP/run1.out" >&2
grep ' ERROR: \|error:' "$IT_TMP/run1.err" >&2 || true
refused=$(($(ksim_stat .rejected_401) - r401))
eq "revoked: exit 77" 77 "$rc"
check "revoked: mid-run ($at of $ntruth rows before the revocation)" test "$at" -gt 0 -a "$at" -lt "$ntruth"
check "revoked: keapsim refused the key ($refused requests)" test "$refused" -ge 1
check "revoked: it stopped within a few requests ($refused <= $((depth + 1)))" test "$refused" -le $((depth + 1))
check "revoked: the error says the key was refused, with the hint" \
    grep -q '^keapsync: error: .*(hint: check that KEAP_API_KEY holds a valid' "$IT_TMP/run1.err"
check "revoked: the secret is not in the output" bash -c "! grep -qF -- '$bad' '$IT_TMP/run1.out' '$IT_TMP/run1.err'"
n=$(rows)
check "revoked: rows committed before stay ($n >= $at)" test "$n" -ge "$at"
check "revoked: the job did not finish ($n < $ntruth)" test "$n" -lt "$ntruth"
eq "revoked: checkpoint intact (offset = last stored record's position)" "$((n - 1))" "$(ckpt offset)"
eq "revoked: checkpoint last_id is the last stored id" "$(sql "SELECT max(id) FROM keap.contacts")" "$(ckpt last_id)"
eq "revoked: the stored rows are the first $n of the truth, as served" 0 \
   "$(sql "SELECT count(*) FROM (SELECT doc FROM truth_contacts ORDER BY (doc->>'id')::bigint LIMIT $n) t
           LEFT JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
eq "revoked: the run is recorded with exit 77" 77 "$(sql "SELECT exit_code FROM keapsync.runs ORDER BY id DESC LIMIT 1")"

rc=0
KEAP_API_KEY="$good" "$KS" run >"$IT_TMP/run2.out" 2>"$IT_TMP/run2.err" || rc=$?
cat "$IT_TMP/run2.out" >&2
eq "good key: exit 0" 0 "$rc"
eq "good key: resumed at the checkpoint (rows written = rows missing)" "$((ntruth - n))" \
   "$(sed -n 's/^job "contacts": done, \([0-9]*\) rows written.*/\1/p' "$IT_TMP/run2.out")"
eq "good key: the table equals the truth (missing + extra + different)" 0 \
   "$(sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE NOT EXISTS
        (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
      + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
        (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id))")"
eq "good key: no id twice" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
it_case_end "API key revoked mid-run (800 ms propagation): exit 77, checkpoint intact" "$refused"

it_done
