#!/usr/bin/env bash
# SQL identifiers from job files, against a real Postgres. Hostile table, column and job names
# (an injection attempt, spaces, quotes, backslashes, unicode, upper case, 64 bytes, empty, a
# leading digit, keapsync's own columns) are refused at load: exit 2, one line naming the file
# and the field, nothing written, no table touched. Names the engine accepts that SQL holds
# special (reserved words: select, user, order, from, group, table; a 63-byte name, the
# longest Postgres keeps) work, quoted: the rows equal keapsim's truth, and every other table
# is as it was.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
it_keapsim --seed 5 --size 120 --api-key "$KEAP_API_KEY" --no-limits --quiet
"$KS" migrate >/dev/null 2>&1 || { echo "migrate failed" >&2; exit 1; }

# Sentinels an injection would reach: public.y and keap.y, one row each, both owned by the
# role keapsync runs as (so an injected DROP could drop them). The role may not create in
# public (docs/POSTGRES_ROLE.md): the admin makes public.y and gives it to the role.
role=$(sql "SELECT current_user")
it_admin_sql "CREATE TABLE public.y (v int); INSERT INTO public.y VALUES (1); ALTER TABLE public.y OWNER TO \"$role\""
sql "CREATE TABLE keap.y (v int); INSERT INTO keap.y VALUES (2)"
# Every table of the database, with its columns: what "nothing touched" compares.
catalog() {
    sql "SELECT string_agg(table_schema || '.' || table_name || '.' || column_name, ',' ORDER BY 1)
         FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
}
sentinels() { sql "SELECT (SELECT string_agg(v::text, ',') FROM public.y) || '/' || (SELECT string_agg(v::text, ',') FROM keap.y)"; }
state() {
    sql "SELECT (SELECT count(*) FROM keapsync.checkpoints) || ' ' || (SELECT count(*) FROM keapsync.runs) || ' ' || (SELECT count(*) FROM keapsync.jobs)"
}
cat0=$(catalog)
state0=$(state)

# A job file reading contacts into TABLE with one column NAME: job JOB in DIR/JOB.json.
job_file() { # job_file DIR JOB TABLE COLNAME
    mkdir -p "$1"
    jq -n --arg name "$2" --arg table "$3" --arg col "$4" '{
        name: $name, endpoint: "/v1/contacts", order: "id", page_size: 1000, table: $table,
        columns: [{name: $col, path: "given_name", type: "text"},
                  {name: "family_name", path: "family_name", type: "text"}]}' >"$1/$2.json"
}

long64=$(printf 'a%.0s' $(seq 1 64))
long63=$(printf 'b%.0s' $(seq 1 63))
hostile=(
    'x"; DROP TABLE y;--'
    "x'; DROP TABLE y;--"
    'y; DROP TABLE keap.y'
    'with space'
    'tab	name'
    'quo"te'
    "apos'trophe"
    'back\slash'
    'trailing\'
    'tëst'
    '表'
    'Contacts'
    'SELECT'
    "$long64"
    ''
    '1abc'
    '9'
    'a-b'
    'a.b'
    'keap.y'
    '$1'
    'null\u0000byte'
)

n=0
for h in "${hostile[@]}"; do
    n=$((n + 1))
    for field in table column; do
        dir="$IT_TMP/bad_${field}_$n"
        if [ "$field" = table ]; then job_file "$dir" job "$h" given_name; else job_file "$dir" job ok "$h"; fi
        rc=0
        KEAPSYNC_JOBS="$dir" "$KS" run >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
        what="$field $(printf '%q' "$h")"
        eq "$what: run exits 2" 2 "$rc"
        eq "$what: one line on stderr" 1 "$(wc -l <"$IT_TMP/err")"
        if [ "$field" = table ]; then pat="\"$dir/job.json\": table: "; else pat="\"$dir/job.json\": columns\\[0\\]\\.name: "; fi
        check "$what: the line names the file and the field" grep -q "$pat" "$IT_TMP/err"
        check "$what: and says what is wrong" grep -qE "$pat(.* is not a valid identifier \\(\\[a-z_\\]\\[a-z0-9_\\]\\{0,62\\}\\)|must not be empty)" "$IT_TMP/err"
        rc=0
        KEAPSYNC_JOBS="$dir" "$KS" check >/dev/null 2>"$IT_TMP/err" || rc=$?
        eq "$what: check exits 2 too" 2 "$rc"
    done
done
# keapsync's own columns may not be a job's.
for r in id data synced_at deleted_at; do
    job_file "$IT_TMP/res_$r" job ok "$r"
    rc=0; KEAPSYNC_JOBS="$IT_TMP/res_$r" "$KS" run >/dev/null 2>"$IT_TMP/err" || rc=$?
    eq "column $r: exit 2" 2 "$rc"
    check "column $r: said to be reserved" grep -q "\"$r\" is reserved" "$IT_TMP/err"
