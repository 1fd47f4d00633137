#!/usr/bin/env bash
# Issue 5, requirement 1: record content Postgres would refuse or that stresses the pipeline.
# keapsim's content faults put a \u0000 escape ("nul"), 4-byte UTF-8 ("utf8") or a 1 MiB
# string ("long-string") at the start of the first record's given_name on a page. The rule
# for NUL (documented in keap.h): each \u0000 escape becomes U+FFFD, and is counted.
# For every fault the sync completes (exit 0), no row is missing against keapsim's truth, the
# affected values hold exactly the injected text (NUL as U+FFFD), every other record is stored
# exactly as served, and the printed NUL count equals the NULs keapsim injected.
# v1 (overlapping offset pages: a page's first record is the previous page's last, already
# stored, so only the first page's record lands changed) and v2 (every page's first record
# lands changed).
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=100
it_keapsim --seed 31 --size 1234 --api-key "$KEAP_API_KEY" --limits 20/s,1200/min,30000/day
export KEAPSYNC_LIMITS="20/s,1200/min,30000/day"
mkdir -p "$IT_TMP/v1" "$IT_TMP/v2"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/v1/contacts.json"
# Not incremental: this script is about content, v2_paging.sh about filtered token paging.
jq --argjson p "$page" '.page_size = $p | del(.incremental)' \
    "$KEAPSYNC_SRC/tests/integration/jobs/contacts_v2.json" >"$IT_TMP/v2/contacts_v2.json"

set_fault() { # SPEC: the only fault from now on
    curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
    curl -sf -X POST "$KSIM_URL/__admin/faults?spec=$1" | jq -e 'length == 1' >/dev/null
}

# run_phase NAME JOBDIR: a fresh database, migrate, run; sets RC, OUT, ERR, FIRED (faults
# keapsim injected during the run) and NUL (the count keapsync printed, 0 when none).
run_phase() {
    local name=$1 before
    it_make_db
    KEAPSYNC_JOBS="$2" "$KS" migrate >/dev/null
    before=$(ksim_stat .faults)
    OUT="$IT_TMP/$name.out" ERR="$IT_TMP/$name.err" RC=0
    KEAPSYNC_JOBS="$2" "$KS" run >"$OUT" 2>"$ERR" || RC=$?
    FIRED=$(($(ksim_stat .faults) - before))
    cat "$OUT" >&2
    grep -vE ' (INFO|WARNING): ' "$ERR" | head -20 >&2 || true
    NUL=$(sed -n 's/^job .*, \([0-9][0-9]*\) NUL characters replaced.*/\1/p' "$OUT")
    NUL=${NUL:-0}
    it_log "$name: keapsim injected $FIRED faults"
}

