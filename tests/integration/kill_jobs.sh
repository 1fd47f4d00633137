#!/usr/bin/env bash
# Crash safety for every job type (issue 13): v2 page-token jobs, child streams, delete sweeps
# and backfills, each SIGKILLed at 20 random points and restarted after each kill (no lease is
# expired by hand: a restart on the same host frees what a dead process held). Each ends equal
# to keapsim's truth, with no duplicate, and the requests keapsim saw exceed those of one clean,
# uninterrupted run of the same work (measured here, in a database of its own) by at most, per
# kill, the pages one job can have in flight plus what a restart costs when there is nothing
# left to do (measured too: an idle run right after the clean one).
#
# KILL_SEED=N replays the kill points (the seed is printed); KILL_TRIALS=N changes the count;
# KILL_ONLY=v2,child,sweep,backfill runs some of the types.
. "$(dirname "$0")/lib.sh"

trials=${KILL_TRIALS:-20}
depth=4 # pages of one job in flight at once: the scheduler's pipeline depth
seed=${KILL_SEED:-$(((RANDOM << 15) | RANDOM))}
RANDOM=$seed
it_log "seed $seed (KILL_SEED=$seed replays these kill points)"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
# Each type's runs are paced (KEAPSYNC_LIMITS), so that a run lasts long enough to be killed.
FAKE=() # the environment of a run with a faked wall clock (sweeps), or nothing

