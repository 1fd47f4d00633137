#!/usr/bin/env bash
# bench_plan.sh: how close `keapsync plan` comes to what the sync then spends. keapsim with
# 1,000,000 contacts (--size) and the other resources at its ratios, limits off;
# `keapsync plan --json` on an empty database (its probes are the only requests it has),
# then `keapsync run` of every shipped list job, and each job's predicted requests beside
# the requests the run sent for it, with the ratio. Goal: the list jobs' total within 5 %.
#
#   bash tests/bench/bench_plan.sh                     # 1,000,000 contacts
#   BENCH_SIZE=100000 bash tests/bench/bench_plan.sh   # quick
#
# Words used here:
#   predicted  plan's "requests" for a job (here from probes: nothing has run yet)
#   spent      the requests `keapsync run` reports for the job (retries included)
#   child      contact_tags reads one list per contact: over 1,000,000 contacts that is
#              1,000,000 requests, so it is left out of the timed sync and only costed: the
#              plan's figure before the sync (contacts to come) and after it (contacts in
#              Postgres, counted exactly), beside the contacts the sync wrote.
# Environment: KEAPSYNC_BUILD (default <src>/build), BENCH_SIZE, BENCH_TIMEOUT (seconds for
# the sync, default 1800), BENCH_V1_COUNT (keapsim --v1-count: total, the default, or page,
# where v1's count is only the page's length and the probes double and bisect),
# BENCH_MAX_PROBES (plan --max-probes; default: plan's own, 64). Its own throwaway PostgreSQL (deploy/lib/pg.sh), all on 127.0.0.1,
# removed at exit. Exit status: 0 when every list job completed with no 429 (the 5 % goal is
# reported, not enforced). Not in ctest.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${KEAPSYNC_BUILD:-$src/build}
size=${BENCH_SIZE:-1000000}
run_timeout=${BENCH_TIMEOUT:-1800}
v1count=${BENCH_V1_COUNT:-total}
plan_args=(--json)
[ -z "${BENCH_MAX_PROBES:-}" ] || plan_args+=(--max-probes "$BENCH_MAX_PROBES")
ks="$build/keapsync"
ksim="$build/keapsim"

die() {
    echo "bench_plan: $*" >&2
    exit 1
}

[ -x "$ks" ] && [ -x "$ksim" ] || die "could not find keapsync and keapsim in \"$build\" (build them, or set KEAPSYNC_BUILD)"
for t in psql curl jq timeout awk; do
    command -v "$t" >/dev/null || die "$t is missing: run deploy/install-deps.sh"
