/*
 * Unit tests for the quota planner (engine/sched/plan.c, plan_out.c): the size probe
 * (sched_probe_size) driven by a fake "page length at offset" oracle, whose count member is
 * the total, the page's length (Keap's other reading) or a lie, checking the exact size and
 * request counts within 1.25 log2(N) + c; the budget spent over several lists at once
 * (sched_probe_many: widest bracket first, each within its tolerance); requests for a list's
 * records (v1 drift-proof pages, plain v1, v2 tokens, sweeps); the schedule over days (order by
 * kind, today's budget, the daily budget, what done jobs cost again); and the plan's JSON and stop
 * line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"
#include "test_assert.h"

enum count_mode { COUNT_TOTAL, COUNT_PAGE, COUNT_NONE, COUNT_LIE_HIGH, COUNT_LIE_LOW };

struct oracle {
    int64_t size;
    enum count_mode mode;
    int calls;
    int fail_at; /* fail the call with this number (1-based); 0: never */
};

static int oracle_cb(void *ctx, int64_t offset, int limit, int *n, int64_t *count)
{
    struct oracle *o = ctx;
    int64_t left = o->size - offset;

    o->calls++;
    if (o->fail_at > 0 && o->calls == o->fail_at)
        return BASE_EIO;
    ASSERT_GE(offset, 0);
    *n = (int)(left <= 0 ? 0 : left < limit ? left : limit);
    switch (o->mode) {
    case COUNT_TOTAL:
        *count = o->size;
        break;
    case COUNT_PAGE:
        *count = *n;
        break;
    case COUNT_NONE:
        *count = -1;
        break;
    case COUNT_LIE_HIGH:
        *count = o->size * 2 + 7;
        break;
    case COUNT_LIE_LOW:
        *count = o->size / 2 + 1;
        break;
    }
    return 0;
}

static int auth_cb(void *ctx, int64_t offset, int limit, int *n, int64_t *count)
{
    (void)ctx;
    (void)offset;
    (void)limit;
    (void)n;
    (void)count;
    return BASE_EAUTH;
}

static const int64_t sizes[] = {0,     1,      2,      3,      7,       99,      100,
                                101,   999,    1000,   1001,   1999,    2000,    4097,
                                65536, 123457, 250000, 999999, 1000000, 1000001, 3000017};

/*
 * Without a believable count: growth by SCHED_PROBE_GROWTH, then bisection, exact. The growth
 * takes log32(N/limit) + 1 pages and the bisection of its last step log2(31 N/limit): within
 * 1.25 log2(N/limit) + 8 in all.
 */
static void test_probe_exact_and_bounded(void **state)
{
    static const enum count_mode modes[] = {COUNT_PAGE, COUNT_NONE, COUNT_LIE_HIGH, COUNT_LIE_LOW};
    static const int limits[] = {1, 100, 1000};

    (void)state;
    for (size_t m = 0; m < BASE_ARRAY_SIZE(modes); m++)
        for (size_t l = 0; l < BASE_ARRAY_SIZE(limits); l++)
            for (size_t i = 0; i < BASE_ARRAY_SIZE(sizes); i++) {
                struct oracle o = {.size = sizes[i], .mode = modes[m]};
                int64_t got = -1;
                int req = 0, limit = limits[l];
                double units = (double)sizes[i] / limit;
                /* +2 for the count check (a lie costs its two one-record pages), +1 the
                 * first page, +5 the growth's last factor, and the rounding of both phases. */
                double bound = 1.25 * log2(units > 1 ? units : 1) + 10;

                assert_int_equal(sched_probe_size(oracle_cb, &o, limit, &got, &req), 0);
                if (got != sizes[i])
                    fail_msg("size %lld, limit %d, mode %zu: probed %lld", (long long)sizes[i],
                             limit, m, (long long)got);
                assert_int_equal(req, o.calls);
                if (req > bound)
                    fail_msg("size %lld, limit %d, mode %zu: %d requests > %.1f",
                             (long long)sizes[i], limit, m, req, bound);
            }
}

