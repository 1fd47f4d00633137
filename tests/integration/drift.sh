#!/usr/bin/env bash
# Drift-proof paging (issue 5): records change while 50,000 contacts are synced, and
# afterwards Postgres equals keapsim's ground truth (every id, every last_updated), while a
# naive offset pager (KEAPSYNC_PAGING=naive) given the same treatment misses records.
#
# Words: "A" is the drift-proof side, "B" the naive one; each has a keapsim of its own (same
# seed, same size) and a database of its own. The "mutator" is this script posting the same
# /__admin/mutate schedule to both sims, a tick every 0.2 s (2 updates, 1 delete, 1 create per
# 5 ticks), until both first syncs end (keapsim's --mutate-rate thread cannot be stopped
# without stopping keapsim, and the comparison needs a quiet tenant). "Caught up" means a run closed a window whose until lies past the last
# mutation, so every change has been inside some window read after it happened.
. "$(dirname "$0")/lib.sh"

size=50000
page=200
rate=20
limits="$rate/s,$((rate * 60))/min,30000/day"
max_catchup=4

it_make_db
url_a=$DATABASE_URL
db_b="it_drift_naive_$$"
url_b=$(it_new_db "$db_b")

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
it_keapsim --seed 23 --size "$size" --api-key "$KEAP_API_KEY" --limits "$limits"
sim_a=$KSIM_URL
it_keapsim --seed 23 --size "$size" --api-key "$KEAP_API_KEY" --limits "$limits"
sim_b=$KSIM_URL
export KEAPSYNC_LIMITS=$limits

# Small pages (many page boundaries to drift across), a small lag and overlap so the run
# after the mutator stops reads every change.
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p | .incremental.lag_seconds = 1 |
    .incremental.overlap_seconds = 60' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"

now_ms() { date +%s%3N; }

# forget_pid PID...: the PIDs are reaped; the EXIT trap must not signal whatever reuses them.
forget_pid() {
    local p q keep=()
    for p in "${IT_PIDS[@]}"; do
        for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
        keep+=("$p")
    done
    IT_PIDS=("${keep[@]}")
}
stat_of() { curl -sf "$1/__admin/stats" | jq -r "$2"; }

# on SIDE CMD...: runs CMD with the side's database, keapsim and pager.
on() {
    local side=$1
    shift
    if [ "$side" = a ]; then
        DATABASE_URL=$url_a KSIM_URL=$sim_a KEAP_BASE_URL="$sim_a/crm/rest" "$@"
    else
        DATABASE_URL=$url_b KSIM_URL=$sim_b KEAP_BASE_URL="$sim_b/crm/rest" KEAPSYNC_PAGING=naive "$@"
    fi
}
on_sql() { on "$1" sql "$2"; }

on a "$KS" migrate >/dev/null
on b "$KS" migrate >/dev/null

# The ids keapsim holds before any change: an id missing from the final truth and present
# here, or above its largest id, is one keapsim deleted (it exposes no list of those).
PGOPTIONS="-c client_min_messages=warning" on a ksim_truth_to_pg contacts
on_sql a "ALTER TABLE truth_contacts RENAME TO truth0"
eq "keapsim served the configured tenant" "$size" "$(on_sql a "SELECT count(*) FROM truth0")"

: >"$IT_TMP/mutator.failed"
mutator() {
    local tick=0 q
    while [ ! -e "$IT_TMP/mutator.stop" ]; do
        # per 5 ticks: 2 updates, 1 delete, 1 create (3 records leave the window)
        case $((tick % 5)) in
        0 | 2) q="updates=1" ;;
        1) q="creates=1" ;;
        3) q="deletes=1" ;;
        *) q="" ;;
        esac
        [ -n "$q" ] || { tick=$((tick + 1)); sleep 0.2; continue; }
        curl -sf -X POST "$sim_a/__admin/mutate?$q" >/dev/null || echo "a $tick" >>"$IT_TMP/mutator.failed"
        curl -sf -X POST "$sim_b/__admin/mutate?$q" >/dev/null || echo "b $tick" >>"$IT_TMP/mutator.failed"
        tick=$((tick + 1))
        sleep 0.2
    done
    echo "$tick" >"$IT_TMP/mutator.ticks"
}

