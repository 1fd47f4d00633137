#!/usr/bin/env bash
# keapsync daemon over three UTC days: one daemon process, never restarted, runs hourly
# contacts (with a backfill that needs about 2.5 days of a scaled-down quota) and daily
# products ("30 2 * * *"). Time is faked for keapsync (libfaketime reading an offset file)
# and keapsim (its admin clock) alike; whenever the daemon says it sleeps, the test moves
# both clocks to just before its wake-up, so three midnights pass in seconds of real time.
# At the end: the tables equal keapsim's truth, no UTC day spent more than its limit
# (keapsim's own per-day counts and the ledger), keapsim answered no 429 (nothing was sent
# while the day was spent), and products ran on its schedule only.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 100 | del(.deletes) | .schedule = "0 * * * *"' \
    "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
jq '.schedule = "30 2 * * *"' "$KEAPSYNC_SRC/jobs/products.json" >"$IT_TMP/jobs/products.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
it_keapsim --seed 31 --size 3000 --api-key "$KEAP_API_KEY" --limits "50/s,3000/min,0/day"
from=2020-01-01
to=2025-01-01

# ---- the fake clock: keapsync reads an offset (seconds) from a file, keapsim from its admin
lib=$(it_faketime_lib)
FT="$IT_TMP/faketime"
set_fake() { # set_fake EPOCH_S: both clocks read EPOCH_S now
    local off=$(($1 - $(date +%s)))
    echo "+$off" >"$FT.tmp" && mv "$FT.tmp" "$FT"
    curl -sf -X POST "$KSIM_URL/__admin/clock?offset_ms=$((off * 1000))" >/dev/null
}
fake_now() { echo $(($(date +%s) + $(tr -d '+' <"$FT"))); }
ks_ft() {
    LD_PRELOAD="$lib" FAKETIME_TIMESTAMP_FILE="$FT" FAKETIME_CACHE_DURATION=1 \
        DONT_FAKE_MONOTONIC=1 "$@"
}
iso() { date -u -d "@$1" +%FT%TZ; }
# Tomorrow (real) at 20:00 UTC: four hours of the first day left.
t0=$((($(date +%s) / 86400 + 1) * 86400 + 20 * 3600))
set_fake "$t0"

it_make_db
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
ksim_truth_to_pg products
in_range="(t.doc->>'last_updated')::timestamptz >= '$from' AND (t.doc->>'last_updated')::timestamptz < '$to'"
want=$(sql "SELECT count(*) FROM truth_contacts t WHERE $in_range")
off() { # contacts rows that differ from the truth of the range, either way
    sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE $in_range AND NOT EXISTS
                   (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
              + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
                   (SELECT 1 FROM truth_contacts t WHERE $in_range AND (t.doc->>'id')::bigint = c.id))"
}
# The backfill's pages (100 records each, plus a short page per window) over ~2.5 days,
# with room for the hourly incremental and the products job.
pages=$(((want + 99) / 100))
day=$(((pages * 10 + 24) / 25 + 4))
check "the range needs many pages ($want records, $pages pages; $day requests a day)" test "$pages" -ge 20
export KEAPSYNC_LIMITS="50/s,3000/min,$day/day"
curl -sf -X POST "$KSIM_URL/__admin/limits?limits=50/s,3000/min,$day/day" >/dev/null
eq "keapsim enforces the same day" "$day" "$(curl -sf "$KSIM_URL/__admin/limits" | jq .per_day)"

# The incremental has synced up to the fake now: its windows read only what changes from
# here on; the history is the backfill's.
now_ms=$(($(fake_now) * 1000))
sql "INSERT INTO keapsync.checkpoints (job, state) VALUES ('contacts',
     '{\"v\":1,\"watermark_ms\":$now_ms,\"completed_ms\":$now_ms,\"window\":null}')"
ks_ft "$KS" backfill contacts --from "$from" --to "${to}T00:00:00Z" >/dev/null

