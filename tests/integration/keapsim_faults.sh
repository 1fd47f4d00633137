#!/usr/bin/env bash
# keapsim_faults.sh: every injectable fault, by kind, rate and endpoint, as a client sees it;
# Retry-After on 429 in its three settings.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"

ks_start A --seed 2 --size 50 --limits 0/s,0/min,1000000/day --fault 5xx=502:1:/v1/tags
U="crm/rest/v1/contacts?limit=2"
fault() { # KIND[=P]: only that fault, always, on /v1/contacts
    ks_admin DELETE "$A" faults >/dev/null
    ks_admin POST "$A" "faults?spec=$1:1:/v1/contacts" | jq -e 'length==1' >/dev/null || ks_fail "could not set fault $1"
}
hit() { # curl /v1/contacts into $KS_TMP/b (+ .h); prints "code size seconds curl-exit"
    local rc=0 out
    out=$(curl -sS --max-time 20 -H "X-Keap-API-Key: $KS_KEY" -o "$KS_TMP/b" -D "$KS_TMP/b.h" \
        -w '%{http_code} %{size_download} %{time_total}' "http://127.0.0.1:$A/$U" 2>/dev/null) || rc=$?
    echo "$out $rc"
}
json_ok() { jq -e . "$KS_TMP/b" >/dev/null 2>&1; }

# the --fault flag applies from the start, to its endpoint only
[ "$(ks_get "$A" crm/rest/v1/tags -o /dev/null -w '%{http_code}')" = 502 ] || ks_fail "--fault 5xx on /v1/tags"
read -r code size secs rc < <(hit)
[ "$code" = 200 ] && json_ok || ks_fail "a fault for /v1/tags hit /v1/contacts"
len=$size
ks_ok "--fault applies at start and only to its endpoint"

fault latency=300; read -r code size secs rc < <(hit)
[ "$code" = 200 ] && awk -v s="$secs" 'BEGIN{exit !(s >= 0.3)}' || ks_fail "latency: $code in $secs s"
fault 5xx=503; read -r code size secs rc < <(hit)
[ "$code" = 503 ] || ks_fail "5xx=503 gave $code"
fault reset; read -r code size secs rc < <(hit)
[ "$rc" = 18 ] && [ "$size" -lt "$len" ] || ks_fail "reset: curl exit $rc, $size of $len bytes"
fault truncate; read -r code size secs rc < <(hit)
[ "$code" = 200 ] && [ "$rc" = 0 ] && [ "$size" -lt "$len" ] && ! json_ok || ks_fail "truncate: $code $size $rc"
fault malformed; read -r code size secs rc < <(hit)
[ "$code" = 200 ] && [ "$size" -ge "$len" ] && ! json_ok || ks_fail "malformed: $code $size"
fault html; read -r code size secs rc < <(hit)
[ "$code" = 502 ] && grep -q '<html>' "$KS_TMP/b" && [ "$(ks_header "$KS_TMP/b.h" content-type)" = text/html ] ||
    ks_fail "html: $code"
fault drip=20; read -r code size secs rc < <(hit)
[ "$code" = 200 ] && json_ok && awk -v s="$secs" -v n="$len" 'BEGIN{exit !(s >= (n / 64 - 1) * 0.02)}' ||
    ks_fail "drip: $code in $secs s for $len bytes"
ks_ok "latency, 5xx, reset, truncate, malformed JSON, HTML page, dripping body"

fault 429-bare; read -r code size secs rc < <(hit)
[ "$code" = 429 ] && [ "$size" = 0 ] && [ -z "$(ks_header "$KS_TMP/b.h" x-keap-product-quota-limit)" ] ||
    ks_fail "429-bare: $code $size"
