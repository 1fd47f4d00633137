/*
 * Unit tests for pace on a fake clock: mono and wall are plain variables the tests move.
 * Covers window boundaries and exact wait times, even spacing, all-or-nothing admission, the
 * UTC day (grants, budget, rollover), refunds, header reconciliation, 429 handling (AIMD,
 * Retry-After, back-off), share splitting, the text parsers, a 10-minute simulated run, and
 * the margin (default, floor, sized to measured round trips, widened on a spike 429, narrowed
 * slowly) with a model of a server that judges arrivals delayed by jitter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pace.h"
#include "test_assert.h"

/* Doubles equal within eps (cmocka's float assert rounds to float). */
#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) < (eps))

#define T0 5000000ULL /* mono start: far from 0 so nothing hides behind "0 = unset" */

static int64_t wall_at(const char *iso)
{
    int64_t w = 0;

    assert_int_equal(base_time_parse(iso, &w), 0);
    return w;
}

static struct pace *make(double per_sec, int64_t per_min, int64_t per_day, double reserve)
{
    struct pace_config cfg;
    struct pace *p = NULL;

    pace_config_default(&cfg);
    cfg.per_sec = per_sec;
    cfg.per_min = per_min;
    cfg.per_day = per_day;
    cfg.reserve_fraction = reserve;
    assert_int_equal(pace_new(&p, &cfg), 0);
    assert_non_null(p);
    return p;
}

static uint32_t default_margin(void)
{
    struct pace_config cfg;

    pace_config_default(&cfg);
    return cfg.margin_ms;
}

static int64_t margin_of(const struct pace *p)
{
    struct pace_stats st;

    pace_get_stats(p, &st);
    return st.margin_ms;
}

/* Acquires at *now, following PACE_WAIT answers, until admitted; returns the admission time. */
static uint64_t admit_next(struct pace *p, uint64_t *now, int64_t wall)
{
    for (int i = 0; i < 1000; i++) {
        struct pace_decision d = pace_acquire(p, *now, wall);

        if (d.verdict == PACE_GO)
            return *now;
        assert_int_equal(d.verdict, PACE_WAIT);
        ASSERT_GT(d.retry_mono_ms, *now);
        *now = d.retry_mono_ms;
    }
    fail_msg("no admission after 1000 waits");
    return 0;
}

/* ---- parsers ---- */

static void test_config_parse(void **state)
{
    struct pace_config cfg, before;
    struct base_err err;
    static const char *const bad[] = {
        "abc",           "10/x",        "-1/s",  "1.5/min", "",
        "10/s,,240/min", "10/s,20/s",   "/s",    "10/",     "1e3/s",
        "nan/s",         "inf/s",       "10/s,", "0x10/s",  "99999999999999999999/day",
        "10 /s",         "5000000/min",
    };

    (void)state;
    pace_config_default(&cfg);
    assert_true(cfg.per_sec == 10.0);
    assert_int_equal(cfg.per_min, 240);
    assert_int_equal(cfg.per_day, 30000);
    assert_true(cfg.reserve_fraction == 0.0);
    assert_int_equal(cfg.margin_ms, 50); /* the documented default, before any round trip */

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(pace_config_parse("10/s,240/min,30000/day", &cfg, &err), 0);
    assert_true(cfg.per_sec == 10.0);
    assert_int_equal(cfg.per_min, 240);
    assert_int_equal(cfg.per_day, 30000);

    /* any subset, any order, unit spellings; windows not named keep their values */
    assert_int_equal(pace_config_parse(" 20/minute , 2.5/sec", &cfg, &err), 0);
    assert_int_equal(cfg.per_min, 20);
    assert_true(cfg.per_sec == 2.5);
    assert_int_equal(cfg.per_day, 30000);
    assert_int_equal(pace_config_parse("0/s,150000/day,7/min", &cfg, &err), 0);
    assert_true(cfg.per_sec == 0.0);
    assert_int_equal(cfg.per_day, 150000);
    assert_int_equal(cfg.per_min, 7);
    assert_int_equal(pace_config_parse("3/second", &cfg, &err), 0);
    assert_true(cfg.per_sec == 3.0);

    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        base_err_clear(&err);
        before = cfg;
        assert_int_equal(pace_config_parse(bad[i], &cfg, &err), BASE_ECONFIG);
        assert_memory_equal(&cfg, &before, sizeof(cfg));
        assert_int_equal(err.code, BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "invalid KEAPSYNC_LIMITS item \""));
        ASSERT_GT(strlen(err.hint), 0);
    }
    assert_int_equal(pace_config_parse("10/s,abc,240/min", &cfg, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "invalid KEAPSYNC_LIMITS item \"abc\"");
    assert_non_null(strstr(err.hint, "10/s,240/min,30000/day"));
    /* an item longer than anything valid is quoted capped, not whole */
    {
        char longspec[300];

        memset(longspec, '9', sizeof(longspec) - 1);
        longspec[sizeof(longspec) - 1] = '\0';
        assert_int_equal(pace_config_parse(longspec, &cfg, &err), BASE_ECONFIG);
        ASSERT_LT(strlen(err.msg), 120);
    }
}

static void test_reserve_parse(void **state)
{
    struct base_err err;
    double f = 42;
    static const char *const bad[] = {"",     "%",    "abc",   "-0.1",  "1",   "1.0",
                                      "100%", "150%", "0.1%%", "10 %x", "nan", "1e-1"};

    (void)state;
    assert_int_equal(pace_reserve_parse("10%", &f, &err), 0);
    assert_near(f, 0.10, 1e-12);
    assert_int_equal(pace_reserve_parse("0.1", &f, &err), 0);
    assert_near(f, 0.1, 1e-12);
    assert_int_equal(pace_reserve_parse("0", &f, &err), 0);
    assert_true(f == 0.0);
    assert_int_equal(pace_reserve_parse("99.5%", &f, &err), 0);
    assert_near(f, 0.995, 1e-12);
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        f = 42;
        assert_int_equal(pace_reserve_parse(bad[i], &f, &err), BASE_ECONFIG);
        assert_true(f == 42);
        assert_non_null(strstr(err.msg, "invalid quota reserve"));
        ASSERT_GT(strlen(err.hint), 0);
    }
}

