/*
 * Unit tests for pace's margin on a fake clock: the default and the floor, sized to measured
 * sends and round trips, widened on a spike 429 and kept, and a model of a server that
 * judges arrivals delayed by jitter.
 */
#include "pace_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_margin_default_and_floor),
        cmocka_unit_test(test_margin_measured),
        cmocka_unit_test(test_margin_spike_429),
        cmocka_unit_test(test_margin_from_sends),
        cmocka_unit_test(test_margin_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
