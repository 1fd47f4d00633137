#!/usr/bin/env bash
# keapsim_data.sh: data that changes under the reader, and keapsim's clock.
# Mutations through /__admin/mutate and --mutate-rate show in the API and the truth; offset
# paging over a fixed since..until window drifts when records change mid-scan (KEAP_API.md,
# gotcha 1); the admin clock offset and faketime both move the UTC day and its reset.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"

# --- admin mutations -------------------------------------------------------------------------
ks_start A --seed 5 --size 500 --no-limits
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/t0"
t0=$(ks_admin GET "$A" stats | jq .now_ms)
max0=$(jq -s 'map(.id)|max' "$KS_TMP/t0")
sleep 0.01
ks_admin POST "$A" "mutate?creates=5&updates=10&deletes=3" |
    jq -e '.created==5 and .updated==10 and .deleted==3 and .contacts==502' >/dev/null ||
    ks_fail "mutate did not report 5/10/3"
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/t1"
[ "$(wc -l <"$KS_TMP/t1")" = 502 ] || ks_fail "truth does not hold 500+5-3 records"
new=$(jq -s --argjson m "$max0" '[.[]|select(.id>$m)]|length' "$KS_TMP/t1")
[ "$new" = 5 ] || ks_fail "$new records above the old max id, want 5"
gone=$(jq -s -r 'map(.id)|.[]' "$KS_TMP/t1" | sort >"$KS_TMP/ids1"
    jq -s -r 'map(.id)|.[]' "$KS_TMP/t0" | sort | comm -23 - "$KS_TMP/ids1" | wc -l)