/* One-record pages: within the brief's 2 log2(N) + c (c = 8: small lists cost a few more). */
static void test_probe_one_record_pages(void **state)
{
    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(sizes); i++) {
        struct oracle o = {.size = sizes[i], .mode = COUNT_PAGE};
        int64_t got = -1;
        int req = 0;
        double n = sizes[i] > 1 ? (double)sizes[i] : 1;

        assert_int_equal(sched_probe_size(oracle_cb, &o, 1, &got, &req), 0);
        assert_int_equal(got, sizes[i]);
        ASSERT_LE(req, 1.25 * log2(n) + 8);
        assert_true(n < 16 || req <= 2.0 * log2(n));
    }
}

/* A count that is the total is believed after two one-record pages confirm it. */
static void test_probe_true_count(void **state)
{
    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(sizes); i++) {
        struct oracle o = {.size = sizes[i], .mode = COUNT_TOTAL};
        int64_t got = -1;
        int req = 0;

        assert_int_equal(sched_probe_size(oracle_cb, &o, 1000, &got, &req), 0);
        assert_int_equal(got, sizes[i]);
        /* A count equal to a full page's length is no more than Keap's page-length count: that
         * list is probed like any other. */
        if (sizes[i] != 1000)
            ASSERT_LE(req, 3);
        if (sizes[i] < 1000)
            assert_int_equal(req, 1); /* a short first page says it all */
    }
}

/* An error from the oracle ends the probe with it. */
static void test_probe_error(void **state)
{
    struct oracle o = {.size = 500000, .mode = COUNT_PAGE, .fail_at = 4};
    int64_t got = -1;
    int req = 0;

    (void)state;
    assert_int_equal(sched_probe_size(oracle_cb, &o, 1000, &got, &req), BASE_EIO);
    assert_int_equal(req, 4);
    assert_int_equal(got, -1);
}

/*
 * Several lists, one budget: with enough, each estimate is within the tolerance and what the
 * probes spent is the sum of their requests; with too little, the budget is spent exactly,
 * the largest lists get the most pages and the total stays close; one list's error leaves
 * the others to go on, and refused credentials end them all.
 */
static void test_probe_many(void **state)
{
    static const int64_t lists[] = {500, 100000, 1000000, 1380051, 250000, 50000, 250000, 892};
    enum { N = BASE_ARRAY_SIZE(lists) };
    struct oracle o[N];
    struct sched_probe p[N], *v[N];
    int64_t truth = 0, est = 0;
    int spent, sum = 0;

    (void)state;
    for (size_t i = 0; i < N; i++) {
        o[i] = (struct oracle){.size = lists[i], .mode = COUNT_PAGE};
        sched_probe_init(&p[i], oracle_cb, &o[i], 1000);
        v[i] = &p[i];
        truth += lists[i];
    }
    spent = sched_probe_many(v, N, 10000, 0.01);
    for (size_t i = 0; i < N; i++) {
        int64_t e = sched_probe_estimate(&p[i]);

        assert_true(sched_probe_done(&p[i], 0.01));
        assert_int_equal(p[i].requests, o[i].calls);
        if (e < lists[i] * 0.99 || e > lists[i] * 1.01)
            fail_msg("list of %lld: estimated %lld", (long long)lists[i], (long long)e);
        sum += p[i].requests;
    }
    assert_int_equal(spent, sum);
    assert_int_equal(p[0].requests, 1); /* short first pages are exact */
    assert_int_equal(p[7].requests, 1);

    /* 48 requests: less than the 1 % needs (about 9 a list over the 6 that are long). */
    for (size_t i = 0; i < N; i++) {
        o[i].calls = 0;
        sched_probe_init(&p[i], oracle_cb, &o[i], 1000);
    }
    spent = sched_probe_many(v, N, 48, 0.01);
    assert_int_equal(spent, 48);
    for (size_t i = 0; i < N; i++)
        est += sched_probe_estimate(&p[i]);
    if (est < truth * 0.95 || est > truth * 1.05)
        fail_msg("48 probes: %lld records estimated, %lld true", (long long)est, (long long)truth);
    ASSERT_GT(p[3].requests, p[5].requests); /* 1,380,051 records get more than 50,000 */

    /* One list's error: it is over, the others go on. */
    for (size_t i = 0; i < N; i++) {
        o[i].calls = 0;
        sched_probe_init(&p[i], oracle_cb, &o[i], 1000);
    }
    o[2].fail_at = 2;
    spent = sched_probe_many(v, N, 10000, 0.01);
    assert_int_equal(p[2].rc, BASE_EIO);
    assert_int_equal(p[2].requests, 2);
    assert_true(sched_probe_done(&p[3], 0.01));
    assert_int_equal(p[3].rc, 0);

    /* Refused credentials: nothing else will work. */
    for (size_t i = 0; i < N; i++) {
        o[i] = (struct oracle){.size = lists[i], .mode = COUNT_PAGE};
        sched_probe_init(&p[i], oracle_cb, &o[i], 1000);
    }
    p[1].fn = auth_cb;
    assert_int_equal(sched_probe_many(v, N, 10000, 0.01), BASE_EAUTH);
    assert_int_equal(p[1].rc, BASE_EAUTH);
    ASSERT_LE(p[4].requests, 1);
}

