#!/usr/bin/env bash
# keapsim_lists.sh: every list other than contacts (lists.c), on v1 and v2: paging covers every
# id exactly once (v1 limit/offset, v2 page tokens, page caps incl. users' 100), the truth is
# what the API serves, each resource's own since/until or filter fields select exactly
# since <= key < until, v1 since/until are ignored where Keap has none, an unknown v2 filter
# field is a 400, same seed same bytes, and /v1/products/sync reports CREATED/UPDATED/DELETED
# since a token.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"

SIZE=10000 # 110 users: more than the v2 users page cap of 100
ks_start A --seed 5 --size $SIZE --no-limits
ks_admin GET "$A" lists >"$KS_TMP/lists"
iso() { date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S.$(printf %03d $(($1 % 1000)))Z; }

# all_ids VERSION PATH KEY CAP [QUERY]: every id of the list, page by page, one per line.
all_ids() {
    local version=$1 path=$2 key=$3 cap=$4 query=${5:-} off=0 tok="" n pages=0
    : >"$KS_TMP/got"
    while :; do
        if [ "$version" = v1 ]; then
            ks_get "$A" "crm/rest$path?limit=1000&offset=$off$query" >"$KS_TMP/pg"
        else
            ks_get "$A" "crm/rest$path?page_size=1000$query${tok:+&page_token=$tok}" >"$KS_TMP/pg"
        fi
        n=$(jq --arg k "$key" '.[$k]|length' "$KS_TMP/pg")
        [ "$n" -le "$cap" ] || ks_fail "$path: a page of $n records (cap $cap)"
        jq -r --arg k "$key" '.[$k][].id' "$KS_TMP/pg" >>"$KS_TMP/got"
        pages=$((pages + 1))
        [ $pages -lt 200 ] || ks_fail "$path: paging never ends"
        if [ "$version" = v1 ]; then
            [ "$n" -lt 1000 ] && break
            off=$((off + 1000))
        else
            tok=$(jq -r .next_page_token "$KS_TMP/pg")
            [ -z "$tok" ] && break
        fi
    done
    cat "$KS_TMP/got"
}

