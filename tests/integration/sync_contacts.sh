#!/usr/bin/env bash
# Walking skeleton, end to end: 5,000 contacts from keapsim into a real Postgres.
# Compares every id and every mapped field with keapsim's ground truth, checks that keapsim
# never had to answer 429, and that an immediate second run spends at most one request.
. "$(dirname "$0")/lib.sh"

it_make_db
# Contacts alone: the shipped folder's other jobs (tests/integration/sync_all.sh covers them)
# would add a request per contact for its tags.
mkdir -p "$IT_TMP/jobs"
cp "$KEAPSYNC_SRC/jobs/contacts.json" "$IT_TMP/jobs/"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
it_keapsim --seed 42 --size 5000 --api-key "$KEAP_API_KEY" --limits 10/s,240/min,30000/day

check "migrate" "$KS" migrate
check "migrate is idempotent" "$KS" migrate
eq "schema version recorded once per migration" \
   "$(sql "SELECT count(DISTINCT version) FROM keapsync.migrations")" \
   "$(sql "SELECT count(*) FROM keapsync.migrations")"

before=$(ksim_stat .requests)
rc=0; "$KS" run >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" || rc=$?
cat "$IT_TMP/run1.out" >&2
eq "first run exits 0" 0 "$rc"
after=$(ksim_stat .requests)
it_log "first run spent $((after - before)) requests"

ksim_truth_to_pg contacts
truth_n=$(sql "SELECT count(*) FROM truth_contacts")
eq "keapsim served the configured tenant" 5000 "$truth_n"
eq "row count equals the ground truth" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "every truth id landed" 0 \
   "$(sql "SELECT count(*) FROM truth_contacts t LEFT JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.id IS NULL")"
eq "no id that keapsim does not have" 0 \
   "$(sql "SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id)")"
eq "data jsonb equals the served record exactly" 0 \
   "$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data <> t.doc")"

# Every typed column against the served value, read from the job definition itself.
cols=$(jq -r '.columns[] | "\(.name)\t\(.path)\t\(.type)"' "$KEAPSYNC_JOBS/contacts.json")
while IFS=$'\t' read -r name path type; do
    # path "a.0.b" -> jsonb path '{a,0,b}'
    jpath="{$(echo "$path" | tr '.' ',')}"
    case "$type" in
        jsonb)       expr="t.doc #> '$jpath'" ;;
        timestamptz) expr="(t.doc #>> '$jpath')::timestamptz" ;;
        bigint)      expr="(t.doc #>> '$jpath')::bigint" ;;
        boolean)     expr="(t.doc #>> '$jpath')::boolean" ;;
        double|numeric) expr="(t.doc #>> '$jpath')::numeric" ;;
        *)           expr="t.doc #>> '$jpath'" ;;
    esac
    [ "$type" = double ] && col="c.$name::numeric" || col="c.$name"
    [ "$type" = text ] && expr="CASE WHEN jsonb_typeof(t.doc #> '$jpath') IN ('object','array') THEN NULL ELSE $expr END"
    bad=$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE $col IS DISTINCT FROM $expr")
    eq "column $name ($type) matches $path for every row" 0 "$bad"
done <<<"$cols"
eq "synced_at set on every row" 0 "$(sql "SELECT count(*) FROM keap.contacts WHERE synced_at IS NULL")"
eq "keapsim answered no 429" 0 "$(ksim_stat .rejected_429)"
check "checkpoint saved with a watermark" \
   test -n "$(sql "SELECT state->>'watermark_ms' FROM keapsync.checkpoints WHERE job = 'contacts' AND state->'window' = 'null'::jsonb")"

# An immediate second run: one request per job, nothing rewritten.
njobs=$(ls "$KEAPSYNC_JOBS"/*.json | wc -l)
before=$(ksim_stat .requests)
rc=0; "$KS" run >"$IT_TMP/run2.out" 2>&1 || rc=$?
after=$(ksim_stat .requests)
eq "second run exits 0" 0 "$rc"
check "second run spends at most one request per job ($((after - before)) for $njobs)" \
   test $((after - before)) -le "$njobs"
eq "second run keeps the row count" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts")"

it_done
