#!/usr/bin/env bash
# valgrind memcheck on an end-to-end sync (issue 13): `keapsync migrate` and `keapsync run` of
# a small tenant (v1 contacts, their tags as a child stream, v2 contacts, and a run after,
# with nothing left to do) under valgrind --leak-check=full, a definite leak counting as an
# error. Each must exit 0 with 0 errors, and the table must equal keapsim's truth.
# Without valgrind the test is skipped (exit 77; install-deps.sh --tests installs it).
. "$(dirname "$0")/lib.sh"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind_sync: SKIPPED: valgrind is not installed (deploy/install-deps.sh --tests installs it)"
    exit 77
fi
if it_sanitized; then
    echo "valgrind_sync: SKIPPED: $KS is built with AddressSanitizer, which valgrind cannot run"
    exit 77
fi

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
size=200
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 50 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
jq '.page_size = 5 | del(.refresh_hours)' "$KEAPSYNC_SRC/jobs/contact_tags.json" >"$IT_TMP/jobs/contact_tags.json"
jq '.page_size = 50' "$KEAPSYNC_SRC/tests/integration/jobs/contacts_v2.json" >"$IT_TMP/jobs/contacts_v2.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS=0/s,0/min,0/day
it_keapsim --seed 9 --size "$size" --api-key "$KEAP_API_KEY" --no-limits
it_make_db

# vg NAME ARGS...: keapsync ARGS under valgrind; sets RC and ERRORS (memcheck's count).
vg() {
    local name=$1
    shift
    RC=0
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite --track-origins=yes --log-file="$IT_TMP/$name.vg" \
        "$KS" "$@" >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err" || RC=$?
    ERRORS=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$IT_TMP/$name.vg" | tail -1)
    it_log "$name: exit $RC, $ERRORS valgrind errors"
    if [ "$RC" -ne 0 ] || [ "${ERRORS:-x}" != 0 ]; then
        grep -vE '^==[0-9]+== *$' "$IT_TMP/$name.vg" | head -60 >&2
        tail -n 10 "$IT_TMP/$name.err" >&2
    fi
    eq "$name: exit 0 under valgrind" 0 "$RC"
    eq "$name: valgrind found 0 errors (definite leaks included)" 0 "${ERRORS:-none}"
    check "$name: valgrind checked for leaks" grep -q 'LEAK SUMMARY\|All heap blocks were freed' "$IT_TMP/$name.vg"
}

vg migrate migrate
vg sync run
cat "$IT_TMP/sync.out" >&2
ksim_truth_to_pg contacts
eq "contacts equal keapsim's truth" 0 \
    "$(sql "SELECT count(*) FROM truth_contacts t FULL JOIN keap.contacts c
            ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
eq "every contact" "$size" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "every contact's tags" 0 "$(sql "
    SELECT count(*) FROM truth_contacts t
    WHERE COALESCE((SELECT array_agg(c.id ORDER BY c.id) FROM keap.contact_tags c
                     WHERE c.contact_id = (t.doc->>'id')::bigint), '{}')
          IS DISTINCT FROM
          COALESCE((SELECT array_agg(x::bigint ORDER BY x::bigint)
                    FROM jsonb_array_elements_text(t.doc->'tag_ids') x), '{}')")"
eq "v2 contacts: every one" "$size" "$(sql "SELECT count(*) FROM keap.contacts_v2")"
vg again run
vg status status
it_done
