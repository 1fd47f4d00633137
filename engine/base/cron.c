/*
 * cron.c: 5-field cron expressions in UTC (cron.h): a strict parser whose errors name the field,
 * and the next matching minute. Debian packages no C cron library that fits (cronie and
 * Vixie cron are daemons, not libraries), so this is small and self-contained; the days are
 * civil UTC days (Howard Hinnant's algorithm), so there are no DST gaps or repeats.
 */
#include "base.h"
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MS_PER_MIN  60000LL
#define MS_PER_DAY  86400000LL
#define SEARCH_DAYS (8 * 366) /* "0 0 29 2 *" fires within 8 years (1900-like gaps) */
#define ITEM_SHOWN  24        /* bytes of an item quoted in a message */

struct cron_field {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] is value names_base + i, or NULL */
    int names_base;
    const char *what; /* for "not a ..." messages */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const wday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct cron_field fields[5] = {
    {"minute", 0, 59, NULL, 0, "number"},
    {"hour", 0, 23, NULL, 0, "number"},
    {"day-of-month", 1, 31, NULL, 0, "number"},
    {"month", 1, 12, month_names, 1, "month number or name (1-12, JAN-DEC)"},
    {"day-of-week", 0, 7, wday_names, 0, "weekday number or name (0-7, SUN-SAT)"},
};

static int fail(char *msg, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t n, const char *fmt, ...)
{
    va_list ap;

    if (msg != NULL && n > 0) {
        va_start(ap, fmt);
        vsnprintf(msg, n, fmt, ap);
        va_end(ap);
    }
    return BASE_EINVAL;
}

/* Reads one value of f at [p, end) into *v: digits, or a name when f has names. */
static int parse_value(const struct cron_field *f, const char *p, const char *end, int *v,
                       char *msg, size_t n)
{
    int len = (int)(end - p);

    if (len <= 0)
        return fail(msg, n, "%s: a value is missing", f->name);
    if (isdigit((unsigned char)*p)) {
        long x = 0;

        for (const char *q = p; q < end; q++) {
            if (!isdigit((unsigned char)*q))
                return fail(msg, n, "%s: \"%.*s\" is not a %s", f->name,
                            len > ITEM_SHOWN ? ITEM_SHOWN : len, p, f->what);
            if (x < 100000)
                x = x * 10 + (*q - '0');
        }
        if (x < f->min || x > f->max)
            return fail(msg, n, "%s: %.*s is out of range %d-%d", f->name,
                        len > ITEM_SHOWN ? ITEM_SHOWN : len, p, f->min, f->max);
        *v = (int)x;
        return BASE_OK;
    }
    if (f->names != NULL && len == 3) {
        for (int i = 0; f->names[i] != NULL; i++) {
            if (strncasecmp(p, f->names[i], 3) == 0) {
                *v = f->names_base + i;
                return BASE_OK;
            }
        }
    }
    return fail(msg, n, "%s: \"%.*s\" is not a %s", f->name, len > ITEM_SHOWN ? ITEM_SHOWN : len, p,
                f->what);
}

/* One comma-separated item of f, [p, end), into *bits. */
static int parse_item(const struct cron_field *f, const char *p, const char *end, uint64_t *bits,
                      char *msg, size_t n)
{
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *base_end = slash ? slash : end;
    const char *dash;
    int lo, hi, step = 1, rc;

    if (p == end)
        return fail(msg, n, "%s: an item of the list is empty", f->name);
    if (base_end - p == 1 && *p == '*') {
        lo = f->min;
        hi = f->max;
    } else {
        dash = memchr(p, '-', (size_t)(base_end - p));
        if (dash == p)
            return fail(msg, n, "%s: \"%.*s\" is not a %s", f->name,
                        (int)(end - p) > ITEM_SHOWN ? ITEM_SHOWN : (int)(end - p), p, f->what);
        rc = parse_value(f, p, dash ? dash : base_end, &lo, msg, n);
        if (rc < 0)
            return rc;
        if (dash != NULL) {
            rc = parse_value(f, dash + 1, base_end, &hi, msg, n);
            if (rc < 0)
                return rc;
            if (hi < lo)
                return fail(msg, n, "%s: range %.*s goes backwards", f->name,
                            (int)(base_end - p) > ITEM_SHOWN ? ITEM_SHOWN : (int)(base_end - p), p);
        } else {
            hi = slash ? f->max : lo; /* "A/N": A through the maximum */
        }
    }
    if (slash != NULL) {
        const char *q = slash + 1;
        long x = 0;

        if (q == end)
            return fail(msg, n, "%s: a step is missing after \"/\"", f->name);
        for (const char *r = q; r < end; r++) {
            if (!isdigit((unsigned char)*r))
                return fail(msg, n, "%s: step \"%.*s\" is not a number", f->name,
                            (int)(end - q) > ITEM_SHOWN ? ITEM_SHOWN : (int)(end - q), q);
            if (x < 100000)
                x = x * 10 + (*r - '0');
        }
        if (x < 1 || x > f->max)
            return fail(msg, n, "%s: step %.*s is out of range 1-%d", f->name,
                        (int)(end - q) > ITEM_SHOWN ? ITEM_SHOWN : (int)(end - q), q, f->max);
        step = (int)x;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << v;
    return BASE_OK;
}

static int parse_field(const struct cron_field *f, const char *p, const char *end, uint64_t *bits,
                       char *msg, size_t n)
{
    *bits = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        int rc = parse_item(f, p, item_end, bits, msg, n);

        if (rc < 0)
            return rc;
        if (comma == NULL)
            return BASE_OK;
        p = comma + 1;
    }
}

