#!/usr/bin/env bash
# Command 2 of the README: installs what is missing, builds with warnings as errors, starts a
# throwaway PostgreSQL and runs every test (unit, keapsim, integration). Exits non-zero on any
# failure. Safe to run twice, as root or not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash deploy/install-deps.sh --tests
build=${KEAPSYNC_BUILD_DIR:-build}
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build ($build, -Werror)"
cmake -S . -B "$build" -DKEAPSYNC_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs" 2>&1 | grep -vE '^\[|^-- |Built target|Scanning|Consolidate' || true
cmake --build "$build" -j"$jobs" >/dev/null   # fails loudly if the filtered build failed

. deploy/lib/pg.sh
pgdir=$(mktemp -d /tmp/keapsync-test-pg.XXXXXX)
cleanup() {
    pg_throwaway_stop "$pgdir"
    rm -rf "$pgdir"
}
trap cleanup EXIT
echo "== throwaway PostgreSQL"
pg_throwaway_start "$pgdir"
echo "   $DATABASE_URL"

# As root, the cluster runs as "postgres"; tests run as the caller and reach it over TCP.
echo "== tests"
status=0
rm -f "$build/fault_results.tsv" # the fault_*.sh tests' cases (tests/integration/lib.sh)
(cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 900) || status=$?
# The fault table from this run; README.md's copy: fault_table.sh --readme (README.md says).
if [ -s "$build/fault_results.tsv" ]; then
    bash tests/integration/fault_table.sh "$build/fault_results.tsv" >"$build/fault_table.md" &&
        echo "   fault table: $build/fault_table.md" || status=1
fi

if [ "${KEAPSYNC_TEST_SANITIZE:-1}" = 1 ]; then
    # Under ASan+UBSan, leaks included: every unit test and the integration tests listed here
    # (the whole suite takes too long for CI's 15 minutes on 2 cores; KEAPSYNC_SANITIZE_TESTS=. runs it all).
    # KEAPSYNC_TEST_SANITIZE=0 skips this; KEAPSYNC_SANITIZE_TESTS=REGEX runs a subset.
    echo "== under ASan+UBSan"
    san="$build-asan"
    cmake -S . -B "$san" -DKEAPSYNC_WERROR=ON -DKEAPSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$san" -j"$jobs" >/dev/null
    (cd "$san" && ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 \
        ctest --output-on-failure -j"$jobs" --timeout 900 -R "${KEAPSYNC_SANITIZE_TESTS:-unit\.|sync_contacts|sync_all|bad_input|bad_jobs|quota_day|child_streams|child_order|job_changes|deletes|backfill|v2_paging|robust_fail|robust_types|plan_days|oauth_lost_pair|oauth_config|ops_status|ops_metrics|daemon_signals|daemon_days|config_corpus|robust_pages|secrets_key|fault_pg|fault_clock|fault_revoke|ops_daemon_metrics|daemon_backoff|multi_tenant}") || status=$?
fi

if [ "${KEAPSYNC_TEST_FUZZ:-1}" = 1 ]; then
    # Each libFuzzer target for KEAPSYNC_FUZZ_SECONDS (default 30), seeded from Keap's
    # fixtures (tests/fuzz/README.md). KEAPSYNC_TEST_FUZZ=0 skips this.
    echo "== fuzzing (${KEAPSYNC_FUZZ_SECONDS:-30} s per target)"
    KEAPSYNC_FUZZ_BUILD="$build-fuzz" KEAPSYNC_FUZZ_JOBS="$jobs" \
        bash tests/fuzz/run.sh "${KEAPSYNC_FUZZ_SECONDS:-30}" || status=$?
fi
exit $status
