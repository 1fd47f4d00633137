#!/usr/bin/env bash
# bench_pacing.sh: how close keapsync paces to Keap's limits, with zero 429s, against a
# reactive baseline that behaves like common ELT tools, all measured by keapsim in one run.
#
#   tests/bench/bench_pacing.sh [BUILD_DIR]        (default: build; needs keapsync, keapsim,
#                                                   bench_reactive built there)
#
# Two modes (BENCH_MODE):
#
# runs (the default): syncs of a given number of requests, each timed from its first to its
# last request as keapsim counted them, against the least possible time under all the
# windows at once, for keapsync and for the reactive baseline, one after the other, each
# against a fresh keapsim and (keapsync) a fresh database. BENCH_RUNS lists them as
# REQUESTS:LIMITS; the default is
#     50:10/s,240/min,30000/day      a nightly incremental at Keap's limits (~5 s)
#     150:5/s,60/min,30000/day       the minute binds twice (~126 s)
#     2000:10/s,240/min,30000/day    a first sync's worth at Keap's limits (~8.3 min)
# and all of them once for each arrival jitter in BENCH_JITTERS (default "0 60": keapsim's
# --arrival-jitter 0, then 60 ms), so one invocation prints the figures with and without.
# keapsync syncs contacts with page size BENCH_PAGE from a tenant sized so that the sync needs
# about REQUESTS requests (the pipeline may fetch one or two pages past the end); the figures
# use the request count keapsim saw. The reactive baseline then fetches that many pages.
#   least       the least possible first-to-last span of n requests: t_0 = 0, t_i = max(t_(i-1)
#               + 1000/per_s ms, t_(i-per_min) + 60000 ms) (the spike arrest smooths to even
#               spacing; a request leaves the rolling minute 60 s after it came), t_(n-1).
#   span        keapsim's first to last request (any status), counted at arrival.
#   utilization least / span; goal >= 0.99 from 150 requests on, >= 0.97 below, zero 429s.
#
# minutes (BENCH_MODE=minutes): the older figure, how much of the binding window keapsync
# uses over BENCH_SECONDS. Phases, one after the other (they would share the CPU if run at once), each against a fresh
# keapsim started with the same flags (--limits BENCH_LIMITS, --latency BENCH_LATENCY):
#   paced     one keapsync process syncing contacts (page size BENCH_PAGE, so many requests).
#   shared    two keapsync processes sharing the key, the tenant and the database, each running
#             its own job (contacts_a, contacts_b): they split the key's windows via peer leases.
#   reactive  bench_reactive: BENCH_INFLIGHT requests in flight (default: the per-second limit),
#             exponential back-off with jitter on 429, honouring Retry-After (see reactive.c).
#
# Words used here:
#   t_first     the keapsim second of the phase's first accepted request.
#   window      [t_first, t_first + k * 60 s), k = floor(BENCH_SECONDS / 60): whole minutes.
#   allowance   the most any client could have been admitted in the window: k * per-minute
#               limit (each 60 s slice is one rolling minute; the per-second limit allows more).
#               For BENCH_SECONDS < 60 (a smoke run) it is min(per-minute, per-second * S).
#   utilization admitted in the window / allowance, from keapsim's per-second histogram of
#               accepted requests (polled every 15 s, as keapsim keeps only 120 s of it).
#   useful      an accepted (non-429) request: a page the sync needed.
#
# Environment: BENCH_MODE (runs), BENCH_RUNS, BENCH_JITTERS (see above), BENCH_RUN_TIMEOUT (900 s
# per client), BENCH_ARRIVAL_JITTER (0 ms; minutes mode), BENCH_SECONDS (130), BENCH_LIMITS (20/s,300/min,30000/day), BENCH_LATENCY
# (50:30, ms:jitter), BENCH_PAGE (10), BENCH_SIZE (20000 contacts), BENCH_INFLIGHT,
# BENCH_SEED (7), BENCH_RETRY_AFTER (off; on or 0: keapsim's --retry-after), BENCH_PHASES ("paced shared reactive"), BENCH_KEEP=1 to keep the work folder
# (client logs, keapsim snapshots) for a post-mortem; KEAPSYNC_LOG_LEVEL passes through.
# Talks only to 127.0.0.1; starts its own throwaway Postgres and removes everything at exit.
# Exit 0 when it ran (whether or not a goal was met: the verdict is printed), 1 when it could not.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
BENCH_SECONDS=${BENCH_SECONDS:-130}
BENCH_LIMITS=${BENCH_LIMITS:-20/s,300/min,30000/day}
BENCH_LATENCY=${BENCH_LATENCY:-50:30}
# Requests reach keapsim's windows 0..N ms after they were sent (keapsim --arrival-jitter):
# the jitter the rolling windows' margins are there for.
BENCH_ARRIVAL_JITTER=${BENCH_ARRIVAL_JITTER:-0}
BENCH_PAGE=${BENCH_PAGE:-10}
BENCH_SIZE=${BENCH_SIZE:-20000}
BENCH_SEED=${BENCH_SEED:-7}
BENCH_RETRY_AFTER=${BENCH_RETRY_AFTER:-off}
BENCH_PHASES=${BENCH_PHASES:-paced shared reactive}
BENCH_MODE=${BENCH_MODE:-runs}
BENCH_RUNS=${BENCH_RUNS:-50:10/s,240/min,30000/day 150:5/s,60/min,30000/day 2000:10/s,240/min,30000/day}
# runs mode: every run once per arrival jitter listed (ms), in the same invocation
BENCH_JITTERS=${BENCH_JITTERS:-0 60}
BENCH_RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-900}
GOAL_PCT=99