truth_v2_to_pg() {
    curl -sf "$KSIM_URL/__admin/truth?resource=contacts&version=v2" >"$IT_TMP/truth.v2.jsonl"
    sql "DROP TABLE IF EXISTS truth_v2; CREATE TABLE truth_v2 (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth_v2 (doc) FROM '$IT_TMP/truth.v2.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}

# check_rows NAME TABLE TRUTH IDCAST PREFIX_SQL: no row missing or extra; a row is "affected"
# when its given_name is PREFIX || the truth's given_name, and then data equals the truth with
# that given_name; every other row's data equals the truth exactly. Sets AFFECTED.
check_rows() {
    local name=$1 tbl=$2 truth=$3 cast=$4 prefix=$5 n
    n=$(sql "SELECT count(*) FROM $truth")
    eq "$name: row count equals the truth" "$n" "$(sql "SELECT count(*) FROM $tbl")"
    eq "$name: every truth id landed" 0 \
       "$(sql "SELECT count(*) FROM $truth t LEFT JOIN $tbl c ON c.id = (t.doc->>'id')$cast WHERE c.id IS NULL")"
    AFFECTED=$(sql "SELECT count(*) FROM $truth t JOIN $tbl c ON c.id = (t.doc->>'id')$cast
                    WHERE c.data->>'given_name' = ($prefix) || (t.doc->>'given_name')")
    eq "$name: every row is the served record (affected ones with the injected prefix)" 0 \
       "$(sql "SELECT count(*) FROM $truth t JOIN $tbl c ON c.id = (t.doc->>'id')$cast
               WHERE c.data <> CASE WHEN c.data->>'given_name' = ($prefix) || (t.doc->>'given_name')
                                    THEN jsonb_set(t.doc, '{given_name}', to_jsonb(c.data->>'given_name'))
                                    ELSE t.doc END")"
    eq "$name: the given_name column equals the stored record's" 0 \
       "$(sql "SELECT count(*) FROM $tbl WHERE given_name IS DISTINCT FROM data->>'given_name'")"
}

nul_prefix="'Nul' || U&'\\FFFD' || 'Byte '"

# ---- NUL, v1
set_fault "nul:1:/v1/contacts"
run_phase nul-v1 "$IT_TMP/v1"
eq "nul v1: run exits 0" 0 "$RC"
# Every committed page carried one NUL in its first record; keapsim also counts the fault on
# a page read past the end (empty: nowhere to put a NUL) or discarded unread.
pages=$(sed -n 's/^job "contacts": [a-z]*, [0-9]* rows written, \([0-9]*\) pages.*/\1/p' "$OUT")
check "nul v1: keapsim injected NULs ($FIRED)" test "$FIRED" -gt 0
eq "nul v1: printed NUL count equals the pages committed, each carrying one" "${pages:-none}" "$NUL"
check "nul v1: no more NULs counted than keapsim sent ($NUL <= $FIRED)" test "$NUL" -le "$FIRED"
ksim_truth_to_pg contacts
check_rows "nul v1" keap.contacts truth_contacts "::bigint" "$nul_prefix"
check "nul v1: some stored value holds U+FFFD ($AFFECTED)" test "$AFFECTED" -gt 0
eq "nul v1: the first record of the first page is one" \
   "$(sql "SELECT min((doc->>'id')::bigint) FROM truth_contacts")" \
   "$(sql "SELECT min(id) FROM keap.contacts WHERE strpos(given_name, U&'\\FFFD') > 0")"
eq "nul v1: no NUL escape survives in any stored record" 0 \
   "$(sql "SELECT count(*) FROM keap.contacts WHERE strpos(data::text, 'u0000') > 0")"

# ---- NUL, v2: every page's first record lands, so stored U+FFFD values = pages = NULs.
set_fault "nul:1:/v2/contacts"
run_phase nul-v2 "$IT_TMP/v2"
eq "nul v2: run exits 0" 0 "$RC"
check "nul v2: keapsim injected NULs ($FIRED)" test "$FIRED" -gt 0
eq "nul v2: printed NUL count equals the NULs injected (a v2 read never goes past the end)" "$FIRED" "$NUL"
truth_v2_to_pg
check_rows "nul v2" keap.contacts_v2 truth_v2 "" "$nul_prefix"
eq "nul v2: one stored value with U+FFFD per NUL injected" "$FIRED" "$AFFECTED"
eq "nul v2: pages committed equal the NULs injected" "$FIRED" \
   "$(sed -n 's/^job "contacts_v2": [a-z]*, [0-9]* rows written, \([0-9]*\) pages.*/\1/p' "$OUT")"

# ---- 4-byte UTF-8, v2 (at half the pages)
set_fault "utf8:0.5:/v2/contacts"
run_phase utf8 "$IT_TMP/v2"
eq "utf8: run exits 0" 0 "$RC"
check "utf8: keapsim injected 4-byte characters ($FIRED)" test "$FIRED" -gt 0
eq "utf8: nothing reported as NUL" 0 "$NUL"
truth_v2_to_pg
check_rows "utf8" keap.contacts_v2 truth_v2 "" "U&'\\+01F600 \\+01F389 '"
eq "utf8: one stored value with the characters per page injected" "$FIRED" "$AFFECTED"
eq "utf8: the characters are stored as 4-byte UTF-8 (not escapes or replacements)" 0 \
   "$(sql "SELECT count(*) FROM keap.contacts_v2 WHERE given_name LIKE U&'\\+01F600%'
           AND octet_length(left(given_name, 1)) <> 4")"

# ---- 1 MiB strings, v2 (at half the pages)
set_fault "long-string:0.5:/v2/contacts"
run_phase long "$IT_TMP/v2"
eq "long-string: run exits 0" 0 "$RC"
check "long-string: keapsim injected long strings ($FIRED)" test "$FIRED" -gt 0
truth_v2_to_pg
long_prefix="(SELECT string_agg('LongStringxxxxx ', '') FROM generate_series(1, 1024 * 1024 / 16))"
check_rows "long-string" keap.contacts_v2 truth_v2 "" "$long_prefix"
eq "long-string: one stored 1 MiB value per page injected" "$FIRED" "$AFFECTED"

it_done
