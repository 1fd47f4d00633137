/*
 * store.c: the connection, migrations, checkpoints and settings (run history: runs.c). The libpq
 * helpers the store's files share are in pq.c, the sink (ensure_table, commit_page) in
 * sink.c, the quota ledger in ledger.c, leases in lease.c.
 *
 * Words used here: see store.h. "conninfo" is what the user gave (DATABASE_URL): a libpq
 * key=value string, a postgresql:// URI, a bare database name, or nothing (PG* variables).
 * It may hold a password, so no message ever quotes it.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pg_advisory_xact_lock key that serialises migrations: "keapsync" in ASCII. */
#define STORE_MIGRATE_LOCK "7738151096083899747"

/* The jobs' tables' schema for connections made from now on (store_set_target_schema). */
static char target_schema[64] = "keap";

/* [a-z_][a-z0-9_]{0,62}: safe unquoted in a statement, and folded by no one. */
static bool schema_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return strcmp(s, "keapsync") != 0 && strcmp(s, "public") != 0 && strncmp(s, "pg_", 3) != 0;
}

int store_set_target_schema(const char *schema, struct base_err *err)
{
    if (!schema_ok(schema)) {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_SCHEMA \"%.80s\"", schema ? schema : "");
        base_err_hint(err, "use a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 "
                           "characters) other than keapsync, public and pg_*, e.g. keap_acme");
        return BASE_ECONFIG;
    }
    snprintf(target_schema, sizeof(target_schema), "%s", schema);
    return BASE_OK;
}

const char *store_target_schema(void)
{
    return target_schema;
}

/* Server notices (e.g. "relation already exists, skipping") are debug chatter, not output. */
static void notice_cb(void *arg, const char *message)
{
    char line[512];

    (void)arg;
    store_first_line(message, line, sizeof(line));
    base_log_debug("postgres: %s", line);
}

/* What libpq itself would take for a connection string rather than a database name. */
static int looks_like_conninfo(const char *s)
{
    return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 ||
           strchr(s, '=') != NULL;
}

int store_connect(struct store **out, const char *conninfo, struct base_err *err)
{
    const char *keys[4], *vals[4];
    struct store *s = NULL;
    PGconn *conn = NULL;
    char line[320];
    int n = 0;
    int rc = BASE_OK;

    if (conninfo != NULL && conninfo[0] != '\0') {
        if (looks_like_conninfo(conninfo)) {
            char *perr = NULL;
            PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);

            if (opts == NULL) {
                /* libpq's text may quote a piece of the string, password included. */
                PQfreemem(perr);
                rc = base_err_set(err, BASE_EDB,
                                  "could not connect to the database: invalid connection string");
                base_err_hint(err, "check DATABASE_URL: it must be a libpq key=value string or "
                                   "a postgresql:// URI (percent-encode special characters)");
                goto out;
            }
            PQconninfoFree(opts);
        }
        keys[n] = "dbname";
        vals[n++] = conninfo;
    }
    keys[n] = "application_name";
    vals[n++] = "keapsync";
    keys[n] = "client_encoding";
    vals[n++] = "UTF8";
    keys[n] = NULL;
    vals[n] = NULL;

    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        rc = base_err_set(err, BASE_ENOMEM, "could not connect to the database: out of memory");
        goto out;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        store_first_line(PQerrorMessage(conn), line, sizeof(line));
        rc = base_err_set(err, BASE_EDB, "could not connect to the database: %s", line);
        base_err_hint(err,
                      "check DATABASE_URL (or the PG* variables) and that the server is running");
        goto out;
    }
    PQsetNoticeProcessor(conn, notice_cb, NULL);
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = base_err_set(err, BASE_ENOMEM, "could not connect to the database: out of memory");
        goto out;
    }
    s->conn = conn;
    conn = NULL;
    snprintf(s->schema, sizeof(s->schema), "%s", target_schema);
    *out = s;
out:
    PQfinish(conn);
    return rc;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    store_tcache_free_all(s);
    PQfinish(s->conn);
    free(s);
}

int store_exec(struct store *s, const char *sql, struct base_err *err)
{
    PGresult *res = PQexec(s->conn, sql);
    int rc = BASE_OK;

    if (res == NULL ||
        (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK))
        rc = store_pg_error(s, res, err, "could not execute statement");
    PQclear(res);
    return rc;
}