KS="$BUILD/keapsync"
KSIM="$BUILD/keapsim"
REACTIVE="$BUILD/bench_reactive"

say() { printf '%s\n' "$*"; }
die() { printf 'bench_pacing: %s\n' "$*" >&2; exit 1; }

for b in "$KS" "$KSIM" "$REACTIVE"; do
    [ -x "$b" ] || die "could not find $b; build the targets keapsync keapsim bench_reactive"
done
case $BENCH_SECONDS in '' | *[!0-9]*) die "BENCH_SECONDS must be a whole number of seconds" ;; esac
[ "$BENCH_SECONDS" -ge 10 ] || die "BENCH_SECONDS must be at least 10"

# limit_of UNIT [SPEC]: the number before /UNIT in SPEC (default BENCH_LIMITS; units s|sec|second,
# min|minute), 0 if none.
limit_of() {
    local item n u spec=${2:-$BENCH_LIMITS}
    for item in ${spec//,/ }; do
        n=${item%%/*}
        u=${item#*/}
        case "$1:$u" in
        s:s | s:sec | s:second | min:min | min:minute)
            echo "$n"
            return
            ;;
        esac
    done
    echo 0
}
PER_S=$(limit_of s)
PER_MIN=$(limit_of min)
[ "$PER_MIN" -gt 0 ] || die "BENCH_LIMITS must name a per-minute limit (the binding window)"
BENCH_INFLIGHT=${BENCH_INFLIGHT:-$((PER_S > 0 ? PER_S : 10))}

K=$((BENCH_SECONDS / 60))
if [ "$K" -ge 1 ]; then
    SPAN=$((K * 60))
    ALLOWANCE=$((K * PER_MIN))
    ALLOWANCE_WHY="$K x $PER_MIN/min"
else
    SPAN=$BENCH_SECONDS
    ALLOWANCE=$PER_MIN
    ALLOWANCE_WHY="one minute's $PER_MIN (smoke run shorter than 60 s)"
    if [ "$PER_S" -gt 0 ] && [ $((PER_S * SPAN)) -lt "$ALLOWANCE" ]; then
        ALLOWANCE=$((PER_S * SPAN))
        ALLOWANCE_WHY="$SPAN s x $PER_S/s (smoke run shorter than 60 s)"
    fi
fi

TMP=$(mktemp -d /tmp/ks-bench-pacing.XXXXXX)
chmod 711 "$TMP" # the throwaway cluster runs as postgres when we are root
PIDS=()
PG_STARTED=0

cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
    if [ "$PG_STARTED" -eq 1 ]; then
        pg_throwaway_stop "$TMP/pg"
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench_pacing: kept $TMP (the key file in it is throwaway)" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=../../deploy/lib/pg.sh
. "$SRC/deploy/lib/pg.sh"
pg_throwaway_start "$TMP/pg" >/dev/null || die "could not start a throwaway PostgreSQL"
PG_STARTED=1

