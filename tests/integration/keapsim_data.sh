#!/usr/bin/env bash
# keapsim_data.sh: data that changes under the reader, and keapsim's clock.
# Mutations through /__admin/mutate and --mutate-rate show in the API and the truth; offset
# paging over a fixed since..until window drifts when records change mid-scan (KEAP_API.md,
# gotcha 1); the admin clock offset and faketime both move the UTC day and its reset. No check
# waits on the wall clock: keapsim's clock is frozen or moved, or the test polls for the
# condition itself with a deadline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"

# --- admin mutations -------------------------------------------------------------------------
# keapsim's clock is frozen (libfaketime, an absolute time without "@"), so every update of
# one call happens at the same known instant F: a record updated once gets last_updated F, a
# record the call picked k times F + k - 1 (keapsim never moves a record's time backwards).
# Summing k over the changed records counts every update exactly, even when one record was
# picked twice.
ftlib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
[ -n "$ftlib" ] || ks_fail "missing libfaketime (/usr/lib/*/faketime/libfaketime.so.1): apt-get install faketime"
frozen="2031-03-04 05:06:07"
F=$(($(date -u -d "$frozen" +%s) * 1000))
KS_ENV=(LD_PRELOAD="$ftlib" FAKETIME="$frozen" TZ=UTC ASAN_OPTIONS=verify_asan_link_order=0)
ks_start A --seed 5 --size 500 --no-limits
KS_ENV=()
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/t0"
t0=$(ks_admin GET "$A" stats | jq .now_ms)
[ "$t0" = "$F" ] || ks_fail "keapsim's clock is not frozen at $F: $t0"
max0=$(jq -s 'map(.id)|max' "$KS_TMP/t0")
jq -s -e --argjson t "$t0" 'map(select(.last_updated_utc_millis >= $t))|length == 0' "$KS_TMP/t0" >/dev/null ||
    ks_fail "records updated at or after keapsim's start"
ks_admin POST "$A" "mutate?updates=10" | jq -e '.updated==10 and .contacts==500' >/dev/null ||
    ks_fail "mutate did not report 10 updates"
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/tu"
# every changed record moved its last_updated to keapsim's now (F, F+1 for a second pick...);
# no other record changed; the picks add up to exactly the 10 updates asked for
changed=$(jq -s -c --slurpfile old "$KS_TMP/t0" --argjson f "$F" '
    ($old|map({(.id|tostring): .})|add) as $o
    | [.[]|select($o[.id|tostring] != null and $o[.id|tostring] != .)]
    | {n: length, picks: (map(.last_updated_utc_millis - $f + 1)|add),
       stale: map(select(.last_updated_utc_millis < $f))|length}' "$KS_TMP/tu")
echo "updated: $changed" >&2
echo "$changed" | jq -e '.picks == 10 and .stale == 0 and .n >= 1' >/dev/null ||
    ks_fail "updated records: $changed (want 10 picks, none stale)"
[ "$(wc -l <"$KS_TMP/tu")" = 500 ] || ks_fail "updates changed the record count"
ks_admin POST "$A" "mutate?creates=5&deletes=3" |
    jq -e '.created==5 and .updated==10 and .deleted==3 and .contacts==502' >/dev/null ||
    ks_fail "mutate did not report 5/10/3"
ks_admin GET "$A" "truth?resource=contacts" >"$KS_TMP/t1"
[ "$(wc -l <"$KS_TMP/t1")" = 502 ] || ks_fail "truth does not hold 500+5-3 records"
new=$(jq -s --argjson m "$max0" '[.[]|select(.id>$m)]|length' "$KS_TMP/t1")
[ "$new" = 5 ] || ks_fail "$new records above the old max id, want 5"
gone=$(jq -s -r 'map(.id)|.[]' "$KS_TMP/t1" | sort >"$KS_TMP/ids1"
    jq -s -r 'map(.id)|.[]' "$KS_TMP/tu" | sort | comm -23 - "$KS_TMP/ids1" | wc -l)
[ "$gone" = 3 ] || ks_fail "$gone ids gone, want 3"
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
# Waits for the changes themselves (at most 20 s, so a loaded machine is not a failure), then
# checks they came at about the rate asked for: no more than 50 a second since the start.
ks_start R --seed 5 --size 500 --no-limits --mutate-rate 50
r_t0=$(date +%s%3N)
for i in $(seq 1 400); do
    r_n=$(ks_admin GET "$R" stats | jq '.created + .updated + .deleted')
    [ "$r_n" -ge 30 ] && break
    sleep 0.05
done
r_ms=$(($(date +%s%3N) - r_t0))
[ "$r_n" -ge 30 ] || ks_fail "--mutate-rate 50 made $r_n changes in $r_ms ms"
[ "$r_n" -le $((50 * (r_ms + 1000) / 1000 + 5)) ] ||
    ks_fail "--mutate-rate 50 made $r_n changes in $r_ms ms: faster than asked"
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
# the clock moved past midnight (no waiting for it)
ks_admin POST "$K" "clock?offset_ms=$((midnight + 500 - now))" | jq -e ".now_ms >= $midnight" >/dev/null ||
    ks_fail "clock offset past midnight not applied"
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
# keapsim's admin clock moves its faked clock past midnight (no waiting for it)
ks_admin POST "$F" "clock?offset_ms=3000" | jq -e ".now_ms >= $(date -u -d 2030-06-02T00:00:00Z +%s)000" >/dev/null ||
    ks_fail "the admin clock did not move the faked clock past midnight"
[ "$(ks_get "$F" crm/rest/v1/contacts -o /dev/null -w '%{http_code}')" = 200 ] ||
    ks_fail "under faketime the day did not reset at midnight"
ks_ok "under faketime the day and its expiry follow the faked clock"
echo "keapsim_data: $KS_CHECKS checks passed"
