/*
 * parse.c: the text forms pace reads: KEAPSYNC_LIMITS ("10/s,240/min,30000/day"), a quota
 * reserve ("10%" or "0.1") and HTTP Retry-After values (delta seconds or an HTTP date).
 *
 * Words used here:
 *   item        one COUNT/UNIT pair of KEAPSYNC_LIMITS, between commas.
 *   HTTP date   RFC 9110 section 5.6.7: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), and
 *               the obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 *               ("Sun Nov  6 08:49:37 1994") forms, which recipients must also accept.
 */
#include "pace.h"
#include "pace_int.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#define PACE_ITEM_MAX 64 /* longest item we try to read, and the most of one we quote */

enum pace_unit { PACE_UNIT_SEC, PACE_UNIT_MIN, PACE_UNIT_DAY, PACE_UNIT_NONE };

static const struct {
    const char *name;
    enum pace_unit unit;
} pace_units[] = {
    {"s", PACE_UNIT_SEC},       {"sec", PACE_UNIT_SEC}, {"second", PACE_UNIT_SEC},
    {"seconds", PACE_UNIT_SEC}, {"min", PACE_UNIT_MIN}, {"minute", PACE_UNIT_MIN},
    {"minutes", PACE_UNIT_MIN}, {"day", PACE_UNIT_DAY}, {"days", PACE_UNIT_DAY},
};

static const char *const pace_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const pace_wkdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const pace_weekdays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                            "Friday", "Saturday", "Sunday"};

static bool pace_all_digits(const char *s, bool allow_dot)
{
    bool dot = false;

    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (isdigit((unsigned char)*s))
            continue;
        if (allow_dot && *s == '.' && !dot) {
            dot = true;
            continue;
        }
        return false;
    }
    return true;
}

static enum pace_unit pace_unit_of(const char *s)
{
    for (size_t i = 0; i < BASE_ARRAY_SIZE(pace_units); i++) {
        if (strcmp(s, pace_units[i].name) == 0)
            return pace_units[i].unit;
    }
    return PACE_UNIT_NONE;
}

/* Reads one trimmed item of n bytes into tmp; seen[] catches a window given twice. */
static int pace_parse_item(const char *item, size_t n, struct pace_config *tmp, bool seen[3])
{
    char buf[PACE_ITEM_MAX + 1];
    char *slash;
    enum pace_unit unit;

    if (n == 0 || n > PACE_ITEM_MAX)
        return BASE_EINVAL;
    memcpy(buf, item, n);
    buf[n] = '\0';
    slash = strchr(buf, '/');
    if (slash == NULL)
        return BASE_EINVAL;
    *slash = '\0';
    unit = pace_unit_of(slash + 1);
    if (unit == PACE_UNIT_NONE || seen[unit])
        return BASE_EINVAL;
    if (unit == PACE_UNIT_SEC) {
        double v;

        if (!pace_all_digits(buf, true) || base_parse_double(buf, &v) < 0 || v > PACE_MAX_PER_SEC)
            return BASE_EINVAL;
        tmp->per_sec = v;
    } else {
        int64_t v;

        if (!pace_all_digits(buf, false) || base_parse_int64(buf, &v) < 0)
            return BASE_EINVAL;
        if (unit == PACE_UNIT_MIN) {
            if (v > PACE_MAX_PER_MIN)
                return BASE_EINVAL;
            tmp->per_min = v;
        } else {
            if (v > PACE_MAX_PER_DAY)
                return BASE_EINVAL;
            tmp->per_day = v;
        }
    }
    seen[unit] = true;
    return BASE_OK;
}

int pace_config_parse(const char *spec, struct pace_config *cfg, struct base_err *err)
{
    struct pace_config tmp = *cfg;
    bool seen[3] = {false, false, false};
    const char *p = spec;

    if (spec == NULL)
        return base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_LIMITS: no value");
    for (;;) {
        const char *end = strchr(p, ',');
        const char *s = p, *e;

        if (end == NULL)
            end = p + strlen(p);
        e = end;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (pace_parse_item(s, (size_t)(e - s), &tmp, seen) < 0) {
            size_t n = (size_t)(e - s);

            base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_LIMITS item \"%.*s%s\"",
                         (int)(n > PACE_ITEM_MAX ? PACE_ITEM_MAX : n), s,
                         n > PACE_ITEM_MAX ? "..." : "");
            base_err_hint(err, "Items are COUNT/UNIT separated by commas, with UNIT one of s, "
                               "min or day, each at most once, for example "
                               "\"10/s,240/min,30000/day\"; 0 means no such window.");
            return BASE_ECONFIG;
        }
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *cfg = tmp;
    return BASE_OK;
}

