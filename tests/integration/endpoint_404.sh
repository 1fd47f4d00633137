#!/usr/bin/env bash
# A job endpoint Keap does not have (keapsim answers 404 for a list it does not know):
#   - check probes each job's first page (one request per job, paced, in the quota ledger when
#     DATABASE_URL is migrated) and fails with exit 2 and one line naming the job, the
#     endpoint and the status;
#   - run does not create the job's table: exit 2 before any table, checkpoint or run record.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
it_keapsim --seed 3 --size 50 --api-key "$KEAP_API_KEY" --no-limits --quiet

# Job folders: good (contacts, users), bad (the same and widgets, which Keap does not have).
mkdir -p "$IT_TMP/good" "$IT_TMP/bad"
cp "$KEAPSYNC_SRC/jobs/contacts.json" "$KEAPSYNC_SRC/jobs/users.json" "$IT_TMP/good/"
cp "$IT_TMP/good/"*.json "$IT_TMP/bad/"
cat >"$IT_TMP/bad/widgets.json" <<'EOF'
{"name": "widgets", "endpoint": "/v1/widgets", "order": "id", "page_size": 100,
 "columns": [{"name": "title", "path": "title", "type": "text"}]}
EOF
check "keapsim answers 404 for /v1/widgets" test "$(curl -s -o /dev/null -w '%{http_code}' \
    -H "X-Keap-API-Key: $KEAP_API_KEY" "$KEAP_BASE_URL/v1/widgets?limit=1")" = 404
