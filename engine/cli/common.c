/*
 * common.c: what the commands share (cli_int.h): the exit code of an outcome, error reports,
 * the environment, loading jobs, connecting to the database, and bringing the jobs' tables
 * in line with their job files.
 */
#include "cli_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The exit code of a run's outcome (DESIGN.md): the one place that spells it. */
int cli_outcome_exit_code(enum sched_outcome outcome)
{
    switch (outcome) {
    case SCHED_OUTCOME_COMPLETE:
        return 0;
    case SCHED_OUTCOME_QUOTA:
        return CLI_EXIT_QUOTA;
    case SCHED_OUTCOME_AUTH:
        return CLI_EXIT_AUTH;
    case SCHED_OUTCOME_FAILED:
    case SCHED_OUTCOME_INTERRUPTED:
    case SCHED_OUTCOME_NOMEM:
        return EXIT_FAILURE;
    }
    return EXIT_FAILURE; /* not reached: every outcome is listed above */
}

int cli_fail(int code, const struct base_err *err)
{
    if (err->hint[0] != '\0')
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", err->msg, err->hint);
    else
        fprintf(stderr, "keapsync: error: %s\n", err->msg);
    return code;
}

/* what: a message with one %s for arg. */
int cli_fail_usage(const char *what, const char *arg)
{
    struct base_err err;
    const char *at = strstr(what, "%s");
    int prefix = at ? (int)(at - what) : (int)strlen(what);

    base_err_set(&err, BASE_ECONFIG, "%.*s%s%s", prefix, what, at ? arg : "", at ? at + 2 : "");
    base_err_hint(&err, "see keapsync --help");
    return cli_fail(CLI_EXIT_CONFIG, &err);
}

const char *cli_env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : dflt;
}

int cli_load_limits(struct pace_config *cfg, struct base_err *err)
{
    const char *spec = cli_env_or("KEAPSYNC_LIMITS", NULL);
    const char *reserve = cli_env_or("KEAPSYNC_RESERVE", NULL);
    int rc;

    pace_config_default(cfg);
    if (spec != NULL && (rc = pace_config_parse(spec, cfg, err)) < 0)
        return rc;
    if (reserve != NULL && (rc = pace_reserve_parse(reserve, &cfg->reserve_fraction, err)) < 0)
        return rc;
    return 0;
}

int cli_set_schema(struct base_err *err)
{
    return store_set_target_schema(cli_env_or("KEAPSYNC_SCHEMA", "keap"), err);
}

/* "<schema>.<*name>" in place of *name (NULL stays NULL). */
static int qualify(const char *schema, char **name, struct base_err *err)
{
    size_t n;
    char *q;

    if (*name == NULL)
        return 0;
    n = strlen(schema) + 1 + strlen(*name) + 1;
    q = malloc(n);
    if (q == NULL)
        return base_err_set(err, BASE_ENOMEM, "could not load the jobs: out of memory");
    snprintf(q, n, "%s.%s", schema, *name);
    free(*name);
    *name = q;
    return 0;
}

int cli_qualify_jobs(struct jobs_set *set, struct base_err *err)
{
    const char *schema = store_target_schema();
    int rc = 0;

    if (strcmp(schema, "keap") == 0)
        return 0;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        rc = qualify(schema, &set->jobs[i].name, err);
        if (rc == 0)
            rc = qualify(schema, &set->jobs[i].parent_job, err);
    }
    return rc;
}

const char *cli_job_file_name(const char *name)
{
    const char *schema = store_target_schema();
    size_t n = strlen(schema);

    if (strcmp(schema, "keap") != 0 && strncmp(name, schema, n) == 0 && name[n] == '.')
        return name + n + 1;
    return name;
}

int cli_load_jobs(struct jobs_set *set, const char *only, struct base_err *err)
{
    int rc = jobs_load_dir(cli_env_or("KEAPSYNC_JOBS", "jobs"), set, err);

    if (rc == 0 && only != NULL)
        rc = jobs_select(set, only, err);
    if (rc == 0)
        rc = cli_qualify_jobs(set, err);
    if (rc < 0) {
        jobs_set_free(set);
        return rc;
    }
    return 0;
}

int cli_connect_db(struct store **s, struct base_err *err)
{
    return store_connect(s, cli_env_or("DATABASE_URL", NULL), err);
}

/* Connects and checks that `keapsync migrate` has been run with this version. */
int cli_connect_migrated(struct store **out, struct base_err *err)
{
    struct store *s;
    int version, rc;

    rc = cli_connect_db(&s, err);
    if (rc < 0)
        return rc;
    rc = store_schema_version(s, &version, err);
    if (rc < 0) {
        store_close(s);
        return rc;
    }
    if (version < store_latest_version()) {
        store_close(s);
        base_err_set(err, BASE_ECONFIG,
                     "the database schema is at version %d, this keapsync needs version %d",
                     version, store_latest_version());
        base_err_hint(err, "run \"keapsync migrate\" first");
        return BASE_ECONFIG;
    }
    *out = s;
    return 0;
}

int cli_evolve_jobs(struct store *s, const struct jobs_set *set, bool drop_columns,
                    struct base_err *err)
{
    for (int pass = 0; pass < 2; pass++) {
        struct store_evolve_options o = {.drop_columns = drop_columns, .check_only = pass == 0};

        for (size_t i = 0; i < set->n; i++) {
            const struct jobs_job *j = &set->jobs[i];
            struct store_table t = {j->table, &j->map, j->updated_field, j->parent_col};
            int rc;

            if (j->unresolved > 0) {
                if (pass == 0)
                    base_log_info("job \"%s\": its custom field labels are resolved when it "
                                  "runs; its table follows its job file then",
                                  j->name);
                continue;
            }
            rc = store_evolve_table(s, j->name, &t, &o, NULL, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