static void test_retry_after_parse(void **state)
{
    int64_t d = -7;
    int64_t date = wall_at("2015-10-21T07:28:00Z");
    static const char *const garbage[] = {
        "",
        "abc",
        "-1",
        "3.5",
        "+3",
        "Wed, 21 Oct 2015 07:28:00 UTC",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 07:28:00 GMTx",
        "Wed, 21 Oct 2015 7:28:00 GMT",
        "wed, 21 Oct 2015 07:28:00 GMT",
        "Wed, 29 Feb 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 24:00:00 GMT",
    };

    (void)state;
    assert_int_equal(pace_parse_retry_after("3", date, &d), 0);
    assert_int_equal(d, 3000);
    assert_int_equal(pace_parse_retry_after("0", date, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(pace_parse_retry_after(" 120 ", date, &d), 0);
    assert_int_equal(d, 120000);
    /* an HTTP date in the three forms RFC 9110 requires recipients to accept */
    assert_int_equal(pace_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 5500, &d), 0);
    assert_int_equal(d, 5500);
    assert_int_equal(pace_parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", date - 1, &d), 0);
    assert_int_equal(d, 1);
    assert_int_equal(pace_parse_retry_after("Wed Oct 21 07:28:00 2015", date - 60000, &d), 0);
    assert_int_equal(d, 60000);
    assert_int_equal(
        pace_parse_retry_after("Sun Nov  6 08:49:37 1994", wall_at("1994-11-06T08:49:30Z"), &d), 0);
    assert_int_equal(d, 7000);
    /* a date in the past means now, never a negative delay */
    assert_int_equal(pace_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + 1000, &d), 0);
    assert_int_equal(d, 0);
    for (size_t i = 0; i < BASE_ARRAY_SIZE(garbage); i++) {
        d = -7;
        assert_int_equal(pace_parse_retry_after(garbage[i], date, &d), BASE_EINVAL);
        assert_int_equal(d, -7);
    }
    assert_int_equal(pace_parse_retry_after(NULL, date, &d), BASE_EINVAL);
    assert_int_equal(pace_parse_retry_after("99999999999999999", date, &d), BASE_ERANGE);
    assert_int_equal(d, -7);
}

/* ---- windows ---- */

static void test_minute_boundary(void **state)
{
    const int64_t per_min = 240;
    const uint64_t span = 60000 + default_margin();
    struct pace *p = make(10, per_min, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, a[240];
    struct pace_decision d;

    (void)state;
    for (int64_t i = 0; i < per_min; i++)
        a[i] = admit_next(p, &now, wall);
    /* exactly per_min fit within the first 60 s ... */
    ASSERT_LT(a[per_min - 1], a[0] + 60000);
    /* ... and the next waits until the first leaves the window, to the millisecond */
    d = pace_acquire(p, now, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, a[0] + span);
    d = pace_acquire(p, a[0] + span - 1, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, a[0] + span);
    d = pace_acquire(p, a[0] + span, wall);
    assert_int_equal(d.verdict, PACE_GO);
    /* the one after waits for the second admission to leave */
    d = pace_acquire(p, a[0] + span, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, a[1] + span);
    pace_free(p);
}

/* Sends are spaced at the rate itself, never closer (to the millisecond the caller's clock
 * rounds to), and every run of the spike window's limit spans at least 1 s + the margin. */
static void test_even_spacing(void **state)
{
    const double rates[] = {10, 3, 6, 0.5};

    (void)state;
    for (size_t r = 0; r < BASE_ARRAY_SIZE(rates); r++) {
        struct pace *p = make(rates[r], 0, 0, 0);
        int64_t wall = wall_at("2026-03-10T12:00:00Z");
        double gap_min = 1000.0 / rates[r];
        size_t limit = rates[r] < 1 ? 1 : (size_t)floor(rates[r]);
        uint64_t now = T0, a[60];
        struct pace_stats st;

        for (int i = 0; i < 60; i++) {
            /* ask a little early as well as on time: no bursts either way */
            now += 7;
            a[i] = admit_next(p, &now, wall);
            if (i > 0) {
                ASSERT_GE((double)(a[i] - a[i - 1]), floor(gap_min));
                /* only the margin, once per window, stretches a gap */
                ASSERT_LT((double)(a[i] - a[i - 1]),
                          gap_min + (double)default_margin() + 1.0 + 7.0);
            }
            if ((size_t)i >= limit)
                ASSERT_GE(a[i] - a[i - limit], 1000 + default_margin());
        }
        /* and the rounding does not add up: 59 gaps cost no more than the rate and the
         * margin once per window (plus the 7 ms of asking early, once per window) */
        ASSERT_LE((double)(a[59] - a[0]),
                  59.0 * gap_min + (double)(59 / limit) * (default_margin() + 7.0) + 1.0);
        pace_get_stats(p, &st);
        assert_int_equal(st.admitted, 60);
        assert_true(st.current_per_sec == rates[r]);
        assert_int_equal(st.day_left, -1); /* no day window */
        pace_free(p);
    }
}

/* When the minute binds, a burst still runs at the second's full rate (no cap below it):
 * the minute fills in per_min / per_sec seconds plus the margin once per second. */
static void test_full_rate_burst(void **state)
{
    struct {
        double per_sec;
        int64_t per_min;
    } cases[] = {{20, 300}, {10, 240}, {5, 60}, {40, 960}};
    int64_t wall = wall_at("2026-03-10T12:00:00Z");

    (void)state;
    for (size_t c = 0; c < BASE_ARRAY_SIZE(cases); c++) {
        struct pace *p = make(cases[c].per_sec, cases[c].per_min, 0, 0);
        int64_t n = cases[c].per_min, L = (int64_t)cases[c].per_sec;
        uint64_t now = T0, first = 0, at = 0, prev = 0, full;

        for (int64_t i = 0; i < n; i++) {
            at = admit_next(p, &now, wall);
            if (i == 0)
                first = at;
            else
                ASSERT_GE((double)(at - prev), floor(1000.0 / cases[c].per_sec));
            prev = at;
        }
        full = (uint64_t)((n - 1) / L) * (1000 + default_margin()) +
               (uint64_t)ceil((double)((n - 1) % L) * 1000.0 / cases[c].per_sec);
        ASSERT_LE(at - first, full + 1);
        /* the old cap of twice the minute's average rate would have taken this long */
        ASSERT_LT(at - first,
                  (uint64_t)((double)(n - 1) * 1025.0 / (2.0 * (double)cases[c].per_min / 60.0)));
        pace_free(p);
    }
}

/* A fractional ceiling: even spacing alone would put 3 in some second at 2.5/s. */
static void test_fractional_rate(void **state)
{
    const double per_sec = 2.5;
    struct pace *p = make(per_sec, 0, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, a[40];
    size_t n = BASE_ARRAY_SIZE(a);

    (void)state;
    for (size_t i = 0; i < n; i++)
        a[i] = admit_next(p, &now, wall);
    for (size_t i = 0, j = 0; i < n; i++) {
        while (j < n && a[j] < a[i] + 1000)
            j++;
        ASSERT_LE((double)(j - i), per_sec);
        if (i > 0)
            ASSERT_GE((double)(a[i] - a[i - 1]), 1000.0 / per_sec);
    }
    pace_free(p);
}

static void test_all_or_nothing(void **state)
{
    const uint64_t span = 60000 + default_margin();
    /* 1/s: the spike window holds one request for 1 s + the margin */
    const uint64_t S = 1000 + default_margin();
    struct pace *p = make(1, 5, 100, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t t = T0;
    struct pace_decision d;
    struct pace_stats st;

    (void)state;
    /* no tokens: windows have room, nothing is counted */
    d = pace_acquire(p, t, wall);
    assert_int_equal(d.verdict, PACE_NEED_GRANT);
    pace_get_stats(p, &st);
    assert_int_equal(st.admitted, 0);
    assert_int_equal(st.day_spent, 0);
    pace_grant(p, wall, 2);
    assert_int_equal(pace_acquire(p, t, wall).verdict, PACE_GO);
    /* refused by the spike window: no token spent, the minute not counted */
    d = pace_acquire(p, t + 500, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, t + S);
    assert_int_equal(pace_unspent(p), 1);
    assert_int_equal(pace_acquire(p, t + S, wall).verdict, PACE_GO);
    /* refused for want of tokens: the spike window must not have moved */
    assert_int_equal(pace_acquire(p, t + 2 * S, wall).verdict, PACE_NEED_GRANT);
    pace_grant(p, wall, 10);
    assert_int_equal(pace_acquire(p, t + 2 * S, wall).verdict, PACE_GO);
    assert_int_equal(pace_acquire(p, t + 3 * S, wall).verdict, PACE_GO);
    assert_int_equal(pace_acquire(p, t + 4 * S, wall).verdict, PACE_GO);
    /* the minute holds exactly 5: the refusals above were not counted in it */
    d = pace_acquire(p, t + 5 * S, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, t + span);
    assert_int_equal(pace_unspent(p), 12 - 5);
    pace_get_stats(p, &st);
    assert_int_equal(st.admitted, 5);
    assert_int_equal(st.day_spent, 5);
    assert_int_equal(st.day_left, 100 - 5);
    assert_int_equal(pace_acquire(p, t + span, wall).verdict, PACE_GO);
    pace_free(p);
}

/* ---- the day ---- */

static void test_midnight_rollover(void **state)
{
    int64_t midnight = wall_at("2026-03-11T00:00:00Z");
    int64_t wall = midnight - 10000;
    struct pace *p = make(10, 0, 100, 0);
    uint64_t now = T0;
    struct pace_decision d;
    struct pace_stats st;

    (void)state;
    pace_grant(p, wall, 5);
    admit_next(p, &now, wall);
    now += 100;
    admit_next(p, &now, wall);
    pace_on_429(p, now, wall, PACE_LIMIT_DAY, -1);
    d = pace_acquire(p, now + 5000, wall + 5000);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    assert_int_equal(d.retry_wall_ms, midnight);
    assert_int_equal(pace_unspent(p), 3);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_left, 0);
    assert_int_equal(st.rejected_429, 1);
    assert_int_equal(pace_acquire(p, now + 9999, midnight - 1).verdict, PACE_DAY_SPENT);
    /* a new UTC day: DAY_SPENT cleared, yesterday's tokens dropped, counters reset */
    d = pace_acquire(p, now + 10000, midnight);
    assert_int_equal(d.verdict, PACE_NEED_GRANT);
    assert_int_equal(pace_unspent(p), 0);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_spent, 0);
    assert_int_equal(st.day_left, 100);
    /* a late grant for yesterday is ignored */
    pace_grant(p, midnight - 1, 50);
    assert_int_equal(pace_unspent(p), 0);
    pace_grant(p, midnight + 5, 3);
    assert_int_equal(pace_acquire(p, now + 10000, midnight).verdict, PACE_GO);
    assert_int_equal(pace_unspent(p), 2);
    pace_free(p);
}

/* The wall clock set back across midnight: the pacer follows it, and takes that day's grants
 * (it used to stay on the later day and drop them all, so the run drained the ledger). */
static void test_clock_back_across_midnight(void **state)
{
    int64_t midnight = wall_at("2026-03-11T00:00:00Z");
    struct pace *p = make(10, 0, 100, 0);
    uint64_t now = T0;

    (void)state;
    pace_grant(p, midnight + 1000, 5);
    assert_int_equal(pace_acquire(p, now, midnight + 1000).verdict, PACE_GO);
    assert_int_equal(pace_unspent(p), 4);
    now += 1000;
    /* an hour back: the day before */
    assert_int_equal(pace_acquire(p, now, midnight - 3600000 + 2000).verdict, PACE_NEED_GRANT);
    assert_int_equal(pace_unspent(p), 0);
    pace_grant(p, midnight - 3600000 + 2000, 3);
    assert_int_equal(pace_unspent(p), 3);
    assert_int_equal(pace_acquire(p, now, midnight - 3600000 + 2000).verdict, PACE_GO);
    assert_int_equal(pace_unspent(p), 2);
    pace_free(p);
}

/* Answers to requests sent before midnight, arriving after it, must not end the new day. */
static void test_midnight_stale_answers(void **state)
{
    int64_t midnight = wall_at("2026-03-11T00:00:00Z");
    struct pace *p = make(0, 0, 100, 0);
    struct pace_observation obs;
    struct pace_decision d;
    uint64_t now = T0;

    (void)state;
    pace_grant(p, midnight - 1000, 10);
    assert_int_equal(pace_acquire(p, now, midnight - 1000).verdict, PACE_GO);
    pace_grant(p, midnight + 500, 10);
    /* yesterday's figures, recognisable by their expiry */
    pace_observation_init(&obs);
    obs.quota_available = 0;
    obs.quota_expiry_ms = midnight;
    pace_observe(p, now, midnight + 500, &obs);
    assert_int_equal(pace_acquire(p, now, midnight + 500).verdict, PACE_GO);
    /* figures without an expiry in the first moments of the day */
    obs.quota_expiry_ms = -1;
    pace_observe(p, now, midnight + 600, &obs);
    assert_int_equal(pace_acquire(p, now, midnight + 600).verdict, PACE_GO);
    /* a day 429 then only backs off */
    pace_on_429(p, now, midnight + 700, PACE_LIMIT_DAY, -1);
    d = pace_acquire(p, now, midnight + 700);
    assert_int_equal(d.verdict, PACE_WAIT);
    now = d.retry_mono_ms;
    assert_int_equal(pace_acquire(p, now, midnight + 5000).verdict, PACE_GO);
    /* later in the day the same figures are believed */
    pace_observe(p, now, midnight + 3600000, &obs);
    d = pace_acquire(p, now, midnight + 3600000);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    assert_int_equal(d.retry_wall_ms, midnight + 86400000);
    pace_free(p);
}

static void test_day_budget_reserve(void **state)
{
    const int64_t per_day = 10;
    const double reserve = 0.2;
    const int64_t budget = (int64_t)floor(per_day * (1 - reserve) + 1e-9);
    int64_t midnight = wall_at("2026-03-11T00:00:00Z");
    int64_t wall = midnight - 3600000;
    struct pace *p = make(0, 0, per_day, reserve);
    uint64_t now = T0;
    struct pace_decision d;
    int64_t n = 0;

    (void)state;
    pace_grant(p, wall, 2 * per_day); /* granted more than the budget */
    while ((d = pace_acquire(p, now, wall)).verdict == PACE_GO)
        n++;
    assert_int_equal(n, budget);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    assert_int_equal(d.retry_wall_ms, midnight);
    assert_int_equal(pace_unspent(p), 2 * per_day - budget);
    pace_grant(p, midnight, 1);
    assert_int_equal(pace_acquire(p, now + 1, midnight).verdict, PACE_GO);
    pace_free(p);
}

static void test_refund(void **state)
{
    const uint64_t span = 60000 + default_margin();
    /* 10/s: sends are spaced 100 ms apart */
    const uint64_t S = 100;
    struct pace *p = make(10, 3, 100, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t t = T0;
    struct pace_decision d;
    struct pace_stats st;

    (void)state;
    pace_grant(p, wall, 10);
    assert_int_equal(pace_acquire(p, t, wall).verdict, PACE_GO);
    assert_int_equal(pace_acquire(p, t + S, wall).verdict, PACE_GO);
    assert_int_equal(pace_acquire(p, t + 2 * S, wall).verdict, PACE_GO);
    assert_int_equal(pace_acquire(p, t + 3 * S, wall).verdict, PACE_WAIT);
    pace_refund(p, t + 2 * S, wall);
    assert_int_equal(pace_unspent(p), 8);
    pace_get_stats(p, &st);
    assert_int_equal(st.refunded, 1);
    assert_int_equal(st.day_spent, 2);
    assert_int_equal(st.day_left, 100 - 2);
    /* the minute has room again */
    assert_int_equal(pace_acquire(p, t + 3 * S, wall).verdict, PACE_GO);
    d = pace_acquire(p, t + 4 * S, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, t + span);
    /* refunding the oldest frees the slot it held, not a later one */
    pace_refund(p, t, wall);
    assert_int_equal(pace_acquire(p, t + 4 * S, wall).verdict, PACE_GO);
    d = pace_acquire(p, t + 4 * S, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, t + S + span);
    /* the refunded spike slot of the latest admission is given back too */
    pace_refund(p, t + 4 * S, wall);
    assert_int_equal(pace_acquire(p, t + 4 * S, wall).verdict, PACE_GO);
    d = pace_acquire(p, t + 4 * S, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, t + S + span);
    pace_free(p);

    /* with only the spike window: the refunded slot is free at once, no spacing lost */
    p = make(10, 0, 0, 0);
    assert_int_equal(pace_acquire(p, t, wall).verdict, PACE_GO);
    pace_refund(p, t, wall);
    assert_int_equal(pace_acquire(p, t, wall).verdict, PACE_GO);
    d = pace_acquire(p, t, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, t + 100);
    pace_free(p);
}

static void test_reconcile_less(void **state)
{
    const int64_t per_day = 1000;
    const double reserve = 0.1;
    const int64_t reserve_abs = (int64_t)(per_day * reserve);
    int64_t midnight = wall_at("2026-03-11T00:00:00Z");
    int64_t wall = midnight - 3600000;
    struct pace *p = make(0, 0, per_day, reserve);
    struct pace_observation obs;
    struct pace_decision d;
    struct pace_stats st;
    uint64_t now = T0;
    int64_t avail = 120, n = 0;

    (void)state;
    pace_grant(p, wall, per_day);
    for (int i = 0; i < 10; i++)
        assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_GO);
    pace_observation_init(&obs);
    obs.quota_available = avail;
    obs.quota_expiry_ms = midnight;
    pace_observe(p, now, wall, &obs);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_left, avail - reserve_abs);
    /* a later, more generous figure does not raise what the lower one allowed */
    for (int i = 0; i < 5; i++, n++)
        assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_GO);
    obs.quota_available = 100000;
    pace_observe(p, now, wall, &obs);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_left, avail - reserve_abs - 5);
    while ((d = pace_acquire(p, now, wall)).verdict == PACE_GO)
        n++;
    assert_int_equal(n, avail - reserve_abs);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    assert_int_equal(d.retry_wall_ms, midnight);

    /* the server saying more is left later the same day does not undo that */
    obs.quota_available = 100000;
    pace_observe(p, now, wall, &obs);
    assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_DAY_SPENT);
    pace_free(p);
}

