#!/usr/bin/env bash
# Every shipped job, end to end: `keapsync run` with no arguments on the real jobs/ folder
# syncs the whole simulated account under Keap's limits scaled down for time (keapsim and
# KEAPSYNC_LIMITS both at 40/s, 960/min). Each table is checked against keapsim's ground truth,
# read from the job file itself: every id, every typed column the served record has, the
# updated field (the hidden time where the list leaves it out unless asked), data exactly as
# served; contact_tags against each contact's tags; no 429. Then a custom field named by its
# label gets the value of the field the model gives that label.
. "$(dirname "$0")/lib.sh"

it_make_db
export PGOPTIONS="-c client_min_messages=warning"
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
export KEAPSYNC_JOBS="$KEAPSYNC_SRC/jobs"
export KEAPSYNC_LIMITS="40/s,960/min,30000/day"
size=300
it_keapsim --seed 11 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS"
api() { curl -sf -H "X-Keap-API-Key: $KEAP_API_KEY" "$KEAP_BASE_URL$1"; }

"$KS" migrate >/dev/null 2>&1
start=$(date +%s)
rc=0; "$KS" run >"$IT_TMP/run.out" 2>"$IT_TMP/run.err" || rc=$?
took=$(( $(date +%s) - start ))
cat "$IT_TMP/run.out" >&2
eq "run with no arguments exits 0" 0 "$rc"
check "the whole account took well under a minute (${took}s)" test "$took" -lt 50
eq "keapsim answered no 429" 0 "$(ksim_stat .rejected_429)"
njobs=$(ls "$KEAPSYNC_JOBS"/*.json | wc -l)
eq "every shipped job ran and is done" "$njobs" "$(grep -c '^job "[a-z_]*": done' "$IT_TMP/run.out" || true)"

# truth_to_pg TABLE RESOURCE VERSION [META]: keapsim's records as TABLE(doc jsonb).
truth_to_pg() {
    curl -sf "$KSIM_URL/__admin/truth?resource=$2&version=$3${4:+&meta=1}" >"$IT_TMP/$1.jsonl"
    sql "DROP TABLE IF EXISTS $1; CREATE TABLE $1 (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy $1 (doc) FROM '$IT_TMP/$1.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}
# cast TYPE EXPR-OF-JSONB: the SQL value a column of TYPE holds for the JSON value EXPR.
cast() {
    case "$1" in
        jsonb) echo "$2" ;;
        text) echo "CASE WHEN jsonb_typeof($2) IN ('object','array') THEN NULL ELSE $2 #>> '{}' END" ;;
        double | numeric) echo "($2 #>> '{}')::numeric" ;;
        *) echo "($2 #>> '{}')::$1" ;;
    esac
}

for f in "$KEAPSYNC_JOBS"/*.json; do
    job=$(jq -r .name "$f")
    [ "$(jq -r '.parent // empty' "$f")" = "" ] || continue
    table=$(jq -r '.table // .name' "$f")
    version=$(jq -r '.endpoint | split("/")[1]' "$f")
    idpath=$(jq -r '.id.path // "id"' "$f")
    truth_to_pg "truth_$job" "$job" "$version"
    n=$(sql "SELECT count(*) FROM truth_$job")
    check "$job: keapsim has records ($n)" test "$n" -gt 0
    eq "$job: row count equals the truth" "$n" "$(sql "SELECT count(*) FROM keap.$table")"
    eq "$job: every truth id landed, none other" 0 "$(sql "
        SELECT count(*) FROM (SELECT doc #>> '{$idpath}' id FROM truth_$job) t
        FULL JOIN keap.$table c ON c.id::text = t.id WHERE c.id IS NULL OR t.id IS NULL")"
    join="truth_$job t JOIN keap.$table c ON c.id::text = t.doc #>> '{$idpath}'"
    if [ "$(jq -r 'has("query")' "$f")" = false ]; then
        eq "$job: data equals the served record exactly" 0 "$(sql "SELECT count(*) FROM $join WHERE c.data <> t.doc")"
    fi
    # Every typed column the served record has, against the served value.
    checked=0
    while IFS=$'\t' read -r name path type; do
        jp="t.doc #> '{$(echo "$path" | tr '.' ',')}'"
        have=$(sql "SELECT count(*) FROM $join WHERE $jp IS NOT NULL")
        if [ "$have" -eq 0 ]; then
            # Only fields= (a job's query) may name members the default list leaves out.
            [ "$(jq -r 'has("query")' "$f")" = true ] ||
                eq "$job: column $name: path $path is in the served records" ">0" "$have"
            continue
        fi
        eq "$job: column $name ($type) equals $path" 0 \
            "$(sql "SELECT count(*) FROM $join WHERE $jp IS NOT NULL AND c.$name IS DISTINCT FROM $(cast "$type" "$jp")")"
        checked=$((checked + 1))
    done < <(jq -r '.columns[] | select(.path) | "\(.name)\t\(.path)\t\(.type)"' "$f")
    check "$job: typed columns compared ($checked)" test "$checked" -ge 2
    # The updated field: the served value, or the hidden time where the list leaves it out.
    upd=$(jq -r '.updated_field // empty' "$f")
    if [ -n "$upd" ]; then
        path=$(jq -r --arg u "$upd" '.columns[] | select(.name == $u) | .path' "$f")
        if [ "$(sql "SELECT count(*) FROM truth_$job WHERE doc #> '{$path}' IS NOT NULL")" -gt 0 ]; then
            bad=$(sql "SELECT count(*) FROM $join WHERE c.$upd IS DISTINCT FROM (t.doc #>> '{$path}')::timestamptz")
        else
            truth_to_pg "meta_$job" "$job" "$version" meta
            bad=$(sql "SELECT count(*) FROM meta_$job t LEFT JOIN keap.$table c ON c.id::text = t.doc->>'id'
                WHERE NOT (t.doc->>'deleted')::boolean
                  AND c.$upd IS DISTINCT FROM to_timestamp((t.doc->>'updated_ms')::numeric / 1000)")
        fi
        eq "$job: updated field $upd equals the truth for every row" 0 "$bad"
    fi
done

# contact_tags: each contact's tags, as its tag_ids say, with the dates its own list gives.
truth_to_pg truth_contact_list contacts v1
eq "contact_tags: every contact's tags landed, as its tag_ids say" 0 "$(sql "
    SELECT count(*) FROM truth_contact_list t
    WHERE COALESCE((SELECT array_agg(x.id ORDER BY x.id) FROM keap.contact_tags x WHERE x.contact_id = (t.doc->>'id')::bigint), '{}')
          IS DISTINCT FROM
          COALESCE((SELECT array_agg(v::bigint ORDER BY v::bigint) FROM jsonb_array_elements_text(t.doc->'tag_ids') v), '{}')")"
check "contact_tags: some contact has several tags" \
    test "$(sql "SELECT max(n) FROM (SELECT count(*) n FROM keap.contact_tags GROUP BY contact_id) s")" -ge 2
bad=0
for id in $(sql "SELECT contact_id FROM keap.contact_tags GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 12"); do
    want=$(api "/v1/contacts/$id/tags" | jq -c '[.tags[] | [.tag.id, .date_applied]] | sort')
    sql "DROP TABLE IF EXISTS want_tags; CREATE TABLE want_tags (doc jsonb); INSERT INTO want_tags VALUES ('$want')"
    diff=$(sql "SELECT count(*) FROM (SELECT (e->>0)::bigint id, (e->>1)::timestamptz d FROM want_tags, jsonb_array_elements(doc) e) w
        FULL JOIN (SELECT id, date_applied d FROM keap.contact_tags WHERE contact_id = $id) h USING (id)
        WHERE w.d IS DISTINCT FROM h.d")
    [ "$diff" = 0 ] || { bad=$((bad + 1)); it_log "contact $id: keapsim $want"; }
done
eq "contact_tags: tag ids and date_applied equal each sampled contact's own list" 0 "$bad"

# A custom field by its label: the column reads the field the model gives that label.
mkdir -p "$IT_TMP/cf"
cp "$KEAPSYNC_SRC/jobs/examples/contact_custom_fields.json" "$IT_TMP/cf/"
rc=0; KEAPSYNC_JOBS="$IT_TMP/cf" "$KS" run >"$IT_TMP/cf.out" 2>"$IT_TMP/cf.err" || rc=$?
eq "custom fields by label: run exits 0" 0 "$rc"
api /v1/contacts/model >"$IT_TMP/model.json"
eq "custom fields by label: every contact" "$size" "$(sql "SELECT count(*) FROM keap.contact_custom_fields")"
while IFS=$'\t' read -r name label type; do
    fid=$(jq -r --arg l "$label" '.custom_fields[] | select(.label == $l) | .id' "$IT_TMP/model.json")
    check "custom field \"$label\" is in the model (id $fid)" test -n "$fid"
    val="(SELECT e->'content' FROM jsonb_array_elements(t.doc->'custom_fields') e WHERE e->>'id' = '$fid')"
    eq "custom field \"$label\": column $name equals field $fid for every contact" 0 "$(sql "
        SELECT count(*) FROM truth_contact_list t JOIN keap.contact_custom_fields c ON c.id = (t.doc->>'id')::bigint
        WHERE c.$name IS DISTINCT FROM $(cast "$type" "$val")")"
    check "custom field \"$label\": some values are set" \
        test "$(sql "SELECT count($name) FROM keap.contact_custom_fields")" -gt 0
done < <(jq -r '.columns[] | select(.custom_field) | "\(.name)\t\(.custom_field)\t\(.type)"' "$IT_TMP/cf/contact_custom_fields.json")
eq "still no 429 (the model request was paced with the rest)" 0 "$(ksim_stat .rejected_429)"
it_done