lists=0
filters=0
while IFS=$'\t' read -r version path key res cap; do
    [ "$path" = /v1/products/sync ] && continue
    [ -s "$KS_TMP/meta.$res" ] || ks_admin GET "$A" "truth?resource=$res&meta=1" >"$KS_TMP/meta.$res"
    jq -r 'select(.deleted|not) | .id' "$KS_TMP/meta.$res" >"$KS_TMP/want"
    [ -s "$KS_TMP/want" ] || ks_fail "$res: no records"
    all_ids "$version" "$path" "$key" "$cap" >"$KS_TMP/ids"
    cmp -s "$KS_TMP/want" "$KS_TMP/ids" ||
        ks_fail "$path: paging returned $(wc -l <"$KS_TMP/ids") ids, truth has $(wc -l <"$KS_TMP/want")"
    # the truth is what the list serves
    ks_get "$A" "crm/rest$path?limit=1&page_size=1&optional_properties=custom_fields" |
        jq -c --arg k "$key" '.[$k][0]' >"$KS_TMP/first"
    ks_admin GET "$A" "truth?resource=$res&version=$version" >"$KS_TMP/truth"
    head -n 1 "$KS_TMP/truth" | jq -c . >"$KS_TMP/tfirst"
    cmp -s "$KS_TMP/first" "$KS_TMP/tfirst" || ks_fail "$path: first record differs from the truth"
    lists=$((lists + 1))

    # each since/until (v1) or filter (v2) pair on the key it reads
    while IFS=$'\t' read -r fs fu fkey; do
        read -r lo hi < <(jq -s -r --arg k "$fkey" 'map(select(.deleted|not)|.[$k])|sort
            | "\(.[length/3|floor]) \(.[length*2/3|floor])"' "$KS_TMP/meta.$res")
        jq -r --arg k "$fkey" --argjson lo "$lo" --argjson hi "$hi" \
            'select((.deleted|not) and .[$k] >= $lo and .[$k] < $hi) | .id' "$KS_TMP/meta.$res" >"$KS_TMP/fwant"
        if [ "$version" = v1 ]; then
            q="&$fs=$(iso "$lo")&$fu=$(iso "$hi")"
        else
            q="&filter=$fs%3D%3D$(iso "$lo")%3B$fu%3D%3D$(iso "$hi")%3B"
        fi
        all_ids "$version" "$path" "$key" "$cap" "$q" >"$KS_TMP/fgot"
        [ -s "$KS_TMP/fwant" ] && cmp -s "$KS_TMP/fwant" "$KS_TMP/fgot" ||
            ks_fail "$path $fs/$fu: $(wc -l <"$KS_TMP/fgot") ids, want $(wc -l <"$KS_TMP/fwant")"
        filters=$((filters + 1))
    done < <(jq -r --arg p "$path" '.[] | select(.path == $p) | .filters | to_entries
        | map(select(.value.until|not)) | .[] | .key as $s | .value.key as $k
        | [$s, ($s | sub("since"; "until") | sub("start"; "end")), $k] | @tsv' "$KS_TMP/lists")
done < <(jq -r '.[] | [.version, .path, .key, .resource, .page_cap] | @tsv' "$KS_TMP/lists")
[ "$lists" -ge 25 ] || ks_fail "only $lists lists walked"
[ "$filters" -ge 13 ] || ks_fail "only $filters since/until or filter pairs tested"
ks_ok "$lists lists page every id once and serve their truth; $filters since/until and filter pairs select since <= t < until"

# v2 users: at most 100 a page, whatever page_size asks
n=$(ks_get "$A" "crm/rest/v2/users?page_size=1000" | jq '.users|length')
[ "$n" = 100 ] || ks_fail "v2 users page_size=1000 gave $n, want the cap of 100"
# v1 since/until where Keap has none: ignored, the whole list comes back
total=$(ks_get "$A" "crm/rest/v1/companies?limit=1" | jq .count)
got=$(ks_get "$A" "crm/rest/v1/companies?limit=1&since=2030-01-01T00:00:00.000Z" | jq .count)
[ "$got" = "$total" ] && [ "$total" -gt 0 ] || ks_fail "v1 companies since: count $got, all $total"
# an unknown v2 filter field: 400 with the v2 error body
code=$(ks_get "$A" "crm/rest/v2/orders?filter=since_time%3D%3D2024-01-01T00:00:00.000Z" -o "$KS_TMP/e" -w '%{http_code}')
[ "$code" = 400 ] && jq -e 'keys == ["code","details","message","status"]' "$KS_TMP/e" >/dev/null ||
    ks_fail "orders since_time (not an orders field): $code $(cat "$KS_TMP/e")"
# order_by update time, descending
ks_get "$A" "crm/rest/v2/tags?order_by=update_time%20desc" |
    jq -e '[.tags[].update_time] as $t | $t == ($t|sort|reverse)' >/dev/null || ks_fail "v2 tags order_by update_time desc"
# auth and the x-keap headers apply to every route
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$A/crm/rest/v2/sales/transactions")
[ "$code" = 401 ] || ks_fail "/v2/sales/transactions without a key: want 401, got $code"
ks_get "$A" "crm/rest/v1/notes?limit=1" -D "$KS_TMP/h" -o /dev/null
[ "$(ks_header "$KS_TMP/h" x-keap-tenant-id)" = ks5.infusionsoft.com ] || ks_fail "/v1/notes lacks x-keap-tenant-id"
ks_ok "users page cap, v1 since ignored where Keap has none, unknown filter 400, order_by, auth"

# same seed, same bytes (another process), but for the second a v2 page token was issued in
# (its middle 12 hex digits: the token expires), which two fetches need not share
same_bytes() { sed -e 's/127.0.0.1:[0-9]*//g' \
    -e 's/"next_page_token":"\([0-9a-f]\{16\}\)[0-9a-f]\{12\}\([0-9a-f]\{16\}\)"/"next_page_token":"\1-\2"/' | md5sum; }
ks_start B --seed 5 --size $SIZE --no-limits
for p in "v1/orders?limit=50" "v2/tasks?page_size=50" "v1/campaigns" "v2/sales/transactions?page_size=20"; do
    [ "$(ks_get "$A" "crm/rest/$p" | same_bytes)" = "$(ks_get "$B" "crm/rest/$p" | same_bytes)" ] ||
        ks_fail "$p differs between two runs of one seed"
done
ks_get "$A" "crm/rest/v2/tasks?page_size=50" | grep -q '"next_page_token":"[0-9a-f]\{44\}"' ||
    ks_fail "v2/tasks' first page has no 44-digit next_page_token (the masking above would hide nothing)"
ks_ok "one seed, one tenant: the same bytes from two processes"

# /v1/products/sync: the first sync reports every live product CREATED; a token minted in the
# past (sim clock moved back to halfway through a deleted product's life) then reports what
# changed since
ks_get "$A" "crm/rest/v1/products/sync" >"$KS_TMP/s0"
live=$(jq -s '[.[]|select(.deleted|not)]|length' "$KS_TMP/meta.products")
[ "$(jq '[.product_statuses[]|select(.status=="CREATED")]|length' "$KS_TMP/s0")" = "$live" ] ||
    ks_fail "first products sync is not every live product CREATED"
statuses='def st($t): [.[] | if .created_ms > $t then (if .deleted then empty else {id, s: "CREATED"} end)
        elif .updated_ms > $t then {id, s: (if .deleted then "DELETED" else "UPDATED" end)} else empty end];'
# a token time at which some product is new, some updated and some deleted since
t0=$(jq -s "$statuses"' . as $all | [.[].created_ms + 1] | map(. as $t | select(($all | st($t) | map(.s) | unique | length) == 3)) | .[0]' "$KS_TMP/meta.products")
[ "$t0" != null ] || ks_fail "no product history with all three sync statuses (seed 5)"
now=$(ks_admin GET "$A" clock | jq .now_ms)
ks_admin POST "$A" "clock?offset_ms=$((t0 - now))" >/dev/null
tok=$(ks_get "$A" "crm/rest/v1/products/sync?limit=1" | jq -r .sync_token)
ks_admin POST "$A" "clock?offset_ms=0" >/dev/null
want=$(jq -s -c --argjson t "$t0" "$statuses"' st($t)' "$KS_TMP/meta.products")
got=$(ks_get "$A" "crm/rest/v1/products/sync?sync_token=$tok" | jq -c '[.product_statuses[] | {id: .product.id, s: .status}]')
[ "$got" = "$want" ] || ks_fail "products sync since 2022-07-01: got $got, want $want"
echo "$got" | jq -e 'map(.s) | (index("CREATED") and index("UPDATED") and index("DELETED"))' >/dev/null ||
    ks_fail "the sync did not show all three statuses: $got"
code=$(ks_get "$A" "crm/rest/v1/products/sync?sync_token=nope" -o /dev/null -w '%{http_code}')
[ "$code" = 400 ] || ks_fail "a bad sync_token: want 400, got $code"
ks_ok "products sync reports CREATED/UPDATED/DELETED since its token"

# v2 companies: update_time and create_time only when fields= names them (the spec), and then
# the hidden times the filters read.
ks_get "$A" "crm/rest/v2/companies?page_size=1000" >"$KS_TMP/c0"
jq -e '[.companies[] | has("update_time") or has("create_time")] | any | not' "$KS_TMP/c0" >/dev/null ||
    ks_fail "v2 companies: update_time without fields="
ks_get "$A" "crm/rest/v2/companies?page_size=1000&fields=id,company_name,update_time" >"$KS_TMP/c1"
ks_admin GET "$A" "truth?resource=companies&version=v2&meta=1" >"$KS_TMP/cm"
want=$(jq -r '"\(.id) \(.updated_ms)"' "$KS_TMP/cm" | sort)
got=$(jq -r '.companies[] | "\(.id) \(.update_time | sub("\\.[0-9]+Z$"; "Z") | fromdate)\(.update_time | capture("\\.(?<ms>[0-9]+)Z$").ms)"' "$KS_TMP/c1" | sort)
[ "$got" = "$want" ] || ks_fail "v2 companies fields=update_time: not the hidden update times"
jq -e '[.companies[] | has("create_time")] | any | not' "$KS_TMP/c1" >/dev/null ||
    ks_fail "v2 companies: create_time not named but served"
ks_ok "v2 companies serve update_time and create_time only when fields= names them"

# /v1/<object>/model: the custom fields records carry are the model's ids.
for o in contacts companies opportunities orders notes tasks appointments subscriptions; do
    ks_get "$A" "crm/rest/v1/$o/model" >"$KS_TMP/model"
    jq -e '.custom_fields | type == "array"' "$KS_TMP/model" >/dev/null || ks_fail "/v1/$o/model: no custom_fields"
done
ks_get "$A" "crm/rest/v1/contacts/model" >"$KS_TMP/model"
mids=$(jq -r '.custom_fields[].id' "$KS_TMP/model" | sort -n | tr '\n' ' ')
cids=$(ks_get "$A" "crm/rest/v1/contacts?limit=100&optional_properties=custom_fields" | jq -r '[.contacts[].custom_fields[].id] | unique | .[]' | sort -n | tr '\n' ' ')
[ -n "$mids" ] && [ "$mids" = "$cids" ] || ks_fail "contacts: model ids [$mids], records carry [$cids]"
for pair in "companies v1" "opportunities v1" "opportunities v2"; do
    set -- $pair
    ks_get "$A" "crm/rest/v1/$1/model" >"$KS_TMP/model"
    mids=$(jq -r '.custom_fields[].id' "$KS_TMP/model" | sort -n | tr '\n' ' ')
    ks_admin GET "$A" "truth?resource=$1&version=$2" >"$KS_TMP/t"
    cids=$(jq -r '.custom_fields[]?.id' "$KS_TMP/t" | sort -nu | tr '\n' ' ')
    [ -n "$mids" ] && [ "$mids" = "$cids" ] || ks_fail "$1 $2: model ids [$mids], records carry [$cids]"
done
code=$(ks_get "$A" "crm/rest/v1/tags/model" -o /dev/null -w '%{http_code}')
[ "$code" = 404 ] || ks_fail "/v1/tags/model: want 404, got $code"
ks_ok "every object's model names exactly the custom field ids its records carry"
echo "keapsim_lists: $KS_CHECKS checks passed"
