/*
 * cron.h: 5-field cron expressions in UTC ("0 2 * * *"), the schedules of `keapsync daemon`.
 *
 * Fields, in order: minute 0-59, hour 0-23, day of month 1-31, month 1-12 (or JAN-DEC), day of
 * week 0-7 (0 and 7 are Sunday, or SUN-SAT). Each field is "*" or a comma-separated list of
 * items; an item is a value, a range "A-B", or either ("*", "A-B", or "A") followed by a step
 * "/N" ("A/N" means A through the field's maximum). Names are case-insensitive and may end
 * ranges. Vixie semantics for the days: when both day of month and day of week are restricted
 * (neither starts with "*"), a day matches if either matches; otherwise both must.
 * No seconds, no years, no "@daily" macros, no "L", "W", "#" or "?".
 */
#ifndef KEAPSYNC_CRON_H
#define KEAPSYNC_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct base_cron {
    uint64_t minutes; /* bit m: minute m */
    uint32_t hours;   /* bit h */
    uint32_t mdays;   /* bit d, 1..31 */
    uint16_t months;  /* bit m, 1..12 */
    uint8_t wdays;    /* bit w, 0..6 (Sunday 0; 7 folds into 0) */
    bool mday_star;   /* the day-of-month field started with "*" */
    bool wday_star;
};

/*
 * Parses expr into *out. On error returns BASE_EINVAL and
 * writes one line to msg (n bytes) naming the field, e.g. 'hour: 24 is out of range 0-23';
 * *out is then unspecified.
 */
int base_cron_parse(const char *expr, struct base_cron *out, char *msg, size_t n);

/* Does the minute that holds wall ms t (UTC) match? */
bool base_cron_matches(const struct base_cron *c, int64_t t);

/*
 * The first minute strictly after wall ms after (UTC) that c matches, as wall ms (a whole
 * minute), into *next. BASE_ENOTFOUND when none comes within 8 years (e.g. "0 0 30 2 *").
 */
int base_cron_next(const struct base_cron *c, int64_t after, int64_t *next);

#endif
