#!/usr/bin/env bash
# keapsim_basic.sh: keapsim's phase-1 contract, checked with curl and jq against the binary.
# Auth (401 gateway body), v1 contacts page shape against the real fixture, paging covers every
# id once, since/until, determinism by seed, the spike/minute/day windows answer 429 with the
# gateway body and true x-keap-* headers, and /__admin/stats counts it all.
# Needs no database. Env: KEAPSYNC_BUILD (build dir). The fixture is tests/data/keap/fixtures/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"
fixture="$(dirname "$here")/data/keap/fixtures/v1-contacts-page.json"
[ -r "$fixture" ] || ks_fail "missing test input $fixture (the real v1 contacts page)"

SIZE=2500
ks_start A --seed 7 --size $SIZE --no-limits
ks_start B --seed 7 --size $SIZE --no-limits
ks_start C --seed 8 --size $SIZE --no-limits

# --- auth ---------------------------------------------------------------------------------
code=$(curl -sS -o "$KS_TMP/401" -D "$KS_TMP/401.h" -w '%{http_code}' \
    "http://127.0.0.1:$A/crm/rest/v1/contacts")
[ "$code" = 401 ] || ks_fail "no key: want 401, got $code"
[ "$(jq -r .fault.detail.errorcode "$KS_TMP/401")" = keymanagement.service.invalid_access_token ] ||
    ks_fail "401 body: $(cat "$KS_TMP/401")"
[ "$(ks_header "$KS_TMP/401.h" x-keap-tenant-id)" = ks7.infusionsoft.com ] ||
    ks_fail "401 lacks x-keap-tenant-id"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'X-Keap-API-Key: wrong' \
    "http://127.0.0.1:$A/crm/rest/v1/contacts")
[ "$code" = 401 ] || ks_fail "wrong key: want 401, got $code"
ks_ok "401 with the gateway body without a key or with a wrong key"

# --- shape ----------------------------------------------------------------------------------
ks_get "$A" "crm/rest/v1/contacts?limit=50" -D "$KS_TMP/p.h" >"$KS_TMP/p"
ctype=$(ks_header "$KS_TMP/p.h" content-type)
[ "$ctype" = "application/json;charset=UTF-8" ] || ks_fail "content-type \"$ctype\""
[ "$(jq '.contacts|length' "$KS_TMP/p")" = 50 ] || ks_fail "limit=50 did not give 50 records"
[ "$(jq .count "$KS_TMP/p")" = $SIZE ] || ks_fail "count is not the total matching"
jq -e '.next|type=="string"' "$KS_TMP/p" >/dev/null || ks_fail "no next link"
jq -e '.previous|type=="string"' "$KS_TMP/p" >/dev/null || ks_fail "no previous link"
want=$(jq -c '[.contacts[0]|keys[]]|sort' "$fixture")
got=$(jq -c '[.contacts[]|[keys[]]|sort]|unique' "$KS_TMP/p")
[ "$got" = "[$want]" ] || ks_fail "record keys $got differ from the fixture's $want"
# same JSON type for every key the fixture has non-null (null is allowed where Keap has it)
types=$(jq -c --slurpfile f "$fixture" '
    ($f[0].contacts[0]|to_entries|map(select(.value!=null)|{(.key):(.value|type)})|add) as $t
    | [.contacts[]|to_entries[]|select(.value!=null and $t[.key]!=null and
                                        (.value|type)!=$t[.key])|.key]|unique' "$KS_TMP/p")
[ "$types" = "[]" ] || ks_fail "fields with types other than the fixture's: $types"
# timestamps like Keap's: seconds shown, +0000, and the millis field agrees with last_updated
bad=$(jq '[.contacts[]|select((.date_created|test("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.000\\+0000$")|not)
          or (.last_updated|test("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.000\\+0000$")|not)
          or ((.last_updated[0:19]+"Z"|fromdateiso8601) != ((.last_updated_utc_millis/1000)|floor))
          or (.last_updated < .date_created))]|length' "$KS_TMP/p")
[ "$bad" = 0 ] || ks_fail "$bad records with malformed or inconsistent timestamps"
# nulls and empties occur as in real data; custom fields only when asked for
jq -e '[.contacts[].company]|any(.==null)' "$KS_TMP/p" >/dev/null || ks_fail "company never null"
jq -e '[.contacts[].addresses]|any(length==0)' "$KS_TMP/p" >/dev/null || ks_fail "addresses never empty"
jq -e '[.contacts[]|has("custom_fields")]|any|not' "$KS_TMP/p" >/dev/null ||
    ks_fail "custom_fields present without optional_properties"
ks_get "$A" "crm/rest/v1/contacts?limit=50&optional_properties=custom_fields" >"$KS_TMP/cf"
jq -e '[.contacts[].custom_fields[].content|type]|unique|(index("string")!=null and index("number")!=null and index("null")!=null)' \
    "$KS_TMP/cf" >/dev/null || ks_fail "custom field content does not mix string, number and null"
jq -e '.next|contains("optional_properties")|not' "$KS_TMP/cf" >/dev/null ||
    ks_fail "next keeps optional_properties (Keap's drops it)"
