/*
 * jobs: job definitions. A job is one Keap list read into one Postgres table; a job file
 * (jobs/<name>.json) defines it. A run executes jobs; "task" is not used.
 *
 * Job file keys (unknown keys are errors):
 *   name            required; identifier [a-z_][a-z0-9_]{0,62}; must match the file name
 *   endpoint        required; "/v1/..." or "/v2/..." relative to KEAP_BASE_URL
 *   array_key       key of the records array; default: last path segment of endpoint
 *   table           target table in schema keap; identifier; default: name
 *   page_size       1..1000; default 1000
 *   order           v1 "order" (e.g. "id") or v2 "order_by" (e.g. "id asc"); optional
 *   optional_properties  v1 only, e.g. "custom_fields"; optional
 *   updated_field   column name (one of columns) holding the record's last update time;
 *                   guards newer-wins upserts and moves the watermark; optional
 *   incremental     optional object:
 *       since_param, until_param     v1 query parameters ("since", "until")
 *       filter_since, filter_until   v2 filter fields ("start_update_time", ...)
 *       lag_seconds                  keep the window's end this far in the past (default 60)
 *       overlap_seconds              start each window this far before the watermark
 *                                    (default 300)
 *   id              optional {"path": "id", "type": "bigint"|"text"}; default: path "id",
 *                   bigint for v1 and text for v2
 *   columns         required array of {"name", "path", "type"}; names are identifiers and
 *                   unique, and none is id, data or synced_at
 *   parent          optional {"job": "contacts", "column": "contact_id"}: a child stream, read
 *                   with one list per parent record. endpoint holds the segment {parent_id}
 *                   (e.g. "/v1/contacts/{parent_id}/tags"), replaced by each id of the parent
 *                   job's table, in id order; the table's key is (column, id). column
 *                   defaults to "parent_id". The parent job must exist and have no parent
 *                   itself; a child job cannot be incremental.
 *   refresh_hours   0..8760, default 0: a job that is not incremental reads everything again
 *                   on every run; with N > 0, a run within N hours of its last complete pass
 *                   skips it (reported as fresh). Meant for child streams, whose pass costs
 *                   a request per parent.
 */
#ifndef KEAPSYNC_JOBS_H
#define KEAPSYNC_JOBS_H

#include "base.h"
#include "keap.h"
#include "map.h"

#include <stdbool.h>
#include <stddef.h>

struct jobs_job {
    char *name;
    char *file; /* path it was loaded from */
    char *endpoint;
    enum keap_api api;
    char *array_key;
    char *table;
    int page_size;
    char *order;
    char *optional_properties;
    char *updated_field; /* NULL when none */
    bool incremental;
    char *since_param, *until_param;   /* v1 */
    char *filter_since, *filter_until; /* v2 */
    int lag_s;
    int overlap_s;
    struct map_spec map;
    char *parent_job;   /* child streams: the parent job's name, or NULL */
    char *parent_col;   /* the column holding the parent's id */
    char *parent_table; /* the parent job's table (resolved by jobs_load_dir) */
    int refresh_hours;  /* 0: every run */
};

struct jobs_set {
    struct jobs_job *jobs;
    size_t n;
};

/* True if s is a safe SQL identifier: [a-z_][a-z0-9_]{0,62}. */
bool jobs_is_identifier(const char *s);

/*
 * Loads and validates one file. On error, err says '"<file>": <field>: what is wrong' and the
 * code is BASE_ECONFIG; *out is untouched.
 */
int jobs_load_file(const char *path, struct jobs_job *out, struct base_err *err);
void jobs_job_free(struct jobs_job *job);

/*
 * Loads every *.json of dir, sorted by file name. An empty or missing dir is BASE_ECONFIG.
 * Two jobs with one name or one table is BASE_ECONFIG.
 */
int jobs_load_dir(const char *dir, struct jobs_set *out, struct base_err *err);

/* Keeps only the jobs named in the comma-separated list; an unknown name is BASE_ECONFIG. */
int jobs_select(struct jobs_set *set, const char *only_csv, struct base_err *err);
void jobs_set_free(struct jobs_set *set);

#endif