# --- first sync, both pagers at once, records changing under them ----------------------------
t_start=$(now_ms)
on a "$KS" run >"$IT_TMP/a1.out" 2>"$IT_TMP/a1.err" &
pid_a=$!
on b "$KS" run >"$IT_TMP/b1.out" 2>"$IT_TMP/b1.err" &
pid_b=$!
IT_PIDS+=("$pid_a" "$pid_b")
mutator &
pid_m=$!
IT_PIDS+=("$pid_m")
rc_a=0
wait "$pid_a" || rc_a=$?
rc_b=0
wait "$pid_b" || rc_b=$?
touch "$IT_TMP/mutator.stop"
wait "$pid_m" || true
t_stop=$(now_ms)
forget_pid "$pid_a" "$pid_b" "$pid_m"
eq "every mutation was accepted by both sims" 0 "$(wc -l <"$IT_TMP/mutator.failed")"
cat "$IT_TMP/a1.out" "$IT_TMP/b1.out" >&2
[ "$rc_a" -eq 0 ] || tail -n 20 "$IT_TMP/a1.err" >&2
[ "$rc_b" -eq 0 ] || tail -n 20 "$IT_TMP/b1.err" >&2
eq "drift-proof first sync exits 0" 0 "$rc_a"
eq "naive first sync exits 0" 0 "$rc_b"
# run_figure SIDE: "N requests in S s" of that side's first sync, from its summary line.
run_figure() { sed -n 's/^run: \([0-9]*\) requests.* in \([0-9.]*\) s$/\1 requests in \2 s/p' "$IT_TMP/${1}1.out"; }
it_log "first syncs: drift-proof $(run_figure a), naive $(run_figure b);" \
    "mutator $(cat "$IT_TMP/mutator.ticks") ticks over $((t_stop - t_start)) ms"
steps_a=$(grep -c 'stepping back' "$IT_TMP/a1.err" || true)
steps_b=$(grep -c 'stepping back' "$IT_TMP/b1.err" || true)
check "records shifted under the drift-proof pager and it stepped back ($steps_a times)" \
    test "$steps_a" -ge 1
eq "the naive pager never checks for shifts" 0 "$steps_b"

for s in a b; do
    url=$([ "$s" = a ] && echo "$sim_a" || echo "$sim_b")
    it_log "sim $s: $(stat_of "$url" '"\(.created) created, \(.updated) updated, \(.deleted) deleted, \(.contacts) contacts, \(.requests) requests, \(.rejected_429) answered 429"')"
done
eq "both sims went through the same changes" \
    "$(stat_of "$sim_a" '[.created, .updated, .deleted, .contacts, .max_id] | join(" ")')" \
    "$(stat_of "$sim_b" '[.created, .updated, .deleted, .contacts, .max_id] | join(" ")')"
check "the mutator changed records during the sync" test "$(stat_of "$sim_a" .updated)" -gt 0

# --- catch up: runs until a window's until lies past the last change -------------------------
PGOPTIONS="-c client_min_messages=warning" on a ksim_truth_to_pg contacts
PGOPTIONS="-c client_min_messages=warning" on b ksim_truth_to_pg contacts
last_change=$(on_sql a "SELECT max((doc->>'last_updated_utc_millis')::bigint) FROM truth_contacts")
lag_ms=$(jq '.incremental.lag_seconds * 1000' "$KEAPSYNC_JOBS/contacts.json")
# The next window's until is its start minus the lag: start after last change + lag.
while [ $(($(now_ms) - lag_ms)) -le "$last_change" ]; do sleep 0.1; done