int base_cron_parse(const char *expr, struct base_cron *out, char *msg, size_t n)
{
    const char *start[6], *end[6];
    const char *p = expr;
    int nf = 0;
    uint64_t bits[5];

    if (msg != NULL && n > 0)
        msg[0] = '\0';
    if (expr == NULL)
        return fail(msg, n, "no schedule");
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (nf == 6)
            break;
        start[nf] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                return fail(msg, n,
                            "a schedule is printable ASCII (5 fields: minute hour "
                            "day-of-month month day-of-week)");
            p++;
        }
        end[nf++] = p;
    }
    if (nf != 5) {
        if (nf == 6)
            return fail(msg, n,
                        "more than 5 fields (minute hour day-of-month month day-of-week; "
                        "no seconds or years)");
        return fail(msg, n, "%d field%s, expected 5 (minute hour day-of-month month day-of-week)",
                    nf, nf == 1 ? "" : "s");
    }
    if (start[0][0] == '@')
        return fail(msg, n, "macros such as \"@daily\" are not supported; write the 5 fields");
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(&fields[i], start[i], end[i], &bits[i], msg, n);

        if (rc < 0)
            return rc;
    }
    memset(out, 0, sizeof(*out));
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->mdays = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    out->mday_star = start[2][0] == '*';
    out->wday_star = start[4][0] == '*';
    return BASE_OK;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Month and day of month of the day z days after 1970-01-01 (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
}

static bool day_matches(const struct base_cron *c, int64_t day)
{
    unsigned m, d;
    int w = (int)(((day % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    bool mday_ok, wday_ok;

    civil_from_days(day, &m, &d);
    if (!(c->months & (1u << m)))
        return false;
    mday_ok = (c->mdays & (1u << d)) != 0;
    wday_ok = (c->wdays & (1u << w)) != 0;
    if (c->mday_star || c->wday_star)
        return mday_ok && wday_ok;
    return mday_ok || wday_ok; /* both restricted: either (Vixie cron) */
}

bool base_cron_matches(const struct base_cron *c, int64_t t)
{
    int64_t day = floor_div(t, MS_PER_DAY);
    int64_t min = floor_div(t - day * MS_PER_DAY, MS_PER_MIN);

    return day_matches(c, day) && (c->hours & (1u << (min / 60))) &&
           (c->minutes & ((uint64_t)1 << (min % 60)));
}

int base_cron_next(const struct base_cron *c, int64_t after, int64_t *next)
{
    int64_t t = (floor_div(after, MS_PER_MIN) + 1) * MS_PER_MIN;
    int64_t day = floor_div(t, MS_PER_DAY);
    int first = (int)((t - day * MS_PER_DAY) / MS_PER_MIN); /* minute of the first day */

    if (c->minutes == 0 || c->hours == 0)
        return BASE_ENOTFOUND;
    for (int i = 0; i < SEARCH_DAYS; i++, day++, first = 0) {
        if (!day_matches(c, day))
            continue;
        for (int h = first / 60; h < 24; h++) {
            if (!(c->hours & (1u << h)))
                continue;
            for (int m = h == first / 60 ? first % 60 : 0; m < 60; m++) {
                if (c->minutes & ((uint64_t)1 << m)) {
                    *next = day * MS_PER_DAY + ((int64_t)h * 60 + m) * MS_PER_MIN;
                    return BASE_OK;
                }
            }
        }
    }
    return BASE_ENOTFOUND;
}