done
[[ "$size" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZE must be a positive integer, got \"$size\""

tmp=$(mktemp -d /tmp/ks-bench-plan.XXXXXX)
pgdir=$(mktemp -d /tmp/ks-bench-plan-pg.XXXXXX)
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
export PGOPTIONS="-c client_min_messages=warning"
export KEAPSYNC_JOBS="$src/jobs"
export KEAPSYNC_LIMITS=0/s,0/min,0/day
export KEAPSYNC_LOG_LEVEL=warning
export KEAP_API_KEY="bench-$RANDOM$RANDOM$RANDOM"
list_jobs=$(for f in "$KEAPSYNC_JOBS"/*.json; do jq -r 'select(.parent == null) | .name' "$f"; done | paste -sd, -)

"$ksim" --port 0 --no-limits --seed 1 --size "$size" --api-key "$KEAP_API_KEY" --quiet --v1-count "$v1count" \
    >"$tmp/keapsim.out" 2>"$tmp/keapsim.err" &
sim_pid=$!
port=""
deadline=$((SECONDS + 300))
while [ -z "$port" ] && [ $SECONDS -lt $deadline ]; do
    kill -0 "$sim_pid" 2>/dev/null || break
    port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/keapsim.out" 2>/dev/null | head -1 || true)
    [ -n "$port" ] || sleep 0.2
done
[ -n "$port" ] || { cat "$tmp/keapsim.err" >&2; die "keapsim did not start"; }
export KEAP_BASE_URL="http://127.0.0.1:$port/crm/rest"
stat() { curl -sf "http://127.0.0.1:$port/__admin/stats" | jq -r "$1"; }

"$ks" migrate >/dev/null
echo "bench_plan: keapsim --size $size --no-limits --v1-count $v1count; KEAPSYNC_LIMITS=$KEAPSYNC_LIMITS; build $build; $(nproc) CPUs"

t0=$(date +%s.%N)
echo "plan: keapsync plan ${plan_args[*]}"
"$ks" plan "${plan_args[@]}" >"$tmp/plan.json"
t1=$(date +%s.%N)
probes=$(jq .probe_requests "$tmp/plan.json")
echo "plan: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, $probes probe requests (keapsim saw $(stat .requests))"

before=$(stat .requests)
t0=$(date +%s.%N)
rc=0
timeout "$run_timeout" "$ks" run --only "$list_jobs" >"$tmp/run.out" 2>"$tmp/run.err" || rc=$?
t1=$(date +%s.%N)
[ "$rc" -eq 0 ] || { cat "$tmp/run.out" "$tmp/run.err" >&2; die "the sync exited $rc"; }
sent=$(( $(stat .requests) - before ))
rejected=$(stat .rejected_429)
echo "sync: keapsync run --only $list_jobs"
echo "      $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, $sent requests (keapsim), $rejected rejected with 429"
echo
printf '%-16s %12s %12s %12s %9s  %s\n' job records predicted spent ratio source
pred_total=0
spent_total=0
worst=""
for job in ${list_jobs//,/ }; do
    pred=$(jq -r --arg j "$job" '.jobs[] | select(.name == $j) | .requests' "$tmp/plan.json")
    recs=$(jq -r --arg j "$job" '.jobs[] | select(.name == $j) | .records' "$tmp/plan.json")
    source=$(jq -r --arg j "$job" '.jobs[] | select(.name == $j) | "\(.source): \(.detail)"' "$tmp/plan.json")
    spent=$(sed -n "s/^job \"$job\": done, .* \([0-9]*\) requests.*/\1/p" "$tmp/run.out")
    [ -n "$spent" ] || die "job $job did not complete"
    pred_total=$((pred_total + pred))
    spent_total=$((spent_total + spent))
    printf '%-16s %12s %12s %12s %9s  %s\n' "$job" "$recs" "$pred" "$spent" \
        "$(awk -v p="$pred" -v s="$spent" 'BEGIN { printf "%.3f", p / s }')" "$source"
done
ratio=$(awk -v p="$pred_total" -v s="$spent_total" 'BEGIN { printf "%.4f", p / s }')
printf '%-16s %12s %12s %12s %9s\n' "list jobs" "" "$pred_total" "$spent_total" "$ratio"
echo
echo "predicted $pred_total requests, spent $spent_total: ratio $ratio (goal: within 5 %, 0.95..1.05: $(awk -v r="$ratio" 'BEGIN { print (r >= 0.95 && r <= 1.05) ? "met" : "NOT met" }'))"

# The child stream, costed and not run.
child_before=$(jq -r '.jobs[] | select(.name == "contact_tags") | .requests' "$tmp/plan.json")
"$ks" plan --json >"$tmp/plan2.json"
child_after=$(jq -r '.jobs[] | select(.name == "contact_tags") | "\(.requests) (\(.detail))"' "$tmp/plan2.json")
contacts=$(psql "$DATABASE_URL" -qAt -c "SELECT count(*) FROM keap.contacts")
echo "contact_tags (not run: one request per contact): planned $child_before before the sync; $child_after after it; contacts synced: $contacts"
echo "a second plan after the sync probed $(jq .probe_requests "$tmp/plan2.json") requests and predicts $(jq '[.jobs[] | select(.kind == "list") | .requests] | add' "$tmp/plan2.json") for the list jobs (history, freshness, and probes of the new incremental windows)"
[ "$rejected" = 0 ] || die "keapsim answered $rejected requests with 429"
