#!/usr/bin/env bash
# The least-privilege Postgres role (issue 13, docs/POSTGRES_ROLE.md): the tests' DATABASE_URL
# logs in as a plain role (not a superuser, no CREATEDB, no CREATEROLE, a member of no role)
# whose only grants are deploy/lib/pg_role.sql's, the SQL the docs print; as that role, migrate,
# run, a tenant schema of its own (KEAPSYNC_SCHEMA), status, plan, report and the daemon all
# work against keapsim; and each grant is needed: without CREATE, migrate fails, without
# TEMPORARY, a run fails, each with one line naming the privilege.
. "$(dirname "$0")/lib.sh"

q() { psql "$IT_ROLE_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
role=$(q "SELECT current_user")
admin=$(psql "$IT_ADMIN_URL" -qAtX -c "SELECT current_user")
check "DATABASE_URL and the admin URL are different roles ($role, $admin)" test "$role" != "$admin"
eq "the admin is a superuser (for the harness only)" t "$(psql "$IT_ADMIN_URL" -qAtX -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")"
eq "DATABASE_URL's role: superuser, createdb, createrole, replication, bypassrls" "f|f|f|f|f" \
   "$(q "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user")"
eq "DATABASE_URL's role is a member of no role (pg_read_all_data, pg_signal_backend...)" 0 \
   "$(q "SELECT count(*) FROM pg_auth_members WHERE member = current_user::regrole")"
eq "it does not own its database" f \
   "$(q "SELECT datdba = current_user::regrole FROM pg_database WHERE datname = current_database()")"
eq "on its database: CONNECT, TEMPORARY, CREATE" "t|t|t" \
   "$(q "SELECT has_database_privilege(current_database(), 'CONNECT'), has_database_privilege(current_database(), 'TEMPORARY'), has_database_privilege(current_database(), 'CREATE')")"
eq "no CREATE on schema public" f "$(q "SELECT has_schema_privilege('public', 'CREATE')")"

# refused DESCRIPTION PATTERN SQL: the role may not run SQL
refused() {
    local rc=0
    q "$3" >"$IT_TMP/refused.out" 2>&1 || rc=$?
    check "$1: refused ($(head -1 "$IT_TMP/refused.out" | head -c 120))" \
        test "$rc" -ne 0 -a "$(grep -c "$2" "$IT_TMP/refused.out")" -ge 1
}
refused "CREATE DATABASE" "permission denied to create database" "CREATE DATABASE it_pg_role_nope_$$"
refused "CREATE ROLE" "permission denied to create role" "CREATE ROLE it_pg_role_nope_$$"
refused "ALTER SYSTEM" "permission denied to set parameter" "ALTER SYSTEM SET work_mem = '8MB'"
refused "COPY from a server file" "pg_read_server_files role to COPY from a file" \
    "CREATE TEMP TABLE t (x text); COPY t FROM '/etc/hostname'"
PGAPPNAME=it_pg_role_admin psql "$IT_ADMIN_URL" -qAtX -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
IT_PIDS+=("$!")
admin_there() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'it_pg_role_admin'")" = 1 ]; }
check "an admin session to terminate" wait_for 10 admin_there
refused "pg_terminate_backend of the admin's session" "must be a superuser to terminate superuser process" \
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'it_pg_role_admin'"
eq "the admin's session is still there" 1 "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'it_pg_role_admin'")"

# The SQL the docs print is the SQL the harness runs.
doc="$KEAPSYNC_SRC/docs/POSTGRES_ROLE.md"
while IFS= read -r line; do
    check "docs/POSTGRES_ROLE.md shows pg_role.sql's [$line]" grep -qF -- "$line" "$doc"
done < <(grep -E '^(GRANT|SELECT format|  *:.role.\)| WHERE NOT EXISTS)' "$KEAPSYNC_SRC/deploy/lib/pg_role.sql")

# ---- the engine, as the role, end to end
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 100' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAPSYNC_LIMITS="0/s,0/min,30000/day"
it_keapsim --seed 13 --size 700 --api-key "$KEAP_API_KEY" --limits 0/s,0/min,30000/day
it_make_db
eq "the test's database: the same role" "$role" "$(sql "SELECT current_user")"
rc=0; "$KS" migrate >"$IT_TMP/migrate.out" 2>&1 || rc=$?
eq "migrate as the role exits 0" 0 "$rc"
eq "the role owns the schemas keapsync and keap" "keap=$role keapsync=$role" \
   "$(sql "SELECT string_agg(nspname || '=' || nspowner::regrole, ' ' ORDER BY nspname) FROM pg_namespace WHERE nspname IN ('keap', 'keapsync')")"
