/*
 * Unit tests for pace's UTC day on a fake clock: rollover (and the clock set back across
 * midnight), the day's budget and reserve, refunds, reconciling with Keap's x-keap-* headers,
 * quota limit changes, expiry sanity, missing and stale headers.
 */
#include "pace_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