static void test_reconcile_more(void **state)
{
    const int64_t per_day = 50;
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    struct pace *p = make(0, 0, per_day, 0);
    struct pace_observation obs;
    struct pace_stats st;
    struct pace_decision d;
    int64_t n = 0;

    (void)state;
    pace_grant(p, wall, 10 * per_day);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pace_acquire(p, T0, wall).verdict, PACE_GO);
    pace_observation_init(&obs);
    obs.quota_available = 29000; /* far more than our ledger allows */
    pace_observe(p, T0, wall, &obs);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_left, per_day - 5); /* the ledger wins */
    while ((d = pace_acquire(p, T0, wall)).verdict == PACE_GO)
        n++;
    assert_int_equal(n + 5, per_day);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    pace_free(p);
}

static void test_quota_limit_raise(void **state)
{
    const int64_t per_day = 3, server_limit = 6;
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    struct pace *p = make(0, 0, per_day, 0);
    struct pace_observation obs;
    struct pace_stats st;
    int64_t n = 0;

    (void)state;
    pace_grant(p, wall, 100);
    pace_observation_init(&obs);
    obs.quota_limit = 2; /* smaller: not a reason to lower anything */
    pace_observe(p, T0, wall, &obs);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_left, per_day);
    obs.quota_limit = server_limit;
    pace_observe(p, T0, wall, &obs);
    pace_get_stats(p, &st);
    assert_int_equal(st.day_left, server_limit);
    while (pace_acquire(p, T0, wall).verdict == PACE_GO)
        n++;
    assert_int_equal(n, server_limit);
    pace_free(p);
}