ks_ok "page shape, types and timestamps match the fixture; custom fields only on request"

# --- paging ---------------------------------------------------------------------------------
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/truth"
[ "$(wc -l <"$KS_TMP/truth")" = $SIZE ] || ks_fail "truth has $(wc -l <"$KS_TMP/truth") lines"
jq -s -c 'map(.id)' "$KS_TMP/truth" >"$KS_TMP/truth.ids"
jq -e 'length as $n | (.[-1] - .[0] + 1) > $n' "$KS_TMP/truth.ids" >/dev/null ||
    ks_fail "ids have no gaps"
off=0
: >"$KS_TMP/paged.ids"
while :; do
    ks_get "$A" "crm/rest/v1/contacts?limit=5000&offset=$off&order=id" >"$KS_TMP/page"
    n=$(jq '.contacts|length' "$KS_TMP/page")
    [ "$n" -le 1000 ] || ks_fail "limit=5000 gave $n records (cap is 1000)"
    jq -c '.contacts[].id' "$KS_TMP/page" >>"$KS_TMP/paged.ids"
    [ "$n" -lt 1000 ] && break
    off=$((off + n))
done
got=$(jq -s -c '.' "$KS_TMP/paged.ids")
[ "$got" = "$(cat "$KS_TMP/truth.ids")" ] || ks_fail "paging did not return every id exactly once"
# the truth lines are what the API serves with custom fields
first=$(ks_get "$A" "crm/rest/v1/contacts?limit=1&optional_properties=custom_fields" | jq -c '.contacts[0]')
[ "$first" = "$(head -n 1 "$KS_TMP/truth" | jq -c .)" ] || ks_fail "truth differs from the API"
# descending order reverses
desc=$(ks_get "$A" "crm/rest/v1/contacts?limit=3&order=id&order_direction=DESCENDING" | jq -c '[.contacts[].id]')
[ "$desc" = "$(jq -c '.[-3:]|reverse' "$KS_TMP/truth.ids")" ] || ks_fail "DESCENDING gave $desc"
ks_ok "limit/offset paging returns each of $SIZE ids once, limit capped at 1000"

# --- since / until --------------------------------------------------------------------------
read -r lo hi < <(jq -s -r 'map(.last_updated_utc_millis)|sort|"\(.[length/4|floor]) \(.[length/2|floor])"' "$KS_TMP/truth")
iso() { date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S.$(printf %03d $(($1 % 1000)))Z; }
want=$(jq -s -c --argjson lo "$lo" --argjson hi "$hi" \
    'map(select(.last_updated_utc_millis >= $lo and .last_updated_utc_millis < $hi)|.id)|sort' "$KS_TMP/truth")
got=$(ks_get "$A" "crm/rest/v1/contacts?since=$(iso "$lo")&until=$(iso "$hi")&limit=1000" |
    jq -c '[.contacts[].id]|sort')
[ "$got" = "$want" ] || ks_fail "since/until returned other ids than since <= last_updated < until"
[ "$(echo "$want" | jq length)" -gt 100 ] || ks_fail "since/until window too small to mean much"
code=$(ks_get "$A" "crm/rest/v1/contacts?since=yesterday" -o /dev/null -w '%{http_code}')
[ "$code" = 400 ] || ks_fail "bad since: want 400, got $code"
ks_ok "since/until select since <= last_updated_utc_millis < until"

# --- determinism ----------------------------------------------------------------------------
q="crm/rest/v1/contacts?limit=1000&offset=500&optional_properties=custom_fields"
ks_get "$A" "$q" | sed "s/127.0.0.1:$A/HOST/g" >"$KS_TMP/a"
ks_get "$B" "$q" | sed "s/127.0.0.1:$B/HOST/g" >"$KS_TMP/b"
ks_get "$C" "$q" | sed "s/127.0.0.1:$C/HOST/g" >"$KS_TMP/c"
cmp -s "$KS_TMP/a" "$KS_TMP/b" || ks_fail "same seed, different bytes"
cmp -s "$KS_TMP/a" "$KS_TMP/c" && ks_fail "different seeds, same bytes"
ks_admin GET "$B" "truth?resource=contacts" >"$KS_TMP/truthB"
cmp -s "$KS_TMP/truthB" "$KS_TMP/truth" || ks_fail "truth differs for the same seed"
ks_ok "same seed gives identical bytes, another seed other bytes"

# --- limits ---------------------------------------------------------------------------------
ks_start L --seed 3 --size 50 --limits 10/s,240/min,30000/day
# one curl process, one connection, --next between requests so each keeps its own dump files
urls=()
for i in $(seq 1 11); do
    [ "$i" -gt 1 ] && urls+=(--next)
    urls+=(-sS -H "X-Keap-API-Key: $KS_KEY" -w '%{http_code}\n' -o "$KS_TMP/l$i" -D "$KS_TMP/l$i.h"
        "http://127.0.0.1:$L/crm/rest/v1/contacts?limit=5")
