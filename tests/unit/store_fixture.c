/*
 * store_fixture.c: the store tests' own database and helpers (see store_fixture.h).
 */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char test_db[64];
char test_conninfo[2048];
PGconn *check;

/* ---- helpers ------------------------------------------------------------------------- */

PGresult *q_exec(const char *sql)
{
    PGresult *res = PQexec(check, sql);

    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("check query failed: %s: %s", sql, PQerrorMessage(check));
    return res;
}

/* One bigint from a query that returns one row. */
int64_t q_int(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    PGresult *res;
    int64_t v = 0;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = q_exec(sql);
    assert_int_equal(PQntuples(res), 1);
    assert_false(PQgetisnull(res, 0, 0));
    assert_int_equal(base_parse_int64(PQgetvalue(res, 0, 0), &v), 0);
    PQclear(res);
    return v;
}

/* One text value (malloc'd) or NULL for SQL NULL / no row. */
char *q_text(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    PGresult *res;
    char *v = NULL;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = q_exec(sql);
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = base_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

void q_run(const char *sql)
{
    PQclear(q_exec(sql));
}

struct store *open_store(void)
{
    struct store *s = NULL;
    struct base_err err;

    base_err_clear(&err);
    if (store_connect(&s, test_conninfo, &err) != 0)
        fail_msg("store_connect: %s (%s)", err.msg, err.hint);
    return s;
}

int64_t wall(const char *iso)
{
    int64_t ms = 0;

    assert_int_equal(base_time_parse(iso, &ms), 0);
    return ms;
}

void migrate(struct store *s)
{
    struct base_err err;
    int applied = -1;

    base_err_clear(&err);
    if (store_migrate(s, &applied, &err) != 0)
        fail_msg("store_migrate: %s", err.msg);
}

/* A contacts-like table: id bigint, email, given_name, updated (timestamptz), and in the
 * widened version also score (bigint). */
static char n_id[] = "id", n_email[] = "email", n_given[] = "given_name", n_updated[] = "updated",
            n_score[] = "score";
static struct map_column cols_v2[] = {
    {.name = n_email, .type = MAP_TEXT},
    {.name = n_given, .type = MAP_TEXT},
    {.name = n_updated, .type = MAP_TIMESTAMPTZ},
    {.name = n_score, .type = MAP_BIGINT},
};
const struct map_spec spec_v1 = {
    .id = {.name = n_id, .type = MAP_BIGINT}, .cols = cols_v2, .ncols = 3};
const struct map_spec spec_v2 = {
    .id = {.name = n_id, .type = MAP_BIGINT}, .cols = cols_v2, .ncols = 4};
const struct store_table contacts = {"contacts", &spec_v1, "updated", NULL};
/* The same shape without a newer-wins column. */
const struct store_table notes = {"notes", &spec_v1, NULL, NULL};

/* Appends one COPY line for the v1 shape; given_name NULL and updated NULL become \N. data
 * repeats id and email (plain text in the tests, so no JSON escaping is needed). */
void row(struct base_buf *b, const char *id, const char *email, const char *given,
         const char *updated)
{
    int rc = base_buf_printf(b, "%s\t%s\t%s\t%s\t{\"id\": \"%s\", \"email\": \"%s\"}\n", id, email,
                             given != NULL ? given : "\\N", updated != NULL ? updated : "\\N", id,
                             email);
    assert_int_equal(rc, 0);
}

int commit(struct store *s, const struct store_table *t, struct base_buf *rows, int64_t nrows,
           const char *checkpoint, struct store_page_result *r, struct base_err *err)
{
    struct store_page p = {
        .table = t,
        .rows = rows->data,
        .rows_len = rows->len,
        .nrows = nrows,
        .job = t->table,
        .checkpoint = checkpoint,
        .tenant = "tenant-a",
        .day_wall = wall("2024-11-07T12:00:00Z"),
        .requests = 1,
    };

    base_err_clear(err);
    return store_commit_page(s, &p, r, err);
}

void commit_ok(struct store *s, const struct store_table *t, struct base_buf *rows, int64_t nrows,
               const char *checkpoint, struct store_page_result *r)
{
    struct base_err err;

    if (commit(s, t, rows, nrows, checkpoint, r, &err) != 0)
        fail_msg("store_commit_page: %s", err.msg);
}

void ensure_ok(struct store *s, const struct store_table *t)
{
    struct base_err err;

    base_err_clear(&err);
    if (store_ensure_table(s, t, &err) != 0)
        fail_msg("store_ensure_table: %s", err.msg);
}

/* Is keap.<table>.<col> of the SQL type map_type_sql(type)? */
void assert_col_type(const char *table, const char *col, enum map_type type)
{
    assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = 'keap.%s'::regclass "
                           "AND attname = '%s' AND NOT attisdropped AND "
                           "atttypid = '%s'::regtype",
                           table, col, map_type_sql(type)),
                     1);
}

