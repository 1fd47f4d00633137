#!/usr/bin/env bash
# keapsim_auth.sh: several keys of one tenant (day shared, spike per key), the tenant-wide
# minute, key revocation with a delay, and OAuth2 (/token: authorization_code and rotating,
# single-use refresh tokens; access tokens that expire). Nothing waits on the wall clock: the
# delays and lifetimes are long, and keapsim's admin clock is moved across them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"

burst() { # PORT KEY N: N requests on one connection; prints the status codes, sorted and counted
    local args=() i
    for i in $(seq 1 "$3"); do
        [ "$i" -gt 1 ] && args+=(--next)
        args+=(-s -o /dev/null -w '%{http_code}\n' -H "X-Keap-API-Key: $2" "http://127.0.0.1:$1/crm/rest/v1/contacts?limit=1")
    done
    curl "${args[@]}" | sort | uniq -c | tr -s ' ' | tr '\n' ';'
}

# --- two keys: spike per key, day per tenant -----------------------------------------------
ks_start A --seed 4 --size 5 --api-key ka-first --api-key ka-second --limits 10/s,240/min,15/day
[ "$(burst "$A" ka-first 10)" = " 10 200;" ] || ks_fail "key1 burst of 10"
[ "$(burst "$A" ka-second 10)" = " 5 200; 5 429;" ] || ks_fail "key2 should get the 5 left of the shared day"
ks_admin GET "$A" stats >"$KS_TMP/s"
jq -e '.day_used==15 and .keys.key1.accepted==10 and .keys.key2.accepted==5 and
       .rejected_429_by_window.day==5 and .rejected_429_by_window.second==0' "$KS_TMP/s" >/dev/null ||
    ks_fail "stats: $(jq -c . "$KS_TMP/s")"
[ "$(burst "$A" keapsim-test-key 1)" = " 1 401;" ] || ks_fail "the default key works although keys were given"
ks_ok "two keys: each has its own spike window, both share the day"

# --- tenant-wide minute ---------------------------------------------------------------------
ks_start T --seed 4 --size 5 --api-key kt-1 --api-key kt-2 --limits 0/s,100/min,0/day --tenant-limits 12/min
[ "$(burst "$T" kt-1 8)" = " 8 200;" ] || ks_fail "tenant: first key"
[ "$(burst "$T" kt-2 8)" = " 4 200; 4 429;" ] || ks_fail "tenant: second key should get 4"
curl -sS -H "X-Keap-API-Key: kt-2" -D "$KS_TMP/t.h" -o "$KS_TMP/t" "http://127.0.0.1:$T/crm/rest/v1/contacts"
[ "$(ks_header "$KS_TMP/t.h" x-keap-tenant-throttle-available)" = 0 ] || ks_fail "tenant-throttle-available"
[ "$(ks_header "$KS_TMP/t.h" x-keap-tenant-throttle-limit)" = 12 ] || ks_fail "tenant-throttle-limit"
jq -e '.fault.detail.errorcode=="policies.ratelimit.QuotaViolation"' "$KS_TMP/t" >/dev/null || ks_fail "tenant 429 body"
ks_admin GET "$T" stats | jq -e '.rejected_429_by_window.tenant==5' >/dev/null || ks_fail "tenant 429s not counted"
ks_ok "the tenant-wide minute refuses across keys"

# --- revocation with a delay ----------------------------------------------------------------
ks_start V --seed 4 --size 5 --api-key kv-1 --api-key kv-2 --no-limits
# A 60 s delay, and keapsim's clock moved across it (the revocation is due on that clock):
# no check depends on how fast this machine runs the test.
ks_admin POST "$V" "revoke?key=key2&delay_ms=60000" | jq -e '.revoked' >/dev/null || ks_fail "revoke"
[ "$(burst "$V" kv-2 1)" = " 1 200;" ] || ks_fail "revoked key refused before the delay"
ks_admin POST "$V" "clock?offset_ms=50000" >/dev/null
[ "$(burst "$V" kv-2 1)" = " 1 200;" ] || ks_fail "revoked key refused 50 s into a 60 s delay"
ks_admin POST "$V" "clock?offset_ms=61000" >/dev/null
[ "$(burst "$V" kv-2 1)" = " 1 401;" ] || ks_fail "revoked key still works after the delay"
[ "$(burst "$V" kv-1 1)" = " 1 200;" ] || ks_fail "revoking key2 hurt key1"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$V/__admin/revoke?key=nope")" = 404 ] ||
    ks_fail "revoking an unknown key"
