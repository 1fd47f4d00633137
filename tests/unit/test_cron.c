/*
 * Unit tests for cron.c: the valid and invalid corpus (exact messages), and next-tick cases
 * across month and year ends and leap years, cross-checked against a reference matcher built
 * on gmtime_r (an independent calendar) by a minute-by-minute scan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "cron.h"
#include "test_assert.h"

static int64_t at(const char *iso)
{
    int64_t v = 0;

    assert_int_equal(base_time_parse(iso, &v), 0);
    return v;
}

static void expect_next(const char *expr, const char *after, const char *want)
{
    struct base_cron c;
    char msg[200], got[32];
    int64_t next = 0;

    assert_int_equal(base_cron_parse(expr, &c, msg, sizeof(msg)), 0);
    assert_int_equal(base_cron_next(&c, at(after), &next), 0);
    base_time_format(next, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\" after %s: got %s, want %s", expr, after, got, want);
}

static void test_next_basics(void **state)
{
    (void)state;
    expect_next("* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00.000Z");
    expect_next("* * * * *", "2026-01-01T00:00:59.999Z", "2026-01-01T00:01:00.000Z");
    /* strictly after: a tick at the instant itself is not the next one */
    expect_next("0 2 * * *", "2026-01-01T02:00:00Z", "2026-01-02T02:00:00.000Z");
    expect_next("0 2 * * *", "2026-01-01T01:59:59Z", "2026-01-01T02:00:00.000Z");
    expect_next("0 * * * *", "2026-03-04T05:06:07Z", "2026-03-04T06:00:00.000Z");
    expect_next("*/15 * * * *", "2026-03-04T05:46:00Z", "2026-03-04T06:00:00.000Z");
    expect_next("*/15 * * * *", "2026-03-04T05:44:00Z", "2026-03-04T05:45:00.000Z");
    expect_next("5,10-12 * * * *", "2026-03-04T05:10:00Z", "2026-03-04T05:11:00.000Z");
    expect_next("5,10-12 * * * *", "2026-03-04T05:12:00Z", "2026-03-04T06:05:00.000Z");
    expect_next("10-50/20 * * * *", "2026-03-04T05:30:00Z", "2026-03-04T05:50:00.000Z");
    expect_next("10/20 * * * *", "2026-03-04T05:51:00Z", "2026-03-04T06:10:00.000Z");
    expect_next("30 23 * * *", "2026-03-04T23:31:00Z", "2026-03-05T23:30:00.000Z");
}

