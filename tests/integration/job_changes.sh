#!/usr/bin/env bash
# Job files change; the tables follow. From a completed sync of contacts, each change to the
# job file (a column added, a type changed, a path changed, the table renamed, a column
# dropped) is applied by `keapsync migrate` from the table's own data, without a request, and
# leaves the table as a fresh sync of the new job would: checked column by column against a
# fresh sync into a second table and against keapsim's ground truth. A change that cannot be
# applied exits 2 with one line and changes nothing.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
it_keapsim --seed 11 --size 1500 --api-key "$KEAP_API_KEY"
JOBS="$IT_TMP/jobs"
mkdir -p "$JOBS"
export KEAPSYNC_JOBS="$JOBS"
BASE="$IT_TMP/contacts.base.json"
# sweeps (deletes) would add requests to the counts this test makes
jq 'del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$BASE"
cp "$BASE" "$JOBS/contacts.json"

check "migrate" "$KS" migrate
rc=0; "$KS" run >"$IT_TMP/run1.out" 2>&1 || rc=$?
eq "first sync exits 0" 0 "$rc"
ksim_truth_to_pg contacts
N=$(sql "SELECT count(*) FROM truth_contacts")
eq "every record synced" "$N" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "the job's shape is recorded" contacts "$(sql "SELECT shape->>'table' FROM keapsync.jobs WHERE job = 'contacts'")"

# job JQ: the job file becomes the base job transformed by JQ (which becomes the new base).
job() {
    jq "$1" "$BASE" >"$JOBS/contacts.json.tmp"
    mv "$JOBS/contacts.json.tmp" "$JOBS/contacts.json"
    cp "$JOBS/contacts.json" "$BASE"
}

# migrate_step NAME ARGS...: runs keapsync migrate ARGS; sets RC and ERR (the stderr file);
# checks that no request was spent.
migrate_step() {
    local name=$1 before after
    shift
    before=$(ksim_stat .requests)
    RC=0; "$KS" migrate "$@" >"$IT_TMP/m.out" 2>"$IT_TMP/m.err" || RC=$?
    after=$(ksim_stat .requests)
    ERR="$IT_TMP/m.err"
    eq "$name: migrate spends no request" "$before" "$after"
}

# lines PATTERN: how many stderr lines of the last step match PATTERN.
lines() { grep -cE "$1" "$ERR" || true; }

# fresh_check NAME TABLE: syncs the current job afresh into keap.fresh (a job of its own) and
# checks that every column of keap.TABLE equals it, row by row.
fresh_check() {
    local name=$1 table=$2 fdir="$IT_TMP/fresh" c bad rc=0
    rm -rf "$fdir"
    mkdir -p "$fdir"
    jq '.name = "fresh" | .table = "fresh"' "$JOBS/contacts.json" >"$fdir/fresh.json"
    sql "DROP TABLE IF EXISTS keap.fresh; DELETE FROM keapsync.checkpoints WHERE job = 'fresh'; DELETE FROM keapsync.jobs WHERE job = 'fresh'"
    KEAPSYNC_JOBS="$fdir" "$KS" run >"$IT_TMP/fresh.out" 2>&1 || rc=$?
    eq "$name: the fresh sync exits 0" 0 "$rc"
    eq "$name: same rows as a fresh sync" 0 \
       "$(sql "SELECT count(*) FROM keap.$table a FULL JOIN keap.fresh b USING (id) WHERE a.id IS NULL OR b.id IS NULL OR a.data <> b.data")"
    for c in $(jq -r '.columns[].name' "$JOBS/contacts.json"); do
        bad=$(sql "SELECT count(*) FROM keap.$table a JOIN keap.fresh b USING (id) WHERE a.$c IS DISTINCT FROM b.$c")
        eq "$name: column $c equals a fresh sync's" 0 "$bad"
        eq "$name: column $c has the fresh sync's type" \
           "$(sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'keap.fresh'::regclass AND attname = '$c'")" \
           "$(sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'keap.$table'::regclass AND attname = '$c'")"
    done
}

# truth_text PATH: the SQL of the text value at a jsonb path of the truth's t.doc.
truth_text() { echo "CASE WHEN jsonb_typeof(t.doc #> '$1') = 'string' THEN t.doc #>> '$1' END"; }

