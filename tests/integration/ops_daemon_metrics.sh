#!/usr/bin/env bash
# Issue 12, the daemon's metrics: `keapsync daemon --metrics-port N` serves GET /metrics (the
# textfile's Prometheus text) and GET /healthz; KEAPSYNC_METRICS_FILE is replaced atomically
# every KEAPSYNC_METRICS_INTERVAL seconds (here 1) and after each run. Bad ports, addresses
# and intervals end it with exit 2 and one line. /healthz turns 503 when Postgres stops and 200
# again when it is back. The cluster is this test's own (deploy/lib/pg.sh): it is stopped.
. "$(dirname "$0")/lib.sh"
it_own_cluster opsd
check_prom() { awk -f "$KEAPSYNC_SRC/tests/integration/prom_check.awk" "$1"; }

export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs" "$IT_TMP/prom"
jq '.page_size = 50 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="5/s,240/min,30000/day" # about 12 s for the 60 pages: scrapes see it move
export KEAPSYNC_METRICS_FILE="$IT_TMP/prom/keapsync.prom"
export KEAPSYNC_METRICS_INTERVAL=1
it_keapsim --seed 12 --size 3000 --api-key "$KEAP_API_KEY" --limits "10/s,600/min,0/day"
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts

# --- bad settings: exit 2, one line, nothing listens ------------------------------------------
ksim_port=${KSIM_URL##*:}
bad() { # bad NAME PATTERN ENV... -- ARGS...
    local name=$1 pat=$2 rc=0
    shift 2
    env "$@" >"$IT_TMP/bad.out" 2>"$IT_TMP/bad.err" || rc=$?
    eq "$name: exit 2" 2 "$rc"
    eq "$name: one line" 1 "$(wc -l <"$IT_TMP/bad.err")"
    check "$name: says what and how to fix it" grep -qE "^keapsync: error: $pat.*\(hint: " "$IT_TMP/bad.err"
}
bad "a port that is not a number" 'invalid --metrics-port "nine"' "$KS" daemon --metrics-port nine
bad "a port over 65535" 'invalid --metrics-port "70000"' "$KS" daemon --metrics-port=70000
bad "no port after --metrics-port" '--metrics-port needs a port number' "$KS" daemon --metrics-port
bad "a port in use (keapsim's)" "could not listen on 127.0.0.1 port $ksim_port" "$KS" daemon --metrics-port "$ksim_port"
bad "a bad KEAPSYNC_METRICS_ADDR" 'invalid KEAPSYNC_METRICS_ADDR "localhost:1"' KEAPSYNC_METRICS_ADDR=localhost:1 "$KS" daemon --metrics-port 0
bad "a bad KEAPSYNC_METRICS_INTERVAL" 'invalid KEAPSYNC_METRICS_INTERVAL "0"' KEAPSYNC_METRICS_INTERVAL=0 "$KS" daemon
eq "none of them left a heartbeat" 0 "$(sql "SELECT count(*) FROM keapsync.leases WHERE name LIKE 'daemon:%' AND expires_at > now()")"

# --- a daemon with --metrics-port 0 --------------------------------------------------------------
LOG="$IT_TMP/daemon.log"
"$KS" daemon --metrics-port 0 >"$LOG" 2>&1 &
DPID=$!
IT_PIDS+=("$DPID")
mport() { sed -n 's/.*serving \/metrics and \/healthz on 127\.0\.0\.1 port \([0-9][0-9]*\).*/\1/p' "$LOG" | head -1; }
has_port() { [ -n "$(mport)" ]; }
check "it logs the port it picked" wait_for 15 has_port
M="http://127.0.0.1:$(mport)"
it_log "metrics on $M"
scrape() { curl -sf -o "$IT_TMP/scrape.$1" -w '%{content_type}' "$M/metrics"; }
value() { awk -v k="$2" '$1 == k { print $2 }' "$IT_TMP/scrape.$1"; }
gathered() { scrape 1 >"$IT_TMP/ctype" 2>/dev/null; }
check "GET /metrics answers" wait_for 15 gathered
eq "its content type is Prometheus text 0.0.4" "text/plain; version=0.0.4; charset=utf-8" "$(cat "$IT_TMP/ctype")"
check "it passes the strict format check" check_prom "$IT_TMP/scrape.1"
req1=$(value 1 keapsync_requests_total)
done_run() { grep -q 'run: outcome=complete' "$LOG"; }
check "the daemon's first run completes" wait_for 90 done_run
db_req=$(sql "SELECT sum(requests) FROM keapsync.runs WHERE finished_at IS NOT NULL")
moved() { scrape 2 >/dev/null && [ "$(value 2 keapsync_requests_total)" = "$db_req" ]; }
check "after the run, keapsync_requests_total = the runs' requests ($db_req)" wait_for 10 moved
check "it grew ($req1 -> $(value 2 keapsync_requests_total))" test "$(value 2 keapsync_requests_total)" -gt "$req1"
eq "keapsync_records_total{job=\"contacts\"} = the table's rows" "$(sql "SELECT count(*) FROM keap.contacts")" "$(value 2 'keapsync_records_total{job="contacts"}')"
eq "keapsync_runs_total{outcome=\"complete\"}" 1 "$(value 2 'keapsync_runs_total{outcome="complete"}')"
tenant=$(sql "SELECT value FROM keapsync.settings WHERE key LIKE 'tenant:%' LIMIT 1")
used=$(sql "SELECT reserved FROM keapsync.quota_ledger WHERE tenant = '$tenant' AND day = (now() AT TIME ZONE 'UTC')::date")
eq "keapsync_quota_used{tenant} = the ledger, for the tenant the first run named" "$used" "$(value 2 "keapsync_quota_used{tenant=\"$tenant\"}")"
eq "keapsync_quota_left{tenant} = the budget less it" "$((30000 - used))" "$(value 2 "keapsync_quota_left{tenant=\"$tenant\"}")"
check "the scrape passes the strict format check" check_prom "$IT_TMP/scrape.2"
cmp -s "$IT_TMP/scrape.2" "$KEAPSYNC_METRICS_FILE" || sleep 1.5
scrape 2 >/dev/null
eq "the file says what /metrics says" "$(cat "$IT_TMP/scrape.2")" "$(cat "$KEAPSYNC_METRICS_FILE")"
eq "contacts equal the truth" 0 "$(sql "SELECT (SELECT count(*) FROM truth_contacts t WHERE NOT EXISTS
        (SELECT 1 FROM keap.contacts c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
      + (SELECT count(*) FROM keap.contacts c WHERE NOT EXISTS
        (SELECT 1 FROM truth_contacts t WHERE (t.doc->>'id')::bigint = c.id))")"

# --- the file each interval, replaced atomically ------------------------------------------------
m1=$(stat -c %.9Y "$KEAPSYNC_METRICS_FILE"); i1=$(stat -c %i "$KEAPSYNC_METRICS_FILE")
newer() { [ "$(stat -c %.9Y "$KEAPSYNC_METRICS_FILE")" != "$m1" ]; }
check "the file's mtime advances within an interval and a half, with no run" wait_for 3 newer
check "... replaced (a new inode), not rewritten" test "$(stat -c %i "$KEAPSYNC_METRICS_FILE")" != "$i1"
m1=$(stat -c %.9Y "$KEAPSYNC_METRICS_FILE")
check "... and again" wait_for 3 newer
check "it passes the strict format check" check_prom "$KEAPSYNC_METRICS_FILE"
eq "no temporary file left beside it" "keapsync.prom" "$(ls "$IT_TMP/prom")"

# --- /healthz ------------------------------------------------------------------------------------
health() { curl -s -o "$IT_TMP/h.body" -w '%{http_code}' "$M/healthz"; }
eq "/healthz: 200 while the database answers" 200 "$(health)"
check "... with a one-line body" grep -qE '^ok: the database answered [0-9]+ s ago$' "$IT_TMP/h.body"
HC="$KEAPSYNC_SRC/deploy/container/keapsync-health"
rc=0; KEAPSYNC_HEALTH_PORT=$(mport) "$HC" >"$IT_TMP/hc.out" 2>&1 || rc=$?
eq "the image's health check asks /healthz: healthy" 0 "$rc"
check "... saying so" grep -q '^keapsync-health: healthy: /healthz: ok: ' "$IT_TMP/hc.out"
eq "an unknown path: 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$M/nope")"
eq "POST /metrics: 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$M/metrics")"
pg_stop
it_log "Postgres stopped"
unhealthy() { [ "$(health)" = 503 ]; }
t0=$(date +%s)
check "/healthz: 503 once the database stops answering (2 intervals + 10 s)" wait_for 30 unhealthy
it_log "503 after $(($(date +%s) - t0)) s: $(cat "$IT_TMP/h.body")"
eq "... one line" 1 "$(wc -l <"$IT_TMP/h.body")"
check "... saying why" grep -q '^unhealthy: the database has not answered for [0-9]* s' "$IT_TMP/h.body"
rc=0; KEAPSYNC_HEALTH_PORT=$(mport) "$HC" >"$IT_TMP/hc.out" 2>&1 || rc=$?
eq "the image's health check: unhealthy (exit 1)" 1 "$rc"
check "... with /healthz's reason" grep -q '^keapsync-health: unhealthy: /healthz answered 503: unhealthy: the database' "$IT_TMP/hc.out"
eq "/metrics still serves the last snapshot" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$M/metrics")"
check "the daemon lives on" kill -0 "$DPID"
pg_start
it_log "Postgres started again"
healthy() { [ "$(health)" = 200 ]; }
check "/healthz: 200 again once it is back" wait_for 60 healthy

kill -TERM "$DPID"
rc=0; wait "$DPID" || rc=$?
IT_PIDS=("$KSIM_PID")
eq "the daemon exits 0 on SIGTERM" 0 "$rc"
check "and nothing listens on the port any more" bash -c "! curl -s -m 2 -o /dev/null '$M/healthz'"
check "no secret in the log" bash -c "! grep -qF '$KEAP_API_KEY' '$LOG'"

it_done