ks_ok "revocation takes effect after its delay, for that key only"

# --- OAuth2 ---------------------------------------------------------------------------------
ks_start O --seed 4 --size 5 --no-limits --access-ttl 60
tokurl="http://127.0.0.1:$O/token"
code=$(ks_admin POST "$O" oauth/code | jq -r .code)
curl -sS -o "$KS_TMP/o1" -w '%{http_code}' -d "client_id=keapsim-client&client_secret=keapsim-secret&code=$code&grant_type=authorization_code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb" "$tokurl" >"$KS_TMP/o1.code"
[ "$(cat "$KS_TMP/o1.code")" = 200 ] || ks_fail "code exchange: $(cat "$KS_TMP/o1")"
jq -e '.token_type=="bearer" and .expires_in==60 and (.access_token|length>0) and (.refresh_token|length>0) and (.scope|startswith("full|"))' \
    "$KS_TMP/o1" >/dev/null || ks_fail "token response $(cat "$KS_TMP/o1")"
at=$(jq -r .access_token "$KS_TMP/o1")
rt=$(jq -r .refresh_token "$KS_TMP/o1")
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $at" "http://127.0.0.1:$O/crm/rest/v1/contacts")" = 200 ] ||
    ks_fail "bearer token refused"
[ "$(curl -s -o /dev/null -w '%{http_code}' -d "client_id=keapsim-client&client_secret=keapsim-secret&code=$code&grant_type=authorization_code" "$tokurl")" = 400 ] ||
    ks_fail "an authorization code worked twice"
[ "$(curl -s -o /dev/null -w '%{http_code}' -u keapsim-client:wrong -d "grant_type=refresh_token&refresh_token=$rt" "$tokurl")" = 401 ] ||
    ks_fail "wrong client secret accepted"
curl -sS -u keapsim-client:keapsim-secret -d "grant_type=refresh_token&refresh_token=$rt" "$tokurl" >"$KS_TMP/o2"
rt2=$(jq -r .refresh_token "$KS_TMP/o2")
[ -n "$rt2" ] && [ "$rt2" != "$rt" ] && [ "$rt2" != null ] || ks_fail "refresh did not rotate: $(cat "$KS_TMP/o2")"
reuse=$(curl -sS -w ' %{http_code}' -u keapsim-client:keapsim-secret -d "grant_type=refresh_token&refresh_token=$rt" "$tokurl")
[ "$reuse" = '{"error":"invalid_grant","error_description":"Invalid refresh token"} 400' ] ||
    ks_fail "reusing a refresh token: $reuse"
at2=$(jq -r .access_token "$KS_TMP/o2")
# keapsim's clock moves past the access token's 60 s (it expires on that clock)
ks_admin POST "$O" "clock?offset_ms=61000" >/dev/null
curl -s -o "$KS_TMP/o3" -w '%{http_code}' -H "Authorization: Bearer $at2" "http://127.0.0.1:$O/crm/rest/v1/contacts" >"$KS_TMP/o3.code"
[ "$(cat "$KS_TMP/o3.code")" = 401 ] && jq -e '.fault.detail.errorcode=="keymanagement.service.access_token_expired"' "$KS_TMP/o3" >/dev/null ||
    ks_fail "an expired access token: $(cat "$KS_TMP/o3.code") $(cat "$KS_TMP/o3")"
curl -sS -u keapsim-client:keapsim-secret -d "grant_type=refresh_token&refresh_token=$rt2" "$tokurl" | jq -e '.access_token' >/dev/null ||
    ks_fail "the rotated refresh token does not work"
ks_ok "OAuth2: code exchange, bearer use, rotating single-use refresh, access expiry"
echo "keapsim_auth: $KS_CHECKS checks passed"
