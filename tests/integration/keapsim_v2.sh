#!/usr/bin/env bash
# keapsim_v2.sh: REST v2 contacts (page tokens that expire, filter, order_by, string ids),
# the other lists (tags v1/v2, /v1/contacts/{id}, .../tags, .../emails), and conformance of
# every served shape to Keap's OpenAPI specs (keapsim_conform walks page and schema together).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"
keap_data=$(dirname "$here")/data/keap
conform="$KEAPSYNC_BUILD/keapsim_conform"
for f in "$keap_data/openapi-v1.json" "$keap_data/openapi-v2.json"; do
    [ -r "$f" ] || ks_fail "missing test input $f (Keap's OpenAPI spec)"
done
[ -x "$conform" ] || ks_fail "no $conform"

SIZE=2300
ks_start A --seed 11 --size $SIZE --no-limits --token-ttl 2
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/truth"
ks_admin GET "$A" "truth?resource=contacts&version=v2" >"$KS_TMP/truth2"

# --- v2 paging ------------------------------------------------------------------------------
tok=""
: >"$KS_TMP/ids"
pages=0
while :; do
    ks_get "$A" "crm/rest/v2/contacts?page_size=5000${tok:+&page_token=$tok}" >"$KS_TMP/p"
    n=$(jq '.contacts|length' "$KS_TMP/p")
    [ "$n" -le 1000 ] || ks_fail "page_size=5000 gave $n (cap 1000)"
    jq -r '.contacts[].id' "$KS_TMP/p" >>"$KS_TMP/ids"
    tok=$(jq -r '.next_page_token' "$KS_TMP/p")
    pages=$((pages + 1))
    [ -z "$tok" ] && break
    [ $pages -lt 10 ] || ks_fail "page tokens never end"
done
[ "$(jq -s -c 'map(.id|tostring)' "$KS_TMP/truth")" = "$(jq -R . "$KS_TMP/ids" | jq -s -c .)" ] ||
    ks_fail "v2 token paging did not return every id once, in id order"
jq -e '.contacts[0].id|type=="string"' "$KS_TMP/p" >/dev/null || ks_fail "v2 ids are not strings"
ks_get "$A" "crm/rest/v2/contacts?page_size=1" | jq -c '.contacts[0]' >"$KS_TMP/first"
[ "$(cat "$KS_TMP/first")" = "$(head -n 1 "$KS_TMP/truth2" | jq -c .)" ] || ks_fail "v2 truth differs from the API"
ks_ok "v2 page tokens cover all $SIZE contacts once in $pages pages; ids are strings"

# --- filter and order_by --------------------------------------------------------------------
read -r lo hi < <(jq -s -r 'map(.last_updated_utc_millis)|sort|"\(.[length/3|floor]) \(.[length/2|floor])"' "$KS_TMP/truth")
iso() { date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S.$(printf %03d $(($1 % 1000)))Z; }
want=$(jq -s -c --argjson lo "$lo" --argjson hi "$hi" \
    'map(select(.last_updated_utc_millis >= $lo and .last_updated_utc_millis < $hi)|.id|tostring)|sort' "$KS_TMP/truth")
filter="start_update_time%3D%3D$(iso "$lo")%3Bend_update_time%3D%3D$(iso "$hi")"
got=$(ks_get "$A" "crm/rest/v2/contacts?filter=$filter" | jq -c '[.contacts[].id]|sort')
[ "$got" = "$want" ] || ks_fail "filter start/end_update_time selected other records"
ks_get "$A" "crm/rest/v2/contacts?page_size=50&order_by=update_time%20desc" |
    jq -e '[.contacts[].update_time] as $t | $t == ($t|sort|reverse)' >/dev/null || ks_fail "order_by update_time desc"
code=$(ks_get "$A" "crm/rest/v2/contacts?filter=shoe_size%3D%3D9" -o "$KS_TMP/e" -w '%{http_code}')
[ "$code" = 400 ] || ks_fail "unknown filter field: want 400, got $code"
jq -e 'keys == ["code","details","message","status"]' "$KS_TMP/e" >/dev/null || ks_fail "v2 error body $(cat "$KS_TMP/e")"
ks_ok "v2 filter start/end_update_time, order_by and the v2 error body"

# --- page token expiry and binding ---------------------------------------------------------
tok=$(ks_get "$A" "crm/rest/v2/contacts?page_size=100" | jq -r .next_page_token)
code=$(ks_get "$A" "crm/rest/v2/contacts?page_size=200&page_token=$tok" -o /dev/null -w '%{http_code}')
[ "$code" = 400 ] || ks_fail "a token reused for another query: want 400, got $code"
[ "$(ks_get "$A" "crm/rest/v2/contacts?page_size=100&page_token=$tok" -o /dev/null -w '%{http_code}')" = 200 ] ||
    ks_fail "a fresh token was refused"
