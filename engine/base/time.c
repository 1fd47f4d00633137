/*
 * time.c: ISO-8601 timestamps as Keap writes them ("2024-11-07T20:35:13.000+0000") and as
 * its filters want them ("2026-01-01T00:00:00.000Z"), converted to and from wall ms (UTC).
 * Days are UTC days: Keap's daily quota resets at 00:00 UTC.
 */
#include "base.h"

#include <ctype.h>
#include <string.h>

#define MS_PER_DAY 86400000LL

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    *y = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y += *m <= 2;
}

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return BASE_EINVAL;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return BASE_OK;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 ? 28 + leap : dm[m - 1];
}

int base_time_parse(const char *s, int64_t *wall_ms)
{
    const char *p = s;
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    int64_t v;

    if (s == NULL)
        return BASE_EINVAL;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return BASE_EINVAL;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return BASE_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return BASE_EINVAL;
    if (*p == '.' || *p == ',') {
        int n = 0;

        p++;
        if (!isdigit((unsigned char)*p))
            return BASE_EINVAL;
        while (isdigit((unsigned char)*p)) {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        while (n < 3) {
            ms *= 10;
            n++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, 2, &oh))
            return BASE_EINVAL;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &om))
                return BASE_EINVAL;
        } else if (isdigit((unsigned char)*p)) {
            if (digits(&p, 2, &om))
                return BASE_EINVAL;
        }
    }
    if (*p != '\0')
        return BASE_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 ||
        oh > 23 || om > 59)
        return BASE_EINVAL;
    v = days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_DAY;
    v += ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + ms;
    v -= (int64_t)sign * ((int64_t)oh * 3600 + om * 60) * 1000;
    /*
     * An offset can carry a time at either end of the four-digit years past them
     * (0000-01-01T00:40+01 is in year -1): such an instant could not be written back in
     * this form, so it is refused like any other impossible date.
     */
    if (v < days_from_civil(0, 1, 1) * MS_PER_DAY || v >= days_from_civil(10000, 1, 1) * MS_PER_DAY)
        return BASE_EINVAL;
    *wall_ms = v;
    return BASE_OK;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int base_time_format(int64_t wall_ms, char *buf, size_t n)
{
    int64_t days = floor_div(wall_ms, MS_PER_DAY), y;
    int64_t rem = wall_ms - days * MS_PER_DAY;
    unsigned m, d;

    civil_from_days(days, &y, &m, &d);
    return base_snprintf(buf, n, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
                         (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                         (int)(rem % 1000));
}

int base_time_format_day(int64_t wall_ms, char *buf, size_t n)
{
    int64_t y;
    unsigned m, d;

    civil_from_days(floor_div(wall_ms, MS_PER_DAY), &y, &m, &d);
    return base_snprintf(buf, n, "%04lld-%02u-%02u", (long long)y, m, d);
}

int64_t base_time_day_start(int64_t wall_ms)
{
    return floor_div(wall_ms, MS_PER_DAY) * MS_PER_DAY;
}

int64_t base_time_next_day(int64_t wall_ms)
{
    return base_time_day_start(wall_ms) + MS_PER_DAY;
}
