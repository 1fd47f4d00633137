/*
 * Unit tests for store against a real, throwaway PostgreSQL (DATABASE_URL; deploy/test.sh
 * sets it, or: . deploy/lib/pg.sh; pg_throwaway_start /tmp/x-pg). The tests create and use
 * their own database, keapsync_unit_store_<pid>, dropped at the end, so they never touch
 * another database's schemas and two runs do not meet.
 *
 * Words used here: "check" is the test's own libpq connection, used to look at what store
 * wrote with plain SQL; "T1" < "T2" < "T3" are the updated times of record versions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store.h"

static char test_db[64];         /* keapsync_unit_store_<pid> */
static char test_conninfo[2048]; /* the test database, for store_connect */
static PGconn *check;            /* the test's own connection to it */

/* ---- helpers ------------------------------------------------------------------------- */

static PGresult *q_exec(const char *sql)
{
    PGresult *res = PQexec(check, sql);

    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("check query failed: %s: %s", sql, PQerrorMessage(check));
    return res;
}

/* One bigint from a query that returns one row. */
static int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q_int(const char *fmt, ...)
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
static char *q_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *q_text(const char *fmt, ...)
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

static void q_run(const char *sql)
{
    PQclear(q_exec(sql));
}

static struct store *open_store(void)
{
    struct store *s = NULL;
    struct base_err err;

    base_err_clear(&err);
    if (store_connect(&s, test_conninfo, &err) != 0)
        fail_msg("store_connect: %s (%s)", err.msg, err.hint);
    return s;
}

static int64_t wall(const char *iso)
{
    int64_t ms = 0;

    assert_int_equal(base_time_parse(iso, &ms), 0);
    return ms;
}

static void migrate(struct store *s)
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
static const struct map_spec spec_v1 = {
    .id = {.name = n_id, .type = MAP_BIGINT}, .cols = cols_v2, .ncols = 3};
static const struct map_spec spec_v2 = {
    .id = {.name = n_id, .type = MAP_BIGINT}, .cols = cols_v2, .ncols = 4};
static const struct store_table contacts = {"contacts", &spec_v1, "updated", NULL};
/* The same shape without a newer-wins column. */
static const struct store_table notes = {"notes", &spec_v1, NULL, NULL};

/* Appends one COPY line for the v1 shape; given_name NULL and updated NULL become \N. data
 * repeats id and email (plain text in the tests, so no JSON escaping is needed). */
static void row(struct base_buf *b, const char *id, const char *email, const char *given,
                const char *updated)
{
    int rc = base_buf_printf(b, "%s\t%s\t%s\t%s\t{\"id\": \"%s\", \"email\": \"%s\"}\n", id, email,
                             given != NULL ? given : "\\N", updated != NULL ? updated : "\\N", id,
                             email);
    assert_int_equal(rc, 0);
}

static int commit(struct store *s, const struct store_table *t, struct base_buf *rows,
                  int64_t nrows, const char *checkpoint, struct store_page_result *r,
                  struct base_err *err)
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

static void commit_ok(struct store *s, const struct store_table *t, struct base_buf *rows,
                      int64_t nrows, const char *checkpoint, struct store_page_result *r)
{
    struct base_err err;

    if (commit(s, t, rows, nrows, checkpoint, r, &err) != 0)
        fail_msg("store_commit_page: %s", err.msg);
}

static void ensure_ok(struct store *s, const struct store_table *t)
{
    struct base_err err;

    base_err_clear(&err);
    if (store_ensure_table(s, t, &err) != 0)
        fail_msg("store_ensure_table: %s", err.msg);
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

/* Runs one statement on a connection to DATABASE_URL's own database. */
static int admin_exec(const char *sql)
{
    PGconn *admin = PQconnectdb(getenv("DATABASE_URL"));
    PGresult *res = NULL;
    int rc = -1;

    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "test_store: could not connect to DATABASE_URL: %s", PQerrorMessage(admin));
        goto out;
    }
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "test_store: %s: %s", sql, PQerrorMessage(admin));
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    PQfinish(admin);
    return rc;
}

static int group_setup(void **state)
{
    const char *url = getenv("DATABASE_URL");
    PQconninfoOption *opts = NULL, *o;
    PGconn *admin = NULL;
    char sql[128];
    int rc = -1;

    (void)state;
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "test_store: DATABASE_URL is not set. These tests need a throwaway "
                        "PostgreSQL: . deploy/lib/pg.sh; pg_throwaway_start /tmp/store-pg\n");
        return -1;
    }
    admin = PQconnectdb(url);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "test_store: could not connect to DATABASE_URL: %s", PQerrorMessage(admin));
        goto out;
    }
    if (strcmp(PQport(admin), "5432") == 0) {
        fprintf(stderr, "test_store: refusing to run against port 5432 (a system cluster?)\n");
        goto out;
    }
    snprintf(test_db, sizeof(test_db), "keapsync_unit_store_%ld", (long)getpid());
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", test_db);
    if (admin_exec(sql) < 0)
        goto out;
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", test_db);
    if (admin_exec(sql) < 0)
        goto out;
    /* The same server and user, our database. */
    opts = PQconninfo(admin);
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
        fprintf(stderr, "test_store: could not connect to %s: %s", test_db, PQerrorMessage(check));
        goto out;
    }
    PQclear(PQexec(check, "SET client_min_messages = warning"));
    rc = 0;
out:
    PQconninfoFree(opts);
    PQfinish(admin);
    return rc;
}

static int group_teardown(void **state)
{
    char sql[128];

    (void)state;
    PQfinish(check);
    check = NULL;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", test_db);
    return admin_exec(sql);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_connect_errors(void **state)
{
    /* Nothing listens on port 1; each form carries a password that must not be echoed. */
    static const char *const bad[] = {
        "postgresql://keapsync:s3cretpw@127.0.0.1:1/keapsync?connect_timeout=2",
        "host=127.0.0.1 port=1 user=keapsync password=s3cretpw connect_timeout=2",
        "postgresql://keapsync:s3cretpw%zz@127.0.0.1:1/keapsync",
        "host=127.0.0.1 password=s3cretpw junk",
    };
    struct store *sentinel = (struct store *)&state;
    struct base_err err;

    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        struct store *s = sentinel;

        base_err_clear(&err);
        assert_int_equal(store_connect(&s, bad[i], &err), BASE_EDB);
        assert_ptr_equal(s, sentinel);
        assert_int_equal(err.code, BASE_EDB);
        assert_non_null(strstr(err.msg, "could not connect to the database: "));
        assert_non_null(strstr(err.hint, "DATABASE_URL"));
        assert_null(strstr(err.msg, "s3cretpw"));
        assert_null(strstr(err.hint, "s3cretpw"));
        assert_null(strchr(err.msg, '\n'));
    }
    store_close(NULL);
}

static void test_connect_session(void **state)
{
    struct store *s = open_store();
    struct base_err err;

    (void)state;
    /* The session settings store_connect promises, checked from inside the session. */
    assert_int_equal(store_exec(s,
                                "DO $$ BEGIN IF current_setting('application_name') <> "
                                "'keapsync' OR current_setting('client_encoding') <> 'UTF8' "
                                "THEN RAISE EXCEPTION 'wrong session settings'; END IF; END $$",
                                &err),
                     0);
    assert_int_equal(q_int("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND "
                           "application_name = 'keapsync'",
                           test_db),
                     1);
    store_close(s);
}

struct migrate_arg {
    int applied;
    int rc;
};

static void *migrate_thread(void *p)
{
    struct migrate_arg *a = p;
    struct store *s = NULL;
    struct base_err err;

    a->rc = store_connect(&s, test_conninfo, &err);
    if (a->rc == 0)
        a->rc = store_migrate(s, &a->applied, &err);
    store_close(s);
    return NULL;
}

