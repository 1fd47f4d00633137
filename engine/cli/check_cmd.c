/*
 * check_cmd.c: `keapsync check`: validates the job files (and, when Keap answers, their custom
 * field labels) without a database.
 */
#include "cli_int.h"
#include "labels.h"

#include <stdio.h>
#include <stdlib.h>

static const char check_usage[] =
    "Usage: keapsync check\n"
    "\n"
    "Validates the job files in KEAPSYNC_JOBS (default jobs) and prints one line per job:\n"
    "its endpoint, its table and its columns. No database is needed. When KEAP_API_KEY (or\n"
    "KEAP_API_KEY_FILE) is set and Keap answers, custom field labels are checked too, and\n"
    "each job's endpoint: one request per job (not child streams) for its first page, paced\n"
    "under KEAPSYNC_LIMITS and, when DATABASE_URL is set, counted in the quota ledger; a 404\n"
    "(Keap has no such list) is an error.\n"
    "\n"
    "Exit codes: 0 every job file is valid; 2 a job file or the configuration is wrong\n"
    "(a job's endpoint answering 404 included).\n";

int cli_cmd_check(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct pace_config cfg;
    const char *dflt;

    const char *base_url;
    struct store *s = NULL;
    bool labels = true, endpoints = true;
    int rc;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return fputs(check_usage, stdout), 0;
        return cli_fail_option("check", argv[i]);
    }
    if (cli_load_limits(&cfg, &err) < 0 || cli_default_schedule(&dflt, &err) < 0 ||
        cli_base_url(&base_url, &err) < 0 || cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_resolve_labels(&set, NULL, &cfg, base_url, NULL, &labels, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    /* The probes go in the quota ledger when there is one (DATABASE_URL, migrated). Keap
     * already out of reach for the labels (warned): the probes would only fail the same way. */
    if (!labels)
        endpoints = false;
    else if (cli_env_or("DATABASE_URL", NULL) != NULL && cli_connect_migrated(&s, &err) < 0) {
        base_log_info("the endpoint probes are not counted in the quota ledger: %s", err.msg);
        base_err_clear(&err);
        s = NULL;
    }
    rc = !labels ? 0
                 : cli_probe_endpoints(&set, s, &cfg, base_url, cli_env_or("KEAPSYNC_TENANT", NULL),
                                       &endpoints, &err);
    store_close(s);
    if (rc < 0) {
        jobs_set_free(&set);
        return cli_fail(err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE, &err);
    }
    for (size_t i = 0; i < set.n; i++)
        printf("job \"%s\": %s -> %s.%s, %zu columns%s%s%s\n", set.jobs[i].name,
               set.jobs[i].endpoint, store_target_schema(), set.jobs[i].table,
               set.jobs[i].map.ncols, set.jobs[i].incremental ? ", incremental" : "",
               set.jobs[i].unresolved > 0 ? ", custom field labels not checked" : "",
               !endpoints && set.jobs[i].parent_job == NULL ? ", endpoint not checked" : "");
    printf("check: %zu job%s valid\n", set.n, set.n == 1 ? "" : "s");
    jobs_set_free(&set);
    return 0;
}