done
# A job name (from its file name) that is not an identifier.
mkdir -p "$IT_TMP/bad_name"
job_file "$IT_TMP/bad_name" 'x"; DROP TABLE y;--' ok given_name
rc=0; KEAPSYNC_JOBS="$IT_TMP/bad_name" "$KS" run >/dev/null 2>"$IT_TMP/err" || rc=$?
eq "job name from a hostile file name: exit 2" 2 "$rc"
check "job name: the line names the field" grep -q '": name: ' "$IT_TMP/err"

eq "no refused job touched a table or a column (catalog unchanged)" "$cat0" "$(catalog)"
eq "the sentinels keep their rows" "1/2" "$(sentinels)"
eq "no refused job wrote a checkpoint, a run or a job shape" "$state0" "$(state)"

# Accepted names that SQL holds special: they work, quoted.
good="$IT_TMP/good"
job_file "$good" select select user
job_file "$good" "$long63" "$long63" order
jq '.columns += [{name: "from", path: "email_addresses.0.email", type: "text"},
                 {name: "group", path: "id", type: "bigint"},
                 {name: "table", path: "date_created", type: "timestamptz"}]' \
    "$good/select.json" >"$good/select.tmp" && mv "$good/select.tmp" "$good/select.json"
sed -i 's/"name": "family_name"/"name": "_x"/' "$good/$long63.json"
rc=0; KEAPSYNC_JOBS="$good" "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "check accepts reserved words and a 63-byte name" 0 "$rc"
rc=0; KEAPSYNC_JOBS="$good" "$KS" migrate >"$IT_TMP/out" 2>&1 || rc=$?
eq "migrate with reserved names exits 0" 0 "$rc"
rc=0; KEAPSYNC_JOBS="$good" "$KS" run >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
cat "$IT_TMP/err" >&2
eq "run with reserved names exits 0" 0 "$rc"

ksim_truth_to_pg contacts
truth=$(sql "SELECT count(*) FROM truth_contacts")
eq "keap.\"select\" holds every contact" "$truth" "$(sql 'SELECT count(*) FROM keap."select"')"
eq "keap.<63 bytes> holds every contact" "$truth" "$(sql "SELECT count(*) FROM keap.\"$long63\"")"
eq "the 63-byte table kept its whole name" 1 \
    "$(sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND tablename = '$long63'")"
eq "column \"user\" equals given_name" 0 \
    "$(sql 'SELECT count(*) FROM truth_contacts t JOIN keap."select" c ON c.id = (t.doc->>'"'"'id'"'"')::bigint WHERE c."user" IS DISTINCT FROM t.doc->>'"'"'given_name'"'"'')"
eq "column \"from\" equals the first email" 0 \
    "$(sql 'SELECT count(*) FROM truth_contacts t JOIN keap."select" c ON c.id = (t.doc->>'"'"'id'"'"')::bigint WHERE c."from" IS DISTINCT FROM t.doc#>>'"'"'{email_addresses,0,email}'"'"'')"
eq "column \"group\" (bigint) equals the id" 0 "$(sql 'SELECT count(*) FROM keap."select" WHERE "group" IS DISTINCT FROM id')"
eq "column \"table\" is a timestamptz" timestamptz \
    "$(sql "SELECT data_type FROM information_schema.columns WHERE table_schema = 'keap' AND table_name = 'select' AND column_name = 'table'" | sed 's/timestamp with time zone/timestamptz/')"
eq "column \"order\" of the 63-byte table equals given_name" 0 \
    "$(sql "SELECT count(*) FROM truth_contacts t JOIN keap.\"$long63\" c ON c.id = (t.doc->>'id')::bigint WHERE c.\"order\" IS DISTINCT FROM t.doc->>'given_name'")"
eq "the sentinels keep their rows after the run" "1/2" "$(sentinels)"
eq "no other table appeared in keap" "$(printf '%s\n' "$long63" select y | sort | tr '\n' ' ')" \
    "$(sql "SELECT tablename FROM pg_tables WHERE schemaname = 'keap' ORDER BY 1" | sort | tr '\n' ' ')"
# A second run (checkpoints keyed by the names, shapes compared) changes nothing.
rc=0; KEAPSYNC_JOBS="$good" "$KS" run >/dev/null 2>&1 || rc=$?
eq "second run with reserved names exits 0" 0 "$rc"
eq "second run keeps the row count" "$truth" "$(sql 'SELECT count(*) FROM keap."select"')"

it_done