static void test_migrate(void **state)
{
    struct store *s = open_store();
    struct base_err err;
    int version = -1, applied = -1;
    int64_t nfiles;

    (void)state;
    q_run("DROP SCHEMA IF EXISTS keap CASCADE; DROP SCHEMA IF EXISTS keapsync CASCADE");
    assert_true(store_latest_version() > 0);
    assert_int_equal(store_schema_version(s, &version, &err), 0);
    assert_int_equal(version, 0);

    assert_int_equal(store_migrate(s, &applied, &err), 0);
    nfiles = q_int("SELECT count(*) FROM keapsync.migrations");
    assert_true(applied > 0);
    assert_int_equal(applied, nfiles);
    assert_int_equal(q_int("SELECT max(version) FROM keapsync.migrations"), store_latest_version());
    assert_int_equal(store_schema_version(s, &version, &err), 0);
    assert_int_equal(version, store_latest_version());
    /* Every table the schema promises. */
    assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keapsync' AND "
                           "tablename IN ('migrations', 'checkpoints', 'quota_ledger', 'runs', "
                           "'settings', 'leases', 'oauth_tokens')"),
                     7);
    assert_int_equal(q_int("SELECT count(*) FROM pg_namespace WHERE nspname = 'keap'"), 1);

    /* Idempotent. */
    applied = -1;
    assert_int_equal(store_migrate(s, &applied, &err), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.migrations"), nfiles);

    /* Concurrent callers on a fresh database: each migration is applied exactly once. */
    q_run("DROP SCHEMA keap CASCADE; DROP SCHEMA keapsync CASCADE");
    {
        struct migrate_arg a[3] = {{-1, -1}, {-1, -1}, {-1, -1}};
        pthread_t th[3];

        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &a[i]), 0);
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        for (int i = 0; i < 3; i++)
            assert_int_equal(a[i].rc, 0);
        assert_int_equal(a[0].applied + a[1].applied + a[2].applied, nfiles);
        assert_int_equal(q_int("SELECT count(*) FROM keapsync.migrations"), nfiles);
    }

    /* A database newer than the binary is refused, not "migrated". */
    q_run("INSERT INTO keapsync.migrations (version, name) VALUES (99999, 'future')");
    base_err_clear(&err);
    applied = -1;
    assert_int_equal(store_migrate(s, &applied, &err), BASE_EDB);
    assert_int_equal(applied, -1);
    assert_non_null(strstr(err.msg, "newer"));
    q_run("DELETE FROM keapsync.migrations WHERE version = 99999");
    store_close(s);
}

/* Is keap.<table>.<col> of the SQL type map_type_sql(type)? */
static void assert_col_type(const char *table, const char *col, enum map_type type)
{
    assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = 'keap.%s'::regclass "
                           "AND attname = '%s' AND NOT attisdropped AND "
                           "atttypid = '%s'::regtype",
                           table, col, map_type_sql(type)),
                     1);
}

static void test_ensure_table(void **state)
{
    struct store *s = open_store();
    struct base_buf rows;
    struct store_page_result r;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    ensure_ok(s, &contacts);
    ensure_ok(s, &contacts); /* twice is fine */
    assert_col_type("contacts", "id", spec_v1.id.type);
    for (size_t i = 0; i < spec_v1.ncols; i++)
        assert_col_type("contacts", spec_v1.cols[i].name, spec_v1.cols[i].type);
    assert_col_type("contacts", "data", MAP_JSONB);
    assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                           "'keap.contacts'::regclass AND attnum > 0 AND NOT attisdropped"),
                     (int64_t)spec_v1.ncols + 4); /* id, data, synced_at, deleted_at */
    /* The primary key and the newer-wins index. */
    assert_int_equal(q_int("SELECT count(*) FROM pg_index WHERE indrelid = "
                           "'keap.contacts'::regclass AND indisprimary"),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM pg_indexes WHERE schemaname = 'keap' AND "
                           "tablename = 'contacts' AND indexdef LIKE '%%(updated)'"),
                     1);

    /* A row, then a wider spec: the column is added, the row kept. */
    base_buf_init(&rows, 1 << 16);
    row(&rows, "1", "a@example.com", "Ann", "2024-01-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    {
        const struct store_table wide = {"contacts", &spec_v2, "updated", NULL};

        ensure_ok(s, &wide);
        assert_col_type("contacts", "score", MAP_BIGINT);
        assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 1 AND "
                               "given_name = 'Ann' AND score IS NULL"),
                         1);
        /* The widened staging table takes the new column. */
        base_buf_reset(&rows);
        assert_int_equal(base_buf_puts(&rows, "2\tb@example.com\tBea\t2024-01-02T00:00:00Z\t42\t"
                                              "{\"id\": 2}\n"),
                         0);
        commit_ok(s, &wide, &rows, 1, NULL, &r);
        assert_int_equal(r.inserted, 1);
        assert_int_equal(q_int("SELECT score FROM keap.contacts WHERE id = 2"), 42);
        /* The narrower spec again: no column is dropped. */
        ensure_ok(s, &contacts);
        assert_col_type("contacts", "score", MAP_BIGINT);
    }

    /* Definitions that cannot be right. */
    {
        static char n_data[] = "data";
        struct map_column clash[] = {{.name = n_data, .type = MAP_TEXT}};
        const struct map_spec bad_spec = {
            .id = {.name = n_id, .type = MAP_BIGINT}, .cols = clash, .ncols = 1};
        const struct store_table bad1 = {"bad", &bad_spec, NULL, NULL};
        const struct store_table bad2 = {"bad", &spec_v1, "nope", NULL};
        const struct store_table bad3 = {"", &spec_v1, NULL, NULL};

        assert_int_equal(store_ensure_table(s, &bad1, &err), BASE_EINVAL);
        assert_non_null(strstr(err.msg, "\"data\""));
        assert_int_equal(store_ensure_table(s, &bad2, &err), BASE_EINVAL);
        assert_non_null(strstr(err.msg, "\"nope\""));
        assert_int_equal(store_ensure_table(s, &bad3, &err), BASE_EINVAL);
        assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND "
                               "tablename = 'bad'"),
                         0);
    }
    base_buf_free(&rows);
    store_close(s);
}

static void test_commit_rows(void **state)
{
    struct store *s = open_store();
    struct store_page_result r = {-1, -1, -1, -1, -1};
    struct store_ledger_row lr;
    struct base_buf rows;
    struct base_err err;
    char *text;
    int64_t spent0;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts; DELETE FROM keapsync.checkpoints; "
          "DELETE FROM keapsync.quota_ledger");
    base_buf_init(&rows, 1 << 16);
    /* Tabs, backslashes and newlines inside values travel as COPY escapes. */
    row(&rows, "100", "a@example.com", "Ann", "2024-01-01T00:00:00Z");
    row(&rows, "101", "b@example.com", "Bo\\tb", "2024-01-01T00:00:00+0200");
    row(&rows, "102", "c@example.com", NULL, NULL);
    commit_ok(s, &contacts, &rows, 3, "{\"offset\": 3}", &r);
    assert_int_equal(r.inserted, 3);
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 3);
    text = q_text("SELECT given_name FROM keap.contacts WHERE id = 101");
    assert_string_equal(text, "Bo\tb");
    free(text);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 102 AND "
                           "given_name IS NULL AND updated IS NULL AND synced_at IS NOT NULL"),
                     1);
    assert_int_equal(q_int("SELECT extract(epoch FROM updated)::bigint * 1000 FROM "
                           "keap.contacts WHERE id = 101"),
                     wall("2024-01-01T00:00:00+0200"));
    text = q_text("SELECT data->>'email' FROM keap.contacts WHERE id = 100");
    assert_string_equal(text, "a@example.com");
    free(text);
    /* The checkpoint and the ledger went with the page. */
    assert_int_equal(store_checkpoint_load(s, "contacts", &text, &err), 0);
    assert_non_null(text);
    assert_int_equal(q_int("SELECT ('%s'::jsonb = '{\"offset\": 3}'::jsonb)::int", text), 1);
    free(text);
    assert_int_equal(store_ledger_get(s, "tenant-a", wall("2024-11-07T00:00:00Z"), &lr, &err), 0);
    assert_int_equal(lr.spent, 1);
    assert_true(lr.reserved >= lr.spent);
    spent0 = lr.spent;

    /* The same page again: every row is "updated" to what it was. */
    commit_ok(s, &contacts, &rows, 3, "{\"offset\": 6}", &r);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.updated, 3);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 3);
    assert_int_equal(store_ledger_get(s, "tenant-a", wall("2024-11-07T23:59:59.999Z"), &lr, &err),
                     0);
    assert_int_equal(lr.spent, spent0 + 1);

    /* An empty page still moves the checkpoint and the ledger. */
    base_buf_reset(&rows);
    commit_ok(s, &contacts, &rows, 0, "{\"offset\": 9}", &r);
    assert_int_equal(r.inserted + r.updated + r.skipped, 0);
    assert_int_equal(q_int("SELECT (state->>'offset')::int FROM keapsync.checkpoints WHERE "
                           "job = 'contacts'"),
                     9);
    base_buf_free(&rows);
    store_close(s);
}

