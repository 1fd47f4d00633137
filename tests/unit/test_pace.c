/*
 * Unit tests for pace on a fake clock: mono and wall are plain variables the tests move.
 * Covers the text parsers, window boundaries and exact wait times, even spacing,
 * all-or-nothing admission, 429 handling (AIMD, Retry-After, back-off), share splitting, a
 * 10-minute simulated run. The day: test_pace_day.c; the margin: test_pace_margin.c.
 */
#include "pace_fixture.h"
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
        cmocka_unit_test(test_aimd),
        cmocka_unit_test(test_retry_after_429),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_minute_429),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_long_run),
        cmocka_unit_test(test_new_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
