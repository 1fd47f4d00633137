/*
 * test_store_lease.c: the named leases of keapsync.leases (lease.c), on a real PostgreSQL:
 * take, renew, give back, expiry, taking an expired lease from its old holder (who then finds
 * it lost it), the listing, and many connections racing for one lease (exactly one wins).
 *
 * Words used here: A and B are two holders, each on a store connection of its own, as two
 * keapsync processes would be; "ms(x)" reads a timestamptz column in epoch milliseconds.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_fixture.h"
#include "test_assert.h"

#define HOLDER_A "hostA:100:aaaaaaaa"
#define HOLDER_B "hostB:200:bbbbbbbb"
#define LONG_TTL 60000

static int64_t lease_ms(const char *col, const char *name)
{
    return q_int("SELECT (extract(epoch FROM %s) * 1000)::bigint FROM keapsync.leases "
                 "WHERE name = '%s'",
                 col, name);
}

static int64_t leases_named(const char *name)
{
    return q_int("SELECT count(*) FROM keapsync.leases WHERE name = '%s'", name);
}

static void assert_holder(const char *name, const char *want)
{
    char *h = q_text("SELECT holder FROM keapsync.leases WHERE name = '%s'", name);

    assert_non_null(h);
    if (strcmp(h, want) != 0) {
        print_error("lease \"%s\" is held by %s, not %s\n", name, h, want);
        free(h);
        fail();
    }
    free(h);
}

static void take(struct store *s, const char *name, const char *holder, int ttl_ms, bool want,
                 const char *want_other)
{
    struct base_err err;
    char *other = NULL;
    bool got = !want;

    assert_int_equal(store_lease_acquire(s, name, holder, ttl_ms, &got, &other, &err), 0);
    assert_int_equal(got, want);
    if (want_other != NULL)
        assert_string_equal(other, want_other);
    else
        assert_null(other);
    free(other);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Take a free lease; renew it (later expiry, same acquired_at); another holder is refused and
 * told who has it; the holder's second take is a renewal, not a new lease. */