static void test_list_requests(void **state)
{
    (void)state;
    /* v1 drift-proof: pages at 0, 999, 1998; two more sent ahead of the short one. */
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, true, 2000), 3 + 2);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, true, 999), 1);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, true, 1000), 2 + 1);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, true, 0), 1);
    /* 1,000,000 records: 1001 pages, at most depth - 1 = 3 ahead */
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, true, 1000000), 1002 + 3);
    /* plain v1: a full last page needs an empty one after it */
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, false, 2000), 3 + 2);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V1, 1000, false, 2500), 3 + 2);
    /* v2: tokens end with the last page */
    assert_int_equal(sched_plan_list_requests(KEAP_API_V2, 1000, false, 1000), 1);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V2, 1000, false, 1001), 2);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V2, 100, false, 250000), 2500);
    assert_int_equal(sched_plan_list_requests(KEAP_API_V2, 1000, false, 0), 1);
    /* a sweep: a full id listing */
    /* 251 pages, and the 3 the pipeline sends past the short last one */
    assert_int_equal(sched_plan_sweep_requests(KEAP_API_V1, 250000, 1000), 254);
    assert_int_equal(sched_plan_sweep_requests(KEAP_API_V1, 10, 1000), 1);
    /* a sweep reads at least 1,000 ids a page, whatever the job's page size */
    assert_int_equal(sched_plan_sweep_requests(KEAP_API_V1, 4990, 100), 8);
    /* v2 tokens chain: nothing past the last page */
    assert_int_equal(sched_plan_sweep_requests(KEAP_API_V2, 4990, 100), 5);
}

static void add(struct sched_plan *p, const char *name, enum sched_plan_kind kind, int64_t requests,
                int64_t recost)
{
    struct sched_plan_job j = {0};

    snprintf(j.name, sizeof(j.name), "%s", name);
    j.kind = kind;
    j.pass = "full";
    j.records = requests * 10;
    j.requests = requests;
    j.recost = recost;
    snprintf(j.source, sizeof(j.source), "probe");
    assert_int_equal(sched_plan_add(p, &j), 0);
}

/* 2026-03-01T12:00:00Z */
#define T0 1772366400000LL

