#!/usr/bin/env bash
# keapsim_conform.sh: walks every list keapsim serves (GET /__admin/lists: every resource of
# KEAP_API.md's endpoint table on its v1 and v2 path, plus /v1/products/sync and appointments)
# and checks a page of each against Keap's OpenAPI spec with keapsim_conform: JSON types,
# enums, no property the spec does not name. Then proves the checker bites on every endpoint:
# the same page with the first record's scalars turned to the wrong JSON type must fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"
keap_data=$(dirname "$here")/data/keap
conform="$KEAPSYNC_BUILD/keapsim_conform"
v1spec="$keap_data/openapi-v1.json"
v2spec="$keap_data/openapi-v2.json"
for f in "$v1spec" "$v2spec"; do
    [ -r "$f" ] || ks_fail "missing test input $f (Keap's OpenAPI spec)"
done
[ -x "$conform" ] || ks_fail "no $conform"

ks_start A --seed 7 --size 3000 --no-limits
ks_admin GET "$A" lists >"$KS_TMP/lists"

# Every path of KEAP_API.md's endpoint table is served.
for p in /v1/contacts /v2/contacts /v1/companies /v2/companies /v1/opportunities /v2/opportunities \
    /v1/orders /v2/orders /v1/products /v2/products /v1/products/sync /v1/tags /v2/tags \
    /v1/tasks /v2/tasks /v1/notes /v2/notes /v1/emails /v2/emails /v1/transactions \
    /v2/sales/transactions /v1/subscriptions /v2/subscriptions /v1/users /v2/users \
    /v1/campaigns /v2/campaigns; do
    case $p in */contacts) continue ;; esac # routes.c; checked below and in keapsim_v2.sh
    jq -e --arg p "$p" 'any(.[]; .path == $p)' "$KS_TMP/lists" >/dev/null || ks_fail "$p is not served"
    code=$(ks_get "$A" "crm/rest$p" -o /dev/null -w '%{http_code}')
    [ "$code" = 200 ] || ks_fail "GET $p answered $code"
done
ks_ok "every list of KEAP_API.md's endpoint table answers 200 on its v1 and v2 path"

# /v2/notes and /v2/sales/transactions have no path in openapi-v2.json (README.md): notes are
# checked against /v2/contacts/{contact_id}/notes, transactions against the v1 transaction
# schema with int64 ids as strings and v2 paging (the reading extract_schemas.sh serves).
jq '{paths: {"/v2/sales/transactions": {get: {responses: {"200": {content: {"application/json": {schema:
      (.paths["/v1/transactions"].get.responses["200"].content["application/json"].schema
       | .properties |= ({transactions: .transactions, next_page_token: {type: "string"}})
       | walk(if type == "object" and (.properties|type) == "object" then
                .properties |= with_entries(
                    if (.key == "id" or (.key|endswith("_id"))) and .value.type == "integer"
                    then .value = {type: "string"} else . end)
              else . end))}}}}}}}}' "$v1spec" >"$KS_TMP/v2tx.json"

walked=0
while IFS=$'\t' read -r version path key res; do
    spec=$v1spec
    sp=$path
    extra=""
    [ "$version" = v2 ] && spec=$v2spec
    [ "$path" = /v2/notes ] && sp='/v2/contacts/{contact_id}/notes'
    [ "$path" = /v2/sales/transactions ] && spec=$KS_TMP/v2tx.json
    # Keap serves the id the spec's v1 Task and Appointment omit
    if [ "$version" = v1 ] && { [ "$res" = appointments ] || [ "$res" = tasks ]; }; then
        extra=id
    fi
    ks_get "$A" "crm/rest$path?limit=40&page_size=40&optional_properties=custom_fields" >"$KS_TMP/page"
    n=$(jq --arg k "$key" '.[$k]|length' "$KS_TMP/page")
    [ "$n" -gt 0 ] || ks_fail "$path: empty page"
    "$conform" "$spec" "$sp" "$KS_TMP/page" ${extra:+--allow-extra "$extra"} >"$KS_TMP/cr" ||
        ks_fail "$path does not conform to $sp: $(head -n 8 "$KS_TMP/cr")"
    # the same page with the first record's strings as numbers and numbers as strings
    jq --arg k "$key" '.[$k][0] |= with_entries(
            if (.value|type) == "string" then .value = 12
            elif (.value|type) == "number" then .value = "12"
            elif (.value|type) == "boolean" then .value = "yes" else . end)' "$KS_TMP/page" >"$KS_TMP/bad"
    if "$conform" "$spec" "$sp" "$KS_TMP/bad" ${extra:+--allow-extra "$extra"} >/dev/null; then
        ks_fail "$path: keapsim_conform accepted fields of the wrong JSON type"
    fi
    walked=$((walked + 1))
done < <(jq -r '.[] | [.version, .path, .key, .resource] | @tsv' "$KS_TMP/lists")
[ "$walked" -ge 26 ] || ks_fail "walked only $walked lists"
ks_ok "a page of each of the $walked lists conforms to the spec, and a mistyped one does not"

# Contacts and the per-contact lists (routes.c, resources.c).
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/truth"
id=$(jq -s -r '[.[]|select((.tag_ids|length) >= 2 and .id % 4 == 3 and (.email_addresses|length) > 0)][0].id' "$KS_TMP/truth")
chk() { # spec path url [allow-extra]
    ks_get "$A" "$3" >"$KS_TMP/c"
    "$conform" "$1" "$2" "$KS_TMP/c" ${4:+--allow-extra "$4"} >"$KS_TMP/cr" ||
        ks_fail "$2 does not conform: $(head -n 5 "$KS_TMP/cr")"
}
chk "$v1spec" /v1/contacts "crm/rest/v1/contacts?optional_properties=custom_fields" tag_ids,last_updated_utc_millis
chk "$v2spec" /v2/contacts "crm/rest/v2/contacts"
chk "$v1spec" '/v1/contacts/{contactId}/tags' "crm/rest/v1/contacts/$id/tags"
chk "$v1spec" '/v1/contacts/{contactId}/emails' "crm/rest/v1/contacts/$id/emails"
ks_ok "contacts v1/v2 and the per-contact tags and emails conform"
for o in contacts companies opportunities orders notes tasks appointments subscriptions; do
    chk "$v1spec" "/v1/$o/model" "crm/rest/v1/$o/model"
done
ks_get "$A" "crm/rest/v1/contacts/model" | jq '.custom_fields[0].id = "x"' >"$KS_TMP/bad"
if "$conform" "$v1spec" /v1/contacts/model "$KS_TMP/bad" >/dev/null; then
    ks_fail "/v1/contacts/model: keapsim_conform accepted a string id"
fi
ks_ok "every /v1/<object>/model conforms to the spec's ObjectModel"
echo "keapsim_conform: $KS_CHECKS checks passed"