done
codes=$(curl "${urls[@]}" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
[ "$codes" = " 10 200; 1 429;" ] || ks_fail "11 quick requests gave codes $codes (want 10x200, 1x429)"
f=$(grep -l -E '^HTTP/1.1 429' "$KS_TMP"/l*.h | head -n 1)
body=${f%.h}
[ "$(jq -r .fault.detail.errorcode "$body")" = policies.ratelimit.SpikeArrestViolation ] ||
    ks_fail "spike 429 body: $(cat "$body")"
jq -r .fault.faultstring "$body" | grep -q 'messagesPerPeriod=10,' || ks_fail "spike faultstring"
[ "$(ks_header "$f" x-keap-product-quota-used)" = 10 ] || ks_fail "429 quota-used not 10"
[ "$(ks_header "$f" x-keap-product-quota-available)" = 29990 ] || ks_fail "429 quota-available"
[ "$(ks_header "$f" x-keap-product-throttle-used)" = 10 ] || ks_fail "429 throttle-used"
[ "$(ks_header "$f" x-keap-product-spike-limit)" = 10ps ] || ks_fail "429 spike-limit"
midnight=$(( ($(date -u +%s) / 86400 + 1) * 86400 * 1000 ))
[ "$(ks_header "$f" x-keap-product-quota-expiry-time)" = "$midnight" ] || ks_fail "expiry-time not next UTC midnight"
ks_admin GET "$L" stats >"$KS_TMP/stats"
jq -e '.requests==11 and .rejected_429==1 and .rejected_429_by_window.second==1 and .day_used==10
       and .max_in_1s==10 and .keys.key1.rejected_429==1' "$KS_TMP/stats" >/dev/null ||
    ks_fail "stats after the burst: $(cat "$KS_TMP/stats")"
ks_admin POST "$L" reset | jq -e '.requests==0 and .day_used==0 and .max_in_1s==0' >/dev/null ||
    ks_fail "reset did not zero the stats"
code=$(ks_get "$L" "crm/rest/v1/contacts?limit=1" -o /dev/null -w '%{http_code}')
[ "$code" = 200 ] || ks_fail "after reset the spike window still refuses ($code)"
ks_ok "11 quick requests at 10/s: one 429 with the spike body and headers; stats and reset"

ks_start M --seed 3 --size 5 --limits 0/s,5/min,3/day
for i in 1 2 3; do ks_get "$M" "crm/rest/v1/contacts" -o /dev/null; done
[ "$(ks_get "$M" "crm/rest/v1/contacts" -D "$KS_TMP/m.h" -o "$KS_TMP/m" -w '%{http_code}')" = 429 ] ||
    ks_fail "4th request over 3/day not refused"
jq -r .fault.faultstring "$KS_TMP/m" | grep -q 'Quota limit exceeded. Identifier : key1' || ks_fail "day 429 body"
[ "$(ks_header "$KS_TMP/m.h" x-keap-product-quota-available)" = 0 ] || ks_fail "day 429 available"
ks_admin GET "$M" stats | jq -e '.rejected_429_by_window.day==1 and .day_used==3' >/dev/null ||
    ks_fail "day 429 not counted as day"
ks_ok "the day window refuses with QuotaViolation once used up"

ks_start N --seed 3 --size 5 --limits 0/s,4/min,0/day
for i in 1 2 3 4; do ks_get "$N" "crm/rest/v1/contacts" -o /dev/null; done
[ "$(ks_get "$N" "crm/rest/v1/contacts" -o /dev/null -w '%{http_code}')" = 429 ] || ks_fail "5th request over 4/min not refused"
ks_admin GET "$N" stats | jq -e '.rejected_429_by_window.minute==1 and .max_in_60s==4' >/dev/null ||
    ks_fail "minute 429 not counted as minute"
ks_ok "the rolling minute refuses with QuotaViolation"

# --- latency and the per-second histogram ----------------------------------------------------
ks_start Y --seed 3 --size 5 --no-limits --latency 400:100
start=$(date +%s%N)
cpids=()
for i in $(seq 1 10); do
    curl -sS -o /dev/null -w '%{time_total}\n' -H "X-Keap-API-Key: $KS_KEY" \
        "http://127.0.0.1:$Y/crm/rest/v1/contacts" >"$KS_TMP/lat.$i" &
    cpids+=($!)
done
wait "${cpids[@]}"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$KS_TMP"/lat.* | awk '$1 < 0.29 || $1 > 2 {bad++} END {exit bad > 0}' || ks_fail "a delay outside 400+-100 ms"
[ "$elapsed" -lt 2500 ] || ks_fail "10 parallel delayed requests took $elapsed ms: delays stall each other"
# The histogram counts whole seconds: wait for the one the last request landed in to close
# (the condition itself, at most 5 s), not for a fixed time.
for i in $(seq 1 100); do
    ks_admin GET "$Y" stats | jq -e '.per_second.counts|add == 10' >/dev/null && break
    sleep 0.05
done
ks_admin GET "$Y" stats | jq -e '.per_second.counts|add == 10' >/dev/null ||
    ks_fail "per-second histogram: $(ks_admin GET "$Y" stats | jq -c .per_second)"
ks_ok "--latency delays each request without stalling the others; per-second histogram"

echo "keapsim_basic: $KS_CHECKS checks passed"