int store_drop_empty_table(struct store *s, const char *table, bool *dropped, struct base_err *err)
{
    const char *schema = store_target_schema();
    char *qs = PQescapeIdentifier(s->conn, schema, strlen(schema));
    char *qt = PQescapeIdentifier(s->conn, table, strlen(table));
    struct base_buf q;
    PGresult *res = NULL;
    int rc;

    *dropped = false;
    base_buf_init(&q, STORE_MAX_SQL);
    /* One statement: the table goes only if it has no row when the DROP's lock is held. */
    rc = qs != NULL && qt != NULL
             ? base_buf_printf(&q,
                               "DO $ks$ BEGIN LOCK TABLE %s.%s IN ACCESS EXCLUSIVE MODE; "
                               "IF NOT EXISTS (SELECT 1 FROM %s.%s) THEN DROP TABLE %s.%s; "
                               "END IF; END $ks$",
                               qs, qt, qs, qt, qs, qt)
             : BASE_ENOMEM;
    if (rc < 0) {
        rc = base_err_set(err, rc, "could not drop table \"%s\": out of memory", table);
        goto out;
    }
    res = PQexec(s->conn, q.data);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = store_pg_error(s, res, err, "could not drop table \"%s\"", table);
        goto out;
    }
    PQclear(res);
    res = NULL;
    {
        const char *params[2] = {schema, table};
        char *oid = NULL;

        rc = store_query_text(s, "SELECT to_regclass(format('%I.%I', $1::text, $2::text))::text", 2,
                              params, &oid, err);
        *dropped = rc == 0 && oid == NULL;
        free(oid);
    }
    if (*dropped)
        store_tcache_forget(s, table);
out:
    PQclear(res);
    PQfreemem(qs);
    PQfreemem(qt);
    base_buf_free(&q);
    return rc;
}

/* Reads a one-row, one-column bigint result. */
static int result_int64(const PGresult *res, int row, int col, int64_t *v, struct base_err *err,
                        const char *what)
{
    if (PQntuples(res) <= row || PQnfields(res) <= col || PQgetisnull(res, row, col) ||
        base_parse_int64(PQgetvalue(res, row, col), v) < 0)
        return base_err_set(err, BASE_EDB, "%s: unexpected result from the server", what);
    return BASE_OK;
}

/* Version of the newest applied migration, 0 before the first. */
static int read_version(struct store *s, int *version, struct base_err *err)
{
    PGresult *res = NULL;
    int64_t v = 0;
    int rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT to_regclass('keapsync.migrations') IS NOT NULL", 0, NULL, err,
                     "could not read the schema version");
    if (rc < 0)
        goto out;
    if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        PQclear(res);
        res = NULL;
        rc = store_query(s, &res, PGRES_TUPLES_OK,
                         "SELECT coalesce(max(version), 0) FROM keapsync.migrations", 0, NULL, err,
                         "could not read the schema version");
        if (rc < 0)
            goto out;
        rc = result_int64(res, 0, 0, &v, err, "could not read the schema version");
        if (rc < 0)
            goto out;
    }
    *version = (int)v;
out:
    PQclear(res);
    return rc;
}

int store_schema_version(struct store *s, int *version, struct base_err *err)
{
    return read_version(s, version, err);
}

int store_latest_version(void)
{
    int v = 0;

    for (size_t i = 0; i < store_nmigrations; i++)
        if (store_migrations[i].version > v)
            v = store_migrations[i].version;
    return v;
}

/*
 * One migration step: under the advisory lock, applies the first migration above the
 * database's version. *done is set when there was none left.
 */
static int migrate_one(struct store *s, int *done, struct base_err *err)
{
    const struct store_migration *m = NULL;
    char vbuf[16], what[128];
    const char *params[2];
    PGresult *res = NULL;
    int current = 0;
    int rc;

    rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err,
                     "could not migrate the database");
    if (rc < 0)
        goto out;
    rc = store_query(s, NULL, PGRES_TUPLES_OK,
                     "SELECT pg_advisory_xact_lock(" STORE_MIGRATE_LOCK ")", 0, NULL, err,
                     "could not lock the schema for migration");
    if (rc < 0)
        goto out;
    rc = read_version(s, &current, err);
    if (rc < 0)
        goto out;
    if (current > store_latest_version()) {
        rc = base_err_set(err, BASE_EDB,
                          "database schema version %d is newer than this keapsync's (%d)", current,
                          store_latest_version());
        base_err_hint(err, "upgrade keapsync");
        goto out;
    }
    for (size_t i = 0; i < store_nmigrations && m == NULL; i++)
        if (store_migrations[i].version > current)
            m = &store_migrations[i];
    if (m == NULL) {
        rc = store_commit(s, err, "could not migrate the database");
        if (rc == 0)
            *done = 1;
        goto out;
    }
    snprintf(what, sizeof(what), "could not apply migration %04d_%s", m->version, m->name);
    /* A file may hold many statements: the simple query protocol runs them all. */
    res = PQexec(s->conn, m->sql);
    if (res == NULL ||
        (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
        rc = store_pg_error(s, res, err, "%s", what);
        goto out;
    }
    snprintf(vbuf, sizeof(vbuf), "%d", m->version);
    params[0] = vbuf;
    params[1] = m->name;
    rc = store_query(s, NULL, PGRES_COMMAND_OK,
                     "INSERT INTO keapsync.migrations (version, name) VALUES ($1, $2)", 2, params,
                     err, "%s", what);
    if (rc < 0)
        goto out;
    rc = store_commit(s, err, what);
    if (rc < 0)
        goto out;
    base_log_info("applied migration %04d_%s", m->version, m->name);
    *done = 0;
out:
    PQclear(res);
    if (rc < 0)
        store_rollback(s);
    return rc;
}

