#!/usr/bin/env bash
# OAuth2 configuration and the app's own limits. Bad input to auth (no client, a client
# secret file others can read, a token key file of the wrong length, no code) is exit 2 with
# one line and nothing stored. The client id's day (KEAPSYNC_APP_LIMITS, a ledger row of its
# own beside the tenant's) stops a run with 75 at exactly its budget, and the tenant-wide
# ceiling (KEAPSYNC_TENANT_CEILING) does too.
. "$(dirname "$0")/lib.sh"

it_make_db
export PGOPTIONS="-c client_min_messages=warning"
export KEAPSYNC_JOBS="$KEAPSYNC_SRC/jobs"
export KEAPSYNC_LIMITS="20/s,1200/min,30000/day"
it_keapsim --seed 25 --size 200 --limits "$KEAPSYNC_LIMITS"
unset KEAP_API_KEY KEAP_API_KEY_FILE KEAP_CLIENT_SECRET KEAPSYNC_TOKEN_KEY_FILE KEAP_CLIENT_ID
export KEAP_TOKEN_URL="$KSIM_URL/token"
(umask 077; printf 'keapsim-secret\n' >"$IT_TMP/secret"; head -c 31 /dev/urandom >"$IT_TMP/short.key")
cp "$IT_TMP/secret" "$IT_TMP/open-secret"; chmod 640 "$IT_TMP/open-secret"
"$KS" migrate >/dev/null 2>&1

# bad_auth DESCRIPTION PATTERN ENV... : auth with ENV exits 2 with one line matching PATTERN
bad_auth() {
    local what=$1 pat=$2 rc=0
    shift 2
    env "$@" "$KS" auth --code ksc0 --redirect-uri http://localhost/cb >"$IT_TMP/bad.out" 2>"$IT_TMP/bad.err" || rc=$?
    eq "$what: exit 2" 2 "$rc"
    eq "$what: one line" 1 "$(grep -c . "$IT_TMP/bad.err")"
    check "$what: $(cat "$IT_TMP/bad.err")" grep -q "$pat" "$IT_TMP/bad.err"
}
bad_auth "no client configured" "KEAP_CLIENT_ID is not set" FOO=1
bad_auth "no client secret" "no client secret" KEAP_CLIENT_ID=keapsim-client
bad_auth "a group-readable secret file" "readable by other users.*chmod 600" \
    KEAP_CLIENT_ID=keapsim-client KEAP_CLIENT_SECRET_FILE="$IT_TMP/open-secret"
bad_auth "a key file of 31 bytes" "holds 31 bytes, not 32" KEAP_CLIENT_ID=keapsim-client \
    KEAP_CLIENT_SECRET_FILE="$IT_TMP/secret" KEAPSYNC_TOKEN_KEY_FILE="$IT_TMP/short.key"
bad_auth "a missing key file" "could not read token key file" KEAP_CLIENT_ID=keapsim-client \
    KEAP_CLIENT_SECRET_FILE="$IT_TMP/secret" KEAPSYNC_TOKEN_KEY_FILE="$IT_TMP/none.key"
rc=0; KEAP_CLIENT_ID=keapsim-client KEAP_CLIENT_SECRET_FILE="$IT_TMP/secret" "$KS" auth --redirect-uri x >/dev/null 2>"$IT_TMP/bad.err" || rc=$?
eq "auth without --code or --refresh-token-file: exit 2" 2 "$rc"
eq "nothing was stored" 0 "$(sql "SELECT count(*) FROM keapsync.oauth_tokens")"
rc=0; KEAP_CLIENT_ID=keapsim-client KEAP_CLIENT_SECRET_FILE="$IT_TMP/secret" "$KS" run --only tags >/dev/null 2>"$IT_TMP/noauth.err" || rc=$?
eq "a run before auth: exit 77" 77 "$rc"
check "a run before auth says to authorize" grep -q "no OAuth2 tokens are stored.*keapsync auth" "$IT_TMP/noauth.err"

export KEAP_CLIENT_ID=keapsim-client KEAP_CLIENT_SECRET_FILE="$IT_TMP/secret"
code=$(curl -sf -XPOST "$KSIM_URL/__admin/oauth/code" | jq -r .code)
rc=0; "$KS" auth --code - --redirect-uri http://localhost/cb </dev/null >/dev/null 2>"$IT_TMP/nocode.err" || rc=$?
eq "auth --code - with nothing on stdin: exit 2" 2 "$rc"
check "it says so" grep -q 'no authorization code on stdin' "$IT_TMP/nocode.err"
# A code given in argv works too (blanked there once read; "--code -" keeps it out of argv).
rc=0; "$KS" auth --code "$code" --redirect-uri http://localhost/cb >/dev/null 2>&1 || rc=$?
eq "auth --code exits 0" 0 "$rc"
# A refresh token imported from a file: refreshed once to check it and get an access token.
sql "SELECT refresh_token FROM keapsync.oauth_tokens" >"$IT_TMP/refresh"
chmod 600 "$IT_TMP/refresh"
rc=0; "$KS" auth --refresh-token-file "$IT_TMP/refresh" >"$IT_TMP/import.out" 2>&1 || rc=$?
eq "auth --refresh-token-file exits 0" 0 "$rc"
eq "it spent the imported refresh token" 1 "$(ksim_stat .oauth_refreshes)"
eq "and stored the new pair" 2 "$(sql "SELECT generation FROM keapsync.oauth_tokens")"
rc=0; "$KS" auth --refresh-token-file "$IT_TMP/refresh" >/dev/null 2>"$IT_TMP/dead.err" || rc=$?
eq "a spent refresh token: exit 77" 77 "$rc"

# The client's day: 30 requests (a contact_tags pass needs 200).
rc=0; KEAPSYNC_APP_LIMITS="1500/min,30/day" "$KS" run --only contacts,contact_tags >"$IT_TMP/app.out" 2>"$IT_TMP/app.err" || rc=$?
tail -2 "$IT_TMP/app.out" >&2
eq "the client's day stops the run: exit 75" 75 "$rc"
day=$(date -u +%F)
eq "the client's ledger row holds its day" 30 "$(sql "SELECT reserved FROM keapsync.quota_ledger WHERE tenant = 'client:keapsim-client' AND day = '$day'")"
eq "keapsim served no more than that" 30 "$(ksim_stat .keys.oauth.accepted)"
rc=0; KEAPSYNC_APP_LIMITS="1500/min,30/day" "$KS" run --only contacts,contact_tags >/dev/null 2>&1 || rc=$?
eq "the next run the same day: exit 75 at once" 75 "$rc"
eq "keapsim still served 30" 30 "$(ksim_stat .keys.oauth.accepted)"
# The tenant's ceiling for every credential together.
rc=0; KEAPSYNC_APP_LIMITS="1500/min,1000/day" KEAPSYNC_TENANT_CEILING="10000/min,40/day" \
    "$KS" run --only contacts,contact_tags >/dev/null 2>&1 || rc=$?
eq "the tenant's ceiling stops the run: exit 75" 75 "$rc"
eq "the ceiling's ledger row holds its day" 40 "$(sql "SELECT reserved FROM keapsync.quota_ledger WHERE tenant = 'all:ks25.infusionsoft.com' AND day = '$day'")"
it_done
