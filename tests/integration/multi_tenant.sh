#!/usr/bin/env bash
# Many tenants, many processes (issue 12): two Keap accounts (two keapsim instances, two
# keys) synced into one database, each into a schema of its own (KEAPSYNC_SCHEMA=keap_a,
# keap_b) with the same three job files, by three processes that coordinate only through
# Postgres: two for tenant a, one for tenant b, started together. Midway through the first
# tick the tenant-a process that holds the job leases is killed with SIGKILL; the tick's
# restart (what systemd's Restart= or a CronJob's retry does) resumes what it left. A second
# tick, after keapsim changed records, runs the three processes again: the two of tenant a
# split its jobs (a job whose lease the other holds is skipped, state "skipped" in
# keapsync.run_jobs, not a failure), both exit 0, and no restart is needed.
#
# At the end of each tick: every job has exactly one completed pass in that tick
# (keapsync.job_stats), no two processes ever ran one job at once (their job_stats rows of
# the tick never overlap), neither keapsim saw a second or a minute over its ceiling nor
# answered a 429, and every table equals its keapsim truth (ids and data). A lease left by a
# holder on another host (a dead pod) blocks its job until it expires, then is taken.
. "$(dirname "$0")/lib.sh"

it_make_db
export PGOPTIONS="-c client_min_messages=warning"
limits="10/s,600/min,30000/day"
export KEAPSYNC_LIMITS=$limits
per_s=${limits%%/s*}
per_min=$(echo "$limits" | sed 's/.*,\([0-9]*\)\/min.*/\1/')

# Three of the shipped jobs, with small pages so that a sync lasts long enough to be killed
mkdir -p "$IT_TMP/jobs"
# in the middle of it, and a lag of one second so that the second tick sees changes made
# just before it.
for j in contacts:20 companies:10 tags:10; do
    jq --argjson p "${j#*:}" '.page_size = $p | .incremental.lag_seconds = 1' \
        "$KEAPSYNC_SRC/jobs/${j%%:*}.json" >"$IT_TMP/jobs/${j%%:*}.json"
done
export KEAPSYNC_JOBS="$IT_TMP/jobs"
jobs=(contacts companies tags)
tenants=(a b)

# One keapsim per tenant, each with its own key and data; the tenant's env in a file.
declare -A SIM_URL
seed=41
for t in "${tenants[@]}"; do
    key="it-key-$t-$RANDOM$RANDOM"
    install -m 600 /dev/null "$IT_TMP/key.$t"
    printf '%s\n' "$key" >"$IT_TMP/key.$t"
    it_keapsim --seed $((seed++)) --size 400 --api-key "$key" --limits "$limits"
    SIM_URL[$t]=$KSIM_URL
    cat >"$IT_TMP/env.$t" <<EOF
KEAP_BASE_URL=$KSIM_URL/crm/rest
KEAP_API_KEY_FILE=$IT_TMP/key.$t
KEAPSYNC_SCHEMA=keap_$t
KEAPSYNC_TENANT=tenant-$t
EOF
done
unset KEAP_BASE_URL KSIM_URL

# ks TENANT ARGS...: keapsync with the tenant's environment (and nothing of the other's).
ks() {
    local t=$1 envv
    shift
    mapfile -t envv <"$IT_TMP/env.$t"
    env "${envv[@]}" "$KS" "$@"
}
sim() { curl -sf "${SIM_URL[$1]}/__admin/stats" | jq -r "$2"; }

# A schema that is not a plain lower-case identifier, or keapsync's own: exit 2, one line,
# nothing written.
for bad in 'Keap_A' 'keap-a' 'keapsync' 'pg_x' 'public' '1keap' 'keap_a;drop'; do
    rc=0
    mapfile -t envv < <(grep -v SCHEMA "$IT_TMP/env.a")
    KEAPSYNC_SCHEMA=$bad env "${envv[@]}" "$KS" migrate >/dev/null 2>"$IT_TMP/bad.err" || rc=$?
    eq "KEAPSYNC_SCHEMA=$bad: exit 2" 2 "$rc"
    check "KEAPSYNC_SCHEMA=$bad: one line with a hint" \
        grep -qxE 'keapsync: error: invalid KEAPSYNC_SCHEMA ".*" \(hint: .+\)' "$IT_TMP/bad.err"
done
eq "nothing was written for a bad schema" "" "$(sql "SELECT to_regclass('keapsync.migrations')")"

