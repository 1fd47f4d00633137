#!/usr/bin/env bash
# bench_e2e.sh: end-to-end throughput with the limits off, CPU per million records, and peak
# memory, of a whole `keapsync run` against keapsim and a real PostgreSQL.
#
#   bash tests/bench/bench_e2e.sh                       # sizes 100000 300000 1000000
#   BENCH_SIZES="20000 50000" bash tests/bench/bench_e2e.sh   # a quick run
#
# Words used here:
#   size         the number of contacts keapsim serves (--size); one job, contacts.
#   run          one `keapsync run` from an empty database (migrated first, not timed):
#                every record is fetched, mapped and upserted once.
#   wall         elapsed seconds of that run; records/s = rows landed / wall.
#   CPU s/M      user+sys seconds per million rows landed. keapsync's comes from GNU time on
#                the keapsync process alone (all its threads); keapsim's and postgres's from
#                /proc deltas across the run (postgres: the postmaster and all its children,
#                those that exited included), to show who the bottleneck is.
#   peak RSS     keapsync's maximum resident set size (GNU time %M). The goal: at most 40 MiB
#                and flat, whatever the size; every size runs in the same invocation so the
#                figures sit side by side.
# Everything runs on 127.0.0.1: keapsim with --no-limits, keapsync with
# KEAPSYNC_LIMITS=0/s,0/min,0/day, a throwaway cluster of its own (deploy/lib/pg.sh), one
# fresh database per size. Each step has a time limit; all of it is removed at exit.
# Environment: KEAPSYNC_BUILD (default <src>/build) holds keapsync and keapsim;
# BENCH_SIZES overrides the sizes; BENCH_TIMEOUT caps one run in seconds (default 1800);
# BENCH_PERF=DIR records each run with `perf record -g --call-graph dwarf` into
# DIR/perf.<size>.<build>.data (a profile run: its CPU and RSS figures then include perf's);
# BENCH_BASELINE_BUILD=DIR also runs DIR/keapsync (e.g. a build of commit 992c8d0, issue 14's
# baseline) at every size, against the same keapsim, just before this build, and prints the
# two side by side with the ratios and the goals.
# Exit status: 0 when every run landed every row with no 429, 1 otherwise (the goal is
# reported, not enforced: figures on a shared machine are noisy).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${KEAPSYNC_BUILD:-$src/build}
sizes=${BENCH_SIZES:-100000 300000 1000000}
run_timeout=${BENCH_TIMEOUT:-1800}
perf_dir=${BENCH_PERF:-}
goal_mib=40 # issue 14: flat, <= 40 MiB
cpu_goal=6  # issue 14: keapsync CPU s per million records
ks="$build/keapsync"
base_ks=""
ksim="$build/keapsim"

die() {
    echo "bench_e2e: $*" >&2
    exit 1
}

if [ ! -x "$ks" ] || [ ! -x "$ksim" ]; then
    die "could not find keapsync and keapsim in \"$build\" (build them, or set KEAPSYNC_BUILD)"
fi
if [ -n "${BENCH_BASELINE_BUILD:-}" ]; then
    base_ks="$BENCH_BASELINE_BUILD/keapsync"
    [ -x "$base_ks" ] || die "BENCH_BASELINE_BUILD: no keapsync in \"$BENCH_BASELINE_BUILD\" (build it there)"
fi
[ -x /usr/bin/time ] || die "GNU time is missing: run deploy/install-deps.sh (package \"time\")"
for t in psql curl jq timeout awk; do
    command -v "$t" >/dev/null || die "$t is missing: run deploy/install-deps.sh"
