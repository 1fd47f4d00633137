#!/usr/bin/env bash
# extract_schemas.sh: writes schemas.json, the list item schemas keapsim's generic generator
# (gen.c) walks, cut from Keap's OpenAPI specs so that field names and JSON types come from the
# spec by construction. Run it again when the specs change:
#   bash tests/keapsim/extract_schemas.sh tests/data/keap > tests/keapsim/schemas.json
# SPEC_DIR defaults to tests/data/keap, the specs kept in the repository (README.md there).
# Each entry: "v1/<resource>" or "v2/<resource>" -> {path, key, optional_cf, item}, where path
# is the served path, key the list's array property, optional_cf whether the v1 list has an
# optional_properties parameter (custom_fields then only on request) and item the array's
# item schema as the spec has it. Two v2 lists have no path in openapi-v2.json (README.md):
# /v2/notes takes the schema of /v2/contacts/{contact_id}/notes, and /v2/sales/transactions
# the v1 transaction schema with int64 ids (id, *_id) as strings, the v2 convention.
set -euo pipefail
dir=${1:-$(dirname "$0")/../data/keap}
v1="$dir/openapi-v1.json"
v2="$dir/openapi-v2.json"
for f in "$v1" "$v2"; do
    [ -r "$f" ] || { echo "extract_schemas.sh: missing Keap OpenAPI spec $f" >&2; exit 1; }
done

entry() { # spec name served_path spec_path key
    jq -c --arg name "$2" --arg path "$3" --arg sp "$4" --arg key "$5" '
        .paths[$sp].get as $g
        | ($g.responses["200"].content["application/json"].schema.properties[$key].items) as $item
        | if $item == null then error("no item schema for \($sp) \($key)") else . end
        | {($name): {path: $path, key: $key,
                     optional_cf: ([$g.parameters[]?.name] | index("optional_properties") != null),
                     item: $item}}' "$1"
}
{
    for r in companies opportunities orders products tags tasks notes emails transactions \
             subscriptions users campaigns appointments; do
        entry "$v1" "v1/$r" "/v1/$r" "/v1/$r" "$r"
    done
    entry "$v1" v1/product_statuses /v1/products/sync /v1/products/sync product_statuses
    for r in companies opportunities orders products tags tasks emails subscriptions users campaigns; do
        entry "$v2" "v2/$r" "/v2/$r" "/v2/$r" "$r"
    done
    entry "$v2" v2/notes /v2/notes '/v2/contacts/{contact_id}/notes' notes
    entry "$v1" v2/transactions /v2/sales/transactions /v1/transactions transactions |
        jq -c 'walk(if type == "object" and (.properties|type) == "object" then
                        .properties |= with_entries(
                            if (.key == "id" or (.key|endswith("_id"))) and .value.type == "integer"
                            then .value = {type: "string"} else . end)
                    else . end)'
} | jq -s -S 'add | walk(if type == "object" then
        (if (.description|type) == "string" then del(.description) else . end)
        | (if has("example") and ((.example|type) != "object") then del(.example) else . end)
    else . end)'
