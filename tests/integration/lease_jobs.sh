#!/usr/bin/env bash
# Job leases (issue 13): a job is never run by two keapsync processes at once.
#   kill   A runs the job and is stopped (SIGSTOP) mid-window: B skips the job and sends nothing.
#          A is SIGKILLed: B, started at once (no lease expired by hand, no wait for the time
#          to live), takes the job over and ends equal to keapsim's truth.
#   expire A is stopped mid-window and stays stopped past its lease's time to live
#          (KEAPSYNC_LEASE_TTL=3): B takes the expired lease and completes the job. A resumes
#          (SIGCONT): it finds the lease lost, stops without committing anything (rows,
#          checkpoint and ledger as B left them) and exits 1, naming the job.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
size=3000
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 100 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS=10/s,0/min,0/day # 30 pages: about 3 s, time to stop it midway
it_keapsim --seed 13 --size "$size" --api-key "$KEAP_API_KEY" --no-limits

offset() {
    sql "SELECT coalesce((SELECT (state->'window'->>'offset')::bigint FROM keapsync.checkpoints
                          WHERE job = 'contacts'), 0)"
}
forget_pid() {
    local p keep=()
    for p in "${IT_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    IT_PIDS=("${keep[@]}")
}
# start_a NAME: keapsync A in the background (APID), stopped once it committed a page.
start_a() {
    local i
    "$KS" run >"$IT_TMP/$1.out" 2>"$IT_TMP/$1.err" &
    APID=$!
    IT_PIDS+=("$APID")
    for i in $(seq 1 400); do
        [ "$(offset)" -gt 0 ] && break
        sleep 0.025
    done
    kill -STOP "$APID"
    check "$1: A committed pages before it was stopped (offset $(offset))" test "$(offset)" -gt 0
}
# run_b NAME: keapsync B in the foreground; sets RC and SENT.
run_b() {
    local r0
    r0=$(ksim_stat .requests)
    RC=0
    timeout 60 "$KS" run >"$IT_TMP/$1.out" 2>"$IT_TMP/$1.err" || RC=$?
    SENT=$(($(ksim_stat .requests) - r0))
    it_log "$1: exit $RC, $SENT requests"
}
equal_truth() {
    PGOPTIONS="-c client_min_messages=warning" ksim_truth_to_pg contacts
    eq "$1: rows = the truth" "$(sql "SELECT count(*) FROM truth_contacts")" \
        "$(sql "SELECT count(*) FROM keap.contacts")"
    eq "$1: every record exactly as served, none extra" 0 \
        "$(sql "SELECT count(*) FROM truth_contacts t FULL JOIN keap.contacts c
                ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
}
snapshot() { # the job's rows, checkpoint and ledger, as one digest
    sql "SELECT md5((SELECT string_agg(id || ':' || data::text || ':' || synced_at, ',' ORDER BY id)
                     FROM keap.contacts) || '|' ||
                    (SELECT state::text || updated_at FROM keapsync.checkpoints WHERE job = 'contacts') || '|' ||
                    (SELECT string_agg(tenant || spent || ':' || reserved, ',') FROM keapsync.quota_ledger))"
}

# ---- kill: the holder is stopped, then killed
# (a long lease, so that on a slow machine it is A's death, not its lease's end, that frees it)
export KEAPSYNC_LEASE_TTL=300
it_case_begin
it_make_db
"$KS" migrate >/dev/null 2>&1
start_a kill_a
run_b kill_b1
check "kill: B skips the job while A holds the job" \
    grep -q 'job "contacts" is being run by another keapsync process' "$IT_TMP/kill_b1.err"
eq "kill: skipping a job another process holds is not a failure" 0 "$RC"
eq "kill: B sent no request while refused" 0 "$SENT"
kill -KILL "$APID"
wait "$APID" 2>/dev/null || true
forget_pid "$APID"
check "kill: A's lease is still unexpired when B starts" \
    test "$(sql "SELECT count(*) FROM keapsync.leases WHERE name = 'job:contacts' AND expires_at > now()")" -eq 1
run_b kill_b2
eq "kill: B takes the job over at once and completes it" 0 "$RC"
check "kill: because A no longer exists" \
    grep -q 'releasing "job:contacts" held by .*, a keapsync process that no longer exists' "$IT_TMP/kill_b2.err"
check "kill: B resumed A's window" grep -q 'resuming' "$IT_TMP/kill_b2.err"
equal_truth kill
it_case_end "the job's holder stopped, then SIGKILLed: a second process skips it, then takes it over" 1

# ---- expire: the holder is stopped past its lease
it_case_begin
export KEAPSYNC_LEASE_TTL=3
it_make_db
"$KS" migrate >/dev/null 2>&1
start_a exp_a
run_b exp_b1
check "expire: B skips the job while A's lease lasts" \
    grep -q 'job "contacts" is being run by another keapsync process' "$IT_TMP/exp_b1.err"
eq "expire: skipping a job another process holds is not a failure" 0 "$RC"
eq "expire: B sent no request while refused" 0 "$SENT"
ttl=$(sql "SELECT round(extract(epoch FROM expires_at - acquired_at)) FROM keapsync.leases WHERE name = 'job:contacts'")
check "expire: A's lease lasts KEAPSYNC_LEASE_TTL (3 s) at most ($ttl s since taken)" test "$ttl" -le 3
# wait for the expiry itself (the server's clock), at most 20 s
for i in $(seq 1 200); do
    [ "$(sql "SELECT count(*) FROM keapsync.leases WHERE name = 'job:contacts' AND expires_at > clock_timestamp()")" -eq 0 ] && break
    sleep 0.1
done
eq "expire: A's lease expired on its own" 0 \
    "$(sql "SELECT count(*) FROM keapsync.leases WHERE name = 'job:contacts' AND expires_at > clock_timestamp()")"
run_b exp_b2
eq "expire: B takes the expired lease and completes the job" 0 "$RC"
check "expire: A was alive, so B did not release it as dead" \
    bash -c "! grep -q 'no longer exists' '$IT_TMP/exp_b2.err'"
equal_truth expire_b
before=$(snapshot)
r0=$(ksim_stat .requests)
kill -CONT "$APID"
rc=0
for i in $(seq 1 300); do kill -0 "$APID" 2>/dev/null || break; sleep 0.1; done
wait "$APID" 2>/dev/null || rc=$?
forget_pid "$APID"
it_log "expire: A resumed: exit $rc, $(($(ksim_stat .requests) - r0)) requests after it resumed"
grep -E 'ERROR|lease' "$IT_TMP/exp_a.err" | head -5 >&2 || true
eq "expire: A, resumed, fails (exit 1)" 1 "$rc"
# (a renewal that finds it lost logs it; a page commit that does puts it in the job line)
check "expire: A says it lost the job's lease" \
    grep -qE 'job "contacts": lost its lease|lease "job:contacts" is no longer ours' "$IT_TMP/exp_a.err" "$IT_TMP/exp_a.out"
check "expire: A's job line says failed" grep -q '^job "contacts": failed' "$IT_TMP/exp_a.out"
eq "expire: A committed nothing after it resumed (rows, checkpoint, ledger)" "$before" "$(snapshot)"
equal_truth expire_after_a
eq "expire: B's lease was given back, not taken by A" 0 \
    "$(sql "SELECT count(*) FROM keapsync.leases WHERE name = 'job:contacts'")"
it_case_end "the job's holder stopped past its lease: taken over; the old holder, resumed, commits nothing" 1
it_done