# truth_eq NAME TABLE COLUMN EXPR: COLUMN of keap.TABLE equals EXPR over keapsim's truth.
truth_eq() {
    eq "$1" 0 "$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.$2 c ON c.id = (t.doc->>'id')::bigint WHERE c.$3 IS DISTINCT FROM ($4)")"
}

col_type() { sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'keap.$1'::regclass AND attname = '$2' AND NOT attisdropped"; }
shape() { sql "SELECT md5(shape::text) FROM keapsync.jobs WHERE job = 'contacts'"; }
# A digest of keap's tables and columns with their types.
tables() { sql "SELECT md5(string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, column_name)) FROM information_schema.columns WHERE table_schema = 'keap'"; }

# ---- columns added: filled from data ----------------------------------------------------
job '.columns += [
  {"name": "phone", "path": "phone_numbers.0.number", "type": "text"},
  {"name": "email2", "path": "email_addresses.1.email", "type": "text"},
  {"name": "company2", "path": "custom_fields.[id=2].content", "type": "text"},
  {"name": "cf6", "path": "custom_fields.[id=6].content", "type": "numeric"}]'
migrate_step "add"
eq "add: exit 0" 0 "$RC"
eq "add: one line per added column" 4 "$(lines 'column "(phone|email2|company2|cf6)".* added .*filled from data')"
eq "add: nothing else logged" 4 "$(grep -c . "$ERR" || true)"
eq "add: at info level" 4 "$(lines '^keapsync: INFO: job "contacts": ')"
fresh_check "add" contacts
truth_eq "add: phone is the first phone number" contacts phone "$(truth_text '{phone_numbers,0,number}')"
truth_eq "add: email2 is the second address" contacts email2 "$(truth_text '{email_addresses,1,email}')"
truth_eq "add: company2 is custom field 2" contacts company2 \
    "(SELECT CASE WHEN jsonb_typeof(e->'content') = 'string' THEN e->>'content' END FROM jsonb_array_elements(t.doc->'custom_fields') e WHERE e->'id' = '2' LIMIT 1)"
truth_eq "add: cf6 is custom field 6" contacts cf6 \
    "(SELECT (e->>'content')::numeric FROM jsonb_array_elements(t.doc->'custom_fields') e WHERE e->'id' = '6' AND jsonb_typeof(e->'content') = 'number' LIMIT 1)"
check "add: the columns hold values" test "$(sql "SELECT count(phone) + count(email2) + count(company2) + count(cf6) FROM keap.contacts")" -gt 0
migrate_step "add, again"
eq "add, again: exit 0" 0 "$RC"
eq "add, again: an unchanged job logs nothing" 0 "$(grep -c . "$ERR" || true)"

# ---- a type changed: rewritten from data -----------------------------------------------
job '(.columns[] | select(.name == "owner_id") | .type) = "text"'
migrate_step "bigint to text"
eq "bigint to text: exit 0" 0 "$RC"
eq "bigint to text: one line" 1 "$(lines 'column "owner_id".*changed from bigint to text')"
eq "bigint to text: the column is text" text "$(col_type contacts owner_id)"
truth_eq "bigint to text: owner_id is the number's text" contacts owner_id \
    "CASE WHEN jsonb_typeof(t.doc->'owner_id') IN ('number', 'string') THEN t.doc->>'owner_id' END"
fresh_check "bigint to text" contacts

# ---- a type some value cannot take: refused, nothing changed ------------------------------
cp "$BASE" "$IT_TMP/before-bad.json"
jq '(.columns[] | select(.name == "given_name") | .type) = "bigint"' "$BASE" >"$JOBS/contacts.json"
shape_before=$(shape)
sum_before=$(sql "SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM keap.contacts c")
migrate_step "text to bigint"
eq "text to bigint: exit 2" 2 "$RC"
eq "text to bigint: one line" 1 "$(grep -c . "$ERR" || true)"
check "text to bigint: the line names the job, the column and the value [$(head -c 300 "$ERR")]" \
    grep -qE 'cannot change column "given_name" of job "contacts" to bigint: value ".+" of record [0-9]+ does not convert \(hint: .+\)' "$ERR"
