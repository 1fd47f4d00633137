/*
 * check_cmd.c: `keapsync check`: validates the job files (and, when Keap answers, their custom
 * field labels) without a database.
 */
#include "cli_int.h"
#include "labels.h"

#include <stdio.h>

static const char check_usage[] =
    "Usage: keapsync check\n"
    "\n"
    "Validates the job files in KEAPSYNC_JOBS (default jobs) and prints one line per job:\n"
    "its endpoint, its table and its columns. No database is needed. When KEAP_API_KEY (or\n"
    "KEAP_API_KEY_FILE) is set and Keap answers, custom field labels are checked too.\n"
    "\n"
    "Exit codes: 0 every job file is valid; 2 a job file or the configuration is wrong.\n";

int cli_cmd_check(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct pace_config cfg;
    const char *dflt;

    const char *base_url;
    bool labels = true;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return fputs(check_usage, stdout), 0;
        return cli_fail_option("check", argv[i]);
    }
    if (cli_load_limits(&cfg, &err) < 0 || cli_default_schedule(&dflt, &err) < 0 ||
        cli_base_url(&base_url, &err) < 0 ||
        cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_resolve_labels(&set, NULL, &cfg, base_url, NULL, &labels, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    for (size_t i = 0; i < set.n; i++)
        printf("job \"%s\": %s -> %s.%s, %zu columns%s%s\n", set.jobs[i].name, set.jobs[i].endpoint,
               store_target_schema(), set.jobs[i].table, set.jobs[i].map.ncols,
               set.jobs[i].incremental ? ", incremental" : "",
               set.jobs[i].unresolved > 0 ? ", custom field labels not checked" : "");
    printf("check: %zu job%s valid\n", set.n, set.n == 1 ? "" : "s");
    jobs_set_free(&set);
    return 0;
}