/* A child table: key (contact_id, id); the same id under two parents is two rows. */
static void test_child_table(void **state)
{
    const struct store_table tags = {"contact_tags", &spec_v1, "updated", "contact_id"};
    struct store *s = open_store();
    struct store_page_result r = {-1, -1, -1, -1, -1};
    struct base_buf rows;
    int64_t ids[4];
    int n = -1;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contact_tags; DROP TABLE IF EXISTS keap.contacts");
    ensure_ok(s, &tags);
    assert_int_equal(q_int("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON "
                           "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE "
                           "i.indrelid = 'keap.contact_tags'::regclass AND i.indisprimary"),
                     2);
    base_buf_init(&rows, 1 << 16);
    assert_int_equal(base_buf_puts(&rows, "7\t1\ta@x\tAnn\t2024-01-01T00:00:00Z\t{}\n"
                                          "8\t1\tb@x\tBo\t2024-01-01T00:00:00Z\t{}\n"),
                     0);
    commit_ok(s, &tags, &rows, 2, NULL, &r);
    assert_int_equal(r.inserted, 2);
    /* Again, one of them newer: an update of (8, 1), not a new row. */
    base_buf_reset(&rows);
    assert_int_equal(base_buf_puts(&rows, "8\t1\tb@y\tBo\t2024-02-01T00:00:00Z\t{}\n"), 0);
    commit_ok(s, &tags, &rows, 1, NULL, &r);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.updated, 1);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE id = 1"), 2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE contact_id = 8 AND "
                           "email = 'b@y'"),
                     1);

    /* Parent ids are read in order, after a given one, in batches; none before the table is. */
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, NULL, 4, ids, &n, &err), 0);
    assert_int_equal(n, 0);
    ensure_ok(s, &contacts);
    q_run("INSERT INTO keap.contacts (id, data) SELECT g, '{}' FROM generate_series(1, 9) g");
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, NULL, 4, ids, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[3], 4);
    assert_int_equal(store_parent_ids(s, "contacts", true, 7, NULL, 4, ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 8);
    assert_int_equal(ids[1], 9);
    base_buf_free(&rows);
    store_close(s);
}

/* A child page that ends its parent's list marks the parent's rows it did not list deleted,
 * keeping those earlier pages listed; a row listed again is live again. */
static void test_child_sweep(void **state)
{
    const struct store_table tags = {"contact_tags", &spec_v1, NULL, "contact_id"};
    struct store *s = open_store();
    struct store_page_result r = {-1, -1, -1, -1, -1};
    struct store_page p;
    struct base_buf rows;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contact_tags");
    ensure_ok(s, &tags);
    base_buf_init(&rows, 1 << 16);
    /* parent 7 lists 1, 2, 3; parent 8 lists 1 */
    assert_int_equal(base_buf_puts(&rows, "7\t1\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"
                                          "7\t2\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"
                                          "7\t3\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"
                                          "8\t1\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"),
                     0);
    commit_ok(s, &tags, &rows, 4, NULL, &r);
    /* Parent 7 again over two pages: 3 on the first (kept), 4 on the last; 1 and 2 are gone. */
    base_buf_reset(&rows);
    assert_int_equal(base_buf_puts(&rows, "7\t4\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"), 0);
    memset(&p, 0, sizeof(p));
    p.table = &tags;
    p.rows = rows.data;
    p.rows_len = rows.len;
    p.nrows = 1;
    p.sweep = true;
    p.sweep_parent = 7;
    p.sweep_keep = "{\"3\"}";
    assert_int_equal(store_commit_page(s, &p, &r, &err), 0);
    assert_int_equal(r.deleted, 2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NOT NULL"),
                     2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE contact_id = 7 AND "
                           "deleted_at IS NOT NULL AND id IN (1, 2)"),
                     2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE contact_id = 8 AND "
                           "deleted_at IS NULL"),
                     1);
    /* An empty last page (and no earlier ones) of parent 8: its one row is gone. */
    p.rows = "";
    p.rows_len = 0;
    p.nrows = 0;
    p.sweep_parent = 8;
    p.sweep_keep = NULL;
    assert_int_equal(store_commit_page(s, &p, &r, &err), 0);
    assert_int_equal(r.deleted, 1);
    /* Listed again: live again. */
    base_buf_reset(&rows);
    assert_int_equal(base_buf_puts(&rows, "7\t1\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"), 0);
    commit_ok(s, &tags, &rows, 1, NULL, &r);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NOT NULL"),
                     2);
    /* A table that is not a child table cannot be swept. */
    p.table = &notes;
    assert_int_equal(store_commit_page(s, &p, &r, &err), BASE_EINVAL);
    base_buf_free(&rows);
    store_close(s);
}

/* Marks: the latest write of a parent table; ids written after a mark are read after it. */
static void test_parent_marks(void **state)
{
    struct store *s = open_store();
    struct base_err err;
    char mark[48], early[48];
    int64_t ids[8];
    int n = -1;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    assert_int_equal(store_parent_mark(s, "contacts", 0, mark, sizeof(mark), &err), 0);
    assert_string_equal(mark, "-infinity");
    ensure_ok(s, &contacts);
    assert_int_equal(store_parent_mark(s, "contacts", 0, mark, sizeof(mark), &err), 0);
    assert_string_equal(mark, "-infinity");
    q_run("INSERT INTO keap.contacts (id, data, synced_at) SELECT g, '{}', "
          "'2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second' "
          "FROM generate_series(1, 5) g");
    assert_int_equal(store_parent_mark(s, "contacts", 0, mark, sizeof(mark), &err), 0);
    assert_int_equal(store_parent_mark(s, "contacts", 2, early, sizeof(early), &err), 0);
    /* Nothing after the exact mark, to the microsecond; ids 4 and 5 after the early one. */
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, mark, 8, ids, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, early, 8, ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 5);
    q_run("UPDATE keap.contacts SET synced_at = now() WHERE id = 2");
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, mark, 8, ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 2);
    store_close(s);
}

/* The email stored for id in keap.<table>. */
static char *email_of(const char *table, int id)
{
    return q_text("SELECT email FROM keap.%s WHERE id = %d", table, id);
}