njobs_good=$(ls "$IT_TMP/good"/*.json | wc -l)
# Jobs load in file-name order, so widgets is probed last.
njobs_bad=$(ls "$IT_TMP/bad"/*.json | wc -l)
reqs() { ksim_stat .requests; }
ledger() { sql "SELECT coalesce(sum(reserved), 0) FROM keapsync.quota_ledger"; }

# check, no database: the good folder passes with one request per job.
before=$(reqs)
rc=0; env -u DATABASE_URL KEAPSYNC_JOBS="$IT_TMP/good" "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "check of the good jobs exits 0" 0 "$rc"
eq "check probed each job once" "$njobs_good" "$(($(reqs) - before))"
eq "no job says its endpoint was not checked" 0 "$(grep -c 'endpoint not checked' "$IT_TMP/out" || true)"
eq "check of the good jobs: nothing on stderr" "" "$(cat "$IT_TMP/err")"

# check, no database: the bad folder fails on widgets.
before=$(reqs)
rc=0; env -u DATABASE_URL KEAPSYNC_JOBS="$IT_TMP/bad" "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "check with a 404 endpoint exits 2" 2 "$rc"
eq "check prints one error line" 1 "$(wc -l <"$IT_TMP/err")"
check "the line names the job, its endpoint and the status" grep -q \
    '^keapsync: error: job "widgets": endpoint /v1/widgets does not exist at KEAP_BASE_URL (could not probe /crm/rest/v1/widgets: HTTP 404' "$IT_TMP/err"
check "the line says how to fix it" grep -q "hint: fix \"endpoint\" in $IT_TMP/bad/widgets.json" "$IT_TMP/err"
eq "check printed no job as valid" "" "$(cat "$IT_TMP/out")"
eq "one request per job up to widgets" "$njobs_bad" "$(($(reqs) - before))"
eq "check (no database) wrote nothing" 0 "$(sql "SELECT count(*) FROM information_schema.schemata WHERE schema_name IN ('keap', 'keapsync')")"

# Paced: at KEAPSYNC_LIMITS=2/s the probes never exceed 2 in a second (keapsim's own count).
it_keapsim --seed 3 --size 50 --api-key "$KEAP_API_KEY" --no-limits --quiet
t0=$(date +%s%N)
rc=0; env -u DATABASE_URL KEAPSYNC_JOBS="$IT_TMP/bad" KEAPSYNC_LIMITS=2/s,240/min,30000/day "$KS" check >/dev/null 2>&1 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
eq "paced check still exits 2" 2 "$rc"
check "paced: at most 2 probes in any second (max_in_1s $(ksim_stat .max_in_1s))" test "$(ksim_stat .max_in_1s)" -le 2
check "paced: $njobs_bad probes at 2/s took at least $(((njobs_bad - 1) * 500)) ms ($ms)" \
    test "$ms" -ge $(((njobs_bad - 1) * 500))

# With a migrated database the probes are counted in the quota ledger.
KEAPSYNC_JOBS="$IT_TMP/good" "$KS" migrate >"$IT_TMP/migrate.out" 2>&1 || cat "$IT_TMP/migrate.out" >&2
l0=$(ledger); before=$(reqs)
rc=0; KEAPSYNC_JOBS="$IT_TMP/bad" "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "check with the database: exit 2" 2 "$rc"
eq "check's probes reached keapsim" "$njobs_bad" "$(($(reqs) - before))"
eq "check's probes are in the quota ledger" "$njobs_bad" "$(($(ledger) - l0))"
eq "check wrote no table for widgets" "" "$(sql "SELECT to_regclass('keap.widgets')")"

# run: widgets fails at its first page, naming the job, the endpoint and the status, and its
# table (made at the job's start) is not kept; the other jobs sync. No request beyond the
# run's own pages.
keap_tables() { sql "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'keap'"; }
runs0=$(sql "SELECT count(*) FROM keapsync.runs")
before=$(reqs)
rc=0; KEAPSYNC_JOBS="$IT_TMP/bad" "$KS" run >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
cat "$IT_TMP/out" >&2
eq "run with a 404 endpoint exits 1 (a job failed)" 1 "$rc"
check "run says widgets failed on its first page with a 404" grep -q \
    '^job "widgets": failed, 0 rows written, 0 pages, 1 requests (could not fetch page at offset 0 of "widgets": HTTP 404' "$IT_TMP/out"
check "run names the job, its endpoint and the status, and that no table was kept" grep -q \
    "^keapsync: error: job \"widgets\": endpoint /v1/widgets does not exist at KEAP_BASE_URL (HTTP 404 on its first page); its empty table keap.widgets was not kept (hint: fix \"endpoint\" in $IT_TMP/bad/widgets.json)" "$IT_TMP/err"
eq "run created no table for widgets (to_regclass is NULL)" "" "$(sql "SELECT to_regclass('keap.widgets')")"
eq "the other jobs made their tables" "contacts,users" "$(keap_tables)"
ksim_truth_to_pg contacts
eq "contacts landed, as many as the truth" "$(sql "SELECT count(*) FROM truth_contacts")" "$(sql "SELECT count(*) FROM keap.contacts")"
spent=$(sql "SELECT requests FROM keapsync.runs ORDER BY id DESC LIMIT 1")
eq "keapsim saw exactly the requests the run counted (no probe)" "$spent" "$(($(reqs) - before))"
eq "the run is recorded as failed, naming widgets" 1 \
    "$(sql "SELECT count(*) FROM keapsync.runs WHERE id > 0 AND exit_code = 1 AND message LIKE '%job \"widgets\"%HTTP 404%'")"
eq "one run recorded" "$((runs0 + 1))" "$(sql "SELECT count(*) FROM keapsync.runs")"
eq "no checkpoint for widgets" 0 "$(sql "SELECT count(*) FROM keapsync.checkpoints WHERE job = 'widgets'")"

# Again: the same failure, still no table.
rc=0; KEAPSYNC_JOBS="$IT_TMP/bad" "$KS" run >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "run again: exit 1" 1 "$rc"
eq "widgets still has no table" "" "$(sql "SELECT to_regclass('keap.widgets')")"

# --only leaves widgets out: exit 0.
rc=0; KEAPSYNC_JOBS="$IT_TMP/bad" "$KS" run --only contacts >"$IT_TMP/out" 2>&1 || rc=$?
eq "run --only contacts beside a bad job exits 0" 0 "$rc"
eq "widgets has no table after --only" "" "$(sql "SELECT to_regclass('keap.widgets')")"

# A job whose list is empty still gets its table (made by its first, empty, page).
it_keapsim --seed 3 --size 0 --api-key "$KEAP_API_KEY" --no-limits --quiet
it_make_db
"$KS" migrate >/dev/null 2>&1
rc=0; KEAPSYNC_JOBS="$IT_TMP/good" "$KS" run --only contacts >"$IT_TMP/out" 2>&1 || rc=$?
eq "run over an empty contacts list exits 0" 0 "$rc"
eq "the empty list's table exists, empty" "keap.contacts 0" \
    "$(sql "SELECT to_regclass('keap.contacts')::text || ' ' || (SELECT count(*) FROM keap.contacts)")"

it_done
