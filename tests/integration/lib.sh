# tests/integration/lib.sh: shared helpers for the integration scripts (sourced, not run).
# Needs: KEAPSYNC_BUILD (the build dir), KEAPSYNC_SRC (the source tree), DATABASE_URL (the
# least-privilege role on a throwaway cluster) and KEAPSYNC_ADMIN_URL (its superuser);
# deploy/test.sh sets both (deploy/lib/pg.sh).
set -euo pipefail

: "${KEAPSYNC_BUILD:?KEAPSYNC_BUILD is not set (run through ctest or deploy/test.sh)}"
: "${KEAPSYNC_SRC:?KEAPSYNC_SRC is not set}"
: "${DATABASE_URL:?DATABASE_URL is not set: integration tests need a throwaway Postgres (deploy/test.sh starts one)}"

KS="$KEAPSYNC_BUILD/keapsync"
KSIM="$KEAPSYNC_BUILD/keapsim"
IT_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
IT_TMP=$(mktemp -d "/tmp/ks-it-$IT_NAME.XXXXXX")
IT_PIDS=()
IT_FAILS=0
IT_PASSES=0
export KEAPSYNC_JOBS="$KEAPSYNC_SRC/jobs"
# Log lines in the text form ("keapsync: LEVEL: message"), which these scripts grep; keapsync's
# default on a stderr that is not a terminal is logfmt (tests/integration/ops_logs.sh covers it).
export KEAPSYNC_LOG_FORMAT="${KEAPSYNC_LOG_FORMAT:-text}"
# No progress lines in the logs these scripts count (ops_logs.sh asks for them).
export KEAPSYNC_PROGRESS_SECONDS="${KEAPSYNC_PROGRESS_SECONDS:-86400}"

# IT_KEEP=1 keeps the scratch directory (for a look after a failure).
it_cleanup() {
    local p
    for p in "${IT_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ -n "${IT_KEEP:-}" ] || rm -rf "$IT_TMP"
}
trap it_cleanup EXIT

it_log() { printf '[%s] %s\n' "$IT_NAME" "$*" >&2; }

# check DESCRIPTION COMMAND...: runs COMMAND; counts a pass or a failure.
check() {
    local what=$1
    shift
    if "$@"; then
        IT_PASSES=$((IT_PASSES + 1))
        it_log "ok: $what"
    else
        IT_FAILS=$((IT_FAILS + 1))
        it_log "FAILED: $what"
    fi
}

# eq DESCRIPTION EXPECTED ACTUAL
eq() {
    if [ "$2" = "$3" ]; then
        IT_PASSES=$((IT_PASSES + 1))
        it_log "ok: $1 ($3)"
    else
        IT_FAILS=$((IT_FAILS + 1))
        it_log "FAILED: $1: expected [$2], got [$3]"
    fi
}

# it_done: prints the closing line and exits non-zero on any failure.
it_done() {
    echo "$IT_PASSES passed, $IT_FAILS failed"
    [ "$IT_FAILS" -eq 0 ] && [ "$IT_PASSES" -gt 0 ]
}

# The engine and the checks run as DATABASE_URL's role, the least-privilege one of
# docs/POSTGRES_ROLE.md (deploy/lib/pg.sh); only the harness's own steps (creating databases,
# ALTER DATABASE, stopping other roles' backends) use IT_ADMIN_URL, a superuser
# (KEAPSYNC_ADMIN_URL from pg.sh; DATABASE_URL itself when that is not set).
IT_ROLE_URL=$DATABASE_URL
IT_ADMIN_URL=${IT_ADMIN_URL:-${KEAPSYNC_ADMIN_URL:-$DATABASE_URL}}

# it_new_db NAME [TEMPLATE]: (re)creates database NAME (a copy of TEMPLATE if given) as the
# admin, grants DATABASE_URL's role on it what deploy/lib/pg_role.sql grants, and prints the
# role's URL of it.
it_new_db() {
    local role
    role=$(psql "$IT_ROLE_URL" -qAtX -c "SELECT current_user") || return 1
    PGOPTIONS="-c client_min_messages=warning" psql "$IT_ADMIN_URL" -qAtX -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" \
        -c "CREATE DATABASE $1${2:+ TEMPLATE $2}" >/dev/null || return 1
    PGOPTIONS="-c client_min_messages=warning" psql "$IT_ADMIN_URL" -qAtX -v role="$role" \
        -v db="$1" -f "$KEAPSYNC_SRC/deploy/lib/pg_role.sql" >/dev/null || return 1
    echo "${IT_ROLE_URL%/*}/$1"
}

# it_make_db: creates a database of this test's own and points DATABASE_URL at it.
IT_NDB=0
it_make_db() {
    IT_NDB=$((IT_NDB + 1))
    DATABASE_URL=$(it_new_db "it_${IT_NAME//[^a-z0-9_]/_}_$$_$IT_NDB")
    export DATABASE_URL
}