static void test_take_renew(void **state)
{
    struct store *a = open_store(), *b = open_store();
    int64_t acq, exp1, exp2, now;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.leases");
    take(a, "job:x", HOLDER_A, LONG_TTL, true, NULL);
    assert_int_equal(leases_named("job:x"), 1);
    assert_holder("job:x", HOLDER_A);
    now = q_int("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
    exp1 = lease_ms("expires_at", "job:x");
    acq = lease_ms("acquired_at", "job:x");
    /* expires about ttl from now (the statement ran a moment ago) */
    ASSERT_GT(exp1, now + LONG_TTL - 5000);
    ASSERT_LE(exp1, now + LONG_TTL);
    ASSERT_LE(acq, now);

    sleep_ms(20);
    take(a, "job:x", HOLDER_A, LONG_TTL, true, NULL);
    exp2 = lease_ms("expires_at", "job:x");
    ASSERT_GT(exp2, exp1);
    assert_int_equal(lease_ms("acquired_at", "job:x"), acq);
    assert_int_equal(leases_named("job:x"), 1);

    take(b, "job:x", HOLDER_B, LONG_TTL, false, HOLDER_A);
    assert_holder("job:x", HOLDER_A);
    assert_int_equal(lease_ms("expires_at", "job:x"), exp2); /* a refusal changes nothing */

    /* other leases are independent */
    take(b, "job:y", HOLDER_B, LONG_TTL, true, NULL);
    store_close(a);
    store_close(b);
}

/* Give back: only the holder's release removes it; then anyone may take it at once. */
static void test_give(void **state)
{
    struct store *a = open_store(), *b = open_store();
    struct base_err err;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.leases");
    take(a, "job:x", HOLDER_A, LONG_TTL, true, NULL);
    assert_int_equal(store_lease_release(b, "job:x", HOLDER_B, &err), 0);
    assert_int_equal(leases_named("job:x"), 1); /* not B's to give */
    take(b, "job:x", HOLDER_B, LONG_TTL, false, HOLDER_A);
    assert_int_equal(store_lease_release(a, "job:x", HOLDER_A, &err), 0);
    assert_int_equal(leases_named("job:x"), 0);
    take(b, "job:x", HOLDER_B, LONG_TTL, true, NULL);
    /* releasing what one does not hold (any more) is not an error */
    assert_int_equal(store_lease_release(a, "job:x", HOLDER_A, &err), 0);
    assert_int_equal(leases_named("job:x"), 1);
    store_close(a);
    store_close(b);
}

/* Expiry on its own: A's short lease runs out without anyone touching it; B takes it (a new
 * acquired_at); A's next renewal is refused and names B: the old holder learns it lost it. */
static void test_expire_steal(void **state)
{
    struct store *a = open_store(), *b = open_store();
    char **names = NULL, **holders = NULL;
    struct base_err err;
    int64_t acq_a, deadline;
    int n = -1;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.leases");
    take(a, "job:x", HOLDER_A, 300, true, NULL);
    acq_a = lease_ms("acquired_at", "job:x");
    /* while it lasts, B is refused */
    take(b, "job:x", HOLDER_B, LONG_TTL, false, HOLDER_A);
    assert_int_equal(store_lease_list(b, "job:", &names, &holders, &n, &err), 0);
    assert_int_equal(n, 1);
    store_lease_list_free(names, holders);

    /* wait for the expiry itself (as the server's clock sees it), at most 10 s */
    deadline = q_int("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint") + 10000;
    while (q_int("SELECT count(*) FROM keapsync.leases WHERE name = 'job:x' AND "
                 "expires_at >= clock_timestamp()") > 0) {
        ASSERT_LT(q_int("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"), deadline);
        sleep_ms(20);
    }
    /* expired: no longer listed, though the row is still there until someone takes it */
    assert_int_equal(leases_named("job:x"), 1);
    assert_int_equal(store_lease_list(b, "job:", &names, &holders, &n, &err), 0);
    assert_int_equal(n, 0);
    store_lease_list_free(names, holders);

    take(b, "job:x", HOLDER_B, LONG_TTL, true, NULL);
    assert_holder("job:x", HOLDER_B);
    ASSERT_GT(lease_ms("acquired_at", "job:x"), acq_a);
    /* A comes back and tries to renew: refused, told B has it; B's lease is untouched */
    take(a, "job:x", HOLDER_A, LONG_TTL, false, HOLDER_B);
    assert_holder("job:x", HOLDER_B);
    /* A's release does not free B's lease */
    assert_int_equal(store_lease_release(a, "job:x", HOLDER_A, &err), 0);
    assert_int_equal(leases_named("job:x"), 1);
    store_close(a);
    store_close(b);
}

/* The listing: live leases with the prefix, in name order, with their holders. */
static void test_list(void **state)
{
    struct store *a = open_store();
    char **names = NULL, **holders = NULL;
    struct base_err err;
    int n = -1;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.leases");
    take(a, "job:b", HOLDER_B, LONG_TTL, true, NULL);
    take(a, "job:a", HOLDER_A, LONG_TTL, true, NULL);
    take(a, "peer:t:x", HOLDER_A, LONG_TTL, true, NULL);
    q_run("INSERT INTO keapsync.leases (name, holder, expires_at) "
          "VALUES ('job:c', 'old', now() - interval '1 s')");
    assert_int_equal(store_lease_list(a, "job:", &names, &holders, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "job:a");
    assert_string_equal(holders[0], HOLDER_A);
    assert_string_equal(names[1], "job:b");
    assert_string_equal(holders[1], HOLDER_B);
    assert_null(names[2]);
    store_lease_list_free(names, holders);
    /* the expired one can be taken */
    take(a, "job:c", HOLDER_A, LONG_TTL, true, NULL);
    store_close(a);
}

/* Renew: extends the holder's lease, expired or not; never re-takes one that another holder
 * took, or that was given back meanwhile (a process stopped past its lease stays out). */
static void test_renew_only(void **state)
{
    struct store *a = open_store(), *b = open_store();
    struct base_err err;
    bool held = false;
    int64_t exp1;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.leases");
    take(a, "job:x", HOLDER_A, LONG_TTL, true, NULL);
    exp1 = lease_ms("expires_at", "job:x");
    sleep_ms(20);
    assert_int_equal(store_lease_renew(a, "job:x", HOLDER_A, LONG_TTL, &held, &err), 0);
    assert_true(held);
    ASSERT_GT(lease_ms("expires_at", "job:x"), exp1);
    /* expired but not taken: still ours to renew */
    q_run("UPDATE keapsync.leases SET expires_at = now() - interval '1 s' WHERE name = 'job:x'");
    assert_int_equal(store_lease_renew(a, "job:x", HOLDER_A, LONG_TTL, &held, &err), 0);
    assert_true(held);
    take(b, "job:x", HOLDER_B, LONG_TTL, false, HOLDER_A);
    /* taken by B after it expired: A's renewal says so and changes nothing */
    q_run("UPDATE keapsync.leases SET expires_at = now() - interval '1 s' WHERE name = 'job:x'");
    take(b, "job:x", HOLDER_B, LONG_TTL, true, NULL);
    exp1 = lease_ms("expires_at", "job:x");
    held = true;
    assert_int_equal(store_lease_renew(a, "job:x", HOLDER_A, LONG_TTL, &held, &err), 0);
    assert_false(held);
    assert_holder("job:x", HOLDER_B);
    assert_int_equal(lease_ms("expires_at", "job:x"), exp1);
    /* given back by B: A's renewal does not bring it back */
    assert_int_equal(store_lease_release(b, "job:x", HOLDER_B, &err), 0);
    held = true;
    assert_int_equal(store_lease_renew(a, "job:x", HOLDER_A, LONG_TTL, &held, &err), 0);
    assert_false(held);
    assert_int_equal(leases_named("job:x"), 0);
    store_close(a);
    store_close(b);
}

/* A page committed under a lease: written while the holder has it (even expired); refused,
 * with nothing written (rows, checkpoint, ledger), once another holder took it. */
static void test_commit_under_lease(void **state)
{
    struct store *a = open_store(), *b = open_store();
    struct store_page_result r;
    struct base_buf rows;
    struct base_err err;
    struct store_page p;
    int64_t spent;

    (void)state;
    migrate(a);
    ensure_ok(a, &contacts);
    q_run("DELETE FROM keapsync.leases");
    q_run("DELETE FROM keap.contacts");
    q_run("DELETE FROM keapsync.checkpoints WHERE job = 'lease_job'");
    take(a, "job:lease_job", HOLDER_A, LONG_TTL, true, NULL);
    base_buf_init(&rows, 4096);
    row(&rows, "1", "a@x", "A", "2024-11-07T10:00:00Z");
    p = (struct store_page){.table = &contacts,
                            .rows = rows.data,
                            .rows_len = rows.len,
                            .nrows = 1,
                            .job = "lease_job",
                            .checkpoint = "{\"n\":1}",
                            .tenant = "tenant-lease",
                            .day_wall = wall("2024-11-07T12:00:00Z"),
                            .requests = 1,
                            .lease = "job:lease_job",
                            .lease_holder = HOLDER_A,
                            .lease_ttl_ms = LONG_TTL};
    assert_int_equal(store_commit_page(a, &p, &r, &err), 0);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 1);
    spent = q_int("SELECT coalesce(sum(spent), 0) FROM keapsync.quota_ledger "
                  "WHERE tenant = 'tenant-lease'");
    assert_int_equal(spent, 1);

    /* expired, nobody took it: still A's page to commit */
    q_run("UPDATE keapsync.leases SET expires_at = now() - interval '1 s'");
    base_buf_reset(&rows);
    row(&rows, "2", "b@x", "B", "2024-11-07T10:00:00Z");
    p.rows = rows.data;
    p.rows_len = rows.len;
    p.checkpoint = "{\"n\":2}";
    assert_int_equal(store_commit_page(a, &p, &r, &err), 0);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 2);

    /* B takes it: A's next page is refused and writes nothing */
    q_run("UPDATE keapsync.leases SET expires_at = now() - interval '1 s'");
    take(b, "job:lease_job", HOLDER_B, LONG_TTL, true, NULL);
    base_buf_reset(&rows);
    row(&rows, "3", "c@x", "C", "2024-11-07T10:00:00Z");
    p.rows = rows.data;
    p.rows_len = rows.len;
    p.checkpoint = "{\"n\":3}";
    assert_int_equal(store_commit_page(a, &p, &r, &err), BASE_ECANCELED);
    assert_non_null(strstr(err.msg, "lease \"job:lease_job\" is no longer ours"));
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 2);
    assert_int_equal(q_int("SELECT count(*) FROM keapsync.checkpoints WHERE job = 'lease_job' "
                           "AND state::text = '{\"n\": 2}'"),
                     1);
    assert_int_equal(q_int("SELECT coalesce(sum(spent), 0) FROM keapsync.quota_ledger "
                           "WHERE tenant = 'tenant-lease'"),
                     2);
    /* the connection is usable after the refusal: B commits under its own lease */
    p.lease_holder = HOLDER_B;
    assert_int_equal(store_commit_page(b, &p, &r, &err), 0);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 3);
    base_buf_free(&rows);
    store_close(a);
    store_close(b);
}

