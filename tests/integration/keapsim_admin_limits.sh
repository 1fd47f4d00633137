#!/usr/bin/env bash
# keapsim's limits change at run time through POST /__admin/limits.
. "$(dirname "$0")/lib.sh"

key="k-$RANDOM"
# keapsim's clocks (wall and monotonic) are frozen (libfaketime, an absolute time without
# "@"): its rolling windows see every request at the same instant, so "within the second"
# holds however slowly this machine runs the requests.
frozen="$IT_TMP/keapsim-frozen"
printf '#!/bin/sh\nLD_PRELOAD=%s FAKETIME="2031-03-04 05:06:07" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" exec "%s" "$@"\n' \
    "$(it_faketime_lib | sed 's/libfaketimeMT/libfaketime/')" "$KSIM" >"$frozen"
chmod +x "$frozen"
KSIM=$frozen it_keapsim --seed 2 --size 20 --api-key "$key" --limits 10/s,240/min,30000/day
eq "keapsim's clock is frozen" "$(($(date -u -d '2031-03-04 05:06:07' +%s) * 1000))" "$(ksim_stat .now_ms)"
get() { curl -s -o /dev/null -D "$IT_TMP/h" -w '%{http_code}' -H "X-Keap-API-Key: $key" "$KEAP_BASE_URL/v1/contacts?limit=1"; }

eq "limits read back" 240 "$(curl -sf "$KSIM_URL/__admin/limits" | jq .per_minute)"
eq "bad spec refused" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$KSIM_URL/__admin/limits?limits=ten/s")"
curl -sf -X POST "$KSIM_URL/__admin/limits?limits=2/s,5/min,30000/day&tenant=900/min" >"$IT_TMP/l"
eq "new minute in force" 5 "$(jq .per_minute "$IT_TMP/l")"
eq "new tenant minute in force" 900 "$(jq .tenant_per_minute "$IT_TMP/l")"
codes=""
for _ in 1 2 3; do codes="$codes$(get) "; done
eq "a third request within the second is refused by the new spike window" "200 200 429 " "$codes"
eq "the refusal is the second window's" 1 "$(ksim_stat .rejected_429_by_window.second)"
check "headers show the new minute" grep -qi '^x-keap-product-throttle-limit: 5' "$IT_TMP/h"
curl -sf -X POST "$KSIM_URL/__admin/limits?limits=0/s,0/min,0/day" >/dev/null
codes=""
for _ in $(seq 1 20); do codes="$codes$(get)"; done
eq "with every window off nothing is refused" "$(printf '200%.0s' $(seq 1 20))" "$codes"
it_done
