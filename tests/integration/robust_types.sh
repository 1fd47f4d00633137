#!/usr/bin/env bash
# Issue 5, requirement 2: a value of the wrong JSON type for its column does not abort its
# page. The test job jobs/contacts_types.json declares given_name (always a name), ScoreValue
# (digit strings or null), and custom fields 4 (integers or null), 6 (decimals, some whole)
# and 8 ("ref-N" strings or null) as bigint. The sync must complete; a value that is not a
# valid integer becomes NULL in its column while data keeps the record exactly as served; the
# count keapsync prints equals the number of such values, computed here in SQL from data.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=100
it_keapsim --seed 23 --size 1500 --api-key "$KEAP_API_KEY" --limits 20/s,1200/min,30000/day
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/tests/integration/jobs/contacts_types.json" \
    >"$IT_TMP/jobs/contacts_types.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="20/s,1200/min,30000/day"
"$KS" migrate >/dev/null

rc=0; "$KS" run >"$IT_TMP/run.out" 2>"$IT_TMP/run.err" || rc=$?
cat "$IT_TMP/run.out" >&2
grep -v ' INFO: ' "$IT_TMP/run.err" | head -20 >&2 || true
eq "run with wrong-typed values exits 0" 0 "$rc"
check "the job is reported done" grep -q '^job "contacts_types": done' "$IT_TMP/run.out"

ksim_truth_to_pg contacts
truth_n=$(sql "SELECT count(*) FROM truth_contacts")
check "keapsim served a tenant ($truth_n contacts)" test "$truth_n" -gt 0
eq "no row missing: row count equals the truth" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts_types")"
eq "every truth id landed" 0 \
   "$(sql "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts_types c ON c.id = (t.doc->>'id')::bigint WHERE c.id IS NULL")"
eq "data holds every record exactly as served (raw values kept)" 0 \
   "$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.contacts_types c ON c.id = (t.doc->>'id')::bigint WHERE c.data <> t.doc")"

# The job's bigint columns, read from the job file: name and a SQL expression for the raw
# JSON value in data ("a.b" -> data #> '{a,b}'; "custom_fields.[id=N].content" -> jsonpath).
sql "CREATE OR REPLACE FUNCTION is_int8(v jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS \$\$
  SELECT CASE
    WHEN v IS NULL OR jsonb_typeof(v) = 'null' THEN NULL
    WHEN jsonb_typeof(v) = 'number' THEN v::text::numeric = trunc(v::text::numeric)
         AND v::text::numeric >= -9223372036854775808 AND v::text::numeric <= 9223372036854775807
    WHEN jsonb_typeof(v) = 'string' THEN (v #>> '{}') ~ '^-?[0-9]{1,19}\$'
         AND (v #>> '{}')::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
    ELSE false END \$\$"
total_bad=0
ncols=0
while IFS=$'\t' read -r name path; do
    if [[ "$path" =~ ^custom_fields\.\[id=([0-9]+)\]\.content$ ]]; then
        raw="jsonb_path_query_first(c.data, '\$.custom_fields[*] ? (@.id == ${BASH_REMATCH[1]}).content')"
    else
        raw="c.data #> '{$(echo "$path" | tr '.' ',')}'"
    fi
    bad=$(sql "SELECT count(*) FROM keap.contacts_types c WHERE NOT is_int8($raw)")
    good=$(sql "SELECT count(*) FROM keap.contacts_types c WHERE is_int8($raw)")
    it_log "column $name ($path): $good integer values, $bad of the wrong type"
    eq "column $name: NULL wherever the value is not a valid integer" 0 \
       "$(sql "SELECT count(*) FROM keap.contacts_types c WHERE NOT is_int8($raw) AND c.$name IS NOT NULL")"
    eq "column $name: the integer wherever it is one" 0 \
       "$(sql "SELECT count(*) FROM keap.contacts_types c WHERE CASE WHEN is_int8($raw) THEN c.$name IS DISTINCT FROM ($raw #>> '{}')::numeric ELSE false END")"
    eq "column $name: NULL where the value is null or absent" 0 \
       "$(sql "SELECT count(*) FROM keap.contacts_types c WHERE is_int8($raw) IS NULL AND c.$name IS NOT NULL")"
    total_bad=$((total_bad + bad))
    ncols=$((ncols + 1))
done < <(jq -r '.columns[] | select(.type == "bigint") | "\(.name)\t\(.path)"' "$KEAPSYNC_JOBS/contacts_types.json")
check "the job declares bigint columns ($ncols)" test "$ncols" -gt 0
check "the data holds values of the wrong type ($total_bad)" test "$total_bad" -gt 0
# Columns where every value fits and columns where none does, so a count that ignores a
# column or counts nulls would differ.
check "given_name (names) never fits bigint" \
   test "$(sql "SELECT count(*) FROM keap.contacts_types WHERE given_name IS NOT NULL")" -eq 0

printed=$(sed -n 's/^job "contacts_types": .* \([0-9][0-9]*\) values of the wrong type stored as NULL.*/\1/p' "$IT_TMP/run.out")
eq "the printed mismatch count equals the values of the wrong type in data" "$total_bad" "${printed:-none}"
check "mismatches are warned, naming the column" grep -q 'given_name' "$IT_TMP/run.err"
check "the warnings are budgeted (not one line per value)" \
   test "$(grep -c 'WARNING' "$IT_TMP/run.err")" -lt "$total_bad"

# The same pages again (a full second window is not needed: reset the checkpoint) give the
# same count: a value is counted once per record mapped, never per retry.
sql "DELETE FROM keapsync.checkpoints WHERE job = 'contacts_types'"
rc=0; "$KS" run >"$IT_TMP/run2.out" 2>"$IT_TMP/run2.err" || rc=$?
eq "a second full read exits 0" 0 "$rc"
printed2=$(sed -n 's/^job "contacts_types": .* \([0-9][0-9]*\) values of the wrong type stored as NULL.*/\1/p' "$IT_TMP/run2.out")
eq "the second full read counts the same" "$total_bad" "${printed2:-none}"
eq "row count unchanged" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts_types")"
it_case_end "values of the wrong JSON type for bigint columns: NULL, counted, the page kept" "$total_bad"
it_done