grep -qi '^retry-after' "$KS_TMP/b.h" && ks_fail "429-bare carries Retry-After"
fault no-headers; read -r code size secs rc < <(hit)
[ "$code" = 200 ] && ! grep -qi '^x-keap-' "$KS_TMP/b.h" || ks_fail "no-headers still sends x-keap-*"
fault blank-headers; read -r code size secs rc < <(hit)
v=$(ks_header "$KS_TMP/b.h" x-keap-product-quota-limit)
grep -qi '^x-keap-product-quota-limit:' "$KS_TMP/b.h" && [ -z "${v// /}" ] || ks_fail "blank-headers: quota-limit \"$v\""
read -r code size secs rc < <(ks_admin DELETE "$A" faults >/dev/null; hit)
[ "$(ks_header "$KS_TMP/b.h" x-keap-product-quota-limit)" = 1000000 ] || ks_fail "headers back after clearing faults"
ks_ok "429 without headers, x-keap headers missing or blank"

fault nul; read -r code size secs rc < <(hit)
jq -e '.contacts[0].given_name|contains("\u0000")' "$KS_TMP/b" >/dev/null || ks_fail "nul: no U+0000 in a record"
fault utf8; read -r code size secs rc < <(hit)
jq -e '.contacts[0].given_name|test("\ud83d\ude00")' "$KS_TMP/b" >/dev/null || ks_fail "utf8: no 4-byte character"
fault long-string; read -r code size secs rc < <(hit)
jq -e '.contacts[0].given_name|length > 1000000' "$KS_TMP/b" >/dev/null || ks_fail "long-string: short"
ks_ok "NUL, 4-byte UTF-8 and 1 MB strings inside records, still valid JSON"

# rate: about half of 200 requests
ks_admin DELETE "$A" faults >/dev/null
ks_admin POST "$A" "faults?spec=5xx:0.5:/v1/contacts" >/dev/null
ks_admin POST "$A" reset >/dev/null
args=()
for i in $(seq 1 200); do
    [ "$i" -gt 1 ] && args+=(--next)
    args+=(-s -o /dev/null -w '%{http_code}\n' -H "X-Keap-API-Key: $KS_KEY" "http://127.0.0.1:$A/$U")
done
n500=$(curl "${args[@]}" | grep -c '^500$' || true)
[ "$n500" -ge 60 ] && [ "$n500" -le 140 ] || ks_fail "rate 0.5 gave $n500 of 200"
ks_admin GET "$A" stats | jq -e ".faults == $n500" >/dev/null || ks_fail "stats.faults differs from $n500"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$A/__admin/faults?spec=bogus:1")
[ "$code" = 400 ] || ks_fail "a bad fault spec: want 400, got $code"
ks_ok "a 0.5 rate fires on $n500 of 200 requests; stats count them"

# Retry-After: on (seconds until a slot frees), 0, off
ks_start R1 --seed 2 --size 5 --limits 2/s,0/min,0/day --retry-after on
ks_start R0 --seed 2 --size 5 --limits 2/s,0/min,0/day --retry-after 0
ks_start RX --seed 2 --size 5 --limits 2/s,0/min,0/day
for p in "$R1" "$R0" "$RX"; do
    args=()
    for i in 1 2 3; do
        [ "$i" -gt 1 ] && args+=(--next)
        args+=(-s -o /dev/null -D "$KS_TMP/ra.$p.$i" -H "X-Keap-API-Key: $KS_KEY" "http://127.0.0.1:$p/crm/rest/v1/contacts")
    done
    curl "${args[@]}"
    head -n 1 "$KS_TMP/ra.$p.3" | grep -q ' 429' || ks_fail "3rd request at 2/s not refused"
done
[ "$(ks_header "$KS_TMP/ra.$R1.3" retry-after)" = 1 ] || ks_fail "retry-after on: $(ks_header "$KS_TMP/ra.$R1.3" retry-after)"
[ "$(ks_header "$KS_TMP/ra.$R0.3" retry-after)" = 0 ] || ks_fail "retry-after 0"
[ -z "$(ks_header "$KS_TMP/ra.$RX.3" retry-after)" ] || ks_fail "retry-after off by default"
ks_ok "Retry-After on 429: on, 0, off"
echo "keapsim_faults: $KS_CHECKS checks passed"