# ---- one daemon for the whole test
LOG="$IT_TMP/daemon.log"
# (a simple command, so that $! is keapsync itself)
KEAPSYNC_QUOTA_JITTER=2 LD_PRELOAD="$lib" FAKETIME_TIMESTAMP_FILE="$FT" FAKETIME_CACHE_DURATION=1 \
    DONT_FAKE_MONOTONIC=1 "$KS" daemon >"$LOG" 2>&1 &
DPID=$!
IT_PIDS+=("$DPID")

: >"$IT_TMP/perday"
note_day() { # the day keapsim is in, and what it counted for it
    curl -sf "$KSIM_URL/__admin/stats" | jq -r '"\(.day_start_ms / 1000 | floor) \(.day_used)"' >>"$IT_TMP/perday"
}
seen=0 midnights=0 quota_stops=0 final=0 deadline=$(($(date +%s) + 150))
while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$DPID" 2>/dev/null || break
    n=$(grep -c 'sleeping until' "$LOG" || true)
    if [ "$n" -le "$seen" ]; then
        sleep 0.2
        continue
    fi
    seen=$n
    line=$(grep 'sleeping until' "$LOG" | sed -n "${n}p")
    until_s=$(date -u -d "$(echo "$line" | sed -n 's/.*sleeping until \([^ ]*\) .*/\1/p')" +%s)
    now=$(fake_now)
    if echo "$line" | grep -q "quota is spent"; then
        quota_stops=$((quota_stops + 1))
        note_day
        it_log "day $midnights: quota spent at $(iso "$now"); moving to $(iso $((until_s - 1)))"
        set_fake $((until_s - 1))
        midnights=$((midnights + 1))
    elif [ "$midnights" -lt 3 ]; then
        # The day's work is done before the quota: on to the next midnight.
        note_day
        next=$(((now / 86400 + 1) * 86400 + 20))
        it_log "day $midnights: done for the day at $(iso "$now"); moving to $(iso "$next")"
        set_fake "$next"
        midnights=$((midnights + 1))
    elif [ "$final" -eq 0 ]; then
        # Three midnights behind: on to 02:31, just after products' tick of the day.
        final=1
        next=$((now / 86400 * 86400 + 2 * 3600 + 31 * 60))
        [ "$next" -gt "$now" ] || next=$((next + 86400))
        it_log "moving to $(iso "$next") for products' tick"
        seg1=$(wc -l <"$LOG")
        set_fake "$next"
    elif [ "$final" -eq 1 ]; then
        # Then 03:00:30: contacts' hourly tick, not products'.
        final=2
        seg2=$(wc -l <"$LOG")
        next=$((now / 86400 * 86400 + 3 * 3600 + 30))
        it_log "moving to $(iso "$next") for contacts' tick"
        set_fake "$next"
    else
        break
    fi
done
note_day
ks_ft "$KS" status >"$IT_TMP/status.out" 2>&1 || true
kill -TERM "$DPID"
rc=0; wait "$DPID" || rc=$?
IT_PIDS=("$KSIM_PID")
sed -n 's/^keapsync: INFO: \(job=\|run:\|sleeping\)/\1/p' "$LOG" | sed 's/^/  /' >&2
eq "the daemon exits 0 on SIGTERM" 0 "$rc"
eq "one daemon process crossed three UTC midnights" 3 "$midnights"
check "the backfill needed at least three UTC days ($quota_stops days ended at the quota)" test "$quota_stops" -ge 2
eq "contacts equal the truth of the range" 0 "$(off)"
eq "no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
eq "products equal the truth" "$(sql "SELECT count(*) FROM truth_products")" \
    "$(sql "SELECT count(*) FROM keap.products p JOIN truth_products t ON (t.doc->>'id')::bigint = p.id AND t.doc = p.data")"