for t in "${tenants[@]}"; do
    ks "$t" migrate >/dev/null 2>"$IT_TMP/migrate.$t.err" || cat "$IT_TMP/migrate.$t.err" >&2
done
eq "each tenant has its schema" "keap_a keap_b" \
    "$(sql "SELECT string_agg(nspname, ' ' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'keap\_%'")"

# start NAME TENANT: one `keapsync run` of the tenant's jobs in the background; PID_<NAME>.
declare -A PID
start() {
    local envv
    mapfile -t envv <"$IT_TMP/env.$2"
    # env execs keapsync: $! is keapsync's own pid, the one its lease holder names.
    env "${envv[@]}" "$KS" run >"$IT_TMP/$1.out" 2>"$IT_TMP/$1.err" &
    PID[$1]=$!
    IT_PIDS+=("$!")
}
# finish NAME: waits for it; RC_<NAME>.
declare -A RC
finish() {
    local rc=0
    wait "${PID[$1]}" 2>/dev/null || rc=$?
    RC[$1]=$rc
}

# done_in_tick TENANT JOB SINCE: completed passes of the job since SINCE.
done_in_tick() {
    sql "SELECT count(*) FROM keapsync.job_stats WHERE job = 'keap_$1.$2' AND pass_done
         AND at >= '$3'"
}
# pending TENANT SINCE: the tenant's jobs without a completed pass since SINCE, comma-separated.
pending() {
    local j out=()
    for j in "${jobs[@]}"; do
        [ "$(done_in_tick "$1" "$j" "$2")" -gt 0 ] || out+=("$j")
    done
    (IFS=,; echo "${out[*]}")
}

# check_tick N SINCE: the tick's invariants.
check_tick() {
    local n=$1 since=$2 t j overlap
    for t in "${tenants[@]}"; do
        for j in "${jobs[@]}"; do
            eq "tick $n: $t/$j completed exactly one pass" 1 "$(done_in_tick "$t" "$j" "$since")"
        done
    done
    # Two runs that both did work on one job in the tick must not overlap in time.
    overlap=$(sql "WITH w AS (
            SELECT s.job, s.run_id, r.started_at, coalesce(r.finished_at, s.at) AS ended_at
            FROM keapsync.job_stats s JOIN keapsync.runs r ON r.id = s.run_id
            WHERE s.at >= '$since' AND s.requests > 0)
        SELECT count(*) FROM w x JOIN w y ON x.job = y.job AND x.run_id < y.run_id
        WHERE x.started_at < y.ended_at AND y.started_at < x.ended_at")
    eq "tick $n: no job was run by two processes at once" 0 "$overlap"
}

# truth TENANT JOB: the tenant's keapsim records of JOB as table truth_<tenant>_<job>.
truth() {
    local f="$IT_TMP/jobs/$2.json" version
    version=$(jq -r '.endpoint | split("/")[1]' "$f")
    curl -sf "${SIM_URL[$1]}/__admin/truth?resource=$2&version=$version" >"$IT_TMP/truth.$1.$2.jsonl"
    sql "DROP TABLE IF EXISTS truth_$1_$2; CREATE TABLE truth_$1_$2 (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth_$1_$2 (doc) FROM '$IT_TMP/truth.$1.$2.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}

# check_landed N: every table equals its tenant's truth; the windows held.
check_landed() {
    local n=$1 t j cnt same
    for t in "${tenants[@]}"; do
        for j in "${jobs[@]}"; do
            truth "$t" "$j"
            cnt=$(sql "SELECT count(*) FROM truth_${t}_$j")
            check "tick $n: $t/$j: keapsim has records ($cnt)" test "$cnt" -gt 0
            # A job with "fields" in its query is also served the times the truth leaves out:
            # its data holds every member of the truth, with the same value.
            same="c.data = tr.doc"
            [ "$(jq -r 'has("query")' "$IT_TMP/jobs/$j.json")" = false ] || same="c.data @> tr.doc"
            eq "tick $n: $t/$j: rows equal the truth (ids and data)" 0 "$(sql "
                SELECT count(*) FROM truth_${t}_$j tr FULL JOIN keap_$t.$j c
                ON c.id::text = tr.doc->>'id'
                WHERE c.id IS NULL OR tr.doc IS NULL OR NOT ($same)")"
        done
        eq "tick $n: tenant $t: keapsim answered no 429" 0 "$(sim "$t" .rejected_429)"
        check "tick $n: tenant $t: busiest second $(sim "$t" .max_in_1s) <= $per_s" \
            test "$(sim "$t" .max_in_1s)" -le "$per_s"
        check "tick $n: tenant $t: busiest minute $(sim "$t" .max_in_60s) <= $per_min" \
            test "$(sim "$t" .max_in_60s)" -le "$per_min"
    done
    # The tenants' records differ (other seeds), so a row in the wrong schema would show above;
    # the same job names never share a checkpoint.
    eq "tick $n: one checkpoint per tenant and job" 6 \
        "$(sql "SELECT count(*) FROM keapsync.checkpoints WHERE job ~ '^keap_[ab]\.(contacts|companies|tags)$'")"
}

# --- tick 1: three processes, the one doing tenant a's work killed midway --------------------
tick1=$(sql "SELECT now()")
start a1 a
start a2 a
start b1 b
# Wait until tenant a's sync is under way: its contacts have rows but are not all there.
victim=""
for _ in $(seq 1 400); do
    rows=$(sql "SELECT count(*) FROM keap_a.contacts" 2>/dev/null || echo 0)
    if [ "$rows" -gt 0 ] && [ "$rows" -lt 400 ]; then
        holder=$(sql "SELECT holder FROM keapsync.leases WHERE name = 'job:keap_a.contacts'")
        for p in a1 a2; do
            case "$holder" in *":${PID[$p]}:"*) victim=$p ;; esac
        done
        [ -n "$victim" ] && break
    fi
    sleep 0.05
done
check "tick 1: a tenant-a process held tenant a's contacts midway (${rows:-0} of 400 rows)" \
    test -n "$victim"
[ -n "$victim" ] || { it_done; exit 1; }
kill -KILL "${PID[$victim]}"
finish "$victim"
eq "tick 1: $victim was killed (SIGKILL)" 137 "${RC[$victim]}"
survivor=$([ "$victim" = a1 ] && echo a2 || echo a1)
finish "$survivor"
finish b1
eq "tick 1: tenant b's process completed" 0 "${RC[b1]}"
it_log "tick 1: $survivor exited ${RC[$survivor]}: $(grep -c 'is being run by another keapsync process' "$IT_TMP/$survivor.err" || true) jobs left to the other"
eq "tick 1: the survivor exits 0 (the jobs it left to the other are skipped, not failed)" 0 "${RC[$survivor]}"
check "tick 1: the killed process left tenant a's contacts unfinished" \
    test "$(done_in_tick a contacts "$tick1")" -eq 0
# The restart: each tenant's jobs without a completed pass in this tick, run again.
for t in "${tenants[@]}"; do
    left=$(pending "$t" "$tick1")
    [ -n "$left" ] || continue
    it_log "tick 1: restart of tenant $t: $left"
    rc=0
    ks "$t" run --only "$left" >"$IT_TMP/restart.$t.out" 2>"$IT_TMP/restart.$t.err" || rc=$?
    [ "$rc" -eq 0 ] || tail -5 "$IT_TMP/restart.$t.err" >&2
    eq "tick 1: the restart of tenant $t completed" 0 "$rc"
done
# Any process of this host that starts releases what a dead one held (another host's wait
# for the lease to expire; below).
check "tick 1: a live process released the dead process's lease" \
    grep -q "releasing \"job:keap_a.contacts\" held by .*:${PID[$victim]}:.*no longer exists" \
    "$IT_TMP"/*.err
check "tick 1: the restart resumed tenant a's contacts where the killed process stopped" \
    grep -q 'job "keap_a.contacts": resuming at offset' "$IT_TMP/restart.a.err"
check_tick 1 "$tick1"
check_landed 1

# --- tick 2: keapsim changed records; the same three processes, nobody killed --------------
for t in "${tenants[@]}"; do
    curl -sf -X POST "${SIM_URL[$t]}/__admin/mutate?creates=7&updates=11&deletes=0" >/dev/null
done
sleep 2.1 # the changes are older than the jobs' lag
tick2=$(sql "SELECT now()")
start a1 a
start a2 a
start b1 b
finish a1
finish a2
finish b1
eq "tick 2: tenant b's process completed" 0 "${RC[b1]}"
eq "tick 2: a1 exits 0" 0 "${RC[a1]}"
eq "tick 2: a2 exits 0" 0 "${RC[a2]}"
eq "tick 2: nothing is left for a restart of tenant a" "" "$(pending a "$tick2")"
eq "tick 2: nothing is left for a restart of tenant b" "" "$(pending b "$tick2")"
for j in "${jobs[@]}"; do
    # The rows of tenant a's two runs of the tick for job j: one did the work, the other
    # skipped it (or, started after it was over, found it complete and sent nothing).
    eq "tick 2: a/$j: exactly one of the two runs sent requests for it" 1 "$(sql "
        SELECT count(*) FROM keapsync.run_jobs j JOIN keapsync.runs r ON r.id = j.run_id
        WHERE r.started_at >= '$tick2' AND j.job = 'keap_a.$j' AND j.requests > 0")"
    eq "tick 2: a/$j: ... in state done" 1 "$(sql "
        SELECT count(*) FROM keapsync.run_jobs j JOIN keapsync.runs r ON r.id = j.run_id
        WHERE r.started_at >= '$tick2' AND j.job = 'keap_a.$j' AND j.requests > 0 AND j.state = 'done'")"
    eq "tick 2: a/$j: the other run's row is skipped or an empty done" 0 "$(sql "
        SELECT count(*) FROM keapsync.run_jobs j JOIN keapsync.runs r ON r.id = j.run_id
        WHERE r.started_at >= '$tick2' AND j.job = 'keap_a.$j' AND j.requests = 0
          AND j.state NOT IN ('skipped', 'done')")"
done
eq "tick 2: no run of the tick failed a job" 0 "$(sql "
    SELECT count(*) FROM keapsync.run_jobs j JOIN keapsync.runs r ON r.id = j.run_id
    WHERE r.started_at >= '$tick2' AND j.state = 'failed'")"
it_log "tick 2: tenant a's split: $(sql "
    SELECT string_agg(j.job || '=' || j.state || '/' || j.requests, ' ' ORDER BY r.id, j.job)
    FROM keapsync.run_jobs j JOIN keapsync.runs r ON r.id = j.run_id
    WHERE r.started_at >= '$tick2' AND j.job LIKE 'keap_a.%'")"
check "tick 2: the processes said which jobs they left to the other" \
    grep -q 'is being run by another keapsync process' "$IT_TMP/a1.err" "$IT_TMP/a2.err"
check_tick 2 "$tick2"
check_landed 2
eq "tick 2: incremental: tenant a's contacts pass read only the changes, not 400 records" t \
    "$(sql "SELECT records < 400 FROM keapsync.job_stats WHERE job = 'keap_a.contacts' AND pass_done
            AND at >= '$tick2'")"

# --- the ledger is per tenant ----------------------------------------------------------------
for t in "${tenants[@]}"; do
    served=$(sim "$t" .requests)
    spent=$(sql "SELECT coalesce(sum(spent), 0) FROM keapsync.quota_ledger WHERE tenant = 'tenant-$t'")
    reserved=$(sql "SELECT coalesce(sum(reserved), 0) FROM keapsync.quota_ledger WHERE tenant = 'tenant-$t'")
    it_log "tenant $t: keapsim served $served requests; ledger spent $spent, reserved $reserved"
    check "tenant $t: the ledger covers every request keapsim served ($served <= reserved $reserved)" \
        test "$served" -le "$reserved"
    check "tenant $t: the ledger counts none of the other tenant's ($spent <= $served)" \
        test "$spent" -le "$served"
done

# --- a lease of a holder on another host (a dead pod) expires ---------------------------------
sql "UPDATE keapsync.leases SET expires_at = now() - interval '1 s'" >/dev/null
sql "INSERT INTO keapsync.leases (name, holder, expires_at)
     VALUES ('job:keap_b.tags', 'other-host:1:dead', clock_timestamp() + interval '3 s')
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at" >/dev/null
rc=0
ks b run --only tags >"$IT_TMP/ghost1.out" 2>"$IT_TMP/ghost1.err" || rc=$?
check "a live lease of another host's holder is not taken" \
    grep -q 'job "keap_b.tags" is being run by another keapsync process (other-host:1:dead); skipped' \
    "$IT_TMP/ghost1.err"
eq "... the job is skipped, not failed: exit 0" 0 "$rc"
eq "... recorded as skipped" skipped "$(sql "SELECT state FROM keapsync.run_jobs WHERE job = 'keap_b.tags' ORDER BY run_id DESC LIMIT 1")"
check "tenant a's job of the same name is not blocked by it" \
    ks a run --only tags >"$IT_TMP/ghost_a.out" 2>"$IT_TMP/ghost_a.err"
sleep 3.2
rc=0
ks b run --only tags >"$IT_TMP/ghost2.out" 2>"$IT_TMP/ghost2.err" || rc=$?
eq "once expired, the lease is taken and the job runs" 0 "$rc"

it_done