/* A holder frozen mid-commit (SIGSTOP, a paused VM) holds its lease row locked: a taker does
 * not wait on it forever but counts the lease as held, and once the frozen transaction has sat
 * idle longer than its lease lives the server ends it and the taker gets the lease. */
static void test_frozen_holder(void **state)
{
    struct store *a = open_store(), *b = open_store();
    struct base_err err;
    char *other = NULL;
    bool got = true;
    int tries = 0;

    (void)state;
    migrate(a);
    q_run("DELETE FROM keapsync.leases");
    take(a, "job:frozen", HOLDER_A, 1000, true, NULL);
    /* what store_commit_page does under a lease of 1 s, then A freezes */
    assert_int_equal(store_exec(a, "BEGIN", &err), 0);
    assert_int_equal(store_exec(a, "SET LOCAL idle_in_transaction_session_timeout = 1000", &err),
                     0);
    assert_int_equal(store_exec(a,
                                "SELECT 1 FROM keapsync.leases WHERE name = 'job:frozen' "
                                "FOR UPDATE",
                                &err),
                     0);
    /* B waits for the row at most its ttl, then reports A as the holder */
    assert_int_equal(store_lease_acquire(b, "job:frozen", HOLDER_B, 500, &got, &other, &err), 0);
    assert_false(got);
    assert_non_null(other);
    assert_string_equal(other, HOLDER_A);
    free(other);
    /* the server ends A's idle transaction; the lease (1 s) has expired by then: B takes it */
    while (!got && tries++ < 40) {
        assert_int_equal(store_lease_acquire(b, "job:frozen", HOLDER_B, 500, &got, NULL, &err), 0);
        if (!got) {
            struct timespec ts = {0, 250 * 1000000L};

            nanosleep(&ts, NULL);
        }
    }
    assert_true(got);
    assert_holder("job:frozen", HOLDER_B);
    /* A, thawed, finds its session gone: nothing it had open commits */
    assert_int_not_equal(store_exec(a, "COMMIT", &err), 0);
    store_close(a);
    store_close(b);
}