int pace_reserve_parse(const char *spec, double *fraction, struct base_err *err)
{
    char buf[PACE_ITEM_MAX + 1];
    const char *s = spec, *e;
    bool percent = false;
    double v;
    size_t n;

    if (spec == NULL)
        return base_err_set(err, BASE_ECONFIG, "invalid quota reserve: no value");
    e = s + strlen(s);
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    n = (size_t)(e - s);
    if (n > 0 && s[n - 1] == '%') {
        percent = true;
        n--;
    }
    if (n == 0 || n > PACE_ITEM_MAX)
        goto bad;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!pace_all_digits(buf, true) || base_parse_double(buf, &v) < 0)
        goto bad;
    if (percent)
        v /= 100.0;
    if (v < 0 || v >= 1)
        goto bad;
    *fraction = v;
    return BASE_OK;

bad:
    n = strlen(spec);
    base_err_set(err, BASE_ECONFIG, "invalid quota reserve \"%.*s%s\"",
                 (int)(n > PACE_ITEM_MAX ? PACE_ITEM_MAX : n), spec,
                 n > PACE_ITEM_MAX ? "..." : "");
    base_err_hint(err, "Give the share of the daily quota left to other integrations as a "
                       "fraction in [0, 1) such as 0.1, or a percentage below 100 such as 10%%.");
    return BASE_ECONFIG;
}

/* Matches one of names at *p (case-sensitive, as RFC 9110 requires); returns its index. */
static int pace_match_name(const char **p, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(names[i]);

        if (strncmp(*p, names[i], n) == 0) {
            *p += n;
            return (int)i;
        }
    }
    return -1;
}

static bool pace_match(const char **p, const char *lit)
{
    size_t n = strlen(lit);

    if (strncmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

/* Reads exactly n digits. */
static bool pace_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* "HH:MM:SS" */
static bool pace_time_of_day(const char **p, int *h, int *mi, int *s)
{
    return pace_digits(p, 2, h) && pace_match(p, ":") && pace_digits(p, 2, mi) &&
           pace_match(p, ":") && pace_digits(p, 2, s);
}

/* Parses an HTTP date into wall ms; the calendar is checked by base_time_parse. */
static int pace_parse_http_date(const char *s, int64_t *wall_ms)
{
    const char *p = s;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    char iso[32];
    bool ok;

    if (pace_match_name(&p, pace_weekdays, BASE_ARRAY_SIZE(pace_weekdays)) >= 0) {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years 70-99 are 19xx */
        ok = pace_match(&p, ", ") && pace_digits(&p, 2, &d) && pace_match(&p, "-") &&
             (mo = pace_match_name(&p, pace_months, 12)) >= 0 && pace_match(&p, "-") &&
             pace_digits(&p, 2, &y) && pace_match(&p, " ") && pace_time_of_day(&p, &h, &mi, &sec) &&
             pace_match(&p, " GMT");
        y += y < 70 ? 2000 : 1900;
    } else if (pace_match_name(&p, pace_wkdays, BASE_ARRAY_SIZE(pace_wkdays)) >= 0) {
        if (*p == ',') {
            /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
            ok = pace_match(&p, ", ") && pace_digits(&p, 2, &d) && pace_match(&p, " ") &&
                 (mo = pace_match_name(&p, pace_months, 12)) >= 0 && pace_match(&p, " ") &&
                 pace_digits(&p, 4, &y) && pace_match(&p, " ") &&
                 pace_time_of_day(&p, &h, &mi, &sec) && pace_match(&p, " GMT");
        } else {
            /* asctime: "Sun Nov  6 08:49:37 1994" */
            ok = pace_match(&p, " ") && (mo = pace_match_name(&p, pace_months, 12)) >= 0 &&
                 pace_match(&p, " ");
            if (ok && *p == ' ') {
                p++;
                ok = pace_digits(&p, 1, &d);
            } else if (ok) {
                ok = pace_digits(&p, 2, &d);
            }
            ok = ok && pace_match(&p, " ") && pace_time_of_day(&p, &h, &mi, &sec) &&
                 pace_match(&p, " ") && pace_digits(&p, 4, &y);
        }
    } else {
        return BASE_EINVAL;
    }
    if (!ok || *p != '\0')
        return BASE_EINVAL;
    if (base_snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo + 1, d, h, mi,
                      sec) < 0)
        return BASE_EINVAL;
    return base_time_parse(iso, wall_ms);
}

int pace_parse_retry_after(const char *value, int64_t now_wall, int64_t *delay_ms)
{
    char buf[PACE_ITEM_MAX + 1];
    const char *s = value, *e;
    int64_t v;
    size_t n;
    int result;

    if (value == NULL)
        return BASE_EINVAL;
    e = s + strlen(s);
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    n = (size_t)(e - s);
    if (n == 0 || n > PACE_ITEM_MAX)
        return BASE_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (pace_all_digits(buf, false)) {
        result = base_parse_int64(buf, &v);
        if (result < 0)
            return result;
        if (v > INT64_MAX / 1000)
            return BASE_ERANGE;
        *delay_ms = v * 1000;
        return BASE_OK;
    }
    result = pace_parse_http_date(buf, &v);
    if (result < 0)
        return BASE_EINVAL;
    *delay_ms = v > now_wall ? v - now_wall : 0;
    return BASE_OK;
}
