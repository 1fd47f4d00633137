#!/usr/bin/env bash
# bench_keapsim.sh: how many v1 contacts pages of 1000 records (with custom fields) keapsim
# serves per second with limits off, sequentially on one connection and with 2 and 4
# connections in parallel, next to the 100 pages/s keapsim must sustain (tests/keapsim/README.md).
# Env: KEAPSYNC_BUILD (build dir), PAGES (per run, default 2000), SIZE (contacts, 20000).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../keapsim/testlib.sh"
PAGES=${PAGES:-2000}
SIZE=${SIZE:-20000}
TARGET=100

ks_start P --seed 1 --size "$SIZE" --no-limits
pages_per_s() { # connections
    local cfg="$KS_TMP/urls" i start end got
    : >"$cfg"
    for i in $(seq 0 $((PAGES - 1))); do
        printf 'url = "http://127.0.0.1:%s/crm/rest/v1/contacts?limit=1000&offset=%d&optional_properties=custom_fields"\noutput = "/dev/null"\n' \
            "$P" $(( (i * 1000) % SIZE )) >>"$cfg"
    done
    ks_admin POST "$P" reset >/dev/null
    start=$(date +%s%N)
    if [ "$1" -gt 1 ]; then
        curl -sS --no-progress-meter --parallel --parallel-max "$1" -H "X-Keap-API-Key: $KS_KEY" -K "$cfg"
    else
        curl -sS -H "X-Keap-API-Key: $KS_KEY" -K "$cfg"
    fi
    end=$(date +%s%N)
    got=$(ks_admin GET "$P" stats | jq .accepted)
    [ "$got" = "$PAGES" ] || ks_fail "served $got of $PAGES pages"
    awk -v n="$PAGES" -v ns=$((end - start)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }'
}
bytes=$(ks_get "$P" "crm/rest/v1/contacts?limit=1000&optional_properties=custom_fields" | wc -c)
echo "keapsim bench: $PAGES pages of 1000 contacts (~$((bytes / 1024)) KiB each), limits off, $(nproc) cores"
for c in 1 2 4; do
    r=$(pages_per_s "$c")
    verdict=$([ "$r" -ge $TARGET ] && echo ok || echo BELOW)
    printf '  %d connection(s): %6d pages/s   (target >= %d pages/s: %s)\n' "$c" "$r" "$TARGET" "$verdict"
done