static void test_next_month_year_ends(void **state)
{
    (void)state;
    expect_next("0 0 1 * *", "2026-01-31T23:59:00Z", "2026-02-01T00:00:00.000Z");
    expect_next("0 0 31 * *", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00.000Z");
    expect_next("0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00.000Z");
    expect_next("59 23 31 12 *", "2026-06-01T00:00:00Z", "2026-12-31T23:59:00.000Z");
    expect_next("0 0 1 1 *", "2026-12-31T23:59:30Z", "2027-01-01T00:00:00.000Z");
    expect_next("0 0 * JAN *", "2026-02-01T00:00:00Z", "2027-01-01T00:00:00.000Z");
    expect_next("0 12 30 * *", "2026-02-01T00:00:00Z", "2026-03-30T12:00:00.000Z");
}

static void test_next_leap_years(void **state)
{
    (void)state;
    expect_next("0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00.000Z");
    expect_next("0 0 29 2 *", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00.000Z");
    /* 2100 is not a leap year; 2000 was */
    expect_next("0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00.000Z");
    expect_next("0 0 29 2 *", "1999-01-01T00:00:00Z", "2000-02-29T00:00:00.000Z");
    expect_next("0 0 * 3 *", "2028-02-28T12:00:00Z", "2028-03-01T00:00:00.000Z");
    expect_next("0 0 28-29 2 *", "2027-02-28T00:00:00Z", "2028-02-28T00:00:00.000Z");
}

static void test_next_weekdays(void **state)
{
    (void)state;
    /* 2026-01-01 is a Thursday */
    expect_next("0 9 * * MON", "2026-01-01T00:00:00Z", "2026-01-05T09:00:00.000Z");
    expect_next("0 9 * * 1-5", "2026-01-02T09:00:00Z", "2026-01-05T09:00:00.000Z");
    expect_next("0 9 * * 0", "2026-01-01T00:00:00Z", "2026-01-04T09:00:00.000Z");
    expect_next("0 9 * * 7", "2026-01-01T00:00:00Z", "2026-01-04T09:00:00.000Z");
    expect_next("0 9 * * sat,sun", "2026-01-01T00:00:00Z", "2026-01-03T09:00:00.000Z");
    expect_next("0 9 * * 5-7", "2026-01-02T10:00:00Z", "2026-01-03T09:00:00.000Z");
    expect_next("0 9 * * */2", "2026-01-01T10:00:00Z", "2026-01-03T09:00:00.000Z");
    /* Vixie: both days restricted, either matches: the 13th or any Friday */
    expect_next("0 0 13 * FRI", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00.000Z");
    expect_next("0 0 13 * FRI", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00.000Z");
    /* one of them "*": both must match (here: day of month 13 only) */
    expect_next("0 0 13 * *", "2026-01-01T00:00:00Z", "2026-01-13T00:00:00.000Z");
    /* "*" step in day of week counts as "*": the day of month alone decides */
    expect_next("0 0 13 * */1", "2026-01-01T00:00:00Z", "2026-01-13T00:00:00.000Z");
    /* Friday the 13th needs "*"-free both: not expressible; 2026-02-13 is a Friday */
    expect_next("0 0 13 2 5", "2026-01-01T00:00:00Z", "2026-02-06T00:00:00.000Z");
}

static void test_never(void **state)
{
    struct base_cron c;
    char msg[200];
    int64_t next = 42;

    (void)state;
    assert_int_equal(base_cron_parse("0 0 30 2 *", &c, msg, sizeof(msg)), 0);
    assert_int_equal(base_cron_next(&c, at("2026-01-01T00:00:00Z"), &next), BASE_ENOTFOUND);
    assert_int_equal(next, 42);
    assert_int_equal(base_cron_parse("0 0 31 4,6,9,11 *", &c, msg, sizeof(msg)), 0);
    assert_int_equal(base_cron_next(&c, at("2026-01-01T00:00:00Z"), &next), BASE_ENOTFOUND);
    /* but with a weekday (Vixie: either) it fires */
    assert_int_equal(base_cron_parse("0 0 30 2 MON", &c, msg, sizeof(msg)), 0);
    assert_int_equal(base_cron_next(&c, at("2026-01-01T00:00:00Z"), &next), 0);
}

/* An independent reference: gmtime_r's calendar, each field checked from the text again. */
static bool ref_matches(const struct base_cron *c, int64_t t)
{
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    bool md, wd;

    gmtime_r(&secs, &tm);
    md = (c->mdays >> tm.tm_mday) & 1;
    wd = (c->wdays >> tm.tm_wday) & 1;
    if (!((c->minutes >> tm.tm_min) & 1) || !((c->hours >> tm.tm_hour) & 1) ||
        !((c->months >> (tm.tm_mon + 1)) & 1))
        return false;
    return (c->mday_star || c->wday_star) ? md && wd : md || wd;
}

static void test_next_against_scan(void **state)
{
    static const char *const exprs[] = {
        "* * * * *",       "*/7 */5 * * *",   "0 0 1,15 * *",       "30 4 * * 1-5",
        "0 0 * * SUN",     "59 23 28-31 * *", "15 */6 * FEB,MAR *", "0 12 13 * 5",
        "0 0 29,30 1,2 *", "1-59/29 0 * * *", "0 0 31 * 0",         "0 22 * DEC-DEC 6,0",
        "45 1 1-7 * MON",  "0 0 L * *",
    };
    static const char *const starts[] = {
        "2026-01-01T00:00:00Z", "2027-12-31T23:30:00Z", "2028-02-27T22:00:00Z",
        "2026-06-30T23:59:30Z", "2100-02-27T00:00:00Z",
    };

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(exprs); i++) {
        struct base_cron c;
        char msg[200];

        if (base_cron_parse(exprs[i], &c, msg, sizeof(msg)) < 0)
            continue; /* "L" is not supported: the corpus below checks its message */
        for (size_t j = 0; j < BASE_ARRAY_SIZE(starts); j++) {
            int64_t from = at(starts[j]), next = 0, t;

            /* Eight ticks in a row: each the first reference match after the previous. */
            for (int k = 0; k < 8; k++) {
                int steps = 0;

                assert_int_equal(base_cron_next(&c, from, &next), 0);
                for (t = (from / 60000 + 1) * 60000; !ref_matches(&c, t); t += 60000)
                    ASSERT_LT(++steps, 2 * 366 * 1440);
                if (t != next)
                    fail_msg("\"%s\" after %lld: %lld, reference %lld", exprs[i], (long long)from,
                             (long long)next, (long long)t);
                assert_true(base_cron_matches(&c, next));
                assert_false(base_cron_matches(&c, next - 60000) && next - 60000 > from);
                from = next;
            }
        }
    }
}

static void test_valid_corpus(void **state)
{
    static const char *const ok[] = {
        "* * * * *",
        "0 2 * * *",
        " 0  2\t* * * ",
        "0-59 0-23 1-31 1-12 0-7",
        "*/1 * * * *",
        "59 23 31 12 7",
        "0 0 1 jan,Feb,MAR *",
        "0 0 * * mon-fri",
        "0 0 * JAN-DEC SUN-SAT",
        "0 0 * * 1,3,5",
        "0,30 8-18/2 * * *",
        "5/10 * * * *",
        "0 0 1 */3 *",
        "0 0 * * 0-7/7",
        "00 02 01 01 00",
        "*/59 */23 */31 */12 */7",
    };
    struct base_cron c;
    char msg[200];

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(ok); i++) {
        int rc = base_cron_parse(ok[i], &c, msg, sizeof(msg));

        if (rc != 0)
            fail_msg("\"%s\" refused: %s", ok[i], msg);
        assert_string_equal(msg, "");
    }
    assert_int_equal(base_cron_parse("0-59 0-23 1-31 1-12 0-7", &c, msg, sizeof(msg)), 0);
    assert_true(c.minutes == (((uint64_t)1 << 60) - 1));
    assert_true(c.hours == (1u << 24) - 1);
    assert_true(c.mdays == 0xfffffffeu);
    assert_true(c.months == 0x1ffe);
    assert_true(c.wdays == 0x7f);
    assert_false(c.mday_star);
    assert_int_equal(base_cron_parse("0 0 * * 7", &c, msg, sizeof(msg)), 0);
    assert_int_equal(c.wdays, 1); /* Sunday */
    assert_true(c.mday_star);
    assert_int_equal(base_cron_parse("10-50/20 * * * *", &c, msg, sizeof(msg)), 0);
    assert_true(c.minutes == (((uint64_t)1 << 10) | ((uint64_t)1 << 30) | ((uint64_t)1 << 50)));
    assert_int_equal(base_cron_parse("0 0 1 */3 *", &c, msg, sizeof(msg)), 0);
    assert_int_equal(c.months, (1 << 1) | (1 << 4) | (1 << 7) | (1 << 10));
}

static void test_invalid_corpus(void **state)
{
    static const struct {
        const char *expr, *msg;
    } bad[] = {
        {"", "0 fields, expected 5 (minute hour day-of-month month day-of-week)"},
        {"   ", "0 fields, expected 5 (minute hour day-of-month month day-of-week)"},
        {"*", "1 field, expected 5 (minute hour day-of-month month day-of-week)"},
        {"0 2 * *", "4 fields, expected 5 (minute hour day-of-month month day-of-week)"},
        {"0 0 2 * * *",
         "more than 5 fields (minute hour day-of-month month day-of-week; no seconds or years)"},
        {"@daily", "1 field, expected 5 (minute hour day-of-month month day-of-week)"},
        {"@hourly * * * *", "macros such as \"@daily\" are not supported; write the 5 fields"},
        {"60 * * * *", "minute: 60 is out of range 0-59"},
        {"* 24 * * *", "hour: 24 is out of range 0-23"},
        {"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
        {"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
        {"* * * 0 *", "month: 0 is out of range 1-12"},
        {"* * * 13 *", "month: 13 is out of range 1-12"},
        {"* * * * 8", "day-of-week: 8 is out of range 0-7"},
        {"99999999999 * * * *", "minute: 99999999999 is out of range 0-59"},
        {"x * * * *", "minute: \"x\" is not a number"},
        {"-1 * * * *", "minute: \"-1\" is not a number"},
        {"1x * * * *", "minute: \"1x\" is not a number"},
        {"* * * * MON-", "day-of-week: a value is missing"},
        {"* * * FOO *", "month: \"FOO\" is not a month number or name (1-12, JAN-DEC)"},
        {"* * * JANUARY *", "month: \"JANUARY\" is not a month number or name (1-12, JAN-DEC)"},
        {"* * * * FRY", "day-of-week: \"FRY\" is not a weekday number or name (0-7, SUN-SAT)"},
        {"JAN * * * *", "minute: \"JAN\" is not a number"},
        {"* * * * JAN", "day-of-week: \"JAN\" is not a weekday number or name (0-7, SUN-SAT)"},
        {"30-10 * * * *", "minute: range 30-10 goes backwards"},
        {"* * * * FRI-MON", "day-of-week: range FRI-MON goes backwards"},
        {"1,,2 * * * *", "minute: an item of the list is empty"},
        {"1, * * * *", "minute: an item of the list is empty"},
        {",1 * * * *", "minute: an item of the list is empty"},
        {"*/0 * * * *", "minute: step 0 is out of range 1-59"},
        {"*/60 * * * *", "minute: step 60 is out of range 1-59"},
        {"* */24 * * *", "hour: step 24 is out of range 1-23"},
        {"*/ * * * *", "minute: a step is missing after \"/\""},
        {"*/x * * * *", "minute: step \"x\" is not a number"},
        {"*/1/2 * * * *", "minute: step \"1/2\" is not a number"},
        {"** * * * *", "minute: \"**\" is not a number"},
        {"? * * * *", "minute: \"?\" is not a number"},
        {"0 0 L * *", "day-of-month: \"L\" is not a number"},
        {"0 0 15W * *", "day-of-month: \"15W\" is not a number"},
        {"0 0 * * 5#3", "day-of-week: \"5#3\" is not a weekday number or name (0-7, SUN-SAT)"},
        {"0 0 1-2-3 * *", "day-of-month: \"2-3\" is not a number"},
        {"0 0 * * 1\x01", "a schedule is printable ASCII (5 fields: minute hour day-of-month "
                          "month day-of-week)"},
        {"0 0 * * \xc3\xa9", "a schedule is printable ASCII (5 fields: minute hour day-of-month "
                             "month day-of-week)"},
    };
    struct base_cron c;
    char msg[200];

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        int rc = base_cron_parse(bad[i].expr, &c, msg, sizeof(msg));

        if (rc != BASE_EINVAL || strcmp(msg, bad[i].msg) != 0)
            fail_msg("\"%s\": rc %d, message \"%s\", want \"%s\"", bad[i].expr, rc, msg,
                     bad[i].msg);
    }
    /* a NULL expression and a short message buffer are safe */
    assert_int_equal(base_cron_parse(NULL, &c, msg, sizeof(msg)), BASE_EINVAL);
    assert_string_equal(msg, "no schedule");
    assert_int_equal(base_cron_parse("61 * * * *", &c, msg, 8), BASE_EINVAL);
    assert_string_equal(msg, "minute:");
    assert_int_equal(base_cron_parse("61 * * * *", &c, NULL, 0), BASE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_basics),     cmocka_unit_test(test_next_month_year_ends),
        cmocka_unit_test(test_next_leap_years), cmocka_unit_test(test_next_weekdays),
        cmocka_unit_test(test_never),           cmocka_unit_test(test_next_against_scan),
        cmocka_unit_test(test_valid_corpus),    cmocka_unit_test(test_invalid_corpus),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