rc=0; "$KS" run >"$IT_TMP/run.out" 2>"$IT_TMP/run.err" || rc=$?
cat "$IT_TMP/run.out" >&2
eq "run as the role exits 0" 0 "$rc"
ksim_truth_to_pg contacts
for t in contacts; do
    eq "run: keap.$t equals the truth (missing + extra + different)" 0 \
       "$(sql "SELECT (SELECT count(*) FROM truth_$t t WHERE NOT EXISTS
                 (SELECT 1 FROM keap.$t c WHERE c.id = (t.doc->>'id')::bigint AND c.data = t.doc))
             + (SELECT count(*) FROM keap.$t c WHERE NOT EXISTS
                 (SELECT 1 FROM truth_$t t WHERE (t.doc->>'id')::bigint = c.id))")"
done
check "run: rows were written ($(sql "SELECT count(*) FROM keap.contacts") contacts)" \
    test "$(sql "SELECT count(*) FROM keap.contacts")" -gt 0
rc=0; KEAPSYNC_SCHEMA=keap_role "$KS" run --only contacts >"$IT_TMP/tenant.out" 2>&1 || rc=$?
eq "a run with KEAPSYNC_SCHEMA=keap_role exits 0" 0 "$rc"
eq "it created schema keap_role, owned by the role, with every contact" \
   "$role $(sql "SELECT count(*) FROM keap.contacts")" \
   "$(sql "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'keap_role'") $(sql "SELECT count(*) FROM keap_role.contacts")"
rc=0; "$KS" status >"$IT_TMP/status.out" 2>&1 || rc=$?
eq "status as the role exits 0" 0 "$rc"
rc=0; "$KS" plan >"$IT_TMP/plan.out" 2>&1 || rc=$?
eq "plan as the role exits 0" 0 "$rc"
rc=0; "$KS" report --out "$IT_TMP/report.html" >"$IT_TMP/report.out" 2>&1 || rc=$?
eq "report as the role exits 0" 0 "$rc"
check "report: the file was written" test -s "$IT_TMP/report.html"

# The daemon, in a fresh database: a job that never ran runs at once; SIGTERM ends it with 0.
want=$(sql "SELECT count(*) FROM truth_contacts")
it_make_db
check "migrate the daemon's database" "$KS" -q migrate
"$KS" daemon >"$IT_TMP/daemon.out" 2>&1 &
dpid=$!
IT_PIDS+=("$dpid")
got() { [ "$(sql "SELECT count(*) FROM keap.contacts" 2>/dev/null || echo 0)" -ge "$want" ]; }
check "daemon as the role: every contact arrives ($want)" wait_for 60 got
kill -TERM "$dpid"
rc=0; wait "$dpid" || rc=$?
eq "daemon as the role: SIGTERM, exit 0" 0 "$rc"
grep -E ' (WARNING|ERROR): ' "$IT_TMP/daemon.out" | head -5 >&2 || true

# ---- each grant is needed: without it, one error line naming the privilege
it_make_db
it_admin_sql "REVOKE CREATE ON DATABASE ${DATABASE_URL##*/} FROM $role" >/dev/null
rc=0; "$KS" migrate >"$IT_TMP/nocreate.out" 2>&1 || rc=$?
eq "without CREATE on the database: migrate exits 1" 1 "$rc"
check "without CREATE: the error says permission denied for the database ($(grep error: "$IT_TMP/nocreate.out" | head -c 200))" \
    grep -q 'error: .*permission denied for database' "$IT_TMP/nocreate.out"
it_make_db
check "migrate, with TEMPORARY still granted" "$KS" -q migrate
it_admin_sql "REVOKE TEMPORARY ON DATABASE ${DATABASE_URL##*/} FROM PUBLIC, $role" >/dev/null
rc=0; "$KS" run --only contacts >"$IT_TMP/notemp.out" 2>&1 || rc=$?
eq "without TEMPORARY on the database: run exits 1" 1 "$rc"
check "without TEMPORARY: the error says so ($(grep -m1 'error\|failed' "$IT_TMP/notemp.out" | head -c 200))" \
    grep -q 'permission denied to create temporary tables' "$IT_TMP/notemp.out"
eq "without TEMPORARY: nothing written (no checkpoint, no table)" 0 \
   "$(sql "SELECT (SELECT count(*) FROM keapsync.checkpoints) + (SELECT count(*) FROM information_schema.tables WHERE table_schema = 'keap')")"

it_done
