/*
 * Unit tests for store against a real, throwaway PostgreSQL (DATABASE_URL; deploy/test.sh
 * sets it, or: . deploy/lib/pg.sh; pg_throwaway_start /tmp/x-pg): the connection, migrations,
 * checkpoints, the quota ledger, settings and run history. The sink's tests are in
 * test_store_sink.c, the evolve tests in test_store_evolve.c; the database they run in and
 * the helpers they share are in store_fixture.h.
 */
#include "store_fixture.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_assert.h"

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
    ASSERT_GT(store_latest_version(), 0);
    assert_int_equal(store_schema_version(s, &version, &err), 0);
    assert_int_equal(version, 0);

    assert_int_equal(store_migrate(s, &applied, &err), 0);
    nfiles = q_int("SELECT count(*) FROM keapsync.migrations");
    ASSERT_GT(applied, 0);
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
        ASSERT_GE(g, 0);
        ASSERT_LE(g, 7);
        ASSERT_LE(total, budget);
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
        ASSERT_LE(args[i].max_total, RACE_BUDGET);
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
    ASSERT_GT(id2, id1);
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

/* Which failures store_retryable calls worth another try, and store_reconnect after a lost
 * connection. */
static void test_retryable(void **state)
{
    static const struct {
        const char *state;
        bool retry;
    } cases[] = {
        {"53100", true}, {"53200", true},  {"53300", true},  {"57014", true},
        {"57P01", true}, {"40001", true},  {"40P01", true},  {"55P03", true},
        {"08006", true}, {"23505", false}, {"P0001", false}, {"42P01", false},
    };
    struct store *s = open_store();
    struct base_err err;
    char sql[160];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(sql, sizeof(sql),
                 "DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '%s'; END $$",
                 cases[i].state);
        base_err_clear(&err);
        assert_int_equal(store_exec(s, sql, &err), BASE_EDB);
        if (store_retryable(s, &err) != cases[i].retry)
            fail_msg("SQLSTATE %s: store_retryable said %d", cases[i].state, !cases[i].retry);
        assert_true(store_connection_ok(s));
    }
    base_err_set(&err, BASE_EPROTO, "not a database error");
    assert_false(store_retryable(s, &err));
    /* the session killed under us: retryable, and a new connection works */
    base_err_clear(&err);
    assert_int_equal(store_exec(s, "SELECT pg_terminate_backend(pg_backend_pid())", &err),
                     BASE_EDB);
    assert_false(store_connection_ok(s));
    assert_true(store_retryable(s, &err));
    base_err_clear(&err);
    assert_int_equal(store_reconnect(s, &err), 0);
    assert_true(store_connection_ok(s));
    assert_int_equal(store_exec(s, "SELECT 1", &err), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_connect_session),
        cmocka_unit_test(test_migrate),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_ledger_budget),
        cmocka_unit_test(test_ledger_race),
        cmocka_unit_test(test_ledger_release_observe),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_retryable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