static void test_expiry_sanity(void **state)
{
    int64_t midnight = wall_at("2026-03-11T00:00:00Z");
    int64_t wall = midnight - 60000;
    struct pace_observation obs;
    struct pace *p = make(0, 0, 100, 0);
    struct pace *q = make(0, 0, 100, 0);
    struct pace_decision d;

    (void)state;
    /* a nonsense expiry (ten days out) is ignored: the day ends at midnight */
    pace_observation_init(&obs);
    obs.quota_expiry_ms = midnight + 10LL * 86400000;
    obs.quota_available = 0;
    pace_observe(p, T0, wall, &obs);
    d = pace_acquire(p, T0, wall);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    assert_int_equal(d.retry_wall_ms, midnight);
    /* a plausible one (the server resets a little after midnight) is honoured */
    obs.quota_expiry_ms = midnight + 120000;
    pace_observe(q, T0, wall, &obs);
    d = pace_acquire(q, T0, wall);
    assert_int_equal(d.verdict, PACE_DAY_SPENT);
    assert_int_equal(d.retry_wall_ms, midnight + 120000);
    pace_grant(q, midnight + 60000, 5);
    assert_int_equal(pace_acquire(q, T0 + 1, midnight + 60000).verdict, PACE_DAY_SPENT);
    assert_int_equal(pace_acquire(q, T0 + 2, midnight + 120000).verdict, PACE_GO);
    pace_free(p);
    pace_free(q);
}

static void test_missing_headers(void **state)
{
    int64_t wall = wall_at("2026-03-10T23:59:30Z");
    struct pace *a = make(10, 240, 30000, 0.1);
    struct pace *b = make(10, 240, 30000, 0.1);
    struct pace_observation blank;
    struct pace_stats sa, sb;
    uint64_t now = T0;

    (void)state;
    pace_observation_init(&blank);
    assert_true(blank.quota_available == -1 && blank.throttle_available == -1 &&
                blank.quota_expiry_ms == -1 && blank.tenant_id == NULL);
    pace_grant(a, wall, 200);
    pace_grant(b, wall, 200);
    for (int i = 0; i < 400; i++) {
        struct pace_decision da = pace_acquire(a, now, wall);
        struct pace_decision db;

        pace_observe(b, now, wall, &blank);
        pace_observe(b, now, wall, NULL);
        db = pace_acquire(b, now, wall);
        assert_int_equal(da.verdict, db.verdict);
        assert_int_equal(da.retry_mono_ms, db.retry_mono_ms);
        assert_int_equal(da.retry_wall_ms, db.retry_wall_ms);
        if (da.verdict == PACE_WAIT)
            now = da.retry_mono_ms;
        else if (da.verdict != PACE_GO)
            break;
        wall += 150; /* crosses midnight half way */
    }
    pace_get_stats(a, &sa);
    pace_get_stats(b, &sb);
    assert_memory_equal(&sa, &sb, sizeof(sa));
    ASSERT_GT(sa.admitted, 0);
    pace_free(a);
    pace_free(b);
}

