#!/usr/bin/env bash
# Hostile pages (issue 13): after some pages have committed, every contacts page comes back
#   deep       with a value nested 10,000 arrays deep (cJSON's limit is 1000),
#   huge       100 MiB (keapsync caps a page at 64 MiB),
#   malformed  not JSON, or
#   truncate   cut in half.
# Each time: exit 1, one ERROR line naming the job, the page (the checkpoint's offset) and the
# cause; no crash; the peak RSS stays under a bound computed from the page cap (GNU time); the
# rows committed before stay with the checkpoint at the last of them; a page over the cap is
# not fetched again (it would be as large again). A last run without faults finishes and
# equals keapsim's truth.
. "$(dirname "$0")/lib.sh"

command -v /usr/bin/time >/dev/null || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 1; }
it_make_db
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
page=50
it_keapsim --seed 61 --size 1500 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
mkdir -p "$IT_TMP/jobs"
jq --argjson p "$page" '.page_size = $p' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs" KEAPSYNC_LIMITS="4/s,1200/min,30000/day"
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
ntruth=$(sql "SELECT count(*) FROM truth_contacts")
# The engine's page cap (SCHED_MAX_BODY) and pipeline depth (SCHED_DEFAULT_DEPTH): every page
# in flight may be filling a buffer up to the cap, so peak RSS must stay below
# (depth + 1) x cap.
cap_mib=$(sed -n 's/^#define SCHED_MAX_BODY *(\([0-9]*\)u \* 1024 \* 1024).*/\1/p' "$KEAPSYNC_SRC/engine/sched/sched_int.h")
check "the page cap is known ($cap_mib MiB)" test -n "$cap_mib"
depth=$(sed -n 's/^#define SCHED_DEFAULT_DEPTH *\([0-9]*\).*/\1/p' "$KEAPSYNC_SRC/engine/sched/sched_int.h")
check "the pipeline depth is known ($depth)" test -n "$depth"
rss_bound_kb=$(((depth + 1) * cap_mib * 1024))
if it_sanitized; then
    # AddressSanitizer keeps freed memory in its quarantine (256 MiB by default on x86_64)
    rss_bound_kb=$((rss_bound_kb + 256 * 1024))
    it_log "sanitized build: the RSS bound includes ASan's 256 MiB quarantine"
fi

rows() { sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0; }
ckpt() { sql "SELECT state->'window'->>'$1' FROM keapsync.checkpoints WHERE job = 'contacts'"; }

declare -A what=([deep]="every page nested 10,000 levels deep" [huge]="every page 100 MiB"
    [malformed]="every page not JSON" [truncate]="every page cut in half")
for kind in deep huge malformed truncate; do
    it_case_begin
    sql "DO \$\$ BEGIN IF to_regclass('keap.contacts') IS NOT NULL THEN TRUNCATE keap.contacts; END IF; END \$\$;
         DELETE FROM keapsync.checkpoints" >/dev/null
    curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
    out="$IT_TMP/$kind.out" err="$IT_TMP/$kind.err" rc=0
    /usr/bin/time -f 'maxrss_kb=%M' -o "$IT_TMP/$kind.time" "$KS" run >"$out" 2>"$err" &
    pid=$!
    IT_PIDS+=("$pid")
    at=0
    for _ in $(seq 1 1500); do
        at=$(rows)
        [ "$at" -ge $((2 * page)) ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    f0=$(ksim_stat .faults)
    curl -sf -X POST "$KSIM_URL/__admin/faults?spec=$kind:1:/v1/contacts" >/dev/null
    wait "$pid" || rc=$?
    fired=$(($(ksim_stat .faults) - f0))
    grep -v ' INFO: ' "$err" | sort | uniq -c | head -5 >&2 || true
    eq "$kind: exit 1" 1 "$rc"
    check "$kind: the fault went in mid-run ($at rows)" test "$at" -gt 0 -a "$at" -lt "$ntruth"
    n=$(rows)
    off=$(ckpt offset)
    check "$kind: the rows committed before stay ($n >= $at)" test "$n" -ge "$at"
    eq "$kind: the checkpoint is at the last stored record" "$((n - 1))" "$off"
    eq "$kind: the stored rows are exactly the first $n of the truth" 0 \
       "$(sql "SELECT count(*) FROM (SELECT doc FROM truth_contacts ORDER BY (doc->>'id')::bigint LIMIT $n) t
               LEFT JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"
    eq "$kind: one ERROR line" 1 "$(grep -c ' ERROR: ' "$err" || true)"
    line=$(grep ' ERROR: ' "$err" || true)
    it_log "$kind: $line"
    named=$(sed -n 's/.*page at offset \([0-9]*\) of "contacts".*/\1/p' <<<"$line")
    # The pages in flight fail together; the first to come back is named.
    check "$kind: it names the job and a page in flight after the checkpoint ($named: $off .. $((off + depth * page)))" \
        test -n "$named" -a "${named:-0}" -ge "$off" -a "${named:-0}" -le $((off + depth * page))
    case $kind in
    deep) check "deep: it says why" grep -q 'nested deeper than 1000 levels' <<<"$line" ;;
    huge)
        check "huge: it says why" grep -q "larger than the $cap_mib MiB cap" <<<"$line"
        check "huge: a page over the cap is not fetched again ($fired responses, $depth pages in flight)" \
            test "$fired" -ge 1 -a "$fired" -le "$depth" ;;
    malformed | truncate) check "$kind: it says why" grep -q 'not valid JSON' <<<"$line" ;;
    esac
    check "$kind: no sanitizer or crash report" bash -c "! grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped' '$err'"
    rss=$(sed -n 's/^maxrss_kb=//p' "$IT_TMP/$kind.time")
    it_log "$kind: peak RSS $rss KB (bound $rss_bound_kb KB), $fired faulty responses"
    check "$kind: peak RSS $rss KB under $rss_bound_kb KB" test "${rss:-999999999}" -lt "$rss_bound_kb"
    it_case_end "hostile page mid-run, ${what[$kind]}: exit 1 naming job, page and cause, memory bounded" "$fired"
done
it_case_begin

curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
rc=0
"$KS" run >"$IT_TMP/last.out" 2>"$IT_TMP/last.err" || rc=$?
eq "without faults: the run resumes and finishes" 0 "$rc"
eq "without faults: keap.contacts equals the truth" 0 \
   "$(sql "SELECT count(*) FROM truth_contacts t FULL JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint
           WHERE c.data IS DISTINCT FROM t.doc")"
eq "without faults: every record" "$ntruth" "$(rows)"
it_case_end "after the hostile pages, a run without faults resumes and equals the truth" 0
it_done