# The key: random, handed to clients through the environment only.
KEAP_API_KEY="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
export KEAP_API_KEY
printf '%s\n' "$KEAP_API_KEY" >"$TMP/key"
chmod 600 "$TMP/key"
export KEAPSYNC_LIMITS="$BENCH_LIMITS"
export KEAPSYNC_LOG_LEVEL=${KEAPSYNC_LOG_LEVEL:-info}
export PGOPTIONS="-c client_min_messages=warning"

# Job files: contacts with small pages, and two copies with their own tables for "shared".
mkdir -p "$TMP/jobs-paced" "$TMP/jobs-shared"
jq --argjson p "$BENCH_PAGE" '.page_size = $p' "$SRC/jobs/contacts.json" \
    >"$TMP/jobs-paced/contacts.json"
for j in contacts_a contacts_b; do
    jq --argjson p "$BENCH_PAGE" --arg n "$j" '.page_size = $p | .name = $n | .table = $n' \
        "$SRC/jobs/contacts.json" >"$TMP/jobs-shared/$j.json"
done

# ksim_start NAME: a fresh keapsim with the phase-independent flags; sets KSIM_URL.
ksim_start() {
    local out="$TMP/$1.keapsim.out" port=""
    "$KSIM" --port 0 --seed "$BENCH_SEED" --size "${KSIM_SIZE:-$BENCH_SIZE}" --api-key-file "$TMP/key" \
        --limits "${KSIM_LIMITS:-$BENCH_LIMITS}" --latency "$BENCH_LATENCY" --arrival-jitter "$BENCH_ARRIVAL_JITTER" \
        --retry-after "$BENCH_RETRY_AFTER" --quiet >"$out" 2>"$out.err" &
    KSIM_PID=$!
    PIDS+=("$KSIM_PID")
    for _ in $(seq 1 200); do
        port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" 2>/dev/null | head -1 || true)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$out.err" >&2; die "keapsim did not start"; }
    KSIM_URL="http://127.0.0.1:$port"
    export KEAP_BASE_URL="$KSIM_URL/crm/rest"
}

ksim_stats() { curl -sf --max-time 5 "$KSIM_URL/__admin/stats"; }

# make_db NAME: a fresh database for a phase, migrated; points DATABASE_URL at it.
make_db() {
    local db="bench_pacing_$1"
    DATABASE_URL=$(pg_make_db "$db") || die "could not create database $db"
    export DATABASE_URL
    "$KS" migrate >"$TMP/$1.migrate.out" 2>&1 || { cat "$TMP/$1.migrate.out" >&2; die "could not migrate"; }
}

# run_phase NAME COMMAND...: COMMAND starts the phase's clients in the background and appends
# their pids to CLIENTS. Waits for keapsim's first accepted request, lets the clients run
# BENCH_SECONDS more, stops them (SIGTERM, then SIGKILL after 30 s), and leaves keapsim's
# snapshots in $TMP/NAME.stats.jsonl.
run_phase() {
    local name=$1 p early=0 snap="$TMP/$1.stats.jsonl" poller
    shift
    ksim_start "$name"
    CLIENTS=()
    "$@"
    for _ in $(seq 1 1200); do
        [ "$(ksim_stats | jq -r .accepted)" -gt 0 ] && break
        sleep 0.05
    done
    (
        while :; do
            ksim_stats >>"$snap" && echo >>"$snap"
            sleep 15
        done
    ) &
    poller=$!
    PIDS+=("$poller")
    sleep "$BENCH_SECONDS"
    for p in "${CLIENTS[@]}"; do
        kill -0 "$p" 2>/dev/null || early=1
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${CLIENTS[@]}"; do
        for _ in $(seq 1 300); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    kill "$poller" 2>/dev/null || true
    wait "$poller" 2>/dev/null || true
    sleep 1.2 # keapsim's histogram ends at the last completed second
    ksim_stats >>"$snap"
    echo >>"$snap"
    kill "$KSIM_PID" 2>/dev/null || true
    wait "$KSIM_PID" 2>/dev/null || true
    EARLY=$early
}