check "status shows the backfill done" grep -q "^backfill 1 \"contacts\": from .* (100 %), done" "$IT_TMP/status.out"

# ---- no day over its limit, nothing sent while the day was spent
it_log "keapsim per day (day start, requests): $(sort -n "$IT_TMP/perday" | uniq | tr '\n' ' ')"
over=$(sort -n "$IT_TMP/perday" | awk -v d="$day" '{ if ($2 > m[$1]) m[$1] = $2 } END { n = 0; for (k in m) if (m[k] > d) n++; print n }')
eq "keapsim counted no day over $day requests" 0 "$over"
ndays=$(sort -n "$IT_TMP/perday" | awk '$2 > 0 { print $1 }' | sort -u | wc -l)
check "requests were sent on at least four UTC days ($ndays)" test "$ndays" -ge 4
eq "keapsim answered no 429 (nothing sent while the day was spent)" 0 "$(ksim_stat .rejected_429)"
eq "no request over the day's limit at keapsim" 0 "$(ksim_stat .rejected_429_by_window.day)"
eq "the ledger shows no day over its limit" 0 \
    "$(sql "SELECT count(*) FROM (SELECT day, sum(spent) s FROM keapsync.quota_ledger GROUP BY day) d WHERE s > $day")"
it_log "ledger: $(sql "SELECT string_agg(tenant || ' ' || day || ' reserved ' || reserved || ' spent ' || spent, '; ' ORDER BY day, tenant) FROM keapsync.quota_ledger")"
eq "the ledger reserved no day over its limit (the tenant's rows)" 0 \
    "$(sql "SELECT count(*) FROM keapsync.quota_ledger WHERE tenant NOT LIKE 'http%' AND reserved > $day")"

# ---- the schedules: contacts hourly, products at 02:30 only
eq "reached both final ticks" 2 "$final"
seg3=$(wc -l <"$LOG")
check "at 02:31 products ran (its 02:30 tick)" bash -c "sed -n '$((seg1 + 1)),${seg2}p' '$LOG' | grep -q '^keapsync: INFO: job=products outcome=done'"
check "at 03:00:30 contacts ran (hourly)" bash -c "sed -n '$((seg2 + 1)),${seg3}p' '$LOG' | grep -q '^keapsync: INFO: job=contacts outcome=done'"
check "at 03:00:30 products did not run (not its tick)" bash -c "! sed -n '$((seg2 + 1)),${seg3}p' '$LOG' | grep -q 'job=products'"
runs_contacts=$(grep -c '^keapsync: INFO: job=contacts outcome=' "$LOG" || true)
check "contacts ran on each day ($runs_contacts runs)" test "$runs_contacts" -ge 5
nextat() { sql "SELECT to_char(next_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM keapsync.daemon_jobs WHERE job = '$1'"; }
eq "daemon_jobs: products' next tick is tomorrow 02:30" "$(iso $(( ($(fake_now) / 86400 + 1) * 86400 + 9000 )))" "$(nextat products)"
eq "daemon_jobs: contacts' next tick is 04:00" "$(iso $(( $(fake_now) / 86400 * 86400 + 4 * 3600 )))" "$(nextat contacts)"
ks_ft "$KS" status --json >"$IT_TMP/status.json" 2>/dev/null || true
eq "status --json: contacts' next_run is daemon_jobs' next tick" "$(nextat contacts)" \
    "$(jq -r '.jobs[] | select(.name == "contacts") | .next_run' "$IT_TMP/status.json")"
ks_ft "$KS" status >"$IT_TMP/status2.out" 2>&1 || true
check "status: the NEXT RUN column shows products' next tick" \
    grep -q "^products .*$(nextat products | sed 's/T/ /')" "$IT_TMP/status2.out"
check "daemon_jobs holds contacts' last tick" test -n "$(sql "SELECT last_tick_at FROM keapsync.daemon_jobs WHERE job = 'contacts'")"

it_done