# it_admin_sql SQL: runs SQL as the admin, in DATABASE_URL's database.
it_admin_sql() { psql "${IT_ADMIN_URL%/*}/${DATABASE_URL##*/}" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

sql() { psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# it_keapsim ARGS...: starts keapsim on a free port; sets KSIM_URL (admin root) and
# KEAP_BASE_URL; the process is killed at exit.
it_keapsim() {
    local out="$IT_TMP/keapsim.$RANDOM.out" port="" i
    : >"$out"
    "$KSIM" --port 0 "$@" >>"$out" 2>"$out.err" &
    KSIM_PID=$!
    IT_PIDS+=("$KSIM_PID")
    # It renders its tenant before it listens: 100,000 records take seconds, more under a
    # sanitizer on a loaded machine. Waits while it lives, at most 180 s.
    for i in $(seq 1 3600); do
        port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" 2>/dev/null | head -1 || true)
        [ -n "$port" ] && break
        kill -0 "$KSIM_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$out.err" >&2; echo "keapsim did not start (waited $((i / 20)) s)" >&2; return 1; }
    KSIM_URL="http://127.0.0.1:$port"
    export KEAP_BASE_URL="$KSIM_URL/crm/rest"
}

ksim_stat() { curl -sf "$KSIM_URL/__admin/stats" | jq -r "$1"; }

# Loads keapsim's ground truth for a resource into table truth_<resource>(doc jsonb).
ksim_truth_to_pg() {
    local res=$1
    curl -sf "$KSIM_URL/__admin/truth?resource=$res" >"$IT_TMP/truth.$res.jsonl"
    sql "DROP TABLE IF EXISTS truth_$res; CREATE TABLE truth_$res (doc jsonb)"
    # CSV with quote and delimiter bytes that never occur in JSON text: each line is one value.
    psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy truth_$res (doc) FROM '$IT_TMP/truth.$res.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}

# The libfaketime library (faketime(1) itself forks, so killing it would leave its child).
it_faketime_lib() {
    local lib
    for lib in /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
        [ -f "$lib" ] && { echo "$lib"; return 0; }
    done
    echo "libfaketime not found (apt-get install faketime)" >&2
    return 1
}

# it_faketime OFFSET COMMAND...: runs COMMAND with its wall clock moved by OFFSET ("+1d").
# Monotonic clocks are left alone.
it_faketime() {
    local off=$1 lib
    shift
    lib=$(it_faketime_lib) || return 1
    LD_PRELOAD="$lib" FAKETIME="$off" DONT_FAKE_MONOTONIC=1 "$@"
}

# it_keapsim_at OFFSET PORT ARGS...: a keapsim whose clock is OFFSET ahead, on PORT; waits
# until it answers. Sets KSIM_PID (the keapsim process itself).
it_keapsim_at() {
    local off=$1 port=$2 lib i
    shift 2
    lib=$(it_faketime_lib) || return 1
    LD_PRELOAD="$lib" FAKETIME="$off" DONT_FAKE_MONOTONIC=1 "$KSIM" --port "$port" "$@" \
        >"$IT_TMP/keapsim.$port.out" 2>&1 &
    KSIM_PID=$!
    IT_PIDS+=("$KSIM_PID")
    for i in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$port/__admin/stats" >/dev/null && return 0
        sleep 0.05
    done
    echo "keapsim (clock $off) did not start on port $port" >&2
    return 1
}

# The fault table (tests/integration/fault_table.sh renders it into README.md): each case of
# a fault_*.sh test is a line "test<TAB>fault<TAB>times injected<TAB>survived|FAILED<TAB>
# checks passed/checks" in $KEAPSYNC_FAULT_TABLE (default: fault_results.tsv in the build
# dir). A case survived when no check failed between it_case_begin and it_case_end.
IT_CASE_FAILS=0
IT_CASE_PASSES=0
it_case_begin() { IT_CASE_FAILS=$IT_FAILS IT_CASE_PASSES=$IT_PASSES; }
# it_case_end FAULT TIMES
it_case_end() {
    local verdict=survived f=$((IT_FAILS - IT_CASE_FAILS)) p=$((IT_PASSES - IT_CASE_PASSES))
    [ "$f" -eq 0 ] || verdict=FAILED
    printf '%s\t%s\t%s\t%s\t%s\n' "$IT_NAME" "$1" "$2" "$verdict" "$p/$((p + f))" \
        >>"${KEAPSYNC_FAULT_TABLE:-$KEAPSYNC_BUILD/fault_results.tsv}"
}

# it_sanitized: is $KS built with AddressSanitizer? (Not "nm | grep -q": under pipefail grep's
# early exit makes nm's SIGPIPE fail the pipeline, and the answer would be no.)
it_sanitized() { [ "$(nm "$KS" 2>/dev/null | grep -c __asan_init)" -gt 0 ]; }

# wait_for SECONDS COMMAND...: polls (every 0.1 s) until COMMAND succeeds; 1 after SECONDS.
wait_for() {
    local end=$(($(date +%s) + $1))
    shift
    while ! "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# it_own_cluster NAME: a throwaway Postgres of this test's own (for tests that stop, restart or
# break it), removed at exit. Sets PGDIR, port, DATABASE_URL and IT_ADMIN_URL; pg_stop and
# pg_start stop and start it again on the same port and data.
it_own_cluster() {
    . "$KEAPSYNC_SRC/deploy/lib/pg.sh"
    PGDIR=$(mktemp -d "/tmp/ks-it-$1.XXXXXX")
    trap 'it_cleanup; pg_throwaway_stop "$PGDIR"; rm -rf "$PGDIR"' EXIT
    pg_throwaway_start "$PGDIR" >/dev/null
    IT_ROLE_URL=$DATABASE_URL IT_ADMIN_URL=$KEAPSYNC_ADMIN_URL
    port=$(cat "$PGDIR/port")
    IT_PG_BIN=$(pg_bindir)
}
pg_stop() { pg_as_owner "$IT_PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null; }
pg_start() {
    pg_as_owner "$IT_PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PGDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null
}