static void test_throttle_available(void **state)
{
    const uint64_t span = 60000 + default_margin();
    const uint64_t later = 1000 + default_margin(); /* past the spike window */
    const int64_t server_left = 5;
    struct pace *p = make(10, 240, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    struct pace_observation obs;
    struct pace_decision d;
    struct pace_stats st;
    uint64_t now = T0, seen, first;
    int n = 0;

    (void)state;
    first = admit_next(p, &now, wall);
    for (int i = 1; i < 10; i++)
        admit_next(p, &now, wall);
    /* someone else uses the key: the server has less room than our own ledger */
    seen = now;
    pace_observation_init(&obs);
    obs.throttle_available = server_left;
    pace_observe(p, seen, wall, &obs);
    for (;;) {
        d = pace_acquire(p, now, wall);
        if (d.verdict == PACE_GO) {
            n++;
            continue;
        }
        assert_int_equal(d.verdict, PACE_WAIT);
        if (d.retry_mono_ms >= seen + span)
            break;
        now = d.retry_mono_ms;
    }
    assert_int_equal(n, server_left);
    assert_int_equal(d.retry_mono_ms, seen + span);
    /* blank headers change nothing */
    pace_observation_init(&obs);
    pace_observe(p, now, wall, &obs);
    assert_int_equal(pace_acquire(p, now + later, wall).verdict, PACE_WAIT);
    /* the server has room again: the hold goes */
    obs.throttle_available = 200;
    pace_observe(p, now + later, wall, &obs);
    assert_int_equal(pace_acquire(p, now + later, wall).verdict, PACE_GO);
    /* a throttle_limit below what the minute holds now lowers the minute window */
    pace_get_stats(p, &st);
    obs.throttle_available = -1;
    obs.throttle_limit = st.admitted;
    pace_observe(p, now + 2 * later, wall, &obs);
    d = pace_acquire(p, now + 2 * later, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, first + span);
    obs.throttle_limit = st.admitted + 1;
    pace_observe(p, now + 2 * later, wall, &obs);
    assert_int_equal(pace_acquire(p, now + 2 * later, wall).verdict, PACE_GO);
    pace_free(p);
}

/* The server's minute figure is as of the request's arrival. While the minute turns over,
 * our window lets old admissions go and takes new ones meanwhile: weighed against our room
 * as of the admission, a stale 0 holds nothing; a real shortfall (another client) still
 * holds, by that shortfall only. Without the admission time, the figure holds as before. */
static void test_throttle_stale(void **state)
{
    const int64_t per_min = 10;
    const uint64_t span = 60000 + default_margin();
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    struct pace_observation obs;
    struct pace_decision d;

    (void)state;
    for (int mode = 0; mode < 3; mode++) {
        struct pace *p = make(0, per_min, 0, 0);
        uint64_t a10, now;

        for (int i = 0; i < per_min; i++)
            assert_int_equal(pace_acquire(p, T0 + 100 * (uint64_t)i, wall).verdict, PACE_GO);
        if (mode == 2) {
            /* someone else took 1 before a10's arrival: 0 left where we had 1 in hand */
            a10 = T0 + span + 150; /* a0 and a1 gone: ours a2..a10, 9 */
            assert_int_equal(pace_acquire(p, a10, wall).verdict, PACE_GO);
            now = T0 + span + 300; /* a0..a3 gone: room 3, less the shortfall of 1 */
            pace_observation_init(&obs);
            obs.throttle_limit = per_min;
            obs.throttle_available = 0;
            obs.admitted_mono = a10;
            pace_observe(p, now, wall, &obs);
            assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_GO);
            assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_GO);
            d = pace_acquire(p, now, wall);
            assert_int_equal(d.verdict, PACE_WAIT);
            assert_int_equal(d.retry_mono_ms, now + span);
            pace_free(p);
            continue;
        }
        /* the minute turns over: the first two leave, two new ones come */
        a10 = T0 + span;
        assert_int_equal(pace_acquire(p, a10, wall).verdict, PACE_GO);
        assert_int_equal(pace_acquire(p, a10 + 100, wall).verdict, PACE_GO);
        /* a10's answer comes when a third old one has left too: our room is 1 */
        now = a10 + 250;
        pace_observation_init(&obs);
        obs.throttle_limit = per_min;
        obs.throttle_available = 0; /* full at a10's arrival, as our own window was */
        if (mode == 0) {
            obs.admitted_mono = a10;
            pace_observe(p, now, wall, &obs);
            assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_GO);
        } else {
            pace_observe(p, now, wall, &obs); /* no admission time: held, as before */
            d = pace_acquire(p, now, wall);
            assert_int_equal(d.verdict, PACE_WAIT);
            assert_int_equal(d.retry_mono_ms, now + span);
        }
        pace_free(p);
    }
}

/* ---- 429s ---- */

static void test_aimd(void **state)
{
    const double per_sec = 10;
    struct pace *p = make(per_sec, 0, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, a, b;
    struct pace_stats st;
    struct pace_decision d;
    double expect = per_sec, lowest;

    (void)state;
    admit_next(p, &now, wall);
    pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, -1);
    expect = per_sec * 0.5;
    pace_get_stats(p, &st);
    assert_near(st.current_per_sec, expect, 1e-9);
    /* the back-off holds everything, then spacing follows the halved rate */
    d = pace_acquire(p, now, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    ASSERT_GT(d.retry_mono_ms, now);
    a = admit_next(p, &now, wall);
    b = admit_next(p, &now, wall);
    assert_int_equal(b - a, (uint64_t)ceil(1000.0 / expect));
    /* repeated cuts stop at a floor above zero */
    for (int i = 0; i < 20; i++)
        pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, 0);
    pace_get_stats(p, &st);
    lowest = st.current_per_sec;
    ASSERT_GT(lowest, 0);
    ASSERT_LE(lowest, per_sec / 8);
    pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, 0);
    pace_get_stats(p, &st);
    assert_true(st.current_per_sec == lowest);
    /* additive recovery: +0.1/s per second of success */
    pace_on_success(p, now + 10000);
    pace_get_stats(p, &st);
    assert_near(st.current_per_sec, lowest + 1.0, 1e-9);
    pace_on_success(p, now + 20000);
    pace_get_stats(p, &st);
    assert_near(st.current_per_sec, lowest + 2.0, 1e-9);
    /* ... up to the configured rate, never past it */
    pace_on_success(p, now + 20000 + 3600000);
    pace_get_stats(p, &st);
    assert_true(st.current_per_sec == per_sec);
    now += 20000 + 3600000;
    a = admit_next(p, &now, wall);
    b = admit_next(p, &now, wall);
    ASSERT_GE(b - a, (uint64_t)floor(1000.0 / per_sec));
    ASSERT_LE(b - a, (uint64_t)ceil(1000.0 / per_sec));
    pace_get_stats(p, &st);
    assert_int_equal(st.rejected_429, 22);
    pace_free(p);
}

static void test_retry_after_429(void **state)
{
    struct pace *p = make(10, 240, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0;
    struct pace_decision d;
    int64_t delay = 0;

    (void)state;
    /* Retry-After: 0 must not spin: the retry is strictly in the future, by a real amount */
    for (int i = 0; i < 5; i++) {
        pace_on_429(p, now, wall, PACE_LIMIT_UNKNOWN, 0);
        d = pace_acquire(p, now, wall);
        assert_int_equal(d.verdict, PACE_WAIT);
        ASSERT_GE(d.retry_mono_ms, now + 100);
        now = d.retry_mono_ms;
    }
    pace_on_success(p, now);
    /* seconds: exact */
    pace_on_429(p, now, wall, PACE_LIMIT_UNKNOWN, 3000);
    d = pace_acquire(p, now, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, now + 3000);
    now = d.retry_mono_ms;
    assert_int_equal(pace_acquire(p, now, wall).verdict, PACE_GO);
    /* an HTTP date: the delay it gives */
    assert_int_equal(pace_parse_retry_after("Tue, 10 Mar 2026 12:00:07 GMT", wall + 2000, &delay),
                     0);
    pace_on_429(p, now, wall + 2000, PACE_LIMIT_UNKNOWN, delay);
    d = pace_acquire(p, now, wall + 2000);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, now + 5000);
    pace_free(p);
}