now_ms() { date +%s%3N; }
forget_pid() { # PID is reaped: the EXIT trap must not signal whatever reuses it
    local p keep=()
    for p in "${IT_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    IT_PIDS=("${keep[@]}")
}
# ks_run OUT ARGS...: one keapsync in the foreground; sets RC, MS and SENT.
ks_run() {
    local out=$1 t0 r0
    shift
    t0=$(now_ms) r0=$(ksim_stat .requests) RC=0
    env "${FAKE[@]}" "$KS" "$@" >"$IT_TMP/$out.out" 2>"$IT_TMP/$out.err" || RC=$?
    MS=$(($(now_ms) - t0)) SENT=$(($(ksim_stat .requests) - r0))
}
db_new() { # NAME: a fresh, migrated database; sets DATABASE_URL
    DATABASE_URL=$(it_new_db "it_kill_${1}_$$")
    export DATABASE_URL
    "$KS" migrate >/dev/null 2>&1
}
db_drop() { psql "$IT_ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS it_kill_${1}_$$" >/dev/null; }
truth_load() { # RESOURCE [QUERY]: keapsim's truth into truth_<RESOURCE>(doc jsonb)
    curl -sf "$KSIM_URL/__admin/truth?resource=$1${2:-}" >"$IT_TMP/truth.$1.jsonl"
    PGOPTIONS="-c client_min_messages=warning" sql "DROP TABLE IF EXISTS truth_$1; CREATE TABLE truth_$1 (doc jsonb)" >/dev/null
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 -c "\\copy truth_$1 (doc) FROM \
'$IT_TMP/truth.$1.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}

# trials T ARGS...: prep_T readies databases <T>_clean and <T>_kill (CLEAN_URL, KILL_URL) for
# the same work; then the clean run, an idle run, and the killed runs. ARGS are keapsync's.
trials() {
    local t=$1 i k kmax rate per spent delay pid rc landed=0 early=0 before total clean idle idle_ms bound \
        maxw=0 w r0
    shift
    it_case_begin
    db_new "${t}_kill"
    KILL_URL=$DATABASE_URL
    db_new "${t}_clean"
    CLEAN_URL=$DATABASE_URL
    "prep_$t"
    DATABASE_URL=$CLEAN_URL
    ks_run "$t.clean" "$@"
    [ "$RC" -eq 0 ] || tail -n 20 "$IT_TMP/$t.clean.err" >&2
    eq "$t: the clean run exits 0" 0 "$RC"
    clean=$SENT clean_ms=$MS
    ks_run "$t.idle" "$@"
    eq "$t: a run right after exits 0" 0 "$RC"
    idle=$SENT idle_ms=$MS
    it_log "[${SECONDS}s] $t: clean run $clean requests in $clean_ms ms; a run with nothing to do: $idle in $idle_ms ms"
    DATABASE_URL=$KILL_URL
    # Kill points: after keapsim has seen k requests of the run, then a further delay uniform
    # in [0, 1/2] of a request's pacing interval, so a kill may land anywhere between a
    # request and its commit (k = 0: during start-up). k is uniform in [0, K], K the requests
    # still to be spent (at least: the clean run's count minus everything the killed runs
    # sent) spread over the kills left and the final run, so every kill finds work to
    # interrupt however fast or slow the machine runs. Counted in requests, not time: a
    # run's first requests are not paced like the later ones.
    rate=${KEAPSYNC_LIMITS%%/s*}
    per=$((1000 / (rate > 0 ? rate : 1000)))
    spent=0
    before=$(ksim_stat .requests)
    for i in $(seq 1 "$trials"); do
        kmax=$(((clean - spent) / (trials - i + 2)))
        [ "$kmax" -ge 0 ] || kmax=0
        k=$((RANDOM % (kmax + 1))) delay=$((RANDOM % (per / 2 + 1)))
        r0=$(ksim_stat .requests)
        env "${FAKE[@]}" "$KS" "$@" >"$IT_TMP/$t.kill$i.out" 2>"$IT_TMP/$t.kill$i.err" &
        pid=$!
        IT_PIDS+=("$pid")
        while kill -0 "$pid" 2>/dev/null && [ "$(ksim_stat .requests)" -lt $((r0 + k)) ]; do
            sleep 0.005
        done
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        kill -KILL "$pid" 2>/dev/null || true
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        forget_pid "$pid"
        sleep 0.05 # let keapsim count what the dead process had on the wire
        w=$(($(ksim_stat .requests) - r0))
        [ "$w" -le "$maxw" ] || maxw=$w
        spent=$((spent + w))
        if [ "$rc" -eq 137 ]; then
            landed=$((landed + 1))
        else
            it_log "$t: run $i ended with exit $rc before its kill ($k requests, then $delay ms)"
            tail -n 5 "$IT_TMP/$t.kill$i.err" >&2
            [ "$rc" -eq 0 ] && { early=1; break; }
        fi
    done
    it_log "[${SECONDS}s] $t: the kills done"
    ks_run "$t.final" "$@"
    it_log "[${SECONDS}s] $t: final run $MS ms"
    [ "$RC" -eq 0 ] || tail -n 20 "$IT_TMP/$t.final.err" >&2
    eq "$t: the run after the kills completes (exit 0)" 0 "$RC"
    total=$(($(ksim_stat .requests) - before))
    eq "$t: all $trials kills landed while keapsync ran (SIGKILL, exit 137)" "$trials" "$landed"
    eq "$t: no killed run finished its work before its kill" 0 "$early"
    "verify_$t"
    bound=$((clean + trials * (depth + idle)))
    it_log "[${SECONDS}s] $t: requests clean $clean, killed $trials times $total (extra $((total - clean)));" \
        "bound $bound = $clean + $trials x ($depth in flight + $idle a restart); most sent by one killed run: $maxw"
    check "$t: requests $total <= $clean + $trials x ($depth + $idle)" test "$total" -le "$bound"
    KILL_TABLE+=("$t $trials $landed $clean $total $bound")
    it_case_end "SIGKILL at a random point of ${KILL_WHAT[$t]}, restarted at once" "$landed"
    [ "$IT_FAILS" -gt 0 ] || { db_drop "${t}_clean"; db_drop "${t}_kill"; }
}
only() { [ -z "${KILL_ONLY:-}" ] || [[ ",$KILL_ONLY," == *",$1,"* ]]; }
KILL_TABLE=()
declare -A KILL_WHAT=([v2]="a v2 page-token sync" [child]="a child stream (each contact's tags)"
    [sweep]="a delete sweep" [backfill]="a backfill")

# sim SIZE: a fresh keapsim tenant of SIZE contacts (the last one stopped)
sim() {
    if [ -n "${KSIM_PID:-}" ]; then kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true; fi
    it_keapsim --seed 47 --size "$1" --api-key "$KEAP_API_KEY" --no-limits
}

# ---- v2 page tokens: /v2/contacts, 50 a page, one window
mkdir -p "$IT_TMP/v2"
jq '.page_size = 50' "$KEAPSYNC_SRC/tests/integration/jobs/contacts_v2.json" >"$IT_TMP/v2/contacts_v2.json"
prep_v2() { :; }
verify_v2() {
    truth_load contacts "&version=v2"
    eq "v2: rows = the v2 truth" "$(sql "SELECT count(*) FROM truth_contacts")" \
        "$(sql "SELECT count(*) FROM keap.contacts_v2")"
    eq "v2: no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts_v2")"
    eq "v2: every record exactly as served, none lost, none extra" 0 \
        "$(sql "SELECT count(*) FROM truth_contacts t FULL JOIN keap.contacts_v2 c
                ON c.id = t.doc->>'id' WHERE c.data IS DISTINCT FROM t.doc")"
}
if only v2; then
    sim 3000
    KEAPSYNC_JOBS="$IT_TMP/v2" KEAPSYNC_LIMITS=30/s,0/min,0/day trials v2 run