bad_id=$(sed -n 's/.* of record \([0-9]*\) does not convert.*/\1/p' "$ERR")
bad_value=$(sed -n 's/.*: value "\(.*\)" of record [0-9]* does not convert.*/\1/p' "$ERR")
eq "text to bigint: the value named is that record's given_name" "$bad_value" \
   "$(sql "SELECT doc->>'given_name' FROM truth_contacts WHERE (doc->>'id')::bigint = ${bad_id:-0}")"
eq "text to bigint: the column is still text" text "$(col_type contacts given_name)"
eq "text to bigint: the shape is unchanged" "$shape_before" "$(shape)"
eq "text to bigint: the rows are unchanged" "$sum_before" "$(sql "SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM keap.contacts c")"
runs_before=$(sql "SELECT count(*) FROM keapsync.runs")
before=$(ksim_stat .requests)
rc=0; "$KS" run >"$IT_TMP/bad-run.out" 2>"$IT_TMP/bad-run.err" || rc=$?
eq "text to bigint: run exits 2 too" 2 "$rc"
eq "text to bigint: run says it in one line" 1 "$(grep -c . "$IT_TMP/bad-run.err" || true)"
eq "text to bigint: run sends no request" "$before" "$(ksim_stat .requests)"
eq "text to bigint: run records no run" "$runs_before" "$(sql "SELECT count(*) FROM keapsync.runs")"
cp "$IT_TMP/before-bad.json" "$JOBS/contacts.json"

# ---- a path changed: refilled from data ------------------------------------------------
job '(.columns[] | select(.name == "email") | .path) = "email_addresses.1.email"'
migrate_step "path"
eq "path: exit 0" 0 "$RC"
eq "path: one line" 1 "$(lines 'column "email".*now reads "email_addresses.1.email" \(was "email_addresses.0.email"\)')"
truth_eq "path: email is the second address" contacts email "$(truth_text '{email_addresses,1,email}')"
fresh_check "path" contacts

# ---- the table renamed: moved, and the next run keeps it whole -------------------------
job '.table = "people"'
migrate_step "rename"
eq "rename: exit 0" 0 "$RC"
eq "rename: one line" 1 "$(lines 'table keap.contacts renamed to keap.people')"
eq "rename: the old table is gone" "" "$(sql "SELECT to_regclass('keap.contacts')")"
eq "rename: every row moved" "$N" "$(sql "SELECT count(*) FROM keap.people")"
before=$(ksim_stat .requests)
rc=0; "$KS" run >"$IT_TMP/run2.out" 2>&1 || rc=$?
eq "rename: the next run exits 0" 0 "$rc"
check "rename: the next run is incremental ($(( $(ksim_stat .requests) - before )) requests)" \
    test $(( $(ksim_stat .requests) - before )) -le 1
eq "rename: the table is still whole" "$N" "$(sql "SELECT count(*) FROM keap.people")"
fresh_check "rename" people

# ---- a column dropped: kept with a notice, then dropped with --drop-columns ------------
job 'del(.columns[] | select(.name == "score_value"))'
migrate_step "drop"
eq "drop: exit 0" 0 "$RC"
eq "drop: one notice" 1 "$(lines 'column "score_value".*no longer in the job; kept.*--drop-columns')"
eq "drop: the column is kept" text "$(col_type people score_value)"
truth_eq "drop: the kept column keeps its values" people score_value "$(truth_text '{ScoreValue}')"
migrate_step "drop, again"
eq "drop, again: the notice is not repeated" 0 "$(grep -c . "$ERR" || true)"
migrate_step "drop-columns" --drop-columns
eq "drop-columns: exit 0" 0 "$RC"
eq "drop-columns: one line" 1 "$(lines 'column "score_value".*dropped')"
eq "drop-columns: the column is gone" "" "$(col_type people score_value)"
job 'del(.columns[] | select(.name == "middle_name"))'
before=$(ksim_stat .requests)
rc=0; "$KS" run --drop-columns >"$IT_TMP/run3.out" 2>"$IT_TMP/run3.err" || rc=$?
eq "run --drop-columns: exit 0" 0 "$rc"
eq "run --drop-columns: drops before any request" 1 "$(grep -cE 'column "middle_name".*dropped' "$IT_TMP/run3.err" || true)"
eq "run --drop-columns: the column is gone" "" "$(col_type people middle_name)"
fresh_check "drop" people