# analyse NAME: one JSON object of the phase's figures (see "Words used here").
analyse() {
    jq -s --argjson span "$SPAN" --argjson allowance "$ALLOWANCE" \
        '(map(select(type == "object"))) as $snaps
        | (reduce ($snaps[] | .per_second | select(.start_s > 0) as $h
                   | range(0; $h.counts | length) as $i | [$h.start_s + $i, $h.counts[$i]])
              as $e ({}; .[$e[0] | tostring] = ([.[$e[0] | tostring] // 0, $e[1]] | max))) as $hist
        | ($hist | to_entries | map(select(.value > 0) | .key | tonumber) | min) as $t0
        | ($snaps[-1]) as $last
        | {
            t_first: $t0,
            admitted: ([$hist | to_entries[] | select((.key | tonumber) >= $t0
                          and (.key | tonumber) < $t0 + $span) | .value] | add // 0),
            per_window: [range(0; ($span / 60 | floor)) as $w
                          | [$hist | to_entries[] | select((.key | tonumber) >= $t0 + $w * 60
                              and (.key | tonumber) < $t0 + ($w + 1) * 60) | .value] | add // 0],
            hist_total: ([$hist[]] | add // 0),
            requests: $last.requests,
            accepted: $last.accepted,
            rejected_429: $last.rejected_429,
            by_window: $last.rejected_429_by_window,
            faults: $last.faults,
            max_in_1s: $last.max_in_1s,
            max_in_60s: $last.max_in_60s
          }
        | .utilization = (.admitted / $allowance)' "$TMP/$1.stats.jsonl"
}

pct() { awk -v n="$1" -v d="$2" 'BEGIN { if (d == 0) print "n/a"; else printf "%.2f %%", 100 * n / d }'; }
ratio() { awk -v n="$1" -v d="$2" 'BEGIN { if (d == 0) print "n/a"; else printf "%.2f", n / d }'; }
ratio3() { awk -v n="$1" -v d="$2" 'BEGIN { if (d == 0) print "n/a"; else printf "%.3f", n / d }'; }

# report NAME TITLE: prints the phase's figures, each beside what it is compared with.
report() {
    local a="$TMP/$1.json" u goal
    analyse "$1" >"$a"
    u=$(jq -r .admitted "$a")
    goal="goal met"
    if [ $((u * 100)) -lt $((ALLOWANCE * GOAL_PCT)) ] || [ "$(jq -r .rejected_429 "$a")" -ne 0 ]; then
        goal="GOAL MISSED"
    fi
    say ""
    say "== $1: $2"
    say "  window              [t_first, t_first + $SPAN s), t_first = keapsim second $(jq -r .t_first "$a")"
    say "  admitted in window  $u of an allowance of $ALLOWANCE ($ALLOWANCE_WHY): $(pct "$u" "$ALLOWANCE")"
    [ "$K" -lt 1 ] || say "  per 60 s slice      $(jq -r '.per_window | map(tostring) | join(" ")' "$a") (allowance $PER_MIN each)"
    say "  429s                $(jq -r .rejected_429 "$a") (second $(jq -r .by_window.second "$a"), minute $(jq -r .by_window.minute "$a"), day $(jq -r .by_window.day "$a"), tenant $(jq -r .by_window.tenant "$a"))"
    say "  max in any 1 s      $(jq -r .max_in_1s "$a") (limit $PER_S/s)"
    say "  max in any 60 s     $(jq -r .max_in_60s "$a") (limit $PER_MIN/min): $(pct "$(jq -r .max_in_60s "$a")" "$PER_MIN")"
    say "  whole phase         $(jq -r .requests "$a") requests, $(jq -r .accepted "$a") accepted (histogram sum $(jq -r .hist_total "$a"))"
    [ "$EARLY" -eq 0 ] || say "  WARNING: a client exited before the end of the phase; see its output below"
    say "  verdict             $goal (>= $GOAL_PCT % of the allowance, zero 429s)"
}

start_paced() {
    make_db paced
    KEAPSYNC_JOBS="$TMP/jobs-paced" "$KS" run >"$TMP/paced.out" 2>&1 &
    CLIENTS+=($!)
    PIDS+=($!)
}

start_shared() {
    make_db shared
    KEAPSYNC_JOBS="$TMP/jobs-shared" "$KS" run --only contacts_a >"$TMP/shared.a.out" 2>&1 &
    CLIENTS+=($!)
    PIDS+=($!)
    KEAPSYNC_JOBS="$TMP/jobs-shared" "$KS" run --only contacts_b >"$TMP/shared.b.out" 2>&1 &
    CLIENTS+=($!)
    PIDS+=($!)
}

start_reactive() {
    "$REACTIVE" --inflight "$BENCH_INFLIGHT" --page-size "$BENCH_PAGE" \
        --seconds $((BENCH_SECONDS + 120)) --seed "$BENCH_SEED" >"$TMP/reactive.out" 2>&1 &
    CLIENTS+=($!)
    PIDS+=($!)
}

# client_lines FILE...: what each client said about its own run.
client_lines() {
    local f
    for f in "$@"; do
        say "  client $(basename "$f" .out): $(grep -E '^(run:|reactive:)|share tenant|could not' "$f" |
            tr '\n' ';' | sed 's/;$//; s/;/; /g')"
    done
}

# least_ms N PER_S PER_MIN: the least possible first-to-last span of N requests (see the top).
least_ms() {
    awk -v n="$1" -v r="$2" -v m="$3" 'BEGIN {
        t[0] = 0
        for (i = 1; i < n; i++) {
            t[i] = t[i - 1] + (r > 0 ? 1000 / r : 0)
            if (m > 0 && i >= m && t[i - m] + 60000 > t[i]) t[i] = t[i - m] + 60000
        }
        printf "%.0f", (n > 0 ? t[n - 1] : 0)
    }'
}

# wait_client PID TIMEOUT_S: waits for PID to exit by itself, SIGTERM after TIMEOUT_S; sets
# CLIENT_RC (124 when it had to be stopped).
wait_client() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 2
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        CLIENT_RC=124
        return
    fi
    CLIENT_RC=0
    wait "$pid" 2>/dev/null || CLIENT_RC=$?
}

# run_figures NAME: one line of a run's figures from keapsim's final stats in $TMP/NAME.json:
# "requests accepted 429s spike minute span_ms max1 max60".
run_figures() {
    jq -r '[.requests, .accepted, .rejected_429, .rejected_429_by_window.second,
            .rejected_429_by_window.minute, (.last_request_ms - .first_request_ms),
            .max_in_1s, .max_in_60s] | map(tostring) | join(" ")' "$TMP/$1.json"
}

# one_run INDEX REQUESTS LIMITS: keapsync's sync of about REQUESTS requests, then the reactive
# baseline fetching as many pages, each against a fresh keapsim; prints both against the least.
one_run() {
    local i=$1 want=$2 lim=$3 per_s per_min size name pid n least rn rleast goal pct prc rrc
    per_s=$(limit_of s "$lim")
    per_min=$(limit_of min "$lim")
    # page size P overlapping one record: P - 1 new contacts a page, plus the short last page
    size=$(((want - 1) * (BENCH_PAGE - 1)))
    [ "$size" -ge 1 ] || size=1
    KSIM_LIMITS=$lim
    KSIM_SIZE=$size
    export KEAPSYNC_LIMITS="$lim"

    name="run$i.paced"
    ksim_start "$name"
    make_db "run$i"
    KEAPSYNC_JOBS="$TMP/jobs-paced" "$KS" run >"$TMP/$name.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_client "$pid" "$BENCH_RUN_TIMEOUT"
    prc=$CLIENT_RC
    ksim_stats >"$TMP/$name.json"
    kill "$KSIM_PID" 2>/dev/null || true
    wait "$KSIM_PID" 2>/dev/null || true
    read -r n _ f4 f4s f4m fspan fmax1 fmax60 <<<"$(run_figures "$name")"
    least=$(least_ms "$n" "$per_s" "$per_min")

    name="run$i.reactive"
    ksim_start "$name"
    "$REACTIVE" --inflight "${BENCH_INFLIGHT_RUN:-$((per_s > 0 ? per_s : 10))}" --page-size "$BENCH_PAGE" \
        --requests "$n" --seconds "$BENCH_RUN_TIMEOUT" --seed "$BENCH_SEED" >"$TMP/$name.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_client "$pid" $((BENCH_RUN_TIMEOUT + 10))
    rrc=$CLIENT_RC
    ksim_stats >"$TMP/$name.json"
    kill "$KSIM_PID" 2>/dev/null || true
    wait "$KSIM_PID" 2>/dev/null || true
    read -r rn ra r4 r4s r4m rspan rmax1 rmax60 <<<"$(run_figures "$name")"
    rleast=$(least_ms "$ra" "$per_s" "$per_min")

    if [ "$n" -ge 150 ]; then pct=99; else pct=97; fi
    goal="goal met"
    if [ "$f4" -ne 0 ] || awk -v a="$least" -v b="$fspan" -v p="$pct" 'BEGIN { exit !(b <= 0 || a / b < p / 100) }'; then
        goal="GOAL MISSED"
    fi
    say ""
    say "== run $i: $n requests at $lim, arrival jitter $BENCH_ARRIVAL_JITTER ms (asked for $want; tenant of $size contacts, page size $BENCH_PAGE)"
    say "  least possible      $(awk -v a="$least" 'BEGIN { printf "%.3f", a / 1000 }') s first to last request, from the limits and the count"
    say "  keapsync            $(awk -v a="$fspan" 'BEGIN { printf "%.3f", a / 1000 }') s: utilization $(ratio3 "$least" "$fspan"); 429s $f4 (second $f4s, minute $f4m); max 1 s $fmax1/$per_s, max 60 s $fmax60/$per_min"
    say "  reactive baseline   $(awk -v a="$rspan" 'BEGIN { printf "%.3f", a / 1000 }') s for $ra useful of $rn requests: utilization $(ratio3 "$rleast" "$rspan") (least $(awk -v a="$rleast" 'BEGIN { printf "%.3f", a / 1000 }') s); 429s $r4 (second $r4s, minute $r4m); max 1 s $rmax1/$per_s, max 60 s $rmax60/$per_min"
    say "  keapsync / reactive span $(ratio "$fspan" "$rspan") (below 1: keapsync was faster)"
    client_lines "$TMP/run$i.paced.out" "$TMP/run$i.reactive.out"
    [ "$prc" -eq 0 ] || say "  WARNING: keapsync exited with $prc (124: stopped after $BENCH_RUN_TIMEOUT s)"
    [ "$rrc" -eq 0 ] || say "  WARNING: the reactive baseline exited with $rrc (124: stopped after $BENCH_RUN_TIMEOUT s)"
    say "  verdict             $goal (utilization >= 0.$pct, zero 429s)"
    echo "$i $n $lim $BENCH_ARRIVAL_JITTER $least $fspan $f4 $ra $rspan $r4" >>"$TMP/summary"
}

if [ "$BENCH_MODE" = runs ]; then
    say "command: BENCH_RUNS=\"$BENCH_RUNS\" BENCH_JITTERS=\"$BENCH_JITTERS\" BENCH_LATENCY=$BENCH_LATENCY" \
        "BENCH_PAGE=$BENCH_PAGE BENCH_SEED=$BENCH_SEED BENCH_RETRY_AFTER=$BENCH_RETRY_AFTER $0 $BUILD"
    say "keapsim: --latency $BENCH_LATENCY --arrival-jitter (each of BENCH_JITTERS) --retry-after $BENCH_RETRY_AFTER --seed $BENCH_SEED," \
        "--limits as each run says (a fresh process per client); keapsync: KEAPSYNC_LIMITS the same, page size $BENCH_PAGE"
    say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
    i=0
    for jit in $BENCH_JITTERS; do
        case $jit in '' | *[!0-9]*) die "bad BENCH_JITTERS item \"$jit\" (whole ms, e.g. \"0 60\")" ;; esac
        BENCH_ARRIVAL_JITTER=$jit
        for spec in $BENCH_RUNS; do
            i=$((i + 1))
            case $spec in
            [0-9]*:*/*) one_run "$i" "${spec%%:*}" "${spec#*:}" ;;
            *) die "bad BENCH_RUNS item \"$spec\" (expected REQUESTS:LIMITS, e.g. 50:10/s,240/min,30000/day)" ;;
            esac
        done
    done
    say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
    say ""
    say "== summary (utilization = least possible / first-to-last span)"
    while read -r i n lim jit least fspan f4 ra rspan r4; do
        say "  $(printf '%5d requests at %-26s jitter %2d ms  least %8.3f s  keapsync %8.3f s = %s (429s %s)  reactive %8.3f s = %s (429s %s)' \
            "$n" "$lim" "$jit" "$(awk -v a="$least" 'BEGIN { print a / 1000 }')" "$(awk -v a="$fspan" 'BEGIN { print a / 1000 }')" \
            "$(ratio3 "$least" "$fspan")" "$f4" "$(awk -v a="$rspan" 'BEGIN { print a / 1000 }')" \
            "$(ratio3 "$(least_ms "$ra" "$(limit_of s "$lim")" "$(limit_of min "$lim")")" "$rspan")" "$r4")"
    done <"$TMP/summary"
    exit 0
fi
[ "$BENCH_MODE" = minutes ] || die "unknown BENCH_MODE \"$BENCH_MODE\" (runs or minutes)"

say "command: BENCH_SECONDS=$BENCH_SECONDS BENCH_LIMITS=$BENCH_LIMITS BENCH_LATENCY=$BENCH_LATENCY BENCH_ARRIVAL_JITTER=$BENCH_ARRIVAL_JITTER" \
    "BENCH_PAGE=$BENCH_PAGE BENCH_SIZE=$BENCH_SIZE BENCH_INFLIGHT=$BENCH_INFLIGHT" \
    "BENCH_SEED=$BENCH_SEED BENCH_RETRY_AFTER=$BENCH_RETRY_AFTER BENCH_PHASES=\"$BENCH_PHASES\" $0 $BUILD"
say "keapsim: --limits $BENCH_LIMITS --latency $BENCH_LATENCY --arrival-jitter $BENCH_ARRIVAL_JITTER --retry-after $BENCH_RETRY_AFTER --size $BENCH_SIZE --seed $BENCH_SEED" \
    "(a fresh process per phase); keapsync: KEAPSYNC_LIMITS=$BENCH_LIMITS, page size $BENCH_PAGE"
say "each phase runs $BENCH_SECONDS s after keapsim accepts its first request; figures are keapsim's"

for phase in $BENCH_PHASES; do
    case $phase in
    paced)
        run_phase paced start_paced
        report paced "keapsync, one process"
        client_lines "$TMP/paced.out"
        ;;
    shared)
        run_phase shared start_shared
        report shared "keapsync, two processes sharing the key, tenant and database"
        client_lines "$TMP/shared.a.out" "$TMP/shared.b.out"
        ;;
    reactive)
        run_phase reactive start_reactive
        report reactive "reactive baseline, $BENCH_INFLIGHT in flight, back-off on 429"
        client_lines "$TMP/reactive.out"
        ;;
    *) die "unknown phase \"$phase\" (paced, shared, reactive)" ;;
    esac
done

if [ -f "$TMP/paced.json" ] && [ -f "$TMP/reactive.json" ]; then
    pu=$(jq -r .admitted "$TMP/paced.json")
    ru=$(jq -r .admitted "$TMP/reactive.json")
    p4=$(jq -r .rejected_429 "$TMP/paced.json")
    r4=$(jq -r .rejected_429 "$TMP/reactive.json")
    pa=$(jq -r .accepted "$TMP/paced.json")
    ra=$(jq -r .accepted "$TMP/reactive.json")
    say ""
    say "== keapsync (paced, one process) against the reactive baseline, same run"
    say "  useful requests in the window  keapsync $pu, reactive $ru: ratio $(ratio "$pu" "$ru") (keapsync / reactive)"
    if [ "$p4" -eq 0 ]; then
        say "  429s over the phase            keapsync 0, reactive $r4: no finite ratio (keapsync had none)"
    else
        say "  429s over the phase            keapsync $p4, reactive $r4: ratio $(ratio "$r4" "$p4") (reactive / keapsync)"
    fi
    say "  useful over the whole phase    keapsync $pa, reactive $ra: ratio $(ratio "$pa" "$ra") (same $BENCH_SECONDS s from the first accepted request)"
    say "  429s per useful request        keapsync $(ratio "$p4" "$pa"), reactive $(ratio "$r4" "$ra")"
fi