static void test_newer_wins(void **state)
{
    struct store *s = open_store();
    struct store_page_result r;
    struct base_buf rows;
    char *e;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    base_buf_init(&rows, 1 << 16);
    row(&rows, "10", "t2@example.com", "Ten", "2024-05-02T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.inserted, 1);

    /* Older: left alone. */
    base_buf_reset(&rows);
    row(&rows, "10", "t1@example.com", "Ten", "2024-05-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(r.updated + r.inserted, 0);
    e = email_of("contacts", 10);
    assert_string_equal(e, "t2@example.com");
    free(e);

    /* No updated value at all: cannot prove it is newer, so left alone. */
    base_buf_reset(&rows);
    row(&rows, "10", "null@example.com", "Ten", NULL);
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.skipped, 1);

    /* Newer: replaces. The same instant in another zone form is equal, and equal rewrites. */
    base_buf_reset(&rows);
    row(&rows, "10", "t3@example.com", "Ten", "2024-05-03T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    base_buf_reset(&rows);
    row(&rows, "10", "t3@example.com", "Ten", "2024-05-03T02:00:00+02:00");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    assert_int_equal(r.skipped, 0);
    e = email_of("contacts", 10);
    assert_string_equal(e, "t3@example.com");
    free(e);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 1);

    /* A stored row without an updated value is overwritten by any version. */
    base_buf_reset(&rows);
    row(&rows, "11", "first@example.com", "Eleven", NULL);
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    base_buf_reset(&rows);
    row(&rows, "11", "second@example.com", "Eleven", "2000-01-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    e = email_of("contacts", 11);
    assert_string_equal(e, "second@example.com");
    free(e);

    /* A page mixing all three against stored T2 rows counts each kind. */
    q_run("UPDATE keap.contacts SET updated = '2024-05-02T00:00:00Z'");
    base_buf_reset(&rows);
    row(&rows, "10", "old@example.com", "Ten", "2024-05-01T00:00:00Z");
    row(&rows, "11", "new@example.com", "Eleven", "2024-05-03T00:00:00Z");
    row(&rows, "12", "ins@example.com", "Twelve", "2024-05-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 3, NULL, &r);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(r.updated, 1);
    assert_int_equal(r.skipped, 1);
    base_buf_free(&rows);
    store_close(s);
}

static void test_duplicates_in_page(void **state)
{
    struct store *s = open_store();
    struct store_page_result r;
    struct base_buf rows;
    char *e;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts; DROP TABLE IF EXISTS keap.notes");
    base_buf_init(&rows, 1 << 16);
    /* Newer-wins inside one page: the newest version, wherever it sits. */
    row(&rows, "20", "t1@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "20", "t3@example.com", "x", "2024-05-03T00:00:00Z");
    row(&rows, "21", "only@example.com", "y", "2024-05-01T00:00:00Z");
    row(&rows, "20", "t2@example.com", "x", "2024-05-02T00:00:00Z");
    commit_ok(s, &contacts, &rows, 4, NULL, &r);
    assert_int_equal(r.inserted, 2);
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.skipped, 2);
    e = email_of("contacts", 20);
    assert_string_equal(e, "t3@example.com");
    free(e);

    /* Without an updated column the last version in the page wins. */
    base_buf_reset(&rows);
    row(&rows, "30", "first@example.com", "x", NULL);
    row(&rows, "30", "second@example.com", "x", NULL);
    row(&rows, "30", "last@example.com", "x", NULL);
    commit_ok(s, &notes, &rows, 3, NULL, &r);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(r.skipped, 2);
    e = email_of("notes", 30);
    assert_string_equal(e, "last@example.com");
    free(e);
    /* ...and an older-looking version still overwrites: there is nothing to compare. */
    base_buf_reset(&rows);
    row(&rows, "30", "again@example.com", "x", "1999-01-01T00:00:00Z");
    commit_ok(s, &notes, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    e = email_of("notes", 30);
    assert_string_equal(e, "again@example.com");
    free(e);
    base_buf_free(&rows);
    store_close(s);
}

static void test_page_is_atomic(void **state)
{
    struct store *s = open_store();
    struct store_page_result r = {-7, -7, -7, -7, -7};
    struct store_ledger_row before, after;
    struct base_buf rows;
    struct base_err err;
    char *cp;
    const int64_t day = wall("2024-11-07T12:00:00Z");

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    base_buf_init(&rows, 1 << 16);
    row(&rows, "40", "ok@example.com", "x", "2024-05-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, "{\"page\": 1}", &r);
    assert_int_equal(store_ledger_get(s, "tenant-a", day, &before, &err), 0);

    /* Row 2 of 3 is bad (id is not a bigint): nothing of the page may remain. */
    base_buf_reset(&rows);
    row(&rows, "41", "a@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "x42", "b@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "43", "c@example.com", "x", "2024-05-01T00:00:00Z");
    r.inserted = -7;
    assert_int_equal(commit(s, &contacts, &rows, 3, "{\"page\": 2}", &r, &err), BASE_EDB);
    assert_int_equal(r.inserted, -7); /* untouched on failure */
    assert_non_null(strstr(err.msg, "could not commit page of \"contacts\": "));
    assert_non_null(strstr(err.msg, "line 2"));
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id IN (41, 43)"), 0);
    assert_int_equal(store_checkpoint_load(s, "contacts", &cp, &err), 0);
    assert_int_equal(q_int("SELECT ('%s'::jsonb = '{\"page\": 1}'::jsonb)::int", cp), 1);
    free(cp);
    assert_int_equal(store_ledger_get(s, "tenant-a", day, &after, &err), 0);
    assert_int_equal(after.spent, before.spent);

    /* Bad JSON in data: the report still names the row. */
    base_buf_reset(&rows);
    row(&rows, "41", "a@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "42", "b@example.com", "x", "2024-05-01T00:00:00Z");
    assert_int_equal(base_buf_puts(&rows, "43\tc@example.com\tx\t\\N\t{\"broken\": \n"), 0);
    assert_int_equal(commit(s, &contacts, &rows, 3, "{\"page\": 2}", &r, &err), BASE_EDB);
    assert_non_null(strstr(err.msg, "line 3, column data"));
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id IN (41, 42, 43)"), 0);

    /* A bad checkpoint (not JSON) fails the page after its rows were upserted. */
    base_buf_reset(&rows);
    row(&rows, "44", "d@example.com", "x", "2024-05-01T00:00:00Z");
    assert_int_equal(commit(s, &contacts, &rows, 1, "{not json", &r, &err), BASE_EDB);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 44"), 0);

    /* A row count that does not match the rows is refused (a row split or merged). */
    assert_int_equal(commit(s, &contacts, &rows, 2, "{\"page\": 3}", &r, &err), BASE_EPROTO);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 44"), 0);
    assert_int_equal(store_ledger_get(s, "tenant-a", day, &after, &err), 0);
    assert_int_equal(after.spent, before.spent);

    /* The connection is still good for the next page. */
    commit_ok(s, &contacts, &rows, 1, "{\"page\": 3}", &r);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(q_int("SELECT (state->>'page')::int FROM keapsync.checkpoints WHERE "
                           "job = 'contacts'"),
                     3);
    base_buf_free(&rows);
    store_close(s);
}

static void test_checkpoints(void **state)
{
    struct store *s = open_store();
    struct base_err err;
    char *text = (char *)"sentinel";

    (void)state;
    migrate(s);
    assert_int_equal(store_checkpoint_reset(s, "cp-job", &err), 0);
    assert_int_equal(store_checkpoint_load(s, "cp-job", &text, &err), 0);
    assert_null(text);
    assert_int_equal(store_checkpoint_save(s, "cp-job", "{\"a\": [1, 2], \"b\": \"x\"}", &err), 0);
    assert_int_equal(store_checkpoint_load(s, "cp-job", &text, &err), 0);
    assert_non_null(text);
    assert_int_equal(
        q_int("SELECT ('%s'::jsonb = '{\"b\": \"x\", \"a\": [1, 2]}'::jsonb)::int", text), 1);
    free(text);
    assert_int_equal(store_checkpoint_save(s, "cp-job", "{\"a\": 2}", &err), 0);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.checkpoints WHERE job = 'cp-job'"), 1);
    assert_int_equal(store_checkpoint_save(s, "cp-job", "not json", &err), BASE_EDB);
    assert_non_null(strstr(err.msg, "could not save the checkpoint of \"cp-job\""));
    assert_int_equal(store_checkpoint_reset(s, "cp-job", &err), 0);
    assert_int_equal(store_checkpoint_load(s, "cp-job", &text, &err), 0);
    assert_null(text);
    store_close(s);
}

static void test_ledger_budget(void **state)
{
    struct store *a = open_store(), *b = open_store();
    struct store_ledger_row lr;
    struct base_err err;
    int64_t g = -1, total = -1, sum = 0;
    const int64_t day = wall("2024-11-07T08:00:00Z"), budget = 100;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.quota_ledger");
    assert_int_equal(store_ledger_reserve(a, "t1", day, budget, 30, &g, &total, &err), 0);
    assert_int_equal(g, 30);
    assert_int_equal(total, 30);
    assert_int_equal(store_ledger_reserve(a, "t1", day, budget, budget, &g, &total, &err), 0);
    assert_int_equal(g, budget - 30);
    assert_int_equal(total, budget);
    assert_int_equal(store_ledger_reserve(a, "t1", day, budget, 5, &g, &total, &err), 0);
    assert_int_equal(g, 0);
    assert_int_equal(total, budget);
    /* A smaller budget than what is reserved grants nothing and takes nothing back. */
    assert_int_equal(store_ledger_reserve(a, "t1", day, budget / 2, 5, &g, &total, &err), 0);
    assert_int_equal(g, 0);
    assert_int_equal(total, budget);

    /* Two connections taking turns on a fresh day never exceed the budget together. */
    for (int turn = 0; turn < 100; turn++) {
        struct store *s = turn % 2 ? b : a;

        assert_int_equal(store_ledger_reserve(s, "t1", day + 86400000, budget, 7, &g, &total, &err),
                         0);
        assert_true(g >= 0 && g <= 7);
        assert_true(total <= budget);
        sum += g;
        if (g == 0)
            break;
    }
    assert_int_equal(sum, budget);
    assert_int_equal(store_ledger_get(b, "t1", day + 86400000, &lr, &err), 0);
    assert_int_equal(lr.reserved, budget);
    assert_int_equal(lr.spent, 0);

    /* Bad requests. */
    assert_int_equal(store_ledger_reserve(a, "t1", day, budget, -1, &g, &total, &err), BASE_EINVAL);
    assert_int_equal(store_ledger_reserve(a, NULL, day, budget, 1, &g, &total, &err), BASE_EINVAL);
    store_close(a);
    store_close(b);
}

#define RACE_THREADS 4
#define RACE_BUDGET  500

struct race_arg {
    int seed;
    int64_t granted;
    int64_t max_total;
    int rc;
};

/* Reserves small random amounts until the day's budget is gone. */
static void *race_thread(void *p)
{
    struct race_arg *a = p;
    struct store *s = NULL;
    struct base_err err;
    unsigned seed = (unsigned)a->seed;

    a->rc = store_connect(&s, test_conninfo, &err);
    while (a->rc == 0) {
        int64_t g = 0, total = 0;
        int64_t want = 1 + rand_r(&seed) % 9;

        a->rc = store_ledger_reserve(s, "race", wall("2024-11-08T00:00:00Z"), RACE_BUDGET, want, &g,
                                     &total, &err);
        if (a->rc != 0 || g == 0)
            break;
        a->granted += g;
        if (total > a->max_total)
            a->max_total = total;
    }
    store_close(s);
    return NULL;
}

static void test_ledger_race(void **state)
{
    struct race_arg args[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    int64_t sum = 0;
    struct store *s = open_store();

    (void)state;
    migrate(s);
    q_run("DELETE FROM keapsync.quota_ledger WHERE tenant = 'race'");
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i] = (struct race_arg){.seed = i + 1};
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(args[i].rc, 0);
        assert_true(args[i].max_total <= RACE_BUDGET);
        sum += args[i].granted;
    }
    assert_int_equal(sum, RACE_BUDGET);
    assert_int_equal(q_int("SELECT reserved FROM keapsync.quota_ledger WHERE tenant = 'race'"),
                     RACE_BUDGET);
    store_close(s);
}

static void test_ledger_release_observe(void **state)
{
    struct store *s = open_store();
    struct store_ledger_row lr, other;
    struct store_page_result r;
    struct store_page p = {0};
    struct base_err err;
    int64_t g, total;
    const int64_t day = wall("2024-11-09T23:59:59.999Z");

    (void)state;
    migrate(s);
    q_run("DELETE FROM keapsync.quota_ledger");
    ensure_ok(s, &contacts);
    assert_int_equal(store_ledger_reserve(s, "t2", day, 1000, 50, &g, &total, &err), 0);
    assert_int_equal(g, 50);
    /* A page that cost 10 requests spends them. */
    p.table = &contacts;
    p.tenant = "t2";
    p.day_wall = day;
    p.requests = 10;
    assert_int_equal(store_commit_page(s, &p, &r, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day, &lr, &err), 0);
    assert_int_equal(lr.spent, p.requests);
    assert_int_equal(lr.reserved, g);

    /* Handing back more than was reserved stops at what was spent. */
    assert_int_equal(store_ledger_release(s, "t2", day, 15, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day, &lr, &err), 0);
    assert_int_equal(lr.reserved, g - 15);
    assert_int_equal(store_ledger_release(s, "t2", day, 1000, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day, &lr, &err), 0);
    assert_int_equal(lr.reserved, p.requests);

    /* The server saw 300 used today (other integrations): reserved rises, never falls. */
    assert_int_equal(store_ledger_observe(s, "t2", day, 300, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day, &lr, &err), 0);
    assert_int_equal(lr.reserved, 300);
    assert_int_equal(store_ledger_observe(s, "t2", day, 200, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day, &lr, &err), 0);
    assert_int_equal(lr.reserved, 300);
    /* Releasing cannot go below what the server counted either. */
    assert_int_equal(store_ledger_release(s, "t2", day, 1000, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day, &lr, &err), 0);
    assert_int_equal(lr.reserved, 300);
    /* ...and reservations see it. */
    assert_int_equal(store_ledger_reserve(s, "t2", day, 320, 50, &g, &total, &err), 0);
    assert_int_equal(g, 20);
    assert_int_equal(total, 320);

    /* One millisecond later is the next UTC day: a separate row. */
    assert_int_equal(store_ledger_get(s, "t2", day + 1, &other, &err), 0);
    assert_int_equal(other.reserved, 0);
    assert_int_equal(other.spent, 0);
    assert_int_equal(store_ledger_observe(s, "t2", day + 1, 7, &err), 0);
    assert_int_equal(store_ledger_get(s, "t2", day + 1, &other, &err), 0);
    assert_int_equal(other.reserved, 7);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.quota_ledger WHERE tenant = 't2'"), 2);
    store_close(s);
}

static void test_settings(void **state)
{
    struct store *s = open_store();
    struct base_err err;
    char *v = (char *)"sentinel";

    (void)state;
    migrate(s);
    q_run("DELETE FROM keapsync.settings");
    assert_int_equal(store_setting_get(s, "tenant", &v, &err), 0);
    assert_null(v);
    assert_int_equal(store_setting_put(s, "tenant", "abc123", &err), 0);
    assert_int_equal(store_setting_get(s, "tenant", &v, &err), 0);
    assert_string_equal(v, "abc123");
    free(v);
    assert_int_equal(store_setting_put(s, "tenant", "it's \"quoted\"\n", &err), 0);
    assert_int_equal(store_setting_get(s, "tenant", &v, &err), 0);
    assert_string_equal(v, "it's \"quoted\"\n");
    free(v);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.settings"), 1);
    assert_int_equal(store_setting_put(s, "tenant", NULL, &err), BASE_EINVAL);
    store_close(s);
}

static void test_runs(void **state)
{
    struct store *s = open_store();
    struct base_err err;
    int64_t id1 = 0, id2 = 0;
    char *msg;

    (void)state;
    migrate(s);
    assert_int_equal(store_run_begin(s, "contacts,tags", &id1, &err), 0);
    assert_int_equal(store_run_begin(s, "tags", &id2, &err), 0);
    assert_true(id2 > id1);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.runs WHERE id = %" PRId64
                           " AND finished_at IS NULL AND jobs = 'contacts,tags'",
                           id1),
                     1);
    assert_int_equal(store_run_finish(s, id1, 75, 30000, 1234567, "quota spent", &err), 0);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.runs WHERE id = %" PRId64
                           " AND finished_at >= started_at AND exit_code = 75 AND requests = "
                           "30000 AND rows = 1234567",
                           id1),
                     1);
    msg = q_text("SELECT message FROM keapsync.runs WHERE id = %" PRId64, id1);
    assert_string_equal(msg, "quota spent");
    free(msg);
    assert_int_equal(store_run_finish(s, id2, 0, 0, 0, NULL, &err), 0);
    assert_int_equal(store_run_finish(s, id2 + 1000, 0, 0, 0, NULL, &err), BASE_ENOTFOUND);

    /* The last finished run of each job, matched by whole name. */
    {
        struct store_run_info last;
        bool found = false;
        int64_t id3 = 0;

        assert_int_equal(store_run_last(s, "contacts", &last, &found, &err), 0);
        assert_true(found);
        assert_int_equal(last.id, id1);
        assert_int_equal(last.exit_code, 75);
        assert_string_equal(last.message, "quota spent");
        assert_int_equal(store_run_last(s, "tags", &last, &found, &err), 0);
        assert_true(found);
        assert_int_equal(last.id, id2);
        assert_int_equal(last.exit_code, 0);
        assert_string_equal(last.message, "");
        assert_int_equal(store_run_last(s, "tag", &last, &found, &err), 0);
        assert_false(found);
        /* A run still going does not count until it finishes. */
        assert_int_equal(store_run_begin(s, "orders,contacts", &id3, &err), 0);
        assert_int_equal(store_run_last(s, "contacts", &last, &found, &err), 0);
        assert_int_equal(last.id, id1);
        assert_int_equal(store_run_finish(s, id3, 1, 5, 0, "boom", &err), 0);
        assert_int_equal(store_run_last(s, "contacts", &last, &found, &err), 0);
        assert_true(found);
        assert_int_equal(last.id, id3);
        assert_int_equal(last.exit_code, 1);
        assert_string_equal(last.message, "boom");
    }
    store_close(s);
}

static void test_exec(void **state)
{
    struct store *s = open_store();
    struct base_err err;

    (void)state;
    assert_int_equal(store_exec(s, "CREATE TEMP TABLE t_exec (x int)", &err), 0);
    assert_int_equal(store_exec(s, "SELECT 1", &err), 0);
    base_err_clear(&err);
    assert_int_equal(store_exec(s, "SELECT * FROM no_such_table", &err), BASE_EDB);
    assert_non_null(strstr(err.msg, "could not execute statement: "));
    assert_non_null(strstr(err.msg, "no_such_table"));
    store_close(s);
}

/* ---- evolve: a job's table follows its definition ------------------------------------- */

/* A spec built from "name:path:type" strings, compiled, freed by espec_free. */
struct espec {
    struct map_spec spec;
    struct map_column cols[16];
};

static void espec_init(struct espec *e, const char *id_type, const char *const *defs, size_t n)
{
    memset(e, 0, sizeof(*e));
    assert_true(n <= BASE_ARRAY_SIZE(e->cols));
    e->spec.id.name = base_strdup("id");
    e->spec.id.path = base_strdup("id");
    assert_int_equal(map_type_from_name(id_type, &e->spec.id.type), 0);
    assert_int_equal(map_column_compile(&e->spec.id), 0);
    for (size_t i = 0; i < n; i++) {
        const char *a = strchr(defs[i], ':'), *b = strrchr(defs[i], ':');

        assert_non_null(a);
        assert_true(b > a);
        e->cols[i].name = strndup(defs[i], (size_t)(a - defs[i]));
        e->cols[i].path = strndup(a + 1, (size_t)(b - a - 1));
        assert_non_null(e->cols[i].name);
        assert_non_null(e->cols[i].path);
        assert_int_equal(map_type_from_name(b + 1, &e->cols[i].type), 0);
        assert_int_equal(map_column_compile(&e->cols[i]), 0);
    }
    e->spec.cols = e->cols;
    e->spec.ncols = n;
}

static void espec_free(struct espec *e)
{
    map_column_free(&e->spec.id);
    for (size_t i = 0; i < e->spec.ncols; i++)
        map_column_free(&e->cols[i]);
}

/* Unescapes field n (0-based) of a COPY text line into a malloc'd string; NULL for \N. */
static char *copy_field(const char *line, int n)
{
    const char *p = line, *end;
    char *out, *w;

    for (int i = 0; i < n; i++) {
        p = strchr(p, '\t');
        assert_non_null(p);
        p++;
    }
    end = p + strcspn(p, "\t\n");
    if (end - p == 2 && strncmp(p, "\\N", 2) == 0)
        return NULL;
    out = malloc((size_t)(end - p) + 1);
    assert_non_null(out);
    for (w = out; p < end; p++) {
        if (*p == '\\' && p + 1 < end) {
            p++;
            *w++ = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

static void test_evolve_sql_path(void **state)
{
    static const char *const defs[] = {
        "a:given_name:text",
        "b:email_addresses.0.email:text",
        "c:custom_fields.[id=18].content:text",
        "d:o'k.a\\b:text",
        "e:list.[name=x y].v.2:jsonb",
    };
    struct espec e;
    struct base_buf b;
    struct base_err err;
    char want[256], num[40];

    (void)state;
    espec_init(&e, "bigint", defs, BASE_ARRAY_SIZE(defs));
    base_buf_init(&b, 4096);
    assert_int_equal(store_evolve_sql_path(&e.cols[0], &b, &err), 0);
    assert_string_equal(b.data, "(data -> 'given_name')");
    base_buf_reset(&b);
    assert_int_equal(store_evolve_sql_path(&e.cols[1], &b, &err), 0);
    assert_string_equal(b.data, "(data -> 'email_addresses' -> 0 -> 'email')");
    base_buf_reset(&b);
    assert_int_equal(store_evolve_sql_path(&e.cols[2], &b, &err), 0);
    snprintf(num, sizeof(num), "%.17g", 18.0);
    snprintf(want, sizeof(want),
             "(keapsync.json_select(data -> 'custom_fields', 'id', '18', '%s'::float8) -> "
             "'content')",
             num);
    assert_string_equal(b.data, want);
    base_buf_reset(&b);
    /* Quotes doubled; a backslash makes an E'' literal with it doubled. */
    assert_int_equal(store_evolve_sql_path(&e.cols[3], &b, &err), 0);
    assert_string_equal(b.data, "(data -> 'o''k' -> E'a\\\\b')");
    base_buf_reset(&b);
    /* A selector value that is no number compares as a string only. */
    assert_int_equal(store_evolve_sql_path(&e.cols[4], &b, &err), 0);
    assert_string_equal(b.data,
                        "(keapsync.json_select(data -> 'list', 'name', 'x y', NULL) -> 'v' -> 2)");
    base_buf_reset(&b);
    assert_int_equal(store_evolve_sql_value(&e.cols[1], &b, &err), 0);
    assert_string_equal(b.data, "keapsync.map_text((data -> 'email_addresses' -> 0 -> 'email'))");
    /* A full buffer is an error and leaves it as it was. */
    {
        struct base_buf tiny;

        base_buf_init(&tiny, 16);
        assert_int_equal(base_buf_puts(&tiny, "x"), 0);
        assert_int_equal(store_evolve_sql_value(&e.cols[2], &tiny, &err), BASE_ETOOBIG);
        assert_string_equal(tiny.data, "x");
        base_buf_free(&tiny);
    }
    base_buf_free(&b);
    espec_free(&e);
}

/*
 * The SQL of every type over data gives what map writes, value by value: each record below
 * is mapped by map_record_to_copy_raw and the same value is read by the column's expression
 * from the record as jsonb.
 */
static void test_evolve_sql_matches_map(void **state)
{
    static const char *const records[] = {
        "{\"id\": 1, \"v\": \"hello\", \"o\": {\"k\": [1, {\"x\": \"deep\"}]}}",
        "{\"id\": 2, \"v\": 42}",
        "{\"id\": 3, \"v\": -17.25}",
        "{\"id\": 4, \"v\": 0.1}",
        "{\"id\": 5, \"v\": 0.1234567890123456}",
        "{\"id\": 6, \"v\": 1e20}",
        "{\"id\": 7, \"v\": 1e400}",
        "{\"id\": 8, \"v\": 9223372036854775807}",
        "{\"id\": 9, \"v\": \"9223372036854775807\"}",
        "{\"id\": 10, \"v\": \"9223372036854775808\"}",
        "{\"id\": 11, \"v\": \"-0042\"}",
        "{\"id\": 12, \"v\": true}",
        "{\"id\": 13, \"v\": false}",
        "{\"id\": 14, \"v\": 1}",
        "{\"id\": 15, \"v\": 0}",
        "{\"id\": 16, \"v\": null}",
        "{\"id\": 17, \"v\": [1, 2]}",
        "{\"id\": 18, \"v\": {\"a\": 1}}",
        "{\"id\": 19, \"v\": \"2024-11-07T20:35:13.000+0000\"}",
        "{\"id\": 20, \"v\": \"2024-11-07 20:35:13.123456-05:30\"}",
        "{\"id\": 21, \"v\": \"2024-02-29\"}",
        "{\"id\": 22, \"v\": \"2023-02-29\"}",
        "{\"id\": 23, \"v\": \"2024-11-07T23:59:60Z\"}",
        "{\"id\": 24, \"v\": \"2024-11-07T20:35:13+05\"}",
        "{\"id\": 25, \"v\": \"2024-11-07T20:35:13+053\"}",
        "{\"id\": 26, \"v\": \"1.50\"}",
        "{\"id\": 27, \"v\": \".5e3\"}",
        "{\"id\": 28, \"v\": \"1e999\"}",
        "{\"id\": 29, \"v\": \"12abc\"}",
        "{\"id\": 30, \"v\": \"tab\\there \\\\ \\\"q\\\" \\u00e9\"}",
        "{\"id\": 31, \"v\": 123456789.123456789}",
        "{\"id\": 32, \"v\": 5e-324}",
        "{\"id\": 33, \"v\": 2.5e-7}",
        "{\"id\": 34, \"v\": -0.0}",
        "{\"id\": 35, \"v\": \"\"}",
        "{\"id\": 36, \"v\": 1.0000000000000002}",
        "{\"id\": 37}",
        "{\"id\": 38, \"cf\": [{\"id\": 2, \"content\": \"two\"}, {\"id\": \"6\", \"content\": "
        "6}]}",
        "{\"id\": 39, \"cf\": [{\"id\": 2.0, \"content\": \"first\"}, {\"id\": 2, \"content\": "
        "0}]}",
        "{\"id\": 40, \"cf\": [{\"id\": \"2\", \"content\": \"str\"}, {\"x\": 2}, 7]}",
        "{\"id\": 41, \"cf\": {\"id\": 2, \"content\": \"not an array\"}}",
        "{\"id\": 42, \"v\": [\"a\", \"b\"], \"cf\": [{\"id\": 6, \"content\": \"2024-01-01\"}]}",
    };
    static const char *const paths[] = {
        "v",
        "v.1",
        "o.k.1.x",
        "o.k.0",
        "cf.[id=2].content",
        "cf.[id=6].content",
        "cf.[id=02].content",
        "cf.[id=two].content",
        "cf.1.content",
    };
    static const char *const types[] = {"text",    "bigint",      "double", "numeric",
                                        "boolean", "timestamptz", "date",   "jsonb"};
    struct store *s = open_store();
    struct base_buf line, sql;
    struct base_err err;
    int64_t values = 0, nulls = 0, checked = 0;

    (void)state;
    migrate(s);
    base_log_set_level(BASE_LOG_ERROR); /* map warns about every mismatch */
    base_buf_init(&line, 1 << 16);
    base_buf_init(&sql, 1 << 16);
    for (size_t p = 0; p < BASE_ARRAY_SIZE(paths); p++) {
        for (size_t t = 0; t < BASE_ARRAY_SIZE(types); t++) {
            char def[128];
            const char *defs[1] = {def};
            struct espec e;

            snprintf(def, sizeof(def), "c:%s:%s", paths[p], types[t]);
            espec_init(&e, "bigint", defs, 1);
            base_buf_reset(&sql);
            /* text compares as text; the other types as values of the type. */
            assert_int_equal(base_buf_printf(&sql, "SELECT ($1::%s IS NOT DISTINCT FROM ",
                                             map_type_sql(e.cols[0].type)),
                             0);
            assert_int_equal(store_evolve_sql_value(&e.cols[0], &sql, &err), 0);
            assert_int_equal(base_buf_puts(&sql, ")::text, ("), 0);
            assert_int_equal(store_evolve_sql_value(&e.cols[0], &sql, &err), 0);
            assert_int_equal(base_buf_puts(&sql, ")::text FROM (SELECT $2::jsonb AS data) AS r"),
                             0);
            for (size_t r = 0; r < BASE_ARRAY_SIZE(records); r++) {
                cJSON *rec = cJSON_Parse(records[r]);
                const char *params[2];
                PGresult *res;
                char *want;

                assert_non_null(rec);
                base_buf_reset(&line);
                assert_int_equal(map_record_to_copy_raw(&e.spec, rec, records[r],
                                                        strlen(records[r]), &line, NULL, &err),
                                 0);
                want = copy_field(line.data, 1);
                params[0] = want;
                params[1] = records[r];
                res = PQexecParams(check, sql.data, 2, NULL, params, NULL, NULL, 0);
                if (PQresultStatus(res) != PGRES_TUPLES_OK)
                    fail_msg("%s: %s", sql.data, PQerrorMessage(check));
                if (strcmp(PQgetvalue(res, 0, 0), "true") != 0)
                    fail_msg("path \"%s\" as %s of %s: map wrote %s%s%s, SQL gives %s%s%s",
                             paths[p], types[t], records[r], want ? "\"" : "", want ? want : "NULL",
                             want ? "\"" : "", PQgetisnull(res, 0, 1) ? "" : "\"",
                             PQgetisnull(res, 0, 1) ? "NULL" : PQgetvalue(res, 0, 1),
                             PQgetisnull(res, 0, 1) ? "" : "\"");
                /* text must match byte for byte, not only as a value. */
                if (e.cols[0].type == MAP_TEXT && want != NULL)
                    assert_string_equal(PQgetvalue(res, 0, 1), want);
                values += want != NULL;
                nulls += want == NULL;
                checked++;
                PQclear(res);
                free(want);
                cJSON_Delete(rec);
            }
            espec_free(&e);
        }
    }
    base_log_set_level(BASE_LOG_INFO);
    /* Both outcomes were exercised, in quantity. */
    assert_int_equal(checked, (int64_t)(BASE_ARRAY_SIZE(paths) * BASE_ARRAY_SIZE(types) *
                                        BASE_ARRAY_SIZE(records)));
    assert_true(values > 150);
    assert_true(nulls > 150);
    base_buf_free(&line);
    base_buf_free(&sql);
    store_close(s);
}

/* ---- evolve: tables --------------------------------------------------------------------- */

#define EVO_N 12

/* Record i of the evolve tests (1-based), as JSON text into buf. */
static void evo_record(int i, char *buf, size_t n)
{
    char code[16], score[16], flag[16], emails[128];

    snprintf(code, sizeof(code), i == 7 ? "x%d" : "%d00", i);
    if (i == 3)
        snprintf(score, sizeof(score), "2.5");
    else if (i == 4)
        snprintf(score, sizeof(score), "\"42\"");
    else
        snprintf(score, sizeof(score), "%d", i * 10);
    snprintf(flag, sizeof(flag), "%s", i % 3 == 0 ? "true" : i % 3 == 1 ? "0" : "\"yes\"");
    if (i % 2 == 0)
        snprintf(emails, sizeof(emails), "[{\"address\": \"a%d@x\"}, {\"address\": \"b%d@x\"}]", i,
                 i);
    else
        snprintf(emails, sizeof(emails), "[{\"address\": \"a%d@x\"}]", i);
    assert_int_equal(base_snprintf(buf, n,
                                   "{\"id\": %d, \"given\": \"G%d\", \"code\": \"%s\", "
                                   "\"score\": %s, \"emails\": %s, \"flag\": %s, "
                                   "\"cf\": [{\"id\": 2, \"content\": \"c%d\"}, "
                                   "{\"id\": \"6\", \"content\": %d}], "
                                   "\"updated\": \"2024-11-07T10:00:%02d.000+0000\"}",
                                   i, i, code, score, emails, flag, i, i, i),
                     0);
}

/* Syncs the EVO_N records into t (child tables: parent ids 100 and 101 alternately), with a
 * checkpoint for job. */
static void evo_sync(struct store *s, const struct store_table *t, const char *job)
{
    struct base_buf rows;
    struct store_page_result r;
    struct store_page p = {0};
    struct base_err err;
    char text[1024];

    ensure_ok(s, t);
    base_buf_init(&rows, 1 << 20);
    for (int i = 1; i <= EVO_N; i++) {
        cJSON *rec;

        evo_record(i, text, sizeof(text));
        rec = cJSON_Parse(text);
        assert_non_null(rec);
        if (t->parent_col != NULL)
            assert_int_equal(base_buf_printf(&rows, "%d\t", 100 + i % 2), 0);
        assert_int_equal(map_record_to_copy_raw(t->map, rec, text, strlen(text), &rows, NULL, &err),
                         0);
        cJSON_Delete(rec);
    }
    p.table = t;
    p.rows = rows.data;
    p.rows_len = rows.len;
    p.nrows = EVO_N;
    p.job = job;
    p.checkpoint = "{\"done\": true}";
    base_err_clear(&err);
    if (store_commit_page(s, &p, &r, &err) != 0)
        fail_msg("store_commit_page: %s", err.msg);
    base_buf_free(&rows);
}

/* Every column of t equals what a fresh sync of the same records with t's spec writes. */
static void evo_assert_fresh(struct store *s, const struct store_table *t)
{
    const struct store_table fresh = {"evo_fresh", t->map, NULL, t->parent_col};
    char key[80];

    q_run("DROP TABLE IF EXISTS keap.evo_fresh");
    snprintf(key, sizeof(key), "%s%sid", t->parent_col ? t->parent_col : "",
             t->parent_col ? ", " : "");
    evo_sync(s, &fresh, "evo_fresh");
    assert_int_equal(q_int("SELECT count(*) FROM keap.%s", t->table), EVO_N);
    for (size_t i = 0; i < t->map->ncols; i++) {
        const char *c = t->map->cols[i].name;
        int64_t bad = q_int("SELECT count(*) FROM keap.%s a FULL JOIN keap.evo_fresh b USING "
                            "(%s) WHERE a.%s IS DISTINCT FROM b.%s OR a.id IS NULL OR "
                            "b.id IS NULL",
                            t->table, key, c, c);

        if (bad != 0)
            fail_msg("column \"%s\" of keap.%s: %" PRId64 " rows differ from a fresh sync", c,
                     t->table, bad);
        assert_col_type(t->table, c, t->map->cols[i].type);
    }
    q_run("DROP TABLE keap.evo_fresh");
}

static void evolve_ok(struct store *s, const char *job, const struct store_table *t, bool drop,
                      struct store_evolve_result *r)
{
    const struct store_evolve_options o = {.drop_columns = drop};
    struct base_err err;

    base_err_clear(&err);
    memset(r, 0xff, sizeof(*r));
    if (store_evolve_table(s, job, t, &o, r, &err) != 0)
        fail_msg("store_evolve_table: %s (%s)", err.msg, err.hint);
}

static int evo_changes(const struct store_evolve_result *r)
{
    return r->renamed + r->added + r->refilled + r->retyped + r->kept + r->dropped;
}

static void test_evolve_table(void **state)
{
    static const char *const v0[] = {
        "given:given:text",
        "code:code:text",
        "score:score:bigint",
        "email:emails.0.address:text",
        "updated:updated:timestamptz",
        "flag:flag:text",
    };
    /* Added: the second email, a custom field by selector, flag as a boolean next to it. */
    static const char *const v1[] = {
        "given:given:text",
        "code:code:text",
        "score:score:bigint",
        "email:emails.0.address:text",
        "updated:updated:timestamptz",
        "flag:flag:text",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
    };
    /* score bigint -> text, email now reads the second address, flag gone. */
    static const char *const v2[] = {
        "given:given:text",
        "code:code:text",
        "score:score:text",
        "email:emails.1.address:text",
        "updated:updated:timestamptz",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
    };
    /* code text -> bigint: record 7 holds "x7". */
    static const char *const v3[] = {
        "given:given:text",
        "code:code:bigint",
        "score:score:text",
        "email:emails.1.address:text",
        "updated:updated:timestamptz",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
    };
    /* v2 and flag as a boolean (true, 0 or "yes": the last is a mismatch). */
    static const char *const v4[] = {
        "given:given:text",
        "code:code:text",
        "score:score:text",
        "email:emails.1.address:text",
        "updated:updated:timestamptz",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
        "flag:flag:boolean",
    };
    struct espec e0, e1, e2, e3, e4, eid;
    struct store *s = open_store();
    struct store_evolve_result r;
    struct base_err err;
    char *shape, *after;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.evo; DROP TABLE IF EXISTS keap.evo2; "
          "DROP TABLE IF EXISTS keap.evo3; DELETE FROM keapsync.jobs; "
          "DELETE FROM keapsync.checkpoints");
    espec_init(&e0, "bigint", v0, BASE_ARRAY_SIZE(v0));
    espec_init(&e1, "bigint", v1, BASE_ARRAY_SIZE(v1));
    espec_init(&e2, "bigint", v2, BASE_ARRAY_SIZE(v2));
    espec_init(&e3, "bigint", v3, BASE_ARRAY_SIZE(v3));
    espec_init(&e4, "bigint", v4, BASE_ARRAY_SIZE(v4));
    espec_init(&eid, "text", v2, BASE_ARRAY_SIZE(v2));
    {
        const struct store_table t0 = {"evo", &e0.spec, "updated", NULL};
        const struct store_table t1 = {"evo", &e1.spec, "updated", NULL};
        const struct store_table t2 = {"evo", &e2.spec, "updated", NULL};
        const struct store_table t3 = {"evo", &e3.spec, "updated", NULL};
        const struct store_table moved = {"evo2", &e2.spec, "updated", NULL};
        const struct store_table clash = {"evo3", &e2.spec, "updated", NULL};
        const struct store_table id_text = {"evo2", &eid.spec, "updated", NULL};
        const struct store_evolve_options check_only = {.check_only = true};

        /* A job without a table: only its shape is recorded. */
        evolve_ok(s, "evo_job", &t0, false, &r);
        assert_int_equal(evo_changes(&r), 0);
        assert_int_equal(q_int("SELECT count(*) FROM keapsync.jobs WHERE job = 'evo_job' AND "
                               "shape->>'table' = 'evo' AND jsonb_array_length(shape->'columns') "
                               "= %zu",
                               BASE_ARRAY_SIZE(v0)),
                         1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND "
                               "tablename = 'evo'"),
                         0);
        evo_sync(s, &t0, "evo_job");
        evo_assert_fresh(s, &t0);

        /* Unchanged: nothing done, not even the shape's row rewritten. */
        shape = q_text("SELECT updated_at::text FROM keapsync.jobs WHERE job = 'evo_job'");
        evolve_ok(s, "evo_job", &t0, false, &r);
        assert_int_equal(evo_changes(&r), 0);
        after = q_text("SELECT updated_at::text FROM keapsync.jobs WHERE job = 'evo_job'");
        assert_string_equal(shape, after);
        free(shape);
        free(after);

        /* A check finds the added columns and changes nothing. */
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &t1, &check_only, &r, &err), 0);
        assert_int_equal(r.added, 3);
        assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                               "'keap.evo'::regclass AND attname = 'email2'"),
                         0);

        /* Added columns are filled from data as map writes them. */
        evolve_ok(s, "evo_job", &t1, false, &r);
        assert_int_equal(r.added, 3);
        assert_int_equal(evo_changes(&r), 3);
        evo_assert_fresh(s, &t1);
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE email2 IS NOT NULL"),
                         EVO_N / 2);
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE cf2 = 'c' || id"), EVO_N);
        assert_int_equal(q_int("SELECT sum(cf6) FROM keap.evo"), EVO_N * (EVO_N + 1) / 2);
        evolve_ok(s, "evo_job", &t1, false, &r);
        assert_int_equal(evo_changes(&r), 0);

        /* A type change, a path change and a dropped column (kept), at once. */
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(r.retyped, 1);
        assert_int_equal(r.refilled, 1);
        assert_int_equal(r.kept, 1);
        assert_int_equal(evo_changes(&r), 3);
        evo_assert_fresh(s, &t2);
        /* score 2.5 was NULL as a bigint and is its text now; "42" stays 42. */
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE score = '2.5' AND id = 3"), 1);
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE flag IS NOT NULL"), EVO_N);
        /* Kept once, then silent. */
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(evo_changes(&r), 0);

        /* A type change some value cannot take: refused, nothing changed. */
        shape = q_text("SELECT shape::text FROM keapsync.jobs WHERE job = 'evo_job'");
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &t3, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "cannot change column \"code\" of job \"evo_job\" to "
                                        "bigint: value \"x7\" of record 7 does not convert"));
        assert_true(err.hint[0] != '\0');
        assert_col_type("evo", "code", MAP_TEXT);
        after = q_text("SELECT shape::text FROM keapsync.jobs WHERE job = 'evo_job'");
        assert_string_equal(shape, after);
        free(after);
        free(shape);
        /* A value is quoted on one line, and cut when long. */
        q_run("UPDATE keap.evo SET data = jsonb_set(data, '{code}', to_jsonb('line1' || chr(10) "
              "|| 'line2 ' || repeat('y', 200))) WHERE id = 7");
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &t3, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "value \"line1 line2 yyy"));
        assert_non_null(strstr(err.msg, "yyy...\" of record 7 does not convert"));
        assert_null(strchr(err.msg, '\n'));
        assert_true(strlen(err.msg) < 200);
        /* Once the value converts, the change goes through. */
        q_run("UPDATE keap.evo SET data = jsonb_set(data, '{code}', '\"700\"') WHERE id = 7");
        evolve_ok(s, "evo_job", &t3, false, &r);
        assert_int_equal(r.retyped, 1);
        assert_int_equal(q_int("SELECT sum(code) FROM keap.evo"), 100 * EVO_N * (EVO_N + 1) / 2);
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(r.retyped, 1);
        q_run("UPDATE keap.evo SET code = 'x7', data = jsonb_set(data, '{code}', '\"x7\"') "
              "WHERE id = 7");
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(evo_changes(&r), 0);

        /* --drop-columns drops the kept column. */
        evolve_ok(s, "evo_job", &t2, true, &r);
        assert_int_equal(r.dropped, 1);
        assert_int_equal(evo_changes(&r), 1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                               "'keap.evo'::regclass AND attname = 'flag' AND NOT attisdropped"),
                         0);

        /* A renamed table is moved, with its indexes. */
        evolve_ok(s, "evo_job", &moved, false, &r);
        assert_int_equal(r.renamed, 1);
        assert_int_equal(evo_changes(&r), 1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND "
                               "tablename IN ('evo', 'evo2')"),
                         1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_indexes WHERE schemaname = 'keap' AND "
                               "tablename = 'evo2' AND indexname LIKE 'evo2\\_%%'"),
                         2);
        evo_assert_fresh(s, &moved);
        /* Onto a table that exists: refused. */
        q_run("CREATE TABLE keap.evo3 (id bigint PRIMARY KEY, data jsonb NOT NULL)");
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &clash, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "\"evo3\""));
        assert_true(err.hint[0] != '\0');
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo2"), EVO_N);
        /* From a table that is gone while the checkpoint says it was synced: refused. */
        q_run("DROP TABLE keap.evo3");
        q_run("ALTER TABLE keap.evo2 RENAME TO evo_away");
        assert_int_equal(store_evolve_table(s, "evo_job", &clash, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "does not exist"));
        assert_non_null(strstr(err.hint, "checkpoint"));
        q_run("ALTER TABLE keap.evo_away RENAME TO evo2");
        /* The id's type cannot change under the rows. */
        assert_int_equal(store_evolve_table(s, "evo_job", &id_text, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "id type"));
        assert_col_type("evo2", "id", MAP_BIGINT);

        /* A job seen the first time adopts an existing table: missing columns from data. */
        q_run("DELETE FROM keapsync.jobs WHERE job = 'evo_job'");
        q_run("ALTER TABLE keap.evo2 DROP COLUMN cf2");
        {
            const struct store_table wide = {"evo2", &e4.spec, "updated", NULL};

            /* cf2 and flag (a boolean now) are missing: added; the rest is taken as it is. */
            evolve_ok(s, "evo_job", &wide, false, &r);
            assert_int_equal(r.added, 2);
            assert_int_equal(evo_changes(&r), 2);
            evo_assert_fresh(s, &wide);
            assert_int_equal(q_int("SELECT count(*) FROM keap.evo2 WHERE flag IS NOT NULL"),
                             EVO_N * 2 / 3);
        }
    }
    q_run("DROP TABLE IF EXISTS keap.evo2; DELETE FROM keapsync.jobs; "
          "DELETE FROM keapsync.checkpoints");
    espec_free(&e0);
    espec_free(&e1);
    espec_free(&e2);
    espec_free(&e3);
    espec_free(&e4);
    espec_free(&eid);
    store_close(s);
}