[ "$gone" = 3 ] || ks_fail "$gone ids gone, want 3"
# every changed record moved its last_updated to keapsim's now; no other record changed
changed=$(jq -s -c --slurpfile old "$KS_TMP/t0" '
    ($old|map({(.id|tostring): .})|add) as $o
    | [.[]|select($o[.id|tostring] != null and $o[.id|tostring] != .)]
    | {n: length, stale: map(select(.last_updated_utc_millis < '"$t0"'))|length}' "$KS_TMP/t1")
echo "$changed" | jq -e '.n >= 1 and .n <= 10 and .stale == 0' >/dev/null ||
    ks_fail "updated records: $changed"
# since=t0 finds exactly the records created or updated since then
iso() { date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S.$(printf %03d $(($1 % 1000)))Z; }
want=$(jq -s -c --argjson t "$t0" 'map(select(.last_updated_utc_millis >= $t)|.id)|sort' "$KS_TMP/t1")
got=$(ks_get "$A" "crm/rest/v1/contacts?since=$(iso "$t0")" | jq -c '[.contacts[].id]|sort')
[ "$got" = "$want" ] || ks_fail "since=now-ish gave $got, truth says $want"
ks_ok "admin mutations: creates above max id, deletes, updates move last_updated to now"

# --- drift: offset paging over a fixed window skips records updated mid-scan ---------------
ks_start D --seed 6 --size 2500 --no-limits
tw=$(ks_admin GET "$D" stats | jq .now_ms)
until=$(iso "$tw")
ks_get "$D" "crm/rest/v1/contacts?until=$until&order=id&limit=1000&offset=0" | jq -r '.contacts[].id' >"$KS_TMP/seen"
ks_admin POST "$D" "mutate?updates=50" >/dev/null
for off in 1000 2000; do
    ks_get "$D" "crm/rest/v1/contacts?until=$until&order=id&limit=1000&offset=$off" | jq -r '.contacts[].id' >>"$KS_TMP/seen"
done
ks_admin GET "$D" "truth?resource=contacts" |
    jq -r --argjson t "$tw" 'select(.last_updated_utc_millis < $t)|.id' | sort >"$KS_TMP/still"
missed=$(sort "$KS_TMP/seen" | comm -13 - "$KS_TMP/still" | wc -l)
[ "$missed" -ge 1 ] || ks_fail "no unchanged record was skipped: keapsim does not show offset drift"
ks_ok "offset drift reproduced: $missed never-updated records skipped after 50 mid-scan updates"

# --- background mutations -----------------------------------------------------------------
ks_start R --seed 5 --size 500 --no-limits --mutate-rate 50
sleep 1.3
ks_admin GET "$R" stats | jq -e '(.created + .updated + .deleted) >= 30' >/dev/null ||
    ks_fail "--mutate-rate 50 made too few changes: $(ks_admin GET "$R" stats | jq -c '{created,updated,deleted}')"
ks_admin GET "$R" "truth?resource=contacts" >"$KS_TMP/tr"
cmp -s "$KS_TMP/tr" "$KS_TMP/t0" && ks_fail "truth unchanged under --mutate-rate"
ks_ok "--mutate-rate changes records in the background"

# --- admin clock: the UTC day resets at midnight of the sim clock ----------------------------
ks_start K --seed 5 --size 10 --limits 0/s,0/min,3/day
now=$(ks_admin GET "$K" stats | jq .now_ms)
midnight=$(( (now / 86400000 + 1) * 86400000 ))
ks_admin POST "$K" "clock?offset_ms=$((midnight - 1500 - now))" | jq -e ".now_ms < $midnight" >/dev/null ||
    ks_fail "clock offset not applied"
for i in 1 2 3; do ks_get "$K" crm/rest/v1/contacts -o /dev/null; done
[ "$(ks_get "$K" crm/rest/v1/contacts -o /dev/null -D "$KS_TMP/k.h" -w '%{http_code}')" = 429 ] || ks_fail "day not spent"
[ "$(ks_header "$KS_TMP/k.h" x-keap-product-quota-expiry-time)" = "$midnight" ] || ks_fail "expiry before rollover"
sleep 1.7
[ "$(ks_get "$K" crm/rest/v1/contacts -o /dev/null -D "$KS_TMP/k2.h" -w '%{http_code}')" = 200 ] ||
    ks_fail "day did not reset at the sim clock's midnight"
[ "$(ks_header "$KS_TMP/k2.h" x-keap-product-quota-used)" = 1 ] || ks_fail "quota-used after reset"
[ "$(ks_header "$KS_TMP/k2.h" x-keap-product-quota-expiry-time)" = $((midnight + 86400000)) ] ||
    ks_fail "expiry after rollover"
ks_ok "admin clock offset: the day resets at 00:00 UTC of keapsim's clock"

# --- faketime -------------------------------------------------------------------------------
# libfaketime preloaded straight into keapsim (not the faketime wrapper, which would fork and
# leave keapsim out of reach of the EXIT trap)
ftlib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
[ -n "$ftlib" ] || ks_fail "missing libfaketime (/usr/lib/*/faketime/libfaketime.so.1): apt-get install faketime"
KS_ENV=(LD_PRELOAD="$ftlib" FAKETIME="@2030-06-01 23:59:58" TZ=UTC ASAN_OPTIONS=verify_asan_link_order=0)
ks_start F --seed 5 --size 10 --limits 0/s,0/min,2/day
KS_ENV=()
ks_get "$F" crm/rest/v1/contacts -o /dev/null -D "$KS_TMP/f.h"
[ "$(ks_header "$KS_TMP/f.h" x-keap-product-quota-expiry-time)" = "$(( $(date -u -d 2030-06-02T00:00:00Z +%s) * 1000 ))" ] ||
    ks_fail "under faketime the expiry is $(ks_header "$KS_TMP/f.h" x-keap-product-quota-expiry-time)"
ks_get "$F" crm/rest/v1/contacts -o /dev/null
[ "$(ks_get "$F" crm/rest/v1/contacts -o /dev/null -w '%{http_code}')" = 429 ] || ks_fail "faketime day not spent"
sleep 2.2
[ "$(ks_get "$F" crm/rest/v1/contacts -o /dev/null -w '%{http_code}')" = 200 ] ||
    ks_fail "under faketime the day did not reset at midnight"
ks_ok "under faketime the day and its expiry follow the faked clock"
echo "keapsim_data: $KS_CHECKS checks passed"
