#!/usr/bin/env bash
# OAuth2 rotation with two processes (issue 11, tests 4 and 6). keapsim's access tokens live
# 2 s and its refresh tokens are single-use. `keapsync auth` stores the first pair; then one
# process syncs contacts and their tags (a request per contact, long enough for 20+
# rotations, refreshing mid-run) while a second process runs other jobs again and again,
# each run refreshing at start when due. Both share the one stored pair: neither is ever
# locked out, keapsim saw no refresh token spent twice, the tables equal the truth, and no
# token, code or client secret appears in any output, in ps, or in any table but
# keapsync.oauth_tokens.
. "$(dirname "$0")/lib.sh"

it_make_db
export PGOPTIONS="-c client_min_messages=warning"
export KEAPSYNC_JOBS="$KEAPSYNC_SRC/jobs"
export KEAPSYNC_LIMITS="6/s,360/min,30000/day"
size=200
# keapsim's default client (keapsim-client / keapsim-secret): no secret on its command line.
it_keapsim --seed 21 --size "$size" --access-ttl 2 --limits "$KEAPSYNC_LIMITS"
secret=keapsim-secret
export KEAP_CLIENT_ID=keapsim-client KEAP_TOKEN_URL="$KSIM_URL/token"
(umask 077; printf '%s\n' "$secret" >"$IT_TMP/client-secret")
export KEAP_CLIENT_SECRET_FILE="$IT_TMP/client-secret"
unset KEAP_API_KEY KEAP_API_KEY_FILE KEAP_CLIENT_SECRET KEAPSYNC_TOKEN_KEY_FILE

"$KS" migrate >"$IT_TMP/migrate.out" 2>&1
code=$(curl -sf -XPOST "$KSIM_URL/__admin/oauth/code" | jq -r .code)
# "--code -": the code comes on stdin, never in argv (the ps sampler is running)
rc=0; printf '%s\n' "$code" | "$KS" auth --code - --redirect-uri http://localhost/callback >"$IT_TMP/auth.out" 2>&1 || rc=$?
cat "$IT_TMP/auth.out" >&2
eq "auth --code - (the code on stdin) exits 0" 0 "$rc"
eq "one pair stored, generation 1" "1|f" "$(sql "SELECT generation, encrypted FROM keapsync.oauth_tokens WHERE client_id = 'keapsim-client'")"

# ps, every 0.2 s while the processes run: the argv of every keapsync and keapsim. Not every
# process's: tests running beside this one (keapsim_auth) put keapsim's test secret on curl's
# command line on purpose.
( while :; do ps -C keapsync,keapsim -o args= >>"$IT_TMP/ps.txt" 2>/dev/null; sleep 0.2; done ) &
PS_PID=$!
IT_PIDS+=("$PS_PID")

start=$(date +%s)
"$KS" run --only contacts,contact_tags >"$IT_TMP/a.out" 2>"$IT_TMP/a.err" &
A=$!
IT_PIDS+=("$A")
b_runs=0 b_fail=0
sleep 1
while kill -0 "$A" 2>/dev/null; do
    rcb=0
    "$KS" run --only tags,companies,products >>"$IT_TMP/b.out" 2>>"$IT_TMP/b.err" || rcb=$?
    b_runs=$((b_runs + 1))
    [ "$rcb" -eq 0 ] || { b_fail=$((b_fail + 1)); it_log "process B run $b_runs exited $rcb"; }
    sleep 0.3
done
rca=0; wait "$A" || rca=$?
took=$(( $(date +%s) - start ))
kill "$PS_PID" 2>/dev/null || true
tail -3 "$IT_TMP/a.out" >&2
grep -E "error|refused" "$IT_TMP/a.err" "$IT_TMP/b.err" | head -5 >&2 || true

eq "process A (contacts, contact_tags, ${took}s) exits 0" 0 "$rca"
check "process B ran again and again ($b_runs runs)" test "$b_runs" -ge 5
eq "every run of process B exits 0" 0 "$b_fail"
refreshes=$(ksim_stat .oauth_refreshes)
check "at least 20 rotations ($refreshes)" test "$refreshes" -ge 20
eq "keapsim saw no refresh token used twice" 0 "$(ksim_stat .refresh_reused)"
eq "the stored generation counts every rotation" "$((refreshes + 1))" "$(sql "SELECT generation FROM keapsync.oauth_tokens")"
check "process A refreshed mid-run" grep -q "access token refreshed" "$IT_TMP/a.err"
check "a process used a pair another had rotated" grep -q "rotated by another process" "$IT_TMP/a.err" "$IT_TMP/b.err"
# keapsim knows no API key: every accepted request carried "Authorization: Bearer".
check "keapsim accepted the requests as the OAuth2 principal ($(ksim_stat .keys.oauth.accepted))" \
    test "$(ksim_stat .keys.oauth.accepted)" -gt "$size"

for res in contacts tags companies products; do
    version=$(jq -r '.endpoint | split("/")[1]' "$KEAPSYNC_JOBS/$res.json")
    curl -sf "$KSIM_URL/__admin/truth?resource=$res&version=$version" >"$IT_TMP/truth.$res.jsonl"
    sql "DROP TABLE IF EXISTS truth_$res; CREATE TABLE truth_$res (doc jsonb)"
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth_$res (doc) FROM '$IT_TMP/truth.$res.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    check "$res: keapsim has records" test "$(sql "SELECT count(*) FROM truth_$res")" -gt 0
    # A job with fields= (companies) stores what it asked for: compare its ids.
    same="c.data <> t.doc"
    [ "$(jq -r 'has("query")' "$KEAPSYNC_JOBS/$res.json")" = false ] || same="false"
    eq "$res: rows equal the truth" 0 "$(sql "SELECT count(*) FROM truth_$res t FULL JOIN keap.$res c ON c.id::text = t.doc->>'id' WHERE c.id IS NULL OR t.doc IS NULL OR $same")"
done
eq "contact_tags: one row per tag of each contact" \
    "$(sql "SELECT coalesce(sum(jsonb_array_length(doc->'tag_ids')), 0) FROM truth_contacts")" \
    "$(sql "SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NULL")"

# Secrets: no token (keapsim mints ksa/ksr/ksc + 32 hex digits) and no client secret anywhere
# but keapsync.oauth_tokens.
pg_dump --no-owner --exclude-table=keapsync.oauth_tokens "$DATABASE_URL" >"$IT_TMP/dump.sql"
check "pg_dump of everything else is not empty" test -s "$IT_TMP/dump.sql"
check "the tokens are in keapsync.oauth_tokens" test "$(sql "SELECT count(*) FROM keapsync.oauth_tokens WHERE access_token ~ '^ksa[0-9a-f]{32}$'")" = 1
leaks=$(cat "$IT_TMP"/*.out "$IT_TMP"/*.err "$IT_TMP/ps.txt" "$IT_TMP/dump.sql" |
    grep -E -c "ks[arc][0-9a-f]{32}|$secret" || true)
[ "$leaks" -eq 0 ] || grep -E -o -n ".{0,60}(ks[arc][0-9a-f]{32}|$secret).{0,20}" "$IT_TMP"/*.out "$IT_TMP"/*.err \
    "$IT_TMP/ps.txt" "$IT_TMP/dump.sql" | head -5 | sed 's/ks[arc]\([0-9a-f]\{4\}\)[0-9a-f]\{28\}/ks?\1.../g' >&2
eq "no token, code or client secret in logs, ps or the other tables" 0 "$leaks"
check "ps was captured while keapsync ran" grep -q "keapsync run" "$IT_TMP/ps.txt"
it_done
