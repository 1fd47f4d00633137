/*
 * pace_fixture.h: the fake clock and the helpers the pace unit tests share (test_pace.c,
 * test_pace_day.c, test_pace_margin.c). Static inline, so each test file takes what it uses.
 */
#ifndef KEAPSYNC_PACE_FIXTURE_H
#define KEAPSYNC_PACE_FIXTURE_H

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

static inline int64_t wall_at(const char *iso)
{
    int64_t w = 0;

    assert_int_equal(base_time_parse(iso, &w), 0);
    return w;
}

static inline struct pace *make(double per_sec, int64_t per_min, int64_t per_day, double reserve)
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

static inline uint32_t default_margin(void)
{
    struct pace_config cfg;

    pace_config_default(&cfg);
    return cfg.margin_ms;
}

static inline int64_t margin_of(const struct pace *p)
{
    struct pace_stats st;

    pace_get_stats(p, &st);
    return st.margin_ms;
}

/* Acquires at *now, following PACE_WAIT answers, until admitted; returns the admission time. */
static inline uint64_t admit_next(struct pace *p, uint64_t *now, int64_t wall)
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

#endif
