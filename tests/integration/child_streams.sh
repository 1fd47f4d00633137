#!/usr/bin/env bash
# Child streams: one list per parent (contacts' tags and emails), run after the parent in the
# same run, checked against keapsim; then a fan-out that needs several days of quota resumes
# each day at the next parent and ends with the same rows for about the same requests.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM"
size=150
mkdir -p "$IT_TMP/jobs"
# no delete sweep: this test counts the requests of the child streams
jq '.page_size = 100 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
# Two tags a page, so contacts with more tags need more than one request.
# (refresh_hours off: the shipped 24 h would make every run after the first one skip it.)
jq '.page_size = 2 | del(.refresh_hours)' "$KEAPSYNC_SRC/jobs/contact_tags.json" >"$IT_TMP/jobs/contact_tags.json"
cp "$KEAPSYNC_SRC/jobs/examples/contact_emails.json" "$IT_TMP/jobs/"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="100/s,6000/min,30000/day"
it_keapsim --seed 5 --size "$size" --api-key "$KEAP_API_KEY" --limits "$KEAPSYNC_LIMITS"
port=${KSIM_URL##*:}

# ---- one clean run
it_make_db
clean_db=$DATABASE_URL
"$KS" migrate >/dev/null
before=$(ksim_stat .requests)
rc=0; "$KS" run >"$IT_TMP/clean.out" 2>"$IT_TMP/clean.err" || rc=$?
cat "$IT_TMP/clean.out" >&2
clean_requests=$(( $(ksim_stat .requests) - before ))
eq "clean run exits 0" 0 "$rc"
eq "every contact synced" "$size" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "every contact's tags landed, as its tag_ids say" 0 "$(sql "
    SELECT count(*) FROM keap.contacts c
    WHERE COALESCE((SELECT array_agg(t.id ORDER BY t.id) FROM keap.contact_tags t WHERE t.contact_id = c.id), '{}')
          IS DISTINCT FROM
          COALESCE((SELECT array_agg(x::bigint ORDER BY x::bigint) FROM jsonb_array_elements_text(c.tag_ids) x), '{}')")"
check "some contact has more tags than a page holds" \
    test "$(sql "SELECT max(n) FROM (SELECT count(*) n FROM keap.contact_tags GROUP BY contact_id) s")" -gt 2
# Emails: compare a sample of parents with what keapsim serves for them.
bad=0
for id in $(sql "SELECT id FROM keap.contacts ORDER BY id LIMIT 25"); do
    want=$(curl -sf -H "X-Keap-API-Key: $KEAP_API_KEY" "$KEAP_BASE_URL/v1/contacts/$id/emails" | jq -c '[.emails[].id] | sort')
    have=$(sql "SELECT COALESCE(json_agg(id ORDER BY id), '[]') FROM keap.contact_emails WHERE contact_id = $id" | tr -d ' ')
    [ "$want" = "$have" ] || { bad=$((bad + 1)); it_log "contact $id: keapsim $want, postgres $have"; }
done
eq "sampled contacts' emails equal keapsim's" 0 "$bad"
check "each parent cost at least one request per child job" \
    test "$clean_requests" -ge $(( 2 * size ))
eq "child windows closed" 0 "$(sql "SELECT count(*) FROM keapsync.checkpoints WHERE job LIKE 'contact_%' AND state->'window' <> 'null'::jsonb")"
clean_sum=$(sql "SELECT md5(string_agg(contact_id || ':' || id || ':' || data::text, ',' ORDER BY contact_id, id)) FROM keap.contact_tags")
job_requests() { sed -n "s/^job \"$1\": .* \([0-9]*\) requests.*/\1/p" "$IT_TMP/clean.out"; }
clean_tags=$(( $(job_requests contacts) + $(job_requests contact_tags) ))

# ---- refresh_hours: a complete fan-out is fresh for that long, then read again
for j in contact_tags contact_emails; do
    jq '.refresh_hours = 1' "$KEAPSYNC_JOBS/$j.json" >"$IT_TMP/$j.json" && mv "$IT_TMP/$j.json" "$KEAPSYNC_JOBS/"
done
before=$(ksim_stat .requests)
rc=0; "$KS" run >"$IT_TMP/fresh.out" 2>"$IT_TMP/fresh.err" || rc=$?
eq "a run within refresh_hours exits 0" 0 "$rc"
eq "within refresh_hours the child streams send nothing (contacts: one, its empty window)" 1 \
    $(( $(ksim_stat .requests) - before ))
eq "both child streams are reported fresh" 2 "$(grep -c 'fresh, its last complete pass' "$IT_TMP/fresh.err" || true)"
# ---- after a complete pass, a child stream reads only the parents written since it began
# Some contacts change (tags may come and go); the next pass reads those and no others, and a
# tag a contact no longer has is marked deleted, never removed.
ksim_truth_to_pg contacts
sql "CREATE TABLE truth_before AS SELECT (doc->>'id')::bigint id, doc->>'last_updated' lu, doc->'tag_ids' tags FROM truth_contacts"
curl -sf -X POST "$KSIM_URL/__admin/mutate?updates=15" >/dev/null
ksim_truth_to_pg contacts
changed=$(sql "SELECT count(*) FROM truth_contacts t JOIN truth_before b ON b.id = (t.doc->>'id')::bigint WHERE b.lu IS DISTINCT FROM t.doc->>'last_updated'")
# contact_tags reads two tags a page: a contact with k tags costs k/2 + 1 requests.
want_tags=$(sql "SELECT COALESCE(sum(jsonb_array_length(t.doc->'tag_ids') / 2 + 1), 0) FROM truth_contacts t JOIN truth_before b ON b.id = (t.doc->>'id')::bigint WHERE b.lu IS DISTINCT FROM t.doc->>'last_updated'")
gone=$(sql "SELECT count(*) FROM truth_before b JOIN truth_contacts t ON b.id = (t.doc->>'id')::bigint, jsonb_array_elements_text(b.tags) x WHERE NOT (t.doc->'tag_ids' @> to_jsonb(x::bigint))")
check "some contacts changed ($changed)" test "$changed" -gt 0
before=$(ksim_stat .requests)
rc=0; it_faketime "+2h" "$KS" run >"$IT_TMP/stale.out" 2>"$IT_TMP/stale.err" || rc=$?
cat "$IT_TMP/stale.out" >&2
eq "two hours later the run exits 0" 0 "$rc"
stale_req() { sed -n "s/^job \"$1\": .* \([0-9]*\) requests.*/\1/p" "$IT_TMP/stale.out"; }
eq "two hours later contact_tags reads only the $changed changed contacts" "$want_tags" "$(stale_req contact_tags)"
eq "two hours later contact_emails reads only the $changed changed contacts" "$changed" "$(stale_req contact_emails)"
eq "every contact's live tags equal keapsim's truth" 0 "$(sql "
    SELECT count(*) FROM truth_contacts t
    WHERE COALESCE((SELECT array_agg(c.id ORDER BY c.id) FROM keap.contact_tags c
                     WHERE c.contact_id = (t.doc->>'id')::bigint AND c.deleted_at IS NULL), '{}')
          IS DISTINCT FROM
          COALESCE((SELECT array_agg(x::bigint ORDER BY x::bigint) FROM jsonb_array_elements_text(t.doc->'tag_ids') x), '{}')")"
eq "each tag a contact lost is marked deleted, not removed" "$gone" \
    "$(sql "SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NOT NULL")"
check "some tag was lost, so the sweep was exercised ($gone)" test "$gone" -gt 0
sql "DROP TABLE truth_before"

# ---- contacts and their tags again, on a budget of a third of that a day
budget=$(( clean_tags / 3 ))
export KEAPSYNC_LIMITS="100/s,6000/min,$budget/day"
it_make_db
"$KS" migrate >/dev/null
kill "$KSIM_PID"; wait "$KSIM_PID" 2>/dev/null || true
total=0
for day in 0 1 2 3 4 5; do
    it_keapsim_at "+${day}d" "$port" --seed 5 --size "$size" --api-key "$KEAP_API_KEY" \
        --limits "$KEAPSYNC_LIMITS"
    pid=$KSIM_PID
    rc=0; KEAPSYNC_LOG_LEVEL=${IT_LOG_LEVEL:-info} it_faketime "+${day}d" timeout 60 "$KS" run --only contacts,contact_tags >"$IT_TMP/day.$day.out" 2>&1 || rc=$?
    [ -z "${IT_DEBUG:-}" ] || cp "$IT_TMP/day.$day.out" /tmp/cs-day.$day.out
    sent=$(ksim_stat .requests)
    total=$(( total + sent ))
    eq "day $day: no 429" 0 "$(ksim_stat .rejected_429)"
    it_log "day $day: exit $rc, $sent requests, checkpoint $(sql "SELECT state->'window' FROM keapsync.checkpoints WHERE job = 'contact_tags'")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    [ "$rc" -eq 75 ] || break
    check "day $day: stopped at the budget" test "$sent" -le "$budget"
done
eq "the fan-out finished" 0 "$rc"
check "it took more than one day" test "$day" -ge 2
eq "same tag rows as the clean run" "$clean_sum" \
    "$(sql "SELECT md5(string_agg(contact_id || ':' || id || ':' || data::text, ',' ORDER BY contact_id, id)) FROM keap.contact_tags")"
# Each later day costs contacts one request (an empty incremental window), and each stop may
# lose the pages the child had in flight (its pipeline holds at most 4).
check "resuming re-read little: $total requests over $((day + 1)) days vs $clean_tags in one run" \
    test "$total" -le $(( clean_tags + day * (1 + 4) ))

it_done
