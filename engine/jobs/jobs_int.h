/*
 * jobs_int.h: what the files of the jobs module share and nobody else sees: the context a
 * validation step reports through and the helpers that show user strings in errors.
 *
 *   jobs.c    loading and validating one job file; the helpers below
 *   labels.c  resolving columns that name a custom field by its label (the model)
 *   dir.c     loading the jobs folder and selecting jobs by name (--only)
 *
 * Words used here are those of jobs.c ("field", "shown").
 */
#ifndef KEAPSYNC_JOBS_INT_H
#define KEAPSYNC_JOBS_INT_H

#include "jobs.h"

#include <stdbool.h>
#include <stddef.h>

#define SHOWN_BUF  84  /* buffer for a shown value: 80 bytes and "..." */
#define PATH_SHOWN 260 /* buffer for a shown file or folder path */
#define LABEL_MAX  200 /* bytes of a custom field label */

/* What a validation step needs: the file it is in and where to report. */
struct jobs_load_ctx {
    const char *file;
    struct base_err *err;
};

/* Copies s into buf (n > 4 bytes) for an error message (see "shown" in jobs.c); s is cut after
 * n - 4 bytes. Returns buf. */
const char *jobs_shown(const char *s, char *buf, size_t n);

/* Reports '"<file>": <field>: <message>' (or '"<file>": <message>' when field is NULL) with
 * code BASE_ECONFIG, and returns that code. */
int jobs_fail(const struct jobs_load_ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True if s is a query parameter or filter field name: [A-Za-z0-9_]+. */
bool jobs_is_param_name(const char *s);

/* True if s is a label a user can have typed: no control characters, at most LABEL_MAX. */
bool jobs_is_label(const char *s);

#endif