/* The holds of n consecutive 429s without Retry-After, each taken at the previous retry. */
static void backoff_series(uint64_t seed, uint64_t *holds, int n, bool succeed_first)
{
    struct pace *p = make(10, 0, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0;

    pace_set_seed(p, seed);
    for (int i = 0; i < n; i++) {
        struct pace_decision d;

        if (succeed_first)
            pace_on_success(p, now);
        pace_on_429(p, now, wall, PACE_LIMIT_UNKNOWN, -1);
        d = pace_acquire(p, now, wall);
        assert_int_equal(d.verdict, PACE_WAIT);
        holds[i] = d.retry_mono_ms - now;
        now = d.retry_mono_ms;
    }
    pace_free(p);
}

static void test_backoff(void **state)
{
    uint64_t a[6], b[6], c[6], r[6];
    bool differ = false;

    (void)state;
    backoff_series(1, a, 6, false);
    backoff_series(1, b, 6, false);
    backoff_series(2, c, 6, false);
    assert_memory_equal(a, b, sizeof(a)); /* reproducible */
    for (int i = 0; i < 6; i++)
        differ = differ || a[i] != c[i];
    assert_true(differ); /* the seed matters */
    /* exponential: with half of each delay fixed, every step at least matches the last */
    for (int i = 1; i < 6; i++)
        ASSERT_GE(a[i], a[i - 1]);
    ASSERT_GE(a[5], 8 * a[0] / 2);
    /* successes reset it: every hold stays at the first step's size */
    backoff_series(1, r, 6, true);
    for (int i = 0; i < 6; i++) {
        ASSERT_LE(r[i], 2 * a[0]);
        ASSERT_LT(r[i], a[5]);
    }
}

static void test_minute_429(void **state)
{
    const uint64_t span = 60000 + default_margin();
    struct pace *p = make(10, 240, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, first = 0;
    struct pace_decision d;

    (void)state;
    for (int i = 0; i < 5; i++) {
        uint64_t at = admit_next(p, &now, wall);

        if (i == 0)
            first = at;
    }
    /* hold until the oldest admission leaves the minute */
    pace_on_429(p, now, wall, PACE_LIMIT_MINUTE, -1);
    d = pace_acquire(p, now, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, first + span);
    /* ... or longer, when the server asks for longer */
    pace_on_429(p, now, wall, PACE_LIMIT_MINUTE, 90000);
    d = pace_acquire(p, now, wall);
    assert_int_equal(d.retry_mono_ms, now + 90000);
    pace_free(p);
}

static void test_share(void **state)
{
    const double per_sec = 10;
    const int64_t per_min = 240;
    const int n = 3;
    struct pace *p = make(per_sec, per_min, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, first, prev, at = 0;
    struct pace_stats st;
    int64_t count = 1;

    (void)state;
    pace_set_share(p, n);
    pace_get_stats(p, &st);
    assert_true(st.current_per_sec == floor(per_sec / n));
    first = prev = admit_next(p, &now, wall);
    for (;;) {
        struct pace_decision d = pace_acquire(p, now, wall);

        if (d.verdict == PACE_WAIT) {
            if (d.retry_mono_ms >= first + 60000)
                break;
            now = d.retry_mono_ms;
            continue;
        }
        at = now;
        ASSERT_GE((double)(at - prev), floor(1000.0 / floor(per_sec / n)));
        prev = at;
        count++;
    }
    assert_int_equal(count, per_min / n);
    /* the server's minute figure is not split: own windows hold each process to its part,
     * the figure only clamps when the server is fuller than they say */
    {
        struct pace_observation obs;
        const int64_t server_left = 10;
        int64_t got = 0;

        now = first + 60000 + 60000;
        pace_observation_init(&obs);
        obs.throttle_available = server_left;
        pace_observe(p, now, wall, &obs);
        for (int i = 0; i < 100; i++) {
            struct pace_decision d = pace_acquire(p, now, wall);

            if (d.verdict == PACE_GO)
                got++;
            else
                now = d.retry_mono_ms;
            if (now >= first + 120000 + 60000)
                break;
        }
        assert_int_equal(got, server_left);
    }
    /* a share larger than the limits leaves at least 1 of each */
    pace_set_share(p, 1000);
    pace_get_stats(p, &st);
    assert_true(st.current_per_sec == 1.0);
    pace_set_share(p, 0); /* read as 1 */
    pace_get_stats(p, &st);
    assert_true(st.current_per_sec == per_sec);
    pace_free(p);
}

/* ---- the margin ---- */

/* Reports n round trips of rtt_ms each, answered at *now (moved on by step_ms each). */
static void feed_rtt(struct pace *p, uint64_t *now, int n, const uint32_t *rtt_ms, int nrtt,
                     uint64_t step_ms)
{
    for (int i = 0; i < n; i++) {
        uint32_t r = rtt_ms[i % nrtt];

        *now += step_ms;
        pace_on_response(p, *now - r, *now);
    }
}

/* Before any round trip: the configured default. Too few: still the default. Enough with no
 * spread at all: narrows, slowly, to the floor and never below it. */
static void test_margin_default_and_floor(void **state)
{
    const uint32_t same[] = {40};
    struct pace *p = make(10, 240, 0, 0);
    uint64_t now = T0;
    struct pace_stats st;
    int64_t m;

    (void)state;
    pace_get_stats(p, &st);
    assert_int_equal(st.margin_ms, default_margin());
    assert_int_equal(st.jitter_ms, -1);
    feed_rtt(p, &now, 7, same, 1, 100);
    pace_get_stats(p, &st);
    assert_int_equal(st.jitter_ms, -1);
    assert_int_equal(st.margin_ms, default_margin());
    feed_rtt(p, &now, 1, same, 1, 100);
    pace_get_stats(p, &st);
    assert_int_equal(st.jitter_ms, 0);
    /* the default was a guess: the first measurement replaces it at once, floored */
    m = st.margin_ms;
    assert_int_equal(m, (int64_t)PACE_MARGIN_FLOOR_MS);
    /* an hour of it: at the floor, not below */
    feed_rtt(p, &now, 3600, same, 1, 1000);
    assert_int_equal(margin_of(p), (int64_t)PACE_MARGIN_FLOOR_MS);
    pace_free(p);

    /* a configured margin below the floor is raised to it */
    {
        struct pace_config cfg;

        pace_config_default(&cfg);
        cfg.margin_ms = 0;
        assert_int_equal(pace_new(&p, &cfg), 0);
        assert_int_equal(margin_of(p), (int64_t)PACE_MARGIN_FLOOR_MS);
        pace_free(p);
    }
}

/* The margin follows the measured spread (p95 - p5), at once when it grows, and the spike
 * window then holds its limit for exactly 1 s + that margin. */
static void test_margin_measured(void **state)
{
    uint32_t spread[61];
    struct pace *p = make(10, 240, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, a[11];
    struct pace_stats st;
    struct pace_decision d;

    (void)state;
    for (int i = 0; i < 61; i++)
        spread[i] = 20 + (uint32_t)((i * 37) % 61); /* 20..80 ms, well mixed */
    feed_rtt(p, &now, 64, spread, 61, 100);
    pace_get_stats(p, &st);
    ASSERT_GE(st.jitter_ms, 50);
    ASSERT_LE(st.jitter_ms, 60);
    /* wider than the default: taken at once (an earlier, smaller sample may have spread a
     * little wider still; that narrows slowly) */
    ASSERT_GE(st.margin_ms, st.jitter_ms);
    ASSERT_LE(st.margin_ms, 60);
    for (int i = 0; i < 10; i++)
        a[i] = admit_next(p, &now, wall);
    d = pace_acquire(p, now + 100, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, a[0] + 1000 + (uint64_t)st.margin_ms);
    now = d.retry_mono_ms;
    a[10] = admit_next(p, &now, wall);
    assert_int_equal(a[10], a[0] + 1000 + (uint64_t)st.margin_ms);
    /* slow responses beyond any real jitter: the margin stops at its cap */
    {
        const uint32_t wild[] = {10, 5000};

        feed_rtt(p, &now, 64, wild, 2, 100);
        assert_int_equal(margin_of(p), (int64_t)PACE_MARGIN_MAX_MS);
    }
    pace_free(p);
}

/* A spike 429 widens the margin (doubles it, by 25 ms at least, up to the cap), and the
 * widening is kept: quiet traffic gives it back by 1 ms a minute, down to the measured
 * target, not below. */
static void test_margin_spike_429(void **state)
{
    const uint32_t same[] = {40, 70}; /* spread 30 ms */
    struct pace *p = make(10, 240, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0;
    int64_t target, wide;

    (void)state;
    feed_rtt(p, &now, 64, same, 2, 100);
    feed_rtt(p, &now, 600, same, 2, 100); /* a minute: narrowed from the default */
    target = margin_of(p);
    assert_int_equal(target, 30);
    pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, 0);
    wide = margin_of(p);
    assert_int_equal(wide, 2 * target);
    /* a 429 of another window says nothing about arrival jitter */
    pace_on_429(p, now, wall, PACE_LIMIT_MINUTE, 0);
    pace_on_429(p, now, wall, PACE_LIMIT_UNKNOWN, 0);
    assert_int_equal(margin_of(p), wide);
    /* what a spike 429 taught is kept: 10 quiet seconds give back nothing, a minute 1 ms */
    pace_on_success(p, now + 10000);
    now += 10000;
    assert_true(margin_of(p) >= wide - 1 && margin_of(p) <= wide);
    pace_on_success(p, now + 50000);
    now += 50000;
    assert_true(margin_of(p) >= wide - 2 && margin_of(p) <= wide - 1);
    /* round trips in the meantime do not undo the widening */
    feed_rtt(p, &now, 64, same, 2, 100);
    assert_true(margin_of(p) > target);
    /* an hour of quiet traffic: back to the target, not below */
    feed_rtt(p, &now, 3600, same, 2, 1000);
    assert_int_equal(margin_of(p), target);
    /* repeated spike 429s stop at the cap */
    for (int i = 0; i < 10; i++)
        pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, 0);
    assert_int_equal(margin_of(p), (int64_t)PACE_MARGIN_MAX_MS);
    pace_free(p);

    /* from a small margin, a spike 429 widens by at least 25 ms */
    p = make(10, 240, 0, 0);
    now = T0;
    {
        const uint32_t flat[] = {40};

        feed_rtt(p, &now, 64, flat, 1, 1000); /* about a minute: at the floor */
    }
    assert_int_equal(margin_of(p), (int64_t)PACE_MARGIN_FLOOR_MS);
    pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, 0);
    assert_int_equal(margin_of(p), (int64_t)(PACE_MARGIN_FLOOR_MS + PACE_MARGIN_WIDEN_MS));
    pace_free(p);
}

/*
 * Reported sends: the margin follows the delay before arrival that this side measures (send
 * delays' spread plus twice the connection's rttvar), not the round trips' spread, which holds
 * the server's time too. A spike 429 at a full window is arrival jitter: the margin widens and
 * stays, the rate stays, and the hold is a spacing; one at a sparse window cuts the rate.
 */
static void test_margin_from_sends(void **state)
{
    struct pace *p = make(10, 240, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t now = T0, a[11];
    struct pace_stats st;
    struct pace_decision d;
    int64_t m;

    (void)state;
    /* 64 requests: round trips 20..80 ms, sent 0..3 ms after admission, rttvar 1.5 ms */
    for (int i = 0; i < 64; i++) {
        uint64_t adm = now;

        now += 100;
        pace_on_response(p, adm, adm + 20 + (uint64_t)((i * 37) % 61));
        pace_on_sent(p, adm, adm + (uint64_t)(i % 4), 1500, 40000);
    }
    pace_get_stats(p, &st);
    assert_true(st.jitter_ms >= 50);        /* the round trips spread widely */
    assert_int_equal(st.arrival_ms, 3 + 3); /* the sends did not: 3 ms + 2 x 1.5 ms */
    assert_int_equal(st.margin_ms, (int64_t)PACE_MARGIN_FLOOR_MS);
    assert_int_equal(st.learnt_ms, 0);
    for (int i = 0; i < 10; i++)
        a[i] = admit_next(p, &now, wall);
    d = pace_acquire(p, now + 100, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_int_equal(d.retry_mono_ms, a[0] + 1000 + (uint64_t)PACE_MARGIN_FLOOR_MS);
    now = d.retry_mono_ms;
    a[10] = admit_next(p, &now, wall);
    /* the server counted it early: a spike 429 at a full window */
    now += 30;
    pace_on_429(p, now, wall, PACE_LIMIT_SPIKE, -1);
    pace_get_stats(p, &st);
    m = st.margin_ms;
    assert_int_equal(m, (int64_t)(PACE_MARGIN_FLOOR_MS + PACE_MARGIN_WIDEN_MS));
    assert_int_equal(st.learnt_ms, m);
    assert_true(st.current_per_sec == 10.0); /* the margin answers it, not the rate */
    d = pace_acquire(p, now, wall);
    assert_int_equal(d.verdict, PACE_WAIT);
    assert_true(d.retry_mono_ms >= now + 100 && d.retry_mono_ms <= now + 100 + (uint64_t)m + 1000);
    /* more measured sends do not narrow it below what was learnt */
    for (int i = 0; i < 64; i++)
        pace_on_sent(p, now, now + 1, 1000, -1);
    assert_int_equal(margin_of(p), m);
    pace_free(p);

    /* TCP's rttvar counts the peer's delayed ACKs: never more than the path's least round
     * trip (20 ms of rttvar, 30 us of min_rtt: loopback) */
    p = make(10, 240, 0, 0);
    now = T0;
    for (int i = 0; i < 16; i++)
        pace_on_sent(p, now, now + (uint64_t)(i % 3), 20000, 30);
    pace_get_stats(p, &st);
    assert_int_equal(st.arrival_ms, 2 + 1);
    pace_free(p);

    /* a spike 429 with the window nearly empty: the server's ceiling is lower, cut the rate */
    p = make(10, 240, 0, 0);
    now = T0;
    admit_next(p, &now, wall);
    pace_on_429(p, now + 50, wall, PACE_LIMIT_SPIKE, -1);
    pace_get_stats(p, &st);
    assert_near(st.current_per_sec, 5.0, 1e-9);
    pace_free(p);
}

/* xorshift64*: the model's delays, reproducible. */
static uint64_t model_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Arrivals (sorted) at which a window of span ms, counting (t - span, t], held more than limit. */
static int overflows(const uint64_t *arr, size_t n, uint64_t span, int64_t limit)
{
    int bad = 0;

    for (size_t i = 0, j = 0; i < n; i++) {
        while (arr[j] + span <= arr[i])
            j++;
        if ((int64_t)(i - j + 1) > limit)
            bad++;
    }
    return bad;
}

/*
 * A server that judges arrivals: each admitted request arrives fwd (0..fwd_max ms) after it
 * was admitted and is answered srv (srv_lo..srv_hi ms) after that; pace hears of the round
 * trip (fwd + srv) when the answer comes, if report. Runs n requests at 10/s and 240/min (the
 * minute binds twice), fills arr with the arrival times, sorted.
 */
static void model_run(struct pace *p, size_t n, uint32_t fwd_max, uint32_t srv_lo, uint32_t srv_hi,
                      bool report, uint64_t *arr)
{
    struct {
        uint64_t due, admitted;
    } q[64];
    size_t nq = 0, got = 0;
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t rng = 0x1234567, ask = T0;

    while (got < n) {
        size_t k = 0;

        for (size_t i = 1; i < nq; i++)
            if (q[i].due < q[k].due)
                k = i;
        if (nq > 0 && q[k].due <= ask) {
            if (report)
                pace_on_response(p, q[k].admitted, q[k].due);
            pace_on_success(p, q[k].due);
            q[k] = q[--nq];
            continue;
        }
        struct pace_decision d = pace_acquire(p, ask, wall);

        if (d.verdict == PACE_WAIT) {
            ask = d.retry_mono_ms;
            continue;
        }
        assert_int_equal(d.verdict, PACE_GO);
        {
            uint64_t fwd = model_rand(&rng) % (fwd_max + 1);
            uint64_t srv = srv_lo + model_rand(&rng) % (srv_hi - srv_lo + 1);

            ASSERT_LT(nq, BASE_ARRAY_SIZE(q));
            arr[got++] = ask + fwd;
            q[nq].admitted = ask;
            q[nq].due = ask + fwd + srv;
            nq++;
        }
    }
    qsort(arr, n, sizeof(arr[0]), cmp_u64);
}

/* With the round trips reported, arrival jitter never overflows the second or the minute
 * as the server counts them; with only a small fixed margin the same jitter does (the
 * model can fail). */
static void test_margin_model(void **state)
{
    enum { N = 600 };
    uint64_t *arr = calloc(N, sizeof(*arr));
    struct pace_config cfg;
    struct pace *p = NULL;

    (void)state;
    assert_non_null(arr);
    /* 0..60 ms before the server counts, 20..80 ms after: as keapsim --latency 50:30
     * --arrival-jitter 60 */
    p = make(10, 240, 0, 0);
    model_run(p, N, 60, 20, 80, true, arr);
    assert_int_equal(overflows(arr, N, 1000, 10), 0);
    assert_int_equal(overflows(arr, N, 60000, 240), 0);
    ASSERT_GE(margin_of(p), 60);
    pace_free(p);
    /* all the jitter after the count: the margin is wider than needed, still no overflow */
    p = make(10, 240, 0, 0);
    model_run(p, N, 0, 20, 80, true, arr);
    assert_int_equal(overflows(arr, N, 1000, 10), 0);
    assert_int_equal(overflows(arr, N, 60000, 240), 0);
    pace_free(p);
    /* control: nothing reported and a 10 ms default: 60 ms of arrival jitter overflows */
    pace_config_default(&cfg);
    cfg.per_day = 0;
    cfg.margin_ms = 10;
    assert_int_equal(pace_new(&p, &cfg), 0);
    model_run(p, N, 60, 20, 80, false, arr);
    ASSERT_GT(overflows(arr, N, 1000, 10), 0);
    pace_free(p);
    free(arr);
}

/* ---- a long run ---- */

static void test_long_run(void **state)
{
    const double per_sec = 20;
    const int64_t per_min = 300;
    const uint64_t sim_ms = 10 * 60000;
    const size_t max_adm = (size_t)(per_sec * (double)sim_ms / 1000.0) + 1;
    struct pace *p = make(per_sec, per_min, 0, 0);
    int64_t wall = wall_at("2026-03-10T12:00:00Z");
    uint64_t *a = calloc(max_adm, sizeof(*a));
    uint64_t now = T0;
    size_t n = 0;
    double expect;

    (void)state;
    assert_non_null(a);
    while (now < T0 + sim_ms) {
        struct pace_decision d = pace_acquire(p, now, wall);

        if (d.verdict == PACE_GO) {
            ASSERT_LT(n, max_adm);
            a[n++] = now;
            pace_on_success(p, now); /* sent, and answered at once */
            continue;
        }
        assert_int_equal(d.verdict, PACE_WAIT);
        ASSERT_GT(d.retry_mono_ms, now);
        now = d.retry_mono_ms;
    }
    /* every rolling window, judged with no margin at all, stays within its limit */
    for (size_t i = 0, j1 = 0, j60 = 0; i < n; i++) {
        while (j1 < n && a[j1] < a[i] + 1000)
            j1++;
        while (j60 < n && a[j60] < a[i] + 60000)
            j60++;
        ASSERT_LE((double)(j1 - i), per_sec);
        ASSERT_LE((int64_t)(j60 - i), per_min);
    }
    /* and the binding window is kept busy */
    expect = (double)per_min * (double)sim_ms / 60000.0;
    ASSERT_GE((double)n, 0.99 * expect);
    free(a);
    pace_free(p);
}

static void test_new_rejects(void **state)
{
    struct pace_config cfg;
    struct pace *p = NULL;

    (void)state;
    pace_config_default(&cfg);
    cfg.reserve_fraction = 1.0;
    assert_int_equal(pace_new(&p, &cfg), BASE_EINVAL);
    assert_null(p); /* untouched on failure */
    pace_config_default(&cfg);
    cfg.per_sec = -1;
    assert_int_equal(pace_new(&p, &cfg), BASE_EINVAL);
    pace_config_default(&cfg);
    cfg.per_sec = NAN;
    assert_int_equal(pace_new(&p, &cfg), BASE_EINVAL);
    pace_config_default(&cfg);
    cfg.per_min = -5;
    assert_int_equal(pace_new(&p, &cfg), BASE_EINVAL);
    pace_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_reserve_parse),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_minute_boundary),
        cmocka_unit_test(test_even_spacing),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_fractional_rate),
        cmocka_unit_test(test_full_rate_burst),
        cmocka_unit_test(test_midnight_rollover),
        cmocka_unit_test(test_clock_back_across_midnight),
        cmocka_unit_test(test_midnight_stale_answers),
        cmocka_unit_test(test_day_budget_reserve),
        cmocka_unit_test(test_refund),
        cmocka_unit_test(test_reconcile_less),
        cmocka_unit_test(test_reconcile_more),
        cmocka_unit_test(test_quota_limit_raise),
        cmocka_unit_test(test_expiry_sanity),
        cmocka_unit_test(test_missing_headers),
        cmocka_unit_test(test_throttle_available),
        cmocka_unit_test(test_throttle_stale),
        cmocka_unit_test(test_aimd),
        cmocka_unit_test(test_retry_after_429),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_minute_429),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_margin_default_and_floor),
        cmocka_unit_test(test_margin_measured),
        cmocka_unit_test(test_margin_spike_429),
        cmocka_unit_test(test_margin_from_sends),
        cmocka_unit_test(test_margin_model),
        cmocka_unit_test(test_long_run),
        cmocka_unit_test(test_new_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
