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
#
# Every test runs once under ASan+UBSan (leaks included) but the four labelled "timing"
# (pacing precision, 429 counts: tests/integration/CMakeLists.txt), whose verdict a
# sanitizer's slowdown would decide. The optimised build then runs those, the unit tests
# again, and valgrind_sync (valgrind cannot run an ASan binary). KEAPSYNC_TEST_SANITIZE=0 runs the whole suite in the optimised build instead;
# KEAPSYNC_SANITIZE_TESTS=REGEX runs a subset under the sanitizers.
status=0
rm -f "$build/fault_results.tsv" # the fault tests' cases (tests/integration/lib.sh)
fault_tsv="$root/$build/fault_results.tsv"
if [ "${KEAPSYNC_TEST_SANITIZE:-1}" = 1 ]; then
    echo "== build ($build-asan, ASan+UBSan, -Werror)"
    san="$build-asan"
    cmake -S . -B "$san" -DKEAPSYNC_WERROR=ON -DKEAPSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$san" -j"$jobs" >/dev/null
    echo "== tests under ASan+UBSan"
    (cd "$san" && KEAPSYNC_FAULT_TABLE="$fault_tsv" ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 \
        ctest --output-on-failure -j"$jobs" --timeout 900 -LE timing -R "${KEAPSYNC_SANITIZE_TESTS:-.}") || status=$?
    echo "== tests in the optimised build: unit, timing, valgrind"
    (cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 900 -L 'unit|timing') || status=$?
    (cd "$build" && ctest --output-on-failure --timeout 900 -R '^integration\.valgrind_sync$') || status=$?
else
    echo "== tests"
    (cd "$build" && KEAPSYNC_FAULT_TABLE="$fault_tsv" ctest --output-on-failure -j"$jobs" --timeout 900) || status=$?
fi
# The fault table from this run; README.md's copy: fault_table.sh --readme (README.md says).
if [ -s "$fault_tsv" ]; then
    bash tests/integration/fault_table.sh "$fault_tsv" >"$build/fault_table.md" &&
        echo "   fault table: $build/fault_table.md" || status=1
fi

if [ "${KEAPSYNC_TEST_FUZZ:-1}" = 1 ]; then
    # Each libFuzzer target for KEAPSYNC_FUZZ_SECONDS (default 30), seeded from Keap's
    # fixtures (tests/fuzz/README.md). KEAPSYNC_TEST_FUZZ=0 skips this.
    echo "== fuzzing (${KEAPSYNC_FUZZ_SECONDS:-30} s per target)"
    KEAPSYNC_FUZZ_BUILD="$build-fuzz" KEAPSYNC_FUZZ_JOBS="$jobs" \
        bash tests/fuzz/run.sh "${KEAPSYNC_FUZZ_SECONDS:-30}" || status=$?
fi
exit $status
