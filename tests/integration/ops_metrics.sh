#!/usr/bin/env bash
# Issue 12, Prometheus textfile: after each run keapsync replaces KEAPSYNC_METRICS_FILE
# atomically (no partial file, no temporary left). The file passes a strict format check
# (prom_check.awk: what `promtool check metrics` checks; Debian's promtool comes only with the
# whole prometheus server) and its figures equal keapsync's tables.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs" "$IT_TMP/prom"
jq '.page_size = 100' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
jq '.' "$KEAPSYNC_SRC/jobs/products.json" >"$IT_TMP/jobs/products.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_METRICS_FILE="$IT_TMP/prom/keapsync.prom"
check_prom() { awk -f "$KEAPSYNC_SRC/tests/integration/prom_check.awk" "$1"; }
value() { awk -v k="$1" '$1 == k { print $2 }' "$KEAPSYNC_METRICS_FILE"; }

# The checker itself refuses what it must.
printf '# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb{x="1"} 2\na_total 3\n' >"$IT_TMP/bad1"
printf '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 4\nh_sum 1\nh_count 4\n' >"$IT_TMP/bad2"
printf '# TYPE c counter\nc 1\n' >"$IT_TMP/bad3"
printf '# TYPE g gauge\ng{x=1} 1\n' >"$IT_TMP/bad4"
for b in 1 2 3 4; do
    check "the checker refuses bad$b" bash -c "! awk -f '$KEAPSYNC_SRC/tests/integration/prom_check.awk' '$IT_TMP/bad$b' >/dev/null"
done

it_keapsim --seed 9 --size 1200 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
"$KS" migrate >/dev/null 2>&1
rc=0; "$KS" run >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" || rc=$?
eq "run exits 0" 0 "$rc"
check "the metrics file is there" test -s "$KEAPSYNC_METRICS_FILE"
cat "$KEAPSYNC_METRICS_FILE" >&2
check "it passes the strict format check" check_prom "$KEAPSYNC_METRICS_FILE"
eq "no temporary file left beside it" "keapsync.prom" "$(ls "$IT_TMP/prom")"
eq "keapsync_requests_total = the runs' requests" "$(sql "SELECT sum(requests) FROM keapsync.runs")" "$(value keapsync_requests_total)"
eq "keapsync_records_total{job=\"contacts\"} = the table's rows" "$(sql "SELECT count(*) FROM keap.contacts")" "$(value 'keapsync_records_total{job="contacts"}')"
eq "keapsync_bytes_total{job=\"products\"} = run_jobs' bytes" "$(sql "SELECT sum(bytes) FROM keapsync.run_jobs WHERE job = 'products'")" "$(value 'keapsync_bytes_total{job="products"}')"
eq "keapsync_commit_seconds_count = the pages committed" "$(sql "SELECT sum(pages) FROM keapsync.run_jobs")" "$(value keapsync_commit_seconds_count)"
tenant=$(sql "SELECT value FROM keapsync.settings WHERE key LIKE 'tenant:%' LIMIT 1")
used=$(sql "SELECT reserved FROM keapsync.quota_ledger WHERE tenant = '$tenant' AND day = (now() AT TIME ZONE 'UTC')::date")
eq "keapsync_quota_used{tenant} = the ledger" "$used" "$(value "keapsync_quota_used{tenant=\"$tenant\"}")"
eq "keapsync_quota_left{tenant} = the budget less it" "$((30000 - used))" "$(value "keapsync_quota_left{tenant=\"$tenant\"}")"
eq "keapsync_last_success_timestamp_seconds{job=\"contacts\"} = the run's end" \
    "$(sql "SELECT floor(extract(epoch FROM finished_at))::bigint FROM keapsync.runs ORDER BY id DESC LIMIT 1")" \
    "$(value 'keapsync_last_success_timestamp_seconds{job="contacts"}')"
eq "keapsync_runs_total{outcome=\"complete\"}" 1 "$(value 'keapsync_runs_total{outcome="complete"}')"

# A second run (429s without a window, "other", on a third of the pages) replaces the file: a new inode, counters grown.
ino1=$(stat -c %i "$KEAPSYNC_METRICS_FILE")
req1=$(value keapsync_requests_total)
curl -sf -X POST "$KSIM_URL/__admin/faults?spec=429-bare:0.3:/v1/contacts" >/dev/null || true
sql "DELETE FROM keapsync.checkpoints"
rc=0; "$KS" run >"$IT_TMP/run2.out" 2>"$IT_TMP/run2.err" || rc=$?
eq "second run exits 0" 0 "$rc"
check "the file was replaced (rename), not rewritten in place" test "$(stat -c %i "$KEAPSYNC_METRICS_FILE")" != "$ino1"
check "it still passes the format check" check_prom "$KEAPSYNC_METRICS_FILE"
check "keapsync_requests_total grew ($req1 -> $(value keapsync_requests_total))" test "$(value keapsync_requests_total)" -gt "$req1"
eq "keapsync_429_total by window sums to the runs' 429s" "$(sql "SELECT sum(rejected_429) FROM keapsync.runs")" \
    "$(awk '$1 ~ /^keapsync_429_total\{/ { s += $2 } END { print s + 0 }' "$KEAPSYNC_METRICS_FILE")"
eq "keapsync_runs_total{outcome=\"complete\"} counts both" 2 "$(value 'keapsync_runs_total{outcome="complete"}')"
rc=0; KEAPSYNC_METRICS_FILE=/nonexistent/dir/k.prom "$KS" run >/dev/null 2>"$IT_TMP/run3.err" || rc=$?
eq "an unwritable metrics file does not fail the run" 0 "$rc"
check "... it says so" grep -q 'could not write the metrics file "/nonexistent/dir/k.prom.tmp' "$IT_TMP/run3.err"

it_done