/* Child tables, keyed (parent, id), evolve the same way. */
static void test_evolve_child(void **state)
{
    static const char *const v0[] = {"given:given:text", "score:score:bigint"};
    static const char *const v1[] = {"given:given:text", "score:score:text",
                                     "email2:emails.1.address:text"};
    struct espec e0, e1;
    struct store *s = open_store();
    struct store_evolve_result r;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.evo_kids; DELETE FROM keapsync.jobs");
    espec_init(&e0, "bigint", v0, BASE_ARRAY_SIZE(v0));
    espec_init(&e1, "bigint", v1, BASE_ARRAY_SIZE(v1));
    {
        const struct store_table t0 = {"evo_kids", &e0.spec, NULL, "parent_id"};
        const struct store_table t1 = {"evo_kids", &e1.spec, NULL, "parent_id"};
        const struct store_table orphan = {"evo_kids", &e1.spec, NULL, "owner_id"};

        evo_sync(s, &t0, "evo_kids");
        evolve_ok(s, "evo_kids", &t0, false, &r);
        assert_int_equal(evo_changes(&r), 0);
        evolve_ok(s, "evo_kids", &t1, false, &r);
        assert_int_equal(r.added, 1);
        assert_int_equal(r.retyped, 1);
        evo_assert_fresh(s, &t1);
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_kids", &orphan, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "parent column"));
    }
    q_run("DROP TABLE IF EXISTS keap.evo_kids; DELETE FROM keapsync.jobs");
    espec_free(&e0);
    espec_free(&e1);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_connect_session),
        cmocka_unit_test(test_migrate),
        cmocka_unit_test(test_ensure_table),
        cmocka_unit_test(test_commit_rows),
        cmocka_unit_test(test_child_table),
        cmocka_unit_test(test_child_sweep),
        cmocka_unit_test(test_parent_marks),
        cmocka_unit_test(test_newer_wins),
        cmocka_unit_test(test_duplicates_in_page),
        cmocka_unit_test(test_page_is_atomic),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_ledger_budget),
        cmocka_unit_test(test_ledger_race),
        cmocka_unit_test(test_ledger_release_observe),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_evolve_sql_path),
        cmocka_unit_test(test_evolve_sql_matches_map),
        cmocka_unit_test(test_evolve_table),
        cmocka_unit_test(test_evolve_child),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
