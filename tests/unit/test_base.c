/* Unit tests for base: ISO-8601 parsing in Keap's forms, day arithmetic, bounded buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "test_assert.h"

static void test_time_forms(void **state)
{
    int64_t a, b, c, d;

    (void)state;
    /* The same instant in the three forms Keap and its specs use. */
    assert_int_equal(base_time_parse("2024-11-07T20:35:13.000+0000", &a), 0);
    assert_int_equal(base_time_parse("2024-11-07T20:35:13.000+00:00", &b), 0);
    assert_int_equal(base_time_parse("2024-11-07T20:35:13.000Z", &c), 0);
    assert_int_equal(a, b);
    assert_int_equal(b, c);
    /* Cross-checked with `date -u -d 2024-11-07T20:35:13Z +%s`. */
    assert_int_equal(a, 1731011713000LL);
    /* Offsets move the instant. */
    assert_int_equal(base_time_parse("2024-11-07T22:35:13.217+0200", &d), 0);
    assert_int_equal(d, a + 217);
    assert_int_equal(base_time_parse("2024-11-07T15:35:13-05:00", &d), 0);
    assert_int_equal(d, a);
    /* Microseconds are truncated to ms. */
    assert_int_equal(base_time_parse("2017-01-01T22:17:59.039999Z", &d), 0);
    assert_int_equal(d % 1000, 39);
}

static void test_time_rejects(void **state)
{
    int64_t v = 42;
    static const char *const bad[] = {
        "",
        "2024-11-07",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-11-07T25:00:00Z",
        "2024-11-07T20:35:13.000+00:0",
        "2024-11-07T20:35:13Zjunk",
        "2024-11-07T20:35:13.Z",
        "24-11-07T20:35:13Z",
        /* Offsets that carry the instant out of the four-digit years (found by fuzz_time). */
        "0000-01-01T00:40:00+01",
        "0000-01-01T00:00:00+23:59",
        "9999-12-31T23:00:00-02:00",
    };

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        assert_int_equal(base_time_parse(bad[i], &v), BASE_EINVAL);
        assert_int_equal(v, 42); /* out-parameter untouched on failure */
    }
    /* Leap day is fine. */
    assert_int_equal(base_time_parse("2024-02-29T00:00:00Z", &v), 0);
    /* The ends of the range themselves parse. */
    assert_int_equal(base_time_parse("0000-01-01T00:00:00Z", &v), 0);
    assert_int_equal(base_time_parse("9999-12-31T23:59:59.999Z", &v), 0);
}

static void test_time_format_roundtrip(void **state)
{
    char buf[32];
    int64_t back;
    const int64_t samples[] = {0, 1731011713217LL, 951782400000LL /* 2000-02-29 */, -86400000LL - 1,
                               4102444799999LL};

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(samples); i++) {
        assert_int_equal(base_time_format(samples[i], buf, sizeof(buf)), 0);
        assert_int_equal(base_time_parse(buf, &back), 0);
        assert_int_equal(back, samples[i]);
    }
    assert_int_equal(base_time_format(1731011713217LL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2024-11-07T20:35:13.217Z");
    assert_int_equal(base_time_format(0, buf, 10), BASE_ETOOBIG);
}

static void test_day_boundaries(void **state)
{
    char day[16];
    int64_t midnight;

    (void)state;
    assert_int_equal(base_time_parse("2026-11-26T00:00:00Z", &midnight), 0);
    assert_int_equal(base_time_day_start(midnight), midnight);
    assert_int_equal(base_time_day_start(midnight - 1), midnight - 86400000LL);
    assert_int_equal(base_time_next_day(midnight - 1), midnight);
    assert_int_equal(base_time_next_day(midnight), midnight + 86400000LL);
    assert_int_equal(base_time_format_day(midnight - 1, day, sizeof(day)), 0);
    assert_string_equal(day, "2026-11-25");
}

static void test_buf_cap(void **state)
{
    struct base_buf b;

    (void)state;
    base_buf_init(&b, 8);
    assert_int_equal(base_buf_puts(&b, "12345"), 0);
    assert_int_equal(base_buf_puts(&b, "6789"), BASE_ETOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    assert_int_equal(base_buf_printf(&b, "%d", 678), 0);
    assert_string_equal(b.data, "12345678");
    base_buf_free(&b);
    base_buf_free(&b);
}

static void test_parse_int(void **state)
{
    int64_t v = 7;

    (void)state;
    assert_int_equal(base_parse_int64("12x", &v), BASE_EINVAL);
    assert_int_equal(base_parse_int64("", &v), BASE_EINVAL);
    assert_int_equal(base_parse_int64("99999999999999999999", &v), BASE_ERANGE);
    assert_int_equal(v, 7);
    assert_int_equal(base_parse_int64("-30000", &v), 0);
    assert_int_equal(v, -30000);
}

static void check_value(const char *in, const char *want)
{
    char buf[128] = "k=";

    base_logfmt_value(buf, sizeof(buf), in);
    assert_string_equal(buf + 2, want);
}

static void test_logfmt_value(void **state)
{
    char small[8] = "";

    (void)state;
    check_value("plain", "plain");
    check_value("two words", "\"two words\"");
    check_value("a=b", "\"a=b\"");
    check_value("say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\"");
    check_value("x\ny\tz", "\"x\\ny\\tz\"");
    check_value("\x01", "\"\\u0001\"");
    check_value("", "\"\"");
    /* Cut short, never past the buffer, always terminated. */
    base_logfmt_value(small, sizeof(small), "a long value with spaces");
    ASSERT_LT(strlen(small), sizeof(small));
}

/* Three lines logged (logfmt with a run and a job, logfmt without, text), as stderr got them. */
static void capture_log(char *buf, size_t n)
{
    FILE *f = tmpfile();
    int saved = dup(2);
    size_t got;

    assert_non_null(f);
    fflush(stderr);
    dup2(fileno(f), 2);
    base_log_set_format(BASE_LOG_FORMAT_LOGFMT);
    base_log_set_run(42);
    base_log_warning("job \"contacts\": page %d failed", 7);
    base_log_set_run(0);
    base_log_info("applied migration 0007_runs");
    base_log_set_format(BASE_LOG_FORMAT_TEXT);
    base_log_info("back to text");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
}

static void test_logfmt_lines(void **state)
{
    char out[2048], *l2, *l3;

    (void)state;
    capture_log(out, sizeof(out));
    l2 = strchr(out, '\n');
    assert_non_null(l2);
    *l2++ = '\0';
    l3 = strchr(l2, '\n');
    assert_non_null(l3);
    *l3++ = '\0';
    /* time=YYYY-MM-DDTHH:MM:SS.mmmZ, then the fixed keys in order */
    assert_int_equal(strncmp(out, "time=", 5), 0);
    assert_int_equal(strlen(out + 5) > 24 && out[5 + 10] == 'T' && out[5 + 23] == 'Z', 1);
    assert_string_equal(out + 5 + 24,
                        " level=warning run=42 job=contacts msg=\"job \\\"contacts\\\": page 7 "
                        "failed\"");
    assert_string_equal(strstr(l2, " level="),
                        " level=info run=- job=- msg=\"applied migration 0007_runs\"");
    assert_string_equal(l3, "keapsync: INFO: back to text\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_forms),
        cmocka_unit_test(test_time_rejects),
        cmocka_unit_test(test_time_format_roundtrip),
        cmocka_unit_test(test_day_boundaries),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_logfmt_value),
        cmocka_unit_test(test_logfmt_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
