/*
 * migrate_cmd.c: `keapsync migrate [--drop-columns]`: creates or upgrades keapsync's schema,
 * then brings each job's table in line with its job file (which run does too).
 */
#include "cli_int.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does dir hold a job file? (migrate without one only upgrades the schema) */
static bool has_job_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    if (d == NULL)
        return false;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);

        found = n > 5 && e->d_name[0] != '.' && strcmp(e->d_name + n - 5, ".json") == 0;
    }
    closedir(d);
    return found;
}

int cli_cmd_migrate(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct store *s;
    bool drop = false;
    int applied = 0, version = 0, code = 0;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--drop-columns") == 0)
            drop = true;
        else
            return cli_fail_usage("unknown option \"%s\" for migrate", argv[i]);
    }
    if (has_job_files(cli_env_or("KEAPSYNC_JOBS", "jobs")) && cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_connect_db(&s, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    if (store_migrate(s, &applied, &err) < 0 || store_ensure_schema(s, &err) < 0)
        code = cli_fail(EXIT_FAILURE, &err);
    else if (cli_evolve_jobs(s, &set, drop, &err) < 0)
        code = cli_fail(err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE, &err);
    if (code == 0) {
        store_schema_version(s, &version, &err);
        printf("migrate: %d migration%s applied, schema at version %d, %zu job%s in line\n",
               applied, applied == 1 ? "" : "s", version, set.n, set.n == 1 ? "" : "s");
    }
    store_close(s);
    jobs_set_free(&set);
    return code;
}
