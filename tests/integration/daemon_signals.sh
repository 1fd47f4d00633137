#!/usr/bin/env bash
# keapsync daemon and signals:
#   SIGTERM mid-page: pages stuck in flight are abandoned at KEAPSYNC_STOP_TIMEOUT, the daemon
#     exits 0 within the bound, every committed page stays, and a run afterwards completes to
#     the truth.
#   SIGHUP with a broken job file: the old set keeps running, one log line says why.
#   SIGHUP with a new job: it runs.
#   SIGTERM while sleeping: exit 0 at once.
# Also the heartbeat lease and `keapsync status` from another process while the daemon runs.
. "$(dirname "$0")/lib.sh"

export KEAP_API_KEY="it-key-$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 50 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="4/s,240/min,30000/day"
it_keapsim --seed 41 --size 3000 --api-key "$KEAP_API_KEY" --limits "10/s,600/min,0/day"
it_make_db
"$KS" migrate >/dev/null
ksim_truth_to_pg contacts
ksim_truth_to_pg products
rows() { sql "SELECT count(*) FROM keap.$1"; }
off() { # rows of keap.$1 that differ from the truth, either way
    sql "SELECT (SELECT count(*) FROM truth_$1 t WHERE NOT EXISTS
                   (SELECT 1 FROM keap.$1 c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
              + (SELECT count(*) FROM keap.$1 c WHERE NOT EXISTS
                   (SELECT 1 FROM truth_$1 t WHERE (t.doc->>'id')::bigint = c.id))"
}
start_daemon() { # start_daemon LOG: a daemon in the background, DPID
    "$KS" daemon >"$1" 2>&1 &
    DPID=$!
    IT_PIDS+=("$DPID")
}
stop_daemon() { # stop_daemon: SIGTERM; sets STOP_RC and STOP_MS
    local t0 t1
    t0=$(date +%s%3N)
    kill -TERM "$DPID"
    STOP_RC=0
    wait "$DPID" || STOP_RC=$?
    t1=$(date +%s%3N)
    STOP_MS=$((t1 - t0))
}

# ---- bad schedules: exit 2 with one line naming the file (the job) and the field
bad() { # bad DESCRIPTION PATTERN COMMAND...
    local what=$1 pat=$2 rc=0
    shift 2
    "$@" >"$IT_TMP/bad.out" 2>"$IT_TMP/bad.err" || rc=$?
    eq "$what: exit 2" 2 "$rc"
    eq "$what: one line" 1 "$(grep -c . "$IT_TMP/bad.err" || true)"
    check "$what: says what is wrong ($(head -c 200 "$IT_TMP/bad.err"))" grep -q -- "$pat" "$IT_TMP/bad.err"
}
mkdir -p "$IT_TMP/badjobs"
jq '.schedule = "0 25 * * *"' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/badjobs/contacts.json"
KEAPSYNC_JOBS="$IT_TMP/badjobs" bad "check, a bad schedule" \
    '^keapsync: error: "[^"]*contacts.json": schedule: hour: 25 is out of range 0-23' "$KS" check
KEAPSYNC_JOBS="$IT_TMP/badjobs" bad "daemon, a bad schedule" 'contacts.json": schedule: hour: 25' "$KS" daemon
KEAPSYNC_SCHEDULE="*/0 * * * *" bad "check, a bad KEAPSYNC_SCHEDULE" \
    'KEAPSYNC_SCHEDULE: minute: step 0 is out of range 1-59 (hint: ' "$KS" check
KEAPSYNC_SCHEDULE="@daily" bad "daemon, a bad KEAPSYNC_SCHEDULE" 'KEAPSYNC_SCHEDULE: 1 field, expected 5' "$KS" daemon
bad "daemon, an unknown option" 'unknown option "--now" for daemon' "$KS" daemon --now
check "daemon --help" bash -c "'$KS' daemon --help | grep -q 'Usage: keapsync daemon'"
check "keapsync --help lists daemon" bash -c "'$KS' --help | grep -q '^  daemon '"

# ---- SIGTERM mid-page, with pages stuck in flight
bound=2
LOG1="$IT_TMP/daemon1.log"
KEAPSYNC_STOP_TIMEOUT=$bound start_daemon "$LOG1"
rows_ge() { [ "$(rows "$1")" -ge "$2" ]; }
check "the daemon is paging (some pages committed)" wait_for 30 rows_ge contacts 200
check "the heartbeat lease names the daemon (host:pid)" \
    test "$(sql "SELECT count(*) FROM keapsync.leases WHERE name LIKE 'daemon:%' AND holder LIKE '%:$DPID' AND expires_at > now()")" = 1
rc=0; timeout 10 "$KS" status >"$IT_TMP/status.out" 2>&1 || rc=$?
check "keapsync status answers from another process while the daemon runs (exit $rc)" test "$rc" -ne 124
check "status lists the job" grep -q 'contacts' "$IT_TMP/status.out"
# Every request from now on takes 20 s: the pages in flight cannot land within the bound.
curl -sf -X POST "$KSIM_URL/__admin/faults?spec=latency=20000:1:/v1/contacts" >/dev/null
sleep 1.5
before=$(rows contacts)
check "the sync is not over yet ($before of 3000 rows)" test "$before" -lt 3000
stop_daemon
eq "SIGTERM mid-page: exit 0" 0 "$STOP_RC"
check "SIGTERM mid-page: exited within the bound ($STOP_MS ms, bound ${bound}000 ms + 1500)" \
    test "$STOP_MS" -le $((bound * 1000 + 1500))
check "it abandoned what was in flight" grep -q 'still in flight after the stop timeout; abandoning' "$LOG1"
after=$(rows contacts)
check "nothing committed was lost ($before rows before the signal, $after after)" test "$after" -ge "$before"
eq "no duplicate ids" 0 "$(sql "SELECT count(*) - count(DISTINCT id) FROM keap.contacts")"
# Paging by id with a one-record overlap: the checkpoint's next offset is the rows less one,
# and its last id the table's highest: rows and checkpoint were committed together.
ckpt=$(sql "SELECT state FROM keapsync.checkpoints WHERE job = 'contacts'")
eq "the checkpoint's offset matches the rows committed" "$((after - 1))" "$(echo "$ckpt" | jq .window.offset)"
eq "the checkpoint's last id is the table's highest" "$(sql "SELECT max(id) FROM keap.contacts")" "$(echo "$ckpt" | jq .window.last_id)"
eq "the heartbeat lease is released" 0 "$(sql "SELECT count(*) FROM keapsync.leases WHERE name LIKE 'daemon:%'")"
check "the job's row says it stopped" \
    test "$(sql "SELECT coalesce(last_outcome, 'none') FROM keapsync.daemon_jobs WHERE job = 'contacts'")" != done
curl -sf -X DELETE "$KSIM_URL/__admin/faults" >/dev/null
rc=0; "$KS" run >"$IT_TMP/rerun.out" 2>&1 || rc=$?
eq "a run after it completes" 0 "$rc"
eq "contacts equal the truth" 0 "$(off contacts)"

# ---- SIGHUP: a broken job file keeps the old set; a new job runs
LOG2="$IT_TMP/daemon2.log"
start_daemon "$LOG2"
check "the daemon finishes its first run and sleeps" wait_for 30 grep -q 'sleeping until' "$LOG2"
stamp=$(sql "SELECT updated_at FROM keapsync.daemon_jobs WHERE job = 'contacts'")
echo '{"name": "broken", "endpoint": ' >"$IT_TMP/jobs/broken.json"
sleep 0.3
kill -HUP "$DPID"
check "the bad reload is logged" wait_for 10 grep -q 'reload of the job files failed' "$LOG2"
sleep 0.5
eq "exactly one line says why" 1 "$(grep -c 'reload' "$LOG2")"
check "that line names the broken file" grep -q 'reload of the job files failed.*broken.json' "$LOG2"
check "the daemon keeps running" kill -0 "$DPID"
check "the old set is still scheduled (contacts' row rewritten after the reload)" \
    test "$(sql "SELECT updated_at > '$stamp' FROM keapsync.daemon_jobs WHERE job = 'contacts'")" = t
rm "$IT_TMP/jobs/broken.json"
cp "$KEAPSYNC_SRC/jobs/products.json" "$IT_TMP/jobs/"
kill -HUP "$DPID"
check "the new job runs after the reload" wait_for 30 grep -q '^keapsync: INFO: job=products outcome=done' "$LOG2"
check "the reload is logged" grep -q 'reloaded the job files: 2 jobs (1 before)' "$LOG2"
sleeps_ge() { [ "$(grep -c 'sleeping until' "$1")" -ge "$2" ]; }
check "and the daemon sleeps again" wait_for 10 sleeps_ge "$LOG2" 2
eq "products equal the truth" 0 "$(off products)"
check "daemon_jobs has products' next tick" \
    test -n "$(sql "SELECT next_at FROM keapsync.daemon_jobs WHERE job = 'products' AND next_at > now()")"

# ---- SIGTERM while sleeping: at once
sleep 0.5
stop_daemon
eq "SIGTERM while sleeping: exit 0" 0 "$STOP_RC"
check "SIGTERM while sleeping: at once ($STOP_MS ms)" test "$STOP_MS" -le 1500
IT_PIDS=("$KSIM_PID")

# ---- a second daemon for the same tenant is refused
start_daemon "$IT_TMP/daemon3.log"
check "the first daemon is up" wait_for 30 grep -q 'daemon started' "$IT_TMP/daemon3.log"
rc=0; "$KS" daemon >"$IT_TMP/daemon4.log" 2>&1 || rc=$?
eq "a second daemon exits 1" 1 "$rc"
check "saying another daemon runs" grep -q 'another keapsync daemon .* runs for tenant' "$IT_TMP/daemon4.log"
stop_daemon
eq "the first daemon exits 0" 0 "$STOP_RC"

it_done