fi

# ---- child streams: contacts (1,000 a page), then each contact's tags, 2 a page
mkdir -p "$IT_TMP/child"
jq 'del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/child/contacts.json"
jq '.page_size = 2 | del(.refresh_hours)' "$KEAPSYNC_SRC/jobs/contact_tags.json" \
    >"$IT_TMP/child/contact_tags.json"
prep_child() { :; }
verify_child() {
    local sum="SELECT md5(string_agg(contact_id || ':' || id || ':' || data::text, ','
                          ORDER BY contact_id, id)) FROM keap.contact_tags"
    truth_load contacts
    eq "child: every contact" "$(sql "SELECT count(*) FROM truth_contacts")" \
        "$(sql "SELECT count(*) FROM keap.contacts")"
    eq "child: no duplicate tag rows" 0 \
        "$(sql "SELECT count(*) - count(DISTINCT (contact_id, id)) FROM keap.contact_tags")"
    eq "child: every contact's tags are those keapsim serves (none lost, none extra)" 0 "$(sql "
        SELECT count(*) FROM truth_contacts t
        WHERE COALESCE((SELECT array_agg(c.id ORDER BY c.id) FROM keap.contact_tags c
                         WHERE c.contact_id = (t.doc->>'id')::bigint), '{}')
              IS DISTINCT FROM
              COALESCE((SELECT array_agg(x::bigint ORDER BY x::bigint)
                        FROM jsonb_array_elements_text(t.doc->'tag_ids') x), '{}')")"
    eq "child: the tag rows equal the clean run's, byte for byte" \
        "$(DATABASE_URL=$CLEAN_URL sql "$sum")" "$(sql "$sum")"
}
if only child; then
    sim 60
    KEAPSYNC_JOBS="$IT_TMP/child" KEAPSYNC_LIMITS=40/s,0/min,0/day trials child run
fi