int store_migrate(struct store *s, int *applied, struct base_err *err)
{
    int n = 0, done = 0;
    int rc = BASE_OK;

    while (!done) {
        rc = migrate_one(s, &done, err);
        if (rc < 0)
            return rc;
        if (!done)
            n++;
    }
    *applied = n;
    return rc;
}

/*
 * Creates the target schema if missing, under a lock so that processes of one tenant starting
 * together do not race in the catalogs; in the caller's transaction when there is one.
 */
int store_ensure_schema(struct store *s, struct base_err *err)
{
    const char *params[1] = {s->schema};
    bool own = PQtransactionStatus(s->conn) == PQTRANS_IDLE;
    PGresult *res = NULL;
    char sql[128];
    bool exists;
    int rc;

    if (strcmp(s->schema, "keap") == 0)
        return BASE_OK; /* migration 0001's */
    rc = store_query(s, &res, PGRES_TUPLES_OK, "SELECT to_regnamespace($1) IS NOT NULL", 1, params,
                     err, "could not look up schema %s", s->schema);
    if (rc < 0)
        return rc;
    exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (exists)
        return BASE_OK;
    if (own && (rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err,
                                 "could not create schema %s", s->schema)) < 0)
        return rc;
    rc = store_query(s, NULL, PGRES_TUPLES_OK,
                     "SELECT pg_advisory_xact_lock(" STORE_DDL_LOCK_CLASS ", hashtext('schema ' || "
                     "$1))",
                     1, params, err, "could not create schema %s", s->schema);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", s->schema);
    if (rc == 0)
        rc = store_query(s, NULL, PGRES_COMMAND_OK, sql, 0, NULL, err, "could not create schema %s",
                         s->schema);
    if (own && rc == 0)
        rc = store_query(s, NULL, PGRES_COMMAND_OK, "COMMIT", 0, NULL, err,
                         "could not create schema %s", s->schema);
    if (own && rc < 0)
        store_rollback(s);
    if (rc == 0)
        base_log_info("created schema %s for the jobs' tables", s->schema);
    return rc;
}

/* Copies a single text value of res (row 0, col 0) into a malloc'd string, capped. */
static int result_text_dup(const PGresult *res, size_t cap, char **out, struct base_err *err,
                           const char *what)
{
    size_t len = (size_t)PQgetlength(res, 0, 0);
    char *p;

    if (len > cap)
        return base_err_set(err, BASE_ETOOBIG, "%s: value is %zu bytes, more than %zu", what, len,
                            cap);
    p = malloc(len + 1);
    if (p == NULL)
        return base_err_set(err, BASE_ENOMEM, "%s: out of memory", what);
    memcpy(p, PQgetvalue(res, 0, 0), len);
    p[len] = '\0';
    *out = p;
    return BASE_OK;
}

int store_checkpoint_load(struct store *s, const char *job, char **json, struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    char *text = NULL;
    int rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT state::text FROM keapsync.checkpoints WHERE job = $1", 1, params, err,
                     "could not load the checkpoint of \"%s\"", job);
    if (rc < 0)
        goto out;
    if (PQntuples(res) > 0) {
        rc =
            result_text_dup(res, STORE_MAX_CHECKPOINT, &text, err, "could not load the checkpoint");
        if (rc < 0)
            goto out;
    }
    *json = text;
out:
    PQclear(res);
    return rc;
}

int store_checkpoint_save(struct store *s, const char *job, const char *json, struct base_err *err)
{
    const char *params[2] = {job, json};

    if (job == NULL || json == NULL)
        return base_err_set(err, BASE_EINVAL, "could not save a checkpoint: no job or state");
    return store_query(s, NULL, PGRES_COMMAND_OK, STORE_SQL_CHECKPOINT_UPSERT, 2, params, err,
                       "could not save the checkpoint of \"%s\"", job);
}

int store_checkpoint_reset(struct store *s, const char *job, struct base_err *err)
{
    const char *params[1] = {job};

    return store_query(s, NULL, PGRES_COMMAND_OK, "DELETE FROM keapsync.checkpoints WHERE job = $1",
                       1, params, err, "could not reset the checkpoint of \"%s\"", job);
}

int store_setting_get(struct store *s, const char *key, char **value, struct base_err *err)
{
    const char *params[1] = {key};
    PGresult *res = NULL;
    char *text = NULL;
    int rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK, "SELECT value FROM keapsync.settings WHERE key = $1",
                     1, params, err, "could not read setting \"%s\"", key);
    if (rc < 0)
        goto out;
    if (PQntuples(res) > 0) {
        rc = result_text_dup(res, STORE_MAX_SETTING, &text, err, "could not read a setting");
        if (rc < 0)
            goto out;
    }
    *value = text;
out:
    PQclear(res);
    return rc;
}

int store_setting_put(struct store *s, const char *key, const char *value, struct base_err *err)
{
    const char *params[2] = {key, value};

    if (key == NULL || value == NULL)
        return base_err_set(err, BASE_EINVAL, "could not write a setting: no key or value");
    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "INSERT INTO keapsync.settings (key, value) VALUES ($1, $2) "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                       2, params, err, "could not write setting \"%s\"", key);
}