/* ---- setup: a database of our own ------------------------------------------------------- */

/* Appends " key='value'" with libpq's quoting. */
static int conninfo_add(char *buf, size_t n, const char *key, const char *val)
{
    size_t len = strlen(buf);

    if (base_snprintf(buf + len, n - len, " %s='", key) < 0)
        return -1;
    len = strlen(buf);
    for (const char *p = val; *p; p++) {
        if (len + 3 >= n)
            return -1;
        if (*p == '\'' || *p == '\\')
            buf[len++] = '\\';
        buf[len++] = *p;
    }
    buf[len] = '\0';
    return base_snprintf(buf + len, n - len, "'");
}

/* The superuser the database is created and dropped as: KEAPSYNC_ADMIN_URL (deploy/lib/pg.sh
 * sets it), else DATABASE_URL itself. */
static const char *admin_url(void)
{
    const char *a = getenv("KEAPSYNC_ADMIN_URL");

    return a != NULL && a[0] != '\0' ? a : getenv("DATABASE_URL");
}

/* Runs one statement as the admin, on a connection to its URL's own database. */
static int admin_exec(const char *sql)
{
    PGconn *admin = PQconnectdb(admin_url());
    PGresult *res = NULL;
    int rc = -1;

    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "store tests: could not connect to KEAPSYNC_ADMIN_URL: %s",
                PQerrorMessage(admin));
        goto out;
    }
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "store tests: %s: %s", sql, PQerrorMessage(admin));
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    PQfinish(admin);
    return rc;
}

/*
 * The test database is created by the admin and granted to DATABASE_URL's role as
 * deploy/lib/pg_role.sql grants a database (CONNECT, TEMPORARY, CREATE); store and the checks
 * connect as that role, so the tests run with no more privilege than keapsync has.
 */
int group_setup(void **state)
{
    const char *url = getenv("DATABASE_URL");
    PQconninfoOption *opts = NULL, *o;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    char *role = NULL;
    char sql[256];
    int rc = -1;

    (void)state;
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "store tests: DATABASE_URL is not set. These tests need a throwaway "
                        "PostgreSQL: . deploy/lib/pg.sh; pg_throwaway_start /tmp/store-pg\n");
        return -1;
    }
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "store tests: could not connect to DATABASE_URL: %s", PQerrorMessage(conn));
        goto out;
    }
    if (strcmp(PQport(conn), "5432") == 0) {
        fprintf(stderr, "store tests: refusing to run against port 5432 (a system cluster?)\n");
        goto out;
    }
    snprintf(test_db, sizeof(test_db), "keapsync_unit_store_%ld", (long)getpid());
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", test_db);
    if (admin_exec(sql) < 0)
        goto out;
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", test_db);
    if (admin_exec(sql) < 0)
        goto out;
    res = PQexec(conn, "SELECT current_user");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        (role = PQescapeIdentifier(conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)))) ==
            NULL) {
        fprintf(stderr, "store tests: could not read DATABASE_URL's role: %s",
                PQerrorMessage(conn));
        goto out;
    }
    snprintf(sql, sizeof(sql), "GRANT CONNECT, TEMPORARY, CREATE ON DATABASE %s TO %s", test_db,
             role);
    if (admin_exec(sql) < 0)
        goto out;
    /* The same server and user, our database. */
    opts = PQconninfo(conn);
    test_conninfo[0] = '\0';
    for (o = opts; o != NULL && o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0' || strcmp(o->keyword, "dbname") == 0)
            continue;
        if (conninfo_add(test_conninfo, sizeof(test_conninfo), o->keyword, o->val) < 0)
            goto out;
    }
    if (conninfo_add(test_conninfo, sizeof(test_conninfo), "dbname", test_db) < 0)
        goto out;
    check = PQconnectdb(test_conninfo);
    if (PQstatus(check) != CONNECTION_OK) {
        fprintf(stderr, "store tests: could not connect to %s: %s", test_db, PQerrorMessage(check));
        goto out;
    }
    PQclear(PQexec(check, "SET client_min_messages = warning"));
    rc = 0;
out:
    PQfreemem(role);
    PQclear(res);
    PQconninfoFree(opts);
    PQfinish(conn);
    return rc;
}

int group_teardown(void **state)
{
    char sql[128];

    (void)state;
    PQfinish(check);
    check = NULL;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", test_db);
    return admin_exec(sql);
}
