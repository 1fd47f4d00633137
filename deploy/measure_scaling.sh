#!/usr/bin/env bash
# deploy/measure_scaling.sh: what one keapsync process costs, for docs/SCALING.md. Starts a
# throwaway PostgreSQL and, per tenant, a keapsim (its own key and data) and one
# `keapsync run` of the contacts job into schema keap_tN, all tenants at once, and prints per
# tenant count: requests, rows, wall seconds, requests/s, keapsync's CPU seconds (user+sys,
# all processes together) and CPU per 1,000 requests, its peak RSS, and Postgres' CPU.
#
#   bash deploy/measure_scaling.sh                      # tenants 1 4 8, Keap's 10/s per key
#   SCALE_TENANTS="1 16" SCALE_LIMITS=0/s,0/min,0/day bash deploy/measure_scaling.sh
#
# SCALE_TENANTS: the tenant counts to try; SCALE_LIMITS: each key's ceilings, for keapsim and
# keapsync alike (0/s,0/min,0/day: no limit, to find one process's own ceiling);
# SCALE_SIZE: contacts per tenant (default 3000); SCALE_PAGE: records a request (default 50).
# Needs a build (build/keapsync, build/keapsim), GNU time, psql; touches nothing outside /tmp.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${KEAPSYNC_BUILD:-$src/build}
tenants_list=${SCALE_TENANTS:-1 4 8}
limits=${SCALE_LIMITS:-10/s,240/min,30000/day}
size=${SCALE_SIZE:-3000}
page=${SCALE_PAGE:-50}
[ -x "$build/keapsync" ] && [ -x "$build/keapsim" ] || { echo "build first: $build/keapsync" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 1; }

. "$src/deploy/lib/pg.sh"
work=$(mktemp -d /tmp/keapsync-scale.XXXXXX)
pgdir=$(mktemp -d /tmp/keapsync-scale-pg.XXXXXX) # its own: as root, the cluster's owner is postgres
pids=()
cleanup() {
    local p
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pg_throwaway_stop "$pgdir" >/dev/null 2>&1 || true
    rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
pg_throwaway_start "$pgdir" >/dev/null
mkdir -p "$work/jobs"
jq --argjson p "$page" '.page_size = $p | del(.deletes)' "$src/jobs/contacts.json" >"$work/jobs/contacts.json"
export KEAPSYNC_JOBS="$work/jobs" KEAPSYNC_LIMITS="$limits" KEAPSYNC_LOG_LEVEL=warning

# The CPU seconds so far of the cluster's processes (the postmaster's children included).
pg_cpu() {
    local pid files
    pid=$(head -1 "$pgdir/data/postmaster.pid")
    mapfile -t files < <(pgrep -P "$pid" | sed 's#.*#/proc/&/stat#')
    awk -v tck="$(getconf CLK_TCK)" '{ s += $14 + $15 + $16 + $17 } END { printf "%.2f", s / tck }' \
        "/proc/$pid/stat" "${files[@]}" 2>/dev/null
}

printf '%7s %9s %8s %6s %8s %8s %10s %9s %8s\n' tenants requests rows wall "req/s" "cpu s" "cpu/1k req" "rss MiB" "pg cpu s"
for n in $tenants_list; do
    db="scale_$n"
    DATABASE_URL=$(pg_make_db "$db")
    export DATABASE_URL
    urls=()
    for i in $(seq 1 "$n"); do
        key="scale-key-$i-$RANDOM"
        install -m 600 /dev/null "$work/key.$i"
        echo "$key" >"$work/key.$i"
        simlim=(--limits "$limits")
        [ "$limits" != 0/s,0/min,0/day ] || simlim=(--no-limits)
        "$build/keapsim" --port 0 --seed "$i" --size "$size" --api-key "$key" --quiet "${simlim[@]}" \
            >"$work/sim.$i.out" 2>&1 &
        pids+=($!)
        port=""
        for _ in $(seq 1 100); do
            port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.$i.out" | head -1)
            [ -n "$port" ] && break
            sleep 0.05
        done
        urls[$i]="http://127.0.0.1:$port/crm/rest"
        KEAP_BASE_URL=${urls[$i]} KEAP_API_KEY_FILE="$work/key.$i" KEAPSYNC_SCHEMA="keap_t$i" \
            KEAPSYNC_TENANT="t$i" "$build/keapsync" migrate >/dev/null
    done
    pg0=$(pg_cpu)
    t0=$(date +%s.%N)
    run=()
    for i in $(seq 1 "$n"); do
        KEAP_BASE_URL=${urls[$i]} KEAP_API_KEY_FILE="$work/key.$i" KEAPSYNC_SCHEMA="keap_t$i" \
            KEAPSYNC_TENANT="t$i" /usr/bin/time -f "%U %S %M" -o "$work/time.$i" \
            "$build/keapsync" run >"$work/run.$i.out" 2>"$work/run.$i.err" &
        run+=($!)
    done
    for p in "${run[@]}"; do wait "$p" || { echo "a run failed:" >&2; cat "$work"/run.*.err >&2; exit 1; }; done
    wall=$(echo "$(date +%s.%N) - $t0" | bc)
    pg1=$(pg_cpu)
    reqs=$(psql "$DATABASE_URL" -qAt -c "SELECT coalesce(sum(requests), 0) FROM keapsync.job_stats")
    rows=0
    for i in $(seq 1 "$n"); do
        rows=$((rows + $(psql "$DATABASE_URL" -qAt -c "SELECT count(*) FROM keap_t$i.contacts")))
    done
    cpu=$(cat "$work"/time.* | awk '{ s += $1 + $2 } END { printf "%.2f", s }')
    rss=$(cat "$work"/time.* | awk '$3 > m { m = $3 } END { printf "%.1f", m / 1024 }')
    printf '%7d %9d %8d %6.1f %8.1f %8s %10.3f %9s %8.2f\n' "$n" "$reqs" "$rows" "$wall" \
        "$(echo "$reqs / $wall" | bc -l)" "$cpu" "$(echo "$cpu * 1000 / $reqs" | bc -l)" "$rss" \
        "$(echo "$pg1 - $pg0" | bc)"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    rm -f "$work"/time.* "$work"/sim.*
done