static void test_schedule(void **state)
{
    struct sched_plan p = {0};

    (void)state;
    p.now_ms = T0;
    p.next_day_ms = base_time_next_day(T0);
    p.daily = 900;
    p.today_left = 100;
    add(&p, "sweep_contacts", SCHED_PLAN_SWEEP, 50, 0);
    add(&p, "contact_tags", SCHED_PLAN_CHILD, 2000, 0);
    add(&p, "contacts", SCHED_PLAN_LIST, 90, 1);
    add(&p, "backfill_orders", SCHED_PLAN_BACKFILL, 10, 0);
    add(&p, "orders", SCHED_PLAN_LIST, 5, 1);
    sched_plan_schedule(&p);
    /* Admission order: list jobs (in their order), children, backfills, sweeps. */
    assert_string_equal(p.jobs[0].name, "contacts");
    assert_string_equal(p.jobs[1].name, "orders");
    assert_string_equal(p.jobs[2].name, "contact_tags");
    assert_string_equal(p.jobs[3].name, "backfill_orders");
    assert_string_equal(p.jobs[4].name, "sweep_contacts");
    assert_int_equal(p.total_requests, 2155);
    /* today: 100 (contacts 90, orders 5, 5 of the tags); day 1: 900 - 2 recost; day 2 the
     * rest of the tags (2000 - 5 - 898 = 1097 > 898) ... day 3 */
    assert_int_equal(p.jobs[0].finish_day, 0);
    assert_int_equal(p.jobs[1].finish_day, 0);
    assert_int_equal(p.jobs[2].finish_day, 3);
    assert_int_equal(p.jobs[3].finish_day, 3);
    assert_int_equal(p.jobs[4].finish_day, 3);
    assert_int_equal(p.days, 4);
    assert_string_equal(p.jobs[0].finish_date, "2026-03-01");
    assert_string_equal(p.finish_date, "2026-03-04");
    sched_plan_free(&p);

    /* No daily limit: everything today. Nothing to do: no days. */
    memset(&p, 0, sizeof(p));
    p.now_ms = T0;
    add(&p, "contacts", SCHED_PLAN_LIST, 100000, 1);
    sched_plan_schedule(&p);
    assert_int_equal(p.days, 1);
    sched_plan_free(&p);
    memset(&p, 0, sizeof(p));
    p.now_ms = T0;
    p.daily = 10;
    add(&p, "users", SCHED_PLAN_LIST, 0, 0);
    sched_plan_schedule(&p);
    assert_int_equal(p.days, 0);
    sched_plan_free(&p);
}

static void test_json_and_stop_line(void **state)
{
    struct sched_plan p = {0};
    struct sched_job_result jr[2] = {{.name = "contacts", .state = SCHED_JOB_DONE},
                                     {.name = "contact_tags", .state = SCHED_JOB_STOPPED}};
    struct sched_result res = {.outcome = SCHED_OUTCOME_QUOTA, .njobs = 2, .jobs = jr};
    struct base_buf b;
    cJSON *root, *jobs;
    char line[512];

    (void)state;
    p.now_ms = T0;
    p.next_day_ms = base_time_next_day(T0);
    p.daily = 900;
    p.per_day = 1000;
    p.reserve_fraction = 0.1;
    add(&p, "contacts", SCHED_PLAN_LIST, 3, 1);
    add(&p, "contact_tags", SCHED_PLAN_CHILD, 1155, 0);
    sched_plan_schedule(&p);
    base_buf_init(&b, 1 << 20);
    assert_int_equal(sched_plan_json(&p, &b), 0);
    root = cJSON_Parse(b.data);
    assert_non_null(root);
    assert_int_equal(cJSON_GetObjectItem(root, "total_requests")->valuedouble, 1158);
    assert_int_equal(cJSON_GetObjectItem(root, "days")->valuedouble, 3);
    jobs = cJSON_GetObjectItem(root, "jobs");
    assert_int_equal(cJSON_GetArraySize(jobs), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 1), "requests")->valuedouble,
                     1155);
    cJSON_Delete(root);
    base_buf_reset(&b);
    assert_int_equal(sched_plan_text(&p, &b), 0);
    assert_non_null(strstr(b.data, "contact_tags"));
    base_buf_free(&b);

    sched_plan_stop_line(&p, &res, line, sizeof(line));
    assert_non_null(strstr(line, "left: 1 job, ~1155 requests (contact_tags ~1155)"));
    assert_non_null(strstr(line, "the next UTC day starts 2026-03-02T00:00:00Z, in 12.0 h"));
    assert_non_null(strstr(line, "00:00 UTC"));
    assert_null(strchr(line, '\n'));
    sched_plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_exact_and_bounded),
        cmocka_unit_test(test_probe_one_record_pages),
        cmocka_unit_test(test_probe_true_count),
        cmocka_unit_test(test_probe_error),
        cmocka_unit_test(test_probe_many),
        cmocka_unit_test(test_list_requests),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_json_and_stop_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
