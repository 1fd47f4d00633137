#!/usr/bin/env bash
# A lost pair (issue 11, tests 5 and 6). A run is killed between the token endpoint's answer
# and the commit of the new pair (KEAPSYNC_TEST_CRASH_AFTER_TOKEN=1, a test-only hook that
# makes the process _exit(1) right there): keapsim has rotated, the database still holds the
# dead refresh token. The next run exits 77 with one line saying how to re-authorize, and
# nothing committed is lost; after `keapsync auth` a run finishes the sync. Tokens are
# encrypted at rest (KEAPSYNC_TOKEN_KEY_FILE) here; none appears in clear anywhere.
. "$(dirname "$0")/lib.sh"

it_make_db
export PGOPTIONS="-c client_min_messages=warning"
export KEAPSYNC_JOBS="$KEAPSYNC_SRC/jobs"
export KEAPSYNC_LIMITS="10/s,600/min,30000/day"
size=120
it_keapsim --seed 23 --size "$size" --access-ttl 2 --limits "$KEAPSYNC_LIMITS"
secret=keapsim-secret
export KEAP_CLIENT_ID=keapsim-client KEAP_TOKEN_URL="$KSIM_URL/token"
(umask 077; printf '%s\n' "$secret" >"$IT_TMP/client-secret"; head -c 32 /dev/urandom >"$IT_TMP/token.key")
export KEAP_CLIENT_SECRET_FILE="$IT_TMP/client-secret" KEAPSYNC_TOKEN_KEY_FILE="$IT_TMP/token.key"
unset KEAP_API_KEY KEAP_API_KEY_FILE KEAP_CLIENT_SECRET

"$KS" migrate >"$IT_TMP/migrate.out" 2>&1
code=$(curl -sf -XPOST "$KSIM_URL/__admin/oauth/code" | jq -r .code)
rc=0; "$KS" auth --code "$code" --redirect-uri http://localhost/cb >"$IT_TMP/auth.out" 2>&1 || rc=$?
eq "auth --code exits 0" 0 "$rc"
eq "the pair is stored encrypted" "t|0" "$(sql "SELECT encrypted, count(*) FILTER (WHERE access_token ~ 'ks[ar][0-9a-f]{32}' OR refresh_token ~ 'ks[ar][0-9a-f]{32}') FROM keapsync.oauth_tokens GROUP BY 1")"

# The first refresh comes mid-run (the token lives 2 s, the run longer): the process dies
# after Keap answered and before the commit.
rc=0; KEAPSYNC_TEST_CRASH_AFTER_TOKEN=1 "$KS" run --only contacts,contact_tags >"$IT_TMP/crash.out" 2>"$IT_TMP/crash.err" || rc=$?
eq "the run dies at the hook (exit 1)" 1 "$rc"
check "it died at the hook" grep -q "KEAPSYNC_TEST_CRASH_AFTER_TOKEN" "$IT_TMP/crash.err"
eq "keapsim rotated once" 1 "$(ksim_stat .oauth_refreshes)"
eq "the stored pair is still generation 1 (the new one is lost)" 1 "$(sql "SELECT generation FROM keapsync.oauth_tokens")"
rows_before=$(sql "SELECT (SELECT count(*) FROM keap.contacts) || '/' || (SELECT count(*) FROM keap.contact_tags)")
ckpt_before=$(sql "SELECT string_agg(job || '=' || state::text, ';' ORDER BY job) FROM keapsync.checkpoints")
check "pages were committed before the crash ($rows_before)" test "$(sql "SELECT count(*) FROM keap.contact_tags")" -gt 0

sleep 2.2 # the access token of generation 1 has expired: the next run must refresh
rc=0; "$KS" run --only contacts,contact_tags >"$IT_TMP/lost.out" 2>"$IT_TMP/lost.err" || rc=$?
cat "$IT_TMP/lost.err" >&2
eq "the next run exits 77" 77 "$rc"
eq "with one line on stderr" 1 "$(grep -c . "$IT_TMP/lost.err")"
check "the line says how to re-authorize" grep -q "hint: .*keapsync auth --code" "$IT_TMP/lost.err"
check "the line names invalid_grant" grep -q "invalid_grant" "$IT_TMP/lost.err"
eq "nothing committed is lost (rows)" "$rows_before" "$(sql "SELECT (SELECT count(*) FROM keap.contacts) || '/' || (SELECT count(*) FROM keap.contact_tags)")"
eq "nothing committed is lost (checkpoints)" "$ckpt_before" "$(sql "SELECT string_agg(job || '=' || state::text, ';' ORDER BY job) FROM keapsync.checkpoints")"
eq "keapsim saw the dead refresh token once" 1 "$(ksim_stat .refresh_reused)"

# Re-authorize, and the sync finishes where it stopped.
code=$(curl -sf -XPOST "$KSIM_URL/__admin/oauth/code" | jq -r .code)
rc=0; "$KS" auth --code "$code" --redirect-uri http://localhost/cb >>"$IT_TMP/auth.out" 2>&1 || rc=$?
eq "auth again exits 0" 0 "$rc"
rc=0; "$KS" run --only contacts,contact_tags >"$IT_TMP/resume.out" 2>"$IT_TMP/resume.err" || rc=$?
eq "the run after auth exits 0" 0 "$rc"
ksim_truth_to_pg contacts
eq "contacts equal the truth" 0 "$(sql "SELECT count(*) FROM truth_contacts t FULL JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.id IS NULL OR t.doc IS NULL OR c.data <> t.doc")"
eq "contact_tags: one row per tag of each contact" \
    "$(sql "SELECT coalesce(sum(jsonb_array_length(doc->'tag_ids')), 0) FROM truth_contacts")" \
    "$(sql "SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NULL")"

# A key that does not open the stored pair, or none: exit 2, one line.
(umask 077; head -c 32 /dev/urandom >"$IT_TMP/other.key")
rc=0; KEAPSYNC_TOKEN_KEY_FILE="$IT_TMP/other.key" "$KS" run --only tags >"$IT_TMP/wrongkey.out" 2>"$IT_TMP/wrongkey.err" || rc=$?
eq "the wrong key: exit 2" 2 "$rc"
eq "the wrong key: one line" 1 "$(grep -c . "$IT_TMP/wrongkey.err")"
check "the wrong key: it says so" grep -q "cannot be decrypted" "$IT_TMP/wrongkey.err"
rc=0; env -u KEAPSYNC_TOKEN_KEY_FILE "$KS" run --only tags >"$IT_TMP/nokey.out" 2>"$IT_TMP/nokey.err" || rc=$?
eq "no key for encrypted tokens: exit 2" 2 "$rc"
check "no key: it says so" grep -q "encrypted and KEAPSYNC_TOKEN_KEY_FILE is not set" "$IT_TMP/nokey.err"

pg_dump --no-owner "$DATABASE_URL" >"$IT_TMP/dump-all.sql"
pg_dump --no-owner --exclude-table=keapsync.oauth_tokens "$DATABASE_URL" >"$IT_TMP/dump.sql"
eq "no token in clear in any table, keapsync.oauth_tokens included" 0 "$(grep -E -c "ks[arc][0-9a-f]{32}" "$IT_TMP/dump-all.sql" || true)"
leaks=$(cat "$IT_TMP"/*.out "$IT_TMP"/*.err "$IT_TMP/dump.sql" | grep -E -c "ks[arc][0-9a-f]{32}|$secret" || true)
eq "no token, code or client secret in any output or other table" 0 "$leaks"
it_done