ks_admin POST "$A" "clock?offset_ms=5000" >/dev/null
code=$(ks_get "$A" "crm/rest/v2/contacts?page_size=100&page_token=$tok" -o "$KS_TMP/x" -w '%{http_code}')
[ "$code" = 400 ] && jq -e '.message|test("expired")' "$KS_TMP/x" >/dev/null ||
    ks_fail "an expired token: got $code $(cat "$KS_TMP/x")"
ks_admin POST "$A" "clock?offset_ms=0" >/dev/null
ks_ok "page tokens are bound to their query and expire after --token-ttl"

# --- other lists ----------------------------------------------------------------------------
tags=$(ks_get "$A" "crm/rest/v1/tags?limit=1000" | jq -c '[.tags[].id]')
tok=""
: >"$KS_TMP/tids"
while :; do
    ks_get "$A" "crm/rest/v2/tags?page_size=7${tok:+&page_token=$tok}" >"$KS_TMP/tp"
    jq -r '.tags[].id' "$KS_TMP/tp" >>"$KS_TMP/tids"
    tok=$(jq -r .next_page_token "$KS_TMP/tp")
    [ -z "$tok" ] && break
done
[ "$(jq -R 'tonumber' "$KS_TMP/tids" | jq -s -c .)" = "$tags" ] || ks_fail "v2 tags paging differs from v1 tags"
id=$(jq -s -r '[.[]|select(.tag_ids|length>=2)][0].id' "$KS_TMP/truth")
want=$(jq -s -c --argjson id "$id" '.[]|select(.id==$id)|.tag_ids' "$KS_TMP/truth")
got=$(ks_get "$A" "crm/rest/v1/contacts/$id/tags" | jq -c '[.tags[].tag.id]')
[ "$got" = "$want" ] || ks_fail "contact $id tags $got, truth $want"
echo "$tags" | jq -e --argjson w "$want" '. as $all | $w|all(. as $t | $all|index($t) != null)' >/dev/null ||
    ks_fail "a contact's tag is not in /v1/tags"
[ "$(ks_get "$A" "crm/rest/v1/contacts/$id?optional_properties=custom_fields")" = \
  "$(jq -s -c --argjson id "$id" '.[]|select(.id==$id)' "$KS_TMP/truth")" ] || ks_fail "/v1/contacts/$id differs from truth"
[ "$(ks_get "$A" "crm/rest/v1/contacts/1/tags" -o /dev/null -w '%{http_code}')" = 404 ] || ks_fail "unknown contact not 404"
ks_ok "tags v1/v2, /v1/contacts/{id} and its tags agree with the truth"

# --- conformance to Keap's OpenAPI specs --------------------------------------------------
eid=$(jq -s -r '[.[]|select(.id % 4 == 3 and (.email_addresses|length) > 0)][0].id' "$KS_TMP/truth")
chk() { # spec path url [allow-extra]
    ks_get "$A" "$3" >"$KS_TMP/c"
    "$conform" "$keap_data/$1" "$2" "$KS_TMP/c" ${4:+--allow-extra "$4"} >"$KS_TMP/cr" ||
        ks_fail "$2 does not conform: $(head -n 5 "$KS_TMP/cr")"
}
chk openapi-v1.json /v1/contacts "crm/rest/v1/contacts?optional_properties=custom_fields" tag_ids,last_updated_utc_millis
chk openapi-v2.json /v2/contacts "crm/rest/v2/contacts"
chk openapi-v1.json /v1/tags "crm/rest/v1/tags"
chk openapi-v2.json /v2/tags "crm/rest/v2/tags"
chk openapi-v1.json '/v1/contacts/{contactId}/tags' "crm/rest/v1/contacts/$id/tags"
chk openapi-v1.json '/v1/contacts/{contactId}/emails' "crm/rest/v1/contacts/$eid/emails"
# the checker itself must catch a wrong type
ks_get "$A" "crm/rest/v2/contacts?page_size=3" | jq -c '.contacts[1].id = 5' >"$KS_TMP/bad"
"$conform" "$keap_data/openapi-v2.json" /v2/contacts "$KS_TMP/bad" >/dev/null &&
    ks_fail "keapsim_conform accepted an integer v2 id"
ks_ok "v1/v2 contacts, tags, contact tags and emails conform to the OpenAPI specs"
echo "keapsim_v2: $KS_CHECKS checks passed"
