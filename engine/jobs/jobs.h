/*
 * jobs: job definitions. A job is one Keap list read into one Postgres table; a job file
 * (jobs/<name>.json) defines it. A run executes jobs; "task" is not used.
 *
 * Words used here:
 *   job file      one JSON object; every key, its type, default and rules are documented in
 *                 docs/jobs.md (the one place), and unknown keys are errors.
 *   endpoint      the Keap list a job reads, "/v1/..." or "/v2/...", relative to KEAP_BASE_URL.
 *   column        a typed column of the job's table: a path into each record, or a custom
 *                 field named by its label ("custom_field").
 *   child stream  a job with "parent": one list per record of its parent job.
 *   query         fixed parameters a job adds to every request (never one keapsync sets).
 *   model         GET /v1/<object>/model: the custom fields of an object, which maps a label
 *                 to the id a record's custom_fields carry.
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
    char *parent_job;         /* child streams: the parent job's name, or NULL */
    char *parent_col;         /* the column holding the parent's id */
    char *parent_table;       /* the parent job's table (resolved by jobs_load_dir) */
    int refresh_hours;        /* 0: every run */
    int sweep_days;           /* "deletes": days between two delete sweeps; 0: none */
    char *schedule;           /* "schedule": cron expression in UTC (daemon), or NULL */
    char *description;        /* one sentence: why this endpoint and version; NULL when absent */
    struct keap_param *query; /* "query": fixed parameters for every request */
    size_t nquery;
    char **custom_labels; /* map.ncols entries: the label a column names, or NULL */
    char *model_object;   /* "contacts" for /v1/<object>/model, or NULL when it has none */
    size_t unresolved;    /* label columns without a path yet (jobs_resolve_custom_fields) */
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
/* The same for a job file's text already in memory (len bytes, not necessarily NUL-ended);
 * path names it in messages and gives the job its name. */
int jobs_load_buffer(const char *path, const char *text, size_t len, struct jobs_job *out,
                     struct base_err *err);
void jobs_job_free(struct jobs_job *job);

/*
 * Loads every *.json of dir, sorted by file name. An empty or missing dir is BASE_ECONFIG.
 * Two jobs with one name or one table is BASE_ECONFIG.
 */
int jobs_load_dir(const char *dir, struct jobs_set *out, struct base_err *err);

/*
 * Gives each column of job that names a custom field by label the path
 * custom_fields.[id=N].content, N the id of the field of that label in model (the parsed body
 * of GET /v1/<job->model_object>/model). An unknown or ambiguous label is BASE_ECONFIG with
 * '"<file>": columns[i].custom_field: column "<name>": ...' (close labels listed); a model
 * without a custom_fields array is BASE_EPROTO. Columns already resolved are left alone.
 */
int jobs_resolve_custom_fields(struct jobs_job *job, const cJSON *model, struct base_err *err);

/*
 * Is expr a usable schedule (a 5-field cron expression, cron.h, that fires at all)? BASE_EINVAL
 * with one line in msg naming the field otherwise. For "schedule" and KEAPSYNC_SCHEDULE.
 */
int jobs_check_schedule(const char *expr, char *msg, size_t n);

/* Keeps only the jobs named in the comma-separated list; an unknown name is BASE_ECONFIG. */
int jobs_select(struct jobs_set *set, const char *only_csv, struct base_err *err);
void jobs_set_free(struct jobs_set *set);

#endif