# ---- bad cases: exit 2, one line, nothing written --------------------------------------
# expect_refused NAME PATTERN ARGS...: migrate ARGS exits 2 with one line matching PATTERN,
# and neither the tables nor the recorded shape change.
expect_refused() {
    local name=$1 pat=$2 s0 t0
    shift 2
    s0=$(shape)
    t0=$(tables)
    migrate_step "$name" "$@"
    eq "$name: exit 2" 2 "$RC"
    eq "$name: one line" 1 "$(grep -c . "$ERR" || true)"
    check "$name: the line says what and how [$(head -c 300 "$ERR")]" grep -qE "$pat" "$ERR"
    eq "$name: the shape is unchanged" "$s0" "$(shape)"
    eq "$name: the tables are unchanged" "$t0" "$(tables)"
}
cp "$BASE" "$IT_TMP/good.json"
sql "CREATE TABLE keap.clash (id bigint PRIMARY KEY, data jsonb NOT NULL)"
jq '.table = "clash"' "$IT_TMP/good.json" >"$JOBS/contacts.json"
expect_refused "rename onto a table that exists" 'cannot move table "people" of job "contacts" to "clash": table keap.clash already exists \(hint: .+\)'
sql "DROP TABLE keap.clash"
# Two changes, the second refused: the first is not applied either.
jq '.columns += [{"name": "phone2", "path": "phone_numbers.1.number", "type": "text"}] | (.columns[] | select(.name == "family_name") | .type) = "boolean"' "$IT_TMP/good.json" >"$JOBS/contacts.json"
expect_refused "an addition with a refused type change" 'cannot change column "family_name" of job "contacts" to boolean: value ".+" of record [0-9]+ does not convert'
jq '.id = {"path": "id", "type": "text"}' "$IT_TMP/good.json" >"$JOBS/contacts.json"
expect_refused "an id of another type" 'cannot change the id type of job "contacts": keap.people is keyed by it \(hint: .+\)'
cp "$IT_TMP/good.json" "$JOBS/contacts.json"
expect_refused "an unknown option" 'unknown option "--drop" for migrate' --drop
migrate_step "back to the good job"
eq "back to the good job: exit 0, nothing to do" "0:0" "$RC:$(grep -c . "$ERR" || true)"

# ---- a job seen the first time adopts its table: missing columns filled from data -------
sql "DELETE FROM keapsync.jobs WHERE job = 'contacts'"
job '.columns += [{"name": "phone2", "path": "phone_numbers.1.number", "type": "text"}]'
migrate_step "adopt"
eq "adopt: exit 0" 0 "$RC"
eq "adopt: only the missing column is reported" "1:1" \
   "$(lines 'column "phone2".* added .*filled from data'):$(grep -c . "$ERR" || true)"
truth_eq "adopt: phone2 is the second phone number" people phone2 "$(truth_text '{phone_numbers,1,number}')"
eq "adopt: the shape is recorded again" people "$(sql "SELECT shape->>'table' FROM keapsync.jobs WHERE job = 'contacts'")"

# ---- the end: every typed column against the ground truth ------------------------------
cols=$(jq -r '.columns[] | "\(.name)\t\(.path)\t\(.type)"' "$JOBS/contacts.json")
while IFS=$'\t' read -r name path type; do
    case "$path" in *'['*) continue ;; esac
    jpath="{$(echo "$path" | tr '.' ',')}"
    case "$type" in
        jsonb)       expr="t.doc #> '$jpath'" ;;
        timestamptz) expr="(t.doc #>> '$jpath')::timestamptz" ;;
        bigint)      expr="(t.doc #>> '$jpath')::bigint" ;;
        boolean)     expr="(t.doc #>> '$jpath')::boolean" ;;
        *)           expr="CASE WHEN jsonb_typeof(t.doc #> '$jpath') IN ('string', 'number', 'boolean') THEN t.doc #>> '$jpath' END" ;;
    esac
    truth_eq "end: column $name ($type) matches $path for every row" people "$name" "$expr"
done <<<"$cols"
# Migrations, shapes and helpers only: migrate without job files upgrades the schema alone.
rc=0; KEAPSYNC_JOBS="$IT_TMP/no-such-dir" "$KS" migrate >"$IT_TMP/nojobs.out" 2>&1 || rc=$?
eq "migrate without job files: exit 0" 0 "$rc"

it_done