#define RACE_THREADS 8
#define RACE_ROUNDS  20

struct race_arg {
    int id;
    int wins;
    int rc;
    pthread_barrier_t *go;
};

/* Each round every thread tries to take "job:race" at once; the round's winner gives it back
 * before the next barrier. */
static void *race_thread(void *p)
{
    struct race_arg *a = p;
    struct store *s = NULL;
    struct base_err err;
    char holder[64];

    snprintf(holder, sizeof(holder), "host:%d:race", a->id);
    a->rc = store_connect(&s, test_conninfo, &err);
    for (int r = 0; r < RACE_ROUNDS; r++) {
        bool got = false;

        pthread_barrier_wait(a->go);
        if (a->rc == 0)
            a->rc = store_lease_acquire(s, "job:race", holder, LONG_TTL, &got, NULL, &err);
        pthread_barrier_wait(a->go); /* everyone has tried */
        if (got) {
            a->wins++;
            if (a->rc == 0)
                a->rc = store_lease_release(s, "job:race", holder, &err);
        }
        pthread_barrier_wait(a->go); /* given back before the next round */
    }
    store_close(s);
    return NULL;
}

/* Many processes take one free lease at the same moment: exactly one gets it, every time. */
static void test_race(void **state)
{
    struct race_arg args[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    pthread_barrier_t go;
    struct store *s = open_store();
    int wins = 0;

    (void)state;
    migrate(s);
    q_run("DELETE FROM keapsync.leases");
    assert_int_equal(pthread_barrier_init(&go, NULL, RACE_THREADS), 0);
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i] = (struct race_arg){.id = i, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(args[i].rc, 0);
        wins += args[i].wins;
    }
    assert_int_equal(wins, RACE_ROUNDS);
    assert_int_equal(leases_named("job:race"), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_renew),    cmocka_unit_test(test_give),
        cmocka_unit_test(test_expire_steal),  cmocka_unit_test(test_list),
        cmocka_unit_test(test_renew_only),    cmocka_unit_test(test_commit_under_lease),
        cmocka_unit_test(test_frozen_holder), cmocka_unit_test(test_race),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
