/*
 * fuzz_cron.c: libFuzzer target for the daemon's cron expressions (base_cron_parse) and the
 * search for the next matching minute: a refused expression explains itself in one line; an
 * accepted one gives a next minute that is whole, later, matching, and with no matching minute
 * skipped over (checked for the first day after the start).
 */
#include "base.h"
#include "cron.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_MINUTE 60000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[256], msg[256];
    struct base_cron c;
    uint32_t h = 2166136261u;
    int64_t after, next, t;
    int rc;

    if (size >= sizeof(expr))
        return 0;
    memcpy(expr, data, size);
    expr[size] = '\0';
    memset(msg, 'x', sizeof(msg));
    rc = base_cron_parse(expr, &c, msg, sizeof(msg));
    if (rc != 0) {
        if (rc != BASE_EINVAL || memchr(msg, '\0', sizeof(msg)) == NULL || msg[0] == '\0' ||
            strchr(msg, '\n') != NULL)
            abort(); /* a refusal is one non-empty line */
        return 0;
    }
    if (c.minutes == 0 || c.hours == 0 || c.mdays == 0 || c.months == 0 || c.wdays == 0)
        abort(); /* every field matches something */

    /* A start between 2000 and 2100, to the millisecond, picked by the input. */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    after = 946684800000LL + (int64_t)(h % 3155760000u) * 1000 + h % 1000;
    if (base_cron_next(&c, after, &next) != 0)
        return 0; /* "0 0 30 2 *": nothing within 8 years */
    if (next <= after || next % MS_PER_MINUTE != 0 || !base_cron_matches(&c, next))
        abort();
    for (t = (after / MS_PER_MINUTE + 1) * MS_PER_MINUTE; t < next && t < after + 86400000LL;
         t += MS_PER_MINUTE)
        if (base_cron_matches(&c, t))
            abort(); /* a matching minute was skipped */
    return 0;
}
