/*
 * check_cmd.c: `keapsync check`: validates the job files (and, when Keap answers, their custom
 * field labels) without a database.
 */
#include "cli_int.h"
#include "labels.h"

#include <stdio.h>

int cli_cmd_check(void)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct pace_config cfg;

    const char *base_url;
    bool labels = true;

    base_err_clear(&err);
    if (cli_load_limits(&cfg, &err) < 0 || cli_base_url(&base_url, &err) < 0 ||
        cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_resolve_labels(&set, NULL, &cfg, base_url, NULL, &labels, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    for (size_t i = 0; i < set.n; i++)
        printf("job \"%s\": %s -> keap.%s, %zu columns%s%s\n", set.jobs[i].name,
               set.jobs[i].endpoint, set.jobs[i].table, set.jobs[i].map.ncols,
               set.jobs[i].incremental ? ", incremental" : "",
               set.jobs[i].unresolved > 0 ? ", custom field labels not checked" : "");
    printf("check: %zu job%s valid\n", set.n, set.n == 1 ? "" : "s");
    jobs_set_free(&set);
    return 0;
}