done
for n in $sizes; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZES must list positive integers, got \"$n\""
done
[[ "$run_timeout" =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer"

tmp=$(mktemp -d /tmp/ks-bench-e2e.XXXXXX)
# Apart from $tmp: as root the cluster runs as "postgres", which must reach its directory.
pgdir=$(mktemp -d /tmp/ks-bench-e2e-pg.XXXXXX)
sim_pid=""
pg_started=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$sim_pid" ]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if [ "$pg_started" = 1 ]; then
        pg_throwaway_stop "$pgdir"
    fi
    rm -rf "$tmp" "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=deploy/lib/pg.sh
. "$src/deploy/lib/pg.sh"
pg_throwaway_start "$pgdir" >/dev/null || die "could not start a throwaway PostgreSQL"
pg_started=1
admin_url=$KEAPSYNC_ADMIN_URL # (creates the databases; keapsync runs as DATABASE_URL's role)
pm_pid=$(head -1 "$pgdir/data/postmaster.pid")

hz=$(getconf CLK_TCK)

# proc_ticks PID [children]: utime+stime of PID in clock ticks (plus cutime+cstime, the CPU
# of its reaped children, with "children"); 0 if it is gone.
proc_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    # Fields after the ")" closing comm: state is $1, utime $12 ... cstime $15.
    awk -v with="${2:-}" '{ sub(/^.*\) /, ""); t = $12 + $13; if (with != "") t += $14 + $15; print t }' <<<"$stat"
}

# pg_ticks: CPU ticks of the whole cluster: the postmaster with its reaped children, plus
# every live child.
pg_ticks() {
    local total c
    total=$(proc_ticks "$pm_pid" children)
    for c in $(ps -o pid= --ppid "$pm_pid"); do
        total=$((total + $(proc_ticks "$c")))
    done
    echo "$total"
}

# For comparison, what Keap's default limits let any client land: the rate the 240/min window
# sustains (lower than 10/s) times the records a page holds.
page_size=$(jq -r '.page_size' "$src/jobs/contacts.json")
ceiling=$(awk -v p="$page_size" 'BEGIN { r = 240 / 60; if (r > 10) r = 10; printf "%d", r * p }')

export KEAPSYNC_JOBS="$tmp/jobs"
mkdir -p "$KEAPSYNC_JOBS"
if [ -n "$base_ks" ]; then
    # One job for both builds: without the keys 992c8d0 does not know (a description, and
    # "deletes", whose sweep a first run does not do anyway).
    jq 'del(.description, .deletes)' "$src/jobs/contacts.json" >"$KEAPSYNC_JOBS/contacts.json"
else
    cp "$src/jobs/contacts.json" "$KEAPSYNC_JOBS/"
fi
export KEAPSYNC_LIMITS=0/s,0/min,0/day
export KEAP_API_KEY="bench-$RANDOM$RANDOM$RANDOM"
unset KEAP_API_KEY_FILE KEAP_CLIENT_ID KEAP_CLIENT_SECRET KEAPSYNC_RESERVE KEAPSYNC_PAGING

failed=0
results=()

echo "bench_e2e: keapsync run, limits off, contacts job (page_size $page_size), host: $(nproc) CPUs"
echo "bench_e2e: build $build; sizes: $sizes"

# One timed `keapsync run` of binary $1 (label $2) into a fresh database, against the keapsim
# already serving size $n; appends a result line (or sets failed).
run_one() {
    local bin=$1 label=$2 db="bench_e2e_${n}_$2" rc=0 left rows rejected
    local sim_before pg_before pg_after sim_after sim_rss_kib wall user sys maxrss_kib wrap=()

    DATABASE_URL=$(pg_make_db "$db") || die "could not create database $db"
    export DATABASE_URL
    timeout 120 "$bin" migrate >"$tmp/migrate.$n.$label.log" 2>&1 || {
        cat "$tmp/migrate.$n.$label.log" >&2
        die "keapsync migrate ($label) failed for size $n"
    }
    # The count of 429s is keapsim's whole life: take it before and after.
    rejected=$(curl -sf "http://127.0.0.1:$port/__admin/stats" | jq -r '.rejected_429')
    sim_before=$(proc_ticks "$sim_pid")
    pg_before=$(pg_ticks)
    if [ -n "$perf_dir" ]; then
        wrap=(perf record -q -F 249 -g --call-graph "dwarf,16384" -o "$perf_dir/perf.$n.$label.data" --)
    fi
    timeout -k 10 "$run_timeout" /usr/bin/time -f "%e %U %S %M" -o "$tmp/time.$n.$label" \
        "${wrap[@]}" "$bin" run >"$tmp/run.$n.$label.out" 2>"$tmp/run.$n.$label.err" || rc=$?
    # The run's backend exits after keapsync disconnects; wait until it is gone so that the
    # postmaster has reaped it and its CPU is counted.
    for _ in $(seq 1 50); do
        left=$(psql "$admin_url" -qAt -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'" ||
            echo unknown)
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    sleep 0.2
    pg_after=$(pg_ticks)
    sim_after=$(proc_ticks "$sim_pid")
    sim_rss_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$sim_pid/status")
    rejected=$(($(curl -sf "http://127.0.0.1:$port/__admin/stats" | jq -r '.rejected_429') - rejected))

    # Every row landed: n rows and n distinct ids (so a duplicate cannot hide a missing row).
    rows=$(psql "$DATABASE_URL" -qAt -c "SELECT count(*) || ' ' || count(DISTINCT id) FROM keap.contacts" \
        2>/dev/null || echo "0 0")
    psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS $db" >/dev/null

    if [ "$rc" != 0 ] || [ "$rows" != "$n $n" ] || [ "$rejected" != 0 ]; then
        echo "bench_e2e: size $n ($label) FAILED: exit $rc, rows and distinct ids \"$rows\" of $n, $rejected answered 429" >&2
        tail -5 "$tmp/run.$n.$label.err" >&2
        failed=1
        return
    fi
    read -r wall user sys maxrss_kib <"$tmp/time.$n.$label"
    results+=("$(awk -v n="$n" -v wall="$wall" -v u="$user" -v s="$sys" -v rss="$maxrss_kib" \
        -v simc="$((sim_after - sim_before))" -v pgc="$((pg_after - pg_before))" -v hz="$hz" \
        -v simst="$sim_start" -v simrss="$sim_rss_kib" -v label="$label" 'BEGIN {
            printf "%s %d %.2f %.0f %.1f %.1f %.1f %.1f %s %.0f", label,
                n, wall, n / wall, (u + s) / n * 1e6, rss / 1024,
                simc / hz / n * 1e6, pgc / hz / n * 1e6, simst, simrss / 1024 }')")
}

for n in $sizes; do
    # keapsim pre-renders every record at startup: time it and note its size. Both builds
    # read the same keapsim, one after the other.
    sim_out="$tmp/keapsim.$n.out"
    t0=$(date +%s.%N)
    "$ksim" --port 0 --no-limits --seed 1 --size "$n" --api-key "$KEAP_API_KEY" --quiet \
        >"$sim_out" 2>"$sim_out.err" &
    sim_pid=$!
    port=""
    deadline=$((SECONDS + 60 + n / 10000))
    while [ -z "$port" ] && [ $SECONDS -lt $deadline ]; do
        kill -0 "$sim_pid" 2>/dev/null || break
        port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$sim_out" 2>/dev/null | head -1 || true)
        [ -n "$port" ] || sleep 0.1
    done
    [ -n "$port" ] || {
        cat "$sim_out.err" >&2
        die "keapsim did not start for size $n"
    }
    sim_start=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    export KEAP_BASE_URL="http://127.0.0.1:$port/crm/rest"

    if [ -n "$base_ks" ]; then
        run_one "$base_ks" base
    fi
    run_one "$ks" this

    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
done

echo
printf '%5s %10s %9s %10s %14s %14s | %14s %14s %12s %14s\n' build records "wall s" records/s \
    "keapsync CPU" "keapsync peak" "keapsim CPU" "postgres CPU" "keapsim" "keapsim"
printf '%5s %10s %9s %10s %14s %14s | %14s %14s %12s %14s\n' "" "" "" "" "s/M rows" "RSS MiB" \
    "s/M rows" "s/M rows" "startup s" "peak RSS MiB"
for r in "${results[@]:-}"; do
    [ -n "$r" ] || continue
    read -r label n wall rps cpu rss scpu pcpu sst srss <<<"$r"
    printf '%5s %10s %9s %10s %14s %14s | %14s %14s %12s %14s\n' "$label" "$n" "$wall" "$rps" \
        "$cpu" "$rss" "$scpu" "$pcpu" "$sst" "$srss"
done
echo
[ -n "$base_ks" ] && echo "base: $base_ks; this: $ks"

if [ ${#results[@]} -gt 0 ]; then
    # Memory: every size beside the goal, and the largest beside the smallest (this build).
    printf '%s\n' "${results[@]}" | awk -v goal="$goal_mib" '
        $1 != "this" { next }
        { k++; n[k] = $2; rss[k] = $6; if ($6 > max) max = $6 }
        END {
            if (k == 0) exit
            lo = 1; hi = 1
            for (i = 1; i <= k; i++) { if (n[i] < n[lo]) lo = i; if (n[i] > n[hi]) hi = i }
            printf "peak RSS: %s MiB at %d records, %s MiB at %d records (x%.2f for x%.0f the records); goal: at most %d MiB and flat\n",
                rss[lo], n[lo], rss[hi], n[hi], rss[hi] / rss[lo], n[hi] / n[lo], goal
            printf "memory goal: %s (largest peak %.1f MiB of %d; flat: largest size within 25%% of the smallest)\n",
                (max <= goal && (k == 1 || rss[hi] <= rss[lo] * 1.25)) ? "met" : "MISSED", max, goal
        }'
    # Side by side at each size, against the goals of issue 14.
    printf '%s\n' "${results[@]}" | awk -v ceil="$ceiling" -v cpu_goal="$cpu_goal" '
        { key = $2; if ($1 == "base") { b[key] = $0 } else { t[key] = $0 } ; if ($1 == "this") ns[++k] = key }
        END {
            for (i = 1; i <= k; i++) {
                n = ns[i]; split(t[n], x, " ")
                printf "at %d records: this build %d records/s, keapsync CPU %.1f s/M (goal <= %d: %s), postgres CPU %.1f s/M, peak RSS %.1f MiB\n",
                    n, x[4], x[5], cpu_goal, (x[5] <= cpu_goal ? "met" : "MISSED"), x[8], x[6]
                if (n in b) {
                    split(b[n], y, " ")
                    printf "           base %d records/s, keapsync CPU %.1f s/M, postgres CPU %.1f s/M, peak RSS %.1f MiB\n",
                        y[4], y[5], y[8], y[6]
                    printf "           records/s x%.2f of base (goal >= x2: %s); keapsync CPU x%.2f; postgres CPU x%.2f (goal: lower: %s)\n",
                        x[4] / y[4], (x[4] >= 2 * y[4] ? "met" : "MISSED"), x[5] / y[5], x[8] / y[8],
                        (x[8] < y[8] ? "met" : "MISSED")
                }
                printf "           Keap'"'"'s 240/min window lets a sync land at most %d records/s (x%.1f headroom)\n",
                    ceil, x[4] / ceil
            }
        }'
fi
echo "command: BENCH_SIZES=\"$sizes\" KEAPSYNC_BUILD=$build${base_ks:+ BENCH_BASELINE_BUILD=${base_ks%/keapsync}} bash tests/bench/bench_e2e.sh"
exit $failed