catch_up() {
    local side=$1 n wm
    for n in $(seq 1 "$max_catchup"); do
        rc=0
        on "$side" "$KS" run >"$IT_TMP/$side.c$n.out" 2>"$IT_TMP/$side.c$n.err" || rc=$?
        [ "$rc" -eq 0 ] || { cat "$IT_TMP/$side.c$n.err" >&2; echo "exit $rc"; return; }
        wm=$(on_sql "$side" "SELECT state->>'watermark_ms' FROM keapsync.checkpoints
                             WHERE job = 'contacts' AND state->'window' = 'null'::jsonb")
        if [ -n "$wm" ] && [ "$wm" -gt "$last_change" ]; then
            echo "$n"
            return
        fi
    done
    echo "not after $max_catchup runs"
}
runs_a=$(catch_up a)
runs_b=$(catch_up b)
is_count() { [[ $1 =~ ^[0-9]+$ ]]; }
check "drift-proof pager caught up (runs: $runs_a)" is_count "$runs_a"
check "naive pager caught up (runs: $runs_b)" is_count "$runs_b"

# --- drift-proof: Postgres equals the truth ----------------------------------------------------
truth_n=$(on_sql a "SELECT count(*) FROM truth_contacts")
eq "both sims hold the same ids" \
    "$(on_sql a "SELECT md5(string_agg(doc->>'id', ',' ORDER BY (doc->>'id')::bigint)) FROM truth_contacts")" \
    "$(on_sql b "SELECT md5(string_agg(doc->>'id', ',' ORDER BY (doc->>'id')::bigint)) FROM truth_contacts")"
missing_a=$(on_sql a "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts c
                      ON c.id = (t.doc->>'id')::bigint WHERE c.id IS NULL")
eq "drift-proof: every truth id is in Postgres (of $truth_n)" 0 "$missing_a"
eq "drift-proof: every last_updated equals the truth" 0 \
    "$(on_sql a "SELECT count(*) FROM truth_contacts t JOIN keap.contacts c
                 ON c.id = (t.doc->>'id')::bigint
                 WHERE c.last_updated IS DISTINCT FROM (t.doc->>'last_updated')::timestamptz")"
eq "drift-proof: every data jsonb equals the served record" 0 \
    "$(on_sql a "SELECT count(*) FROM truth_contacts t JOIN keap.contacts c
                 ON c.id = (t.doc->>'id')::bigint WHERE c.data <> t.doc")"
eq "drift-proof: no duplicate ids" 0 "$(on_sql a "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
extra_a=$(on_sql a "SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
                    (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id)")
eq "drift-proof: every id not in the truth is one keapsim deleted" 0 \
    "$(on_sql a "SELECT count(*) FROM keap.contacts c
                 WHERE NOT EXISTS (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id)
                   AND NOT EXISTS (SELECT 1 FROM truth0 t WHERE (t.doc->>'id')::bigint = c.id)
                   AND c.id <= (SELECT max((doc->>'id')::bigint) FROM truth0)")"
deleted=$(stat_of "$sim_a" .deleted)
check "drift-proof: $extra_a ids kept that keapsim deleted (of $deleted deletes)" \
    test "$extra_a" -le "$deleted"

# --- naive: records missed for good ------------------------------------------------------------
missing_b=$(on_sql b "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts c
                      ON c.id = (t.doc->>'id')::bigint WHERE c.id IS NULL")
# Never updated during the test: no later window re-reads them, so they stay missing.
lost_b=$(on_sql b "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts c
                   ON c.id = (t.doc->>'id')::bigint
                   WHERE c.id IS NULL AND (t.doc->>'last_updated_utc_millis')::bigint < $t_start")
it_log "naive pager: $missing_b truth ids missing after catching up, $lost_b of them never updated;" \
    "drift-proof: $missing_a"
check "naive pager missed records for good ($lost_b never-updated truth ids absent)" \
    test "$lost_b" -ge 1
check "drift-proof pager missed fewer than the naive one ($missing_a < $missing_b)" \
    test "$missing_a" -lt "$missing_b"

[ "$IT_FAILS" -eq 0 ] && psql "$IT_ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS $db_b" >/dev/null
it_done
