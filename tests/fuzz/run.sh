#!/usr/bin/env bash
# Runs each libFuzzer target of tests/fuzz for N seconds (default 30), seeded from the
# project's copy of Keap's fixtures (tests/data/keap/fixtures), the shipped job files and
# the kept regression inputs (tests/fuzz/corpus/<target>/). Exits non-zero if any target
# finds a crash, a leak or a timeout; the input is left in $KEAPSYNC_FUZZ_OUT (printed).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
# Env: KEAPSYNC_FUZZ_BUILD (default build-fuzz), KEAPSYNC_FUZZ_OUT (default a temp dir),
# KEAPSYNC_FUZZ_JOBS (targets run at once, and build jobs; default 2).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_headers fuzz_page fuzz_jobs fuzz_time fuzz_cron)
build=${KEAPSYNC_FUZZ_BUILD:-$src/build-fuzz}
out=${KEAPSYNC_FUZZ_OUT:-$(mktemp -d /tmp/keapsync-fuzz.XXXXXX)}
cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (libFuzzer needs clang)" >&2; exit 1; }

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DKEAPSYNC_FUZZ=ON -DKEAPSYNC_TESTS=OFF \
    -DKEAPSYNC_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${KEAPSYNC_FUZZ_JOBS:-2}" --target "${targets[@]}" >/dev/null

fix="$src/tests/data/keap/fixtures"
# seed TARGET DIR: the starting inputs of one target, from the fixtures and the job files.
seed() {
    local t=$1 d=$2 i=0 f
    mkdir -p "$d"
    case $t in
    fuzz_page)
        # The first byte picks the job (index into jobs/ sorted by name): every job gets
        # every fixture.
        local n
        n=$(find "$src/jobs" -maxdepth 1 -name '*.json' | wc -l)
        for f in "$fix"/*.json; do
            for ((j = 0; j < n; j++)); do
                { printf "\\$(printf %03o "$j")"; cat "$f"; } >"$d/$(basename "$f" .json)-$j"
            done
        done ;;
    fuzz_jobs)
        cp "$src"/jobs/*.json "$d/"
        for f in "$src"/tests/unit/jobs/*/*.json; do cp "$f" "$d/$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
    fuzz_time)
        # Every timestamp the fixtures hold, in Keap's own forms.
        grep -ohE '"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9:]+)?"' "$fix"/*.json |
            tr -d '"' | sort -u | while read -r ts; do
                i=$((i + 1)); printf '%s' "$ts" >"$d/ts-$i"
            done ;;
    fuzz_cron)
        # The schedules the docs and tests use, and the edges of each field's syntax.
        for e in '0 2 * * *' '*/15 * * * *' '0 0 1 * *' '30 4 * * MON-FRI' '0 0 29 2 *' \
            '0 0 30 2 *' '5,10-20/5 0-23/6 1,15 JAN-DEC/3 0,7' '* * * * *' '59 23 31 12 SUN' \
            '0 0 13 * 5' '1-59/2 * * * *' '0 12 * * 7'; do
            i=$((i + 1)); printf '%s' "$e" >"$d/cron-$i"
        done ;;
    fuzz_headers)
        # Status, x-keap-* headers and an error body in the shapes Keap sends.
        printf '200\nx-keap-product-quota-limit: 30000\nx-keap-product-quota-available: 29000\nx-keap-product-quota-used: 1000\nx-keap-product-quota-expiry-time: 2026-12-03T00:00:00Z\nx-keap-product-throttle-limit: 240\nx-keap-product-throttle-available: 200\nx-keap-tenant-id: xy123\ncontent-type: application/json\n\n' >"$d/ok"
        cat "$fix/v1-contacts-page.json" >>"$d/ok"
        printf '429\nretry-after: 5\nx-keap-product-throttle-available: 0\ncontent-type: application/json\n\n{"message":"Quota Exceeded","code":429}' >"$d/429"
        printf '429\nretry-after: Wed, 21 Oct 2015 07:28:00 GMT\nx-keap-product-quota-available: 0\n\n' >"$d/429-date"
        printf '400\ncontent-type: application/json\n\n{"code":400,"message":"Invalid page_token","status":"INVALID_ARGUMENT"}' >"$d/400-token"
        printf '401\ncontent-type: application/json\n\n{"error":"invalid_grant"}' >"$d/401"
        printf '502\ncontent-type: text/html\n\n<html><body>Bad Gateway</body></html>' >"$d/502-html" ;;
    esac
    if [ -d "$src/tests/fuzz/corpus/$t" ]; then cp "$src/tests/fuzz/corpus/$t"/* "$d/" 2>/dev/null || true; fi
}

# one TARGET: seeds and runs it; its summary goes to $out/TARGET/summary, its exit code to
# $out/TARGET/rc. KEAPSYNC_FUZZ_JOBS targets run at once (each libFuzzer run is one process).
one() {
    local t=$1 corpus="$out/$1/corpus" rc=0
    rm -rf "$corpus"
    seed "$t" "$corpus"
    mkdir -p "$out/$t/artifacts"
    {
        echo "== $t: ${secs}s, $(ls "$corpus" | wc -l) seeds"
        ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
            "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
            -print_final_stats=1 -artifact_prefix="$out/$t/artifacts/" "$corpus" \
            >"$out/$t/log" 2>&1 || rc=$?
        grep -E '^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss_mb' "$out/$t/log" | tail -3 | sed 's/^/   /'
        grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$out/$t/log" | tail -1 | sed 's/^/   /'
        if [ "$rc" -ne 0 ]; then
            echo "   FAILED (exit $rc): see $out/$t/log and $out/$t/artifacts/"
            grep -E 'ERROR|SUMMARY' "$out/$t/log" | head -5 | sed 's/^/   /'
        fi
    } >"$out/$t/summary.tmp"
    mv "$out/$t/summary.tmp" "$out/$t/summary"
    echo "$rc" >"$out/$t/rc"
}

status=0
par=${KEAPSYNC_FUZZ_JOBS:-2}
pids=()
for t in "${targets[@]}"; do
    mkdir -p "$out/$t"
    rm -f "$out/$t/rc" "$out/$t/summary"
    one "$t" &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
done
wait "${pids[@]}" 2>/dev/null || true
for t in "${targets[@]}"; do
    cat "$out/$t/summary" 2>/dev/null || echo "== $t: FAILED: it left no summary"
    [ "$(cat "$out/$t/rc" 2>/dev/null || echo 1)" -eq 0 ] || status=1
done
echo "fuzz output: $out"
exit $status
