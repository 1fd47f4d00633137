#!/usr/bin/env bash
# Issue 12, keapsync report: one self-contained HTML file (no script, no external reference)
# whose inline SVG charts carry the figures of keapsync's tables (bars with data-value), and,
# where Chromium is installed, renders to a PNG with the charts drawn: much more ink than the
# same report over an empty history, which has axes only.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 100' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
cp "$KEAPSYNC_SRC/jobs/products.json" "$IT_TMP/jobs/"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
it_keapsim --seed 21 --size 1200 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
"$KS" migrate >/dev/null 2>&1
export KEAPSYNC_TENANT=acme

rc=0; "$KS" report --out "$IT_TMP/empty.html" >/dev/null 2>"$IT_TMP/empty.err" || rc=$?
eq "report over an empty history exits 0" 0 "$rc"
for i in 1 2 3; do
    KEAPSYNC_LIMITS="$((4 + 3 * i))/s,240/min,30000/day" "$KS" run >/dev/null 2>&1
    sql "DELETE FROM keapsync.checkpoints WHERE job = 'contacts'"
done
"$KS" backfill contacts --from 2020-01-01 >/dev/null
rc=0; "$KS" report --out "$IT_TMP/r.html" --runs 2 >"$IT_TMP/r.out" 2>"$IT_TMP/r.err" || rc=$?
eq "report exits 0" 0 "$rc"
check "it says where it wrote" grep -q "^report: $IT_TMP/r.html written" "$IT_TMP/r.out"
html="$IT_TMP/r.html"
check "self-contained: no script, no link, no external URL but the SVG namespace" \
    bash -c "! grep -Eiq '<script|<link|src=|href=|url\\(' '$html' && [ -z \"\$(grep -Eo 'https?://[^\"]*' '$html' | grep -v '^http://www.w3.org/2000/svg$')\" ]"
bars() { # CHART-ID: the data-value of each bar of that chart, one a line
    awk -v id="$1" '/<svg id="/ { on = index($0, "id=\"" id "\"") > 0 } on && /class="bar"/ { match($0, /data-value="[^"]*"/); print substr($0, RSTART + 12, RLENGTH - 13) }' "$html"
}
eq "five charts" 5 "$(grep -c '<svg id=' "$html")"
eq "--runs 2: two bars of requests per second" 2 "$(bars rate-second | wc -l)"
want=$(sql "SELECT string_agg(round(requests / extract(epoch FROM finished_at - started_at))::text, ' ' ORDER BY id) FROM (SELECT * FROM keapsync.runs ORDER BY id DESC LIMIT 2) x")
eq "requests per second: each run's requests over its duration" "$want" "$(bars rate-second | awk '{ printf "%s%d", (NR > 1) ? " " : "", $1 + 0.5 }')"
check "the per-second ceiling is drawn at KEAPSYNC_LIMITS' 10/s" grep -q 'id="rate-second".*' "$html"
check "... as a ceiling line" bash -c "awk '/id=\"rate-second\"/,/<\\/svg>/' '$html' | grep -q 'class=\"ceiling\" data-value=\"10\"'"
check "... and per minute at 240" bash -c "awk '/id=\"rate-minute\"/,/<\\/svg>/' '$html' | grep -q 'class=\"ceiling\" data-value=\"240\"'"
eq "quota per day: 30 days" 30 "$(bars quota-days | wc -l)"
eq "quota per day: today's bar is the ledger's" "$(sql "SELECT reserved FROM keapsync.quota_ledger WHERE tenant = 'acme' AND day = (now() AT TIME ZONE 'UTC')::date")" "$(bars quota-days | tail -1)"
eq "records per job: one bar a job, run_jobs' sums" "$(sql "SELECT string_agg(sum::text, ' ' ORDER BY job) FROM (SELECT job, sum(records) FROM keapsync.run_jobs GROUP BY job) x")" "$(bars records-jobs | tr '\n' ' ' | sed 's/ $//')"
eq "backfill progress: one bar, not done yet (0 %)" "0" "$(bars backfills)"
check "an empty history says so instead of bars" bash -c "grep -q 'no data yet' '$IT_TMP/empty.html' && ! grep -q 'class=\"bar\" x=.* data-value=\"[1-9]' '$IT_TMP/empty.html'"
rc=0; "$KS" report >/dev/null 2>&1 || rc=$?
eq "report without --out: exit 2" 2 "$rc"

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$chromium" ]; then
    shot() {
        timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
            --user-data-dir="$IT_TMP/chromium" --window-size=820,1800 --screenshot="$2" "file://$1" >/dev/null 2>&1
    }
    shot "$html" "$IT_TMP/r.png"
    shot "$IT_TMP/empty.html" "$IT_TMP/empty.png"
    check "chromium rendered the report to a PNG" bash -c "head -c 8 '$IT_TMP/r.png' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'"
    if command -v python3 >/dev/null; then
        ink="$KEAPSYNC_SRC/tests/integration/png_ink.py"
        full=$(python3 "$ink" "$IT_TMP/r.png" 3b73b9) empty=$(python3 "$ink" "$IT_TMP/empty.png" 3b73b9)
        it_log "PNG: the bars' colour covers $full of the report, $empty of the empty one"
        check "the rendered charts have data: bars cover over 1 % of the page ($full), none when empty ($empty)" \
            awk -v f="$full" -v e="$empty" 'BEGIN { exit !(f > 0.01 && e == 0) }'
        eq "bars drawn in four charts (rates per second and minute, quota per day, records per job; the backfill is at 0 %)" \
            4 "$(python3 "$ink" "$IT_TMP/r.png" 3b73b9 groups)"
    else
        full=$(stat -c %s "$IT_TMP/r.png") empty=$(stat -c %s "$IT_TMP/empty.png")
        check "the rendered report holds more than the empty one ($full > $empty bytes; no python3 to count pixels)" test "$full" -gt "$empty"
    fi
    [ -z "${IT_KEEP_PNG:-}" ] || cp "$IT_TMP/r.png" "$IT_KEEP_PNG"
else
    it_log "chromium not installed (deploy/install-deps.sh --tests installs it): the rendering is not checked"
fi

it_done