# ---- delete sweeps: contacts loaded, 1 % deleted in keapsim, the sweep 8 days on
mkdir -p "$IT_TMP/sweep"
cp "$KEAPSYNC_SRC/jobs/contacts.json" "$IT_TMP/sweep/"
sweep_deleted=200
prep_sweep() { # both databases loaded (and the sweeps' clock started), then the deletes
    local kdb=${KILL_URL##*/}
    FAKE=() # (today)
    DATABASE_URL=$CLEAN_URL KEAPSYNC_LIMITS=0/s,0/min,0/day "$KS" run >/dev/null 2>&1
    DATABASE_URL=$CLEAN_URL KEAPSYNC_LIMITS=0/s,0/min,0/day "$KS" run >/dev/null 2>&1
    # the killed database starts as a copy of the loaded one
    it_new_db "$kdb" "${CLEAN_URL##*/}" >/dev/null
    curl -sf -X POST "$KSIM_URL/__admin/mutate?deletes=$sweep_deleted" >/dev/null
    FAKE=("${SWEEP_FAKE[@]}")
}
verify_sweep() {
    truth_load contacts
    eq "sweep: no row removed" "$(DATABASE_URL=$CLEAN_URL sql "SELECT count(*) FROM keap.contacts")" \
        "$(sql "SELECT count(*) FROM keap.contacts")"
    eq "sweep: no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
    eq "sweep: exactly the rows keapsim deleted are marked (none lost, none extra)" 0 \
        "$(sql "SELECT count(*) FROM keap.contacts c
                LEFT JOIN truth_contacts t ON (t.doc->>'id')::bigint = c.id
                WHERE (c.deleted_at IS NOT NULL) <> (t.doc IS NULL)")"
    eq "sweep: as many marked as keapsim deleted" "$sweep_deleted" \
        "$(sql "SELECT count(*) FROM keap.contacts WHERE deleted_at IS NOT NULL")"
    eq "sweep: the sweep is closed" 0 \
        "$(sql "SELECT count(*) FROM keapsync.checkpoints WHERE job = 'contacts#sweep' AND state->'window' <> 'null'::jsonb")"
}
if only sweep; then
    sim 20000
    # the sweep reads 1,000 ids a page (20 pages), 8 days on; paced slower, so 20 kills fit
    SWEEP_FAKE=(LD_PRELOAD="$(it_faketime_lib)" FAKETIME=+8d DONT_FAKE_MONOTONIC=1)
    KEAPSYNC_JOBS="$IT_TMP/sweep" KEAPSYNC_LIMITS=10/s,0/min,0/day trials sweep run
    FAKE=()
fi

# ---- backfills: the history of contacts, 100 a page, after an incremental already synced
mkdir -p "$IT_TMP/backfill"
jq '.page_size = 100 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/backfill/contacts.json"
bf_from=2021-01-01 bf_to=2025-01-01
prep_backfill() {
    local url now
    now=$(now_ms)
    for url in "$CLEAN_URL" "$KILL_URL"; do
        DATABASE_URL=$url sql "INSERT INTO keapsync.checkpoints (job, state) VALUES ('contacts',
             '{\"v\":1,\"watermark_ms\":$now,\"completed_ms\":$now,\"window\":null}')" >/dev/null
        DATABASE_URL=$url "$KS" backfill contacts --from "$bf_from" --to "$bf_to" >/dev/null
    done
}
verify_backfill() {
    local in_range="(t.doc->>'last_updated')::timestamptz >= '$bf_from' AND
                    (t.doc->>'last_updated')::timestamptz < '$bf_to'"
    truth_load contacts
    eq "backfill: rows = the truth of the range" \
        "$(sql "SELECT count(*) FROM truth_contacts t WHERE $in_range")" \
        "$(sql "SELECT count(*) FROM keap.contacts")"
    eq "backfill: no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
    eq "backfill: every record of the range exactly as served, none outside it" 0 \
        "$(sql "SELECT count(*) FROM (SELECT * FROM truth_contacts t WHERE $in_range) t
                FULL JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint
                WHERE c.data IS DISTINCT FROM t.doc")"
}
if only backfill; then
    sim 4000
    KEAPSYNC_JOBS="$IT_TMP/backfill" KEAPSYNC_LIMITS=15/s,0/min,0/day trials backfill run
fi

printf '%-9s %6s %6s %8s %8s %8s\n' type trials landed clean killed bound >&2
for row in "${KILL_TABLE[@]}"; do
    # shellcheck disable=SC2086
    printf '%-9s %6s %6s %8s %8s %8s\n' $row >&2
done
it_done
