#!/usr/bin/env bash
# A child stream is complete only after a pass over a complete parent. Run before its
# parent, after it, and while the parent is incomplete, the child table ends equal to
# keapsim's truth, and no pass is marked complete (fresh) over a parent that was not.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 50' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
# Fresh for a day once complete: a pass wrongly marked complete would hide the gap.
jq '.page_size = 1000 | .refresh_hours = 24' "$KEAPSYNC_SRC/jobs/contact_tags.json" \
    >"$IT_TMP/jobs/contact_tags.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
limits="100/s,6000/min,30000/day"
export KEAPSYNC_LIMITS="$limits"
it_keapsim --seed 9 --size 150 --api-key "$KEAP_API_KEY" --limits "100/s,6000/min,0/day"

# The child table's live rows against the truth's tag_ids, for every contact: differences.
tags_off() { # [WHERE ...]: only the truth's contacts that match
    sql "SELECT count(*) FROM (SELECT * FROM truth_contacts t ${1:-}) t
         WHERE COALESCE((SELECT array_agg(c.id ORDER BY c.id) FROM keap.contact_tags c
                          WHERE c.contact_id = (t.doc->>'id')::bigint AND c.deleted_at IS NULL), '{}')
               IS DISTINCT FROM
               COALESCE((SELECT array_agg(x::bigint ORDER BY x::bigint)
                         FROM jsonb_array_elements_text(t.doc->'tag_ids') x), '{}')"
}
window_of() { sql "SELECT COALESCE((SELECT (state->'window' <> 'null'::jsonb)::text FROM keapsync.checkpoints WHERE job = '$1'), 'none')"; }
run_ks() { # OUT OFFSET ARGS...: runs keapsync at wall clock OFFSET, returns its exit code
    local out=$1 off=$2 rc=0
    shift 2
    it_faketime "$off" "$KS" "$@" >"$IT_TMP/$out.out" 2>"$IT_TMP/$out.err" || rc=$?
    return $rc
}

# ---- before: the child alone, its parent never run
it_make_db
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
rc=0; run_ks before +0 run --only contact_tags || rc=$?
eq "the child before its parent does not claim success" 1 "$rc"
check "it says the parent has not completed a pass" \
    grep -q 'parent job "contacts" has not completed a pass' "$IT_TMP/before.err"
eq "it wrote no child rows" 0 "$(sql "SELECT count(*) FROM keap.contact_tags")"
check "and marked no pass complete" test "$(window_of contact_tags)" != false
rc=0; run_ks before2 +0 run || rc=$?
eq "then a full run exits 0" 0 "$rc"
eq "and the child table equals the truth" 0 "$(tags_off)"
eq "its pass is complete" false "$(window_of contact_tags)"

# ---- after: the parent alone, then the child alone
it_make_db
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
rc=0; run_ks after1 +0 run --only contacts || rc=$?
eq "the parent alone exits 0" 0 "$rc"
rc=0; run_ks after2 +0 run --only contact_tags || rc=$?
eq "then the child alone exits 0" 0 "$rc"
eq "and the child table equals the truth" 0 "$(tags_off)"
eq "its pass is complete" false "$(window_of contact_tags)"

# ---- the parent incomplete: stopped at the day's budget after two of its pages
it_make_db
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
rc=0; KEAPSYNC_LIMITS="100/s,6000/min,2/day" run_ks inc1 +0 run --only contacts || rc=$?
eq "the parent stops at the budget" 75 "$rc"
eq "its window is still open" true "$(window_of contacts)"
have=$(sql "SELECT count(*) FROM keap.contacts")
check "part of the parents are in ($have of 150)" test "$have" -gt 0 -a "$have" -lt 150
rc=0; run_ks inc2 +1d run --only contact_tags || rc=$?
eq "the child over an incomplete parent does not claim success" 1 "$rc"
check "it names the parent" grep -q 'parent job "contacts" has not completed a pass' "$IT_TMP/inc2.err"
eq "its pass stays open" true "$(window_of contact_tags)"
eq "it read every parent there was: their tags equal the truth" 0 "$(tags_off "WHERE (t.doc->>'id')::bigint IN (SELECT id FROM keap.contacts)")"
rc=0; run_ks inc3 +2d run || rc=$?
eq "a full run the day after exits 0" 0 "$rc"
check "the child saw its parent complete during its pass" \
    grep -q 'its parent completed during this pass' "$IT_TMP/inc3.err"
eq "every parent is in" 150 "$(sql "SELECT count(*) FROM keap.contacts")"
eq "and the child table equals the truth" 0 "$(tags_off)"
eq "its pass is complete" false "$(window_of contact_tags)"
rc=0; run_ks inc4 +2d run || rc=$?
eq "a run right after exits 0" 0 "$rc"
check "and finds the child fresh" grep -q 'job "contact_tags": fresh' "$IT_TMP/inc4.err"

it_done
