/*
 * backfill_cmd.c: `keapsync backfill NAME --from DATE [--to DATE]`: records a backfill of an
 * incremental job's history, which every later run continues until it is done.
 */
#include "cli_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Reads a DATE of the backfill command: YYYY-MM-DD (00:00 UTC) or a full ISO-8601 time
 * (no zone: UTC) into *ms; false when it is neither.
 */
static bool parse_date(const char *arg, int64_t *ms)
{
    char buf[64];
    size_t n = strlen(arg);

    if (n == 10 && arg[4] == '-' && arg[7] == '-') {
        snprintf(buf, sizeof(buf), "%sT00:00:00Z", arg);
        return base_time_parse(buf, ms) == 0;
    }
    return n < sizeof(buf) && strchr(arg, 'T') != NULL && base_time_parse(arg, ms) == 0;
}

/* Bad input to backfill: exit 2 with what (formatted with a and b, which name the input). */
#define bad_backfill(hint, fmt, a, b)                                                              \
    bad_backfill_msg(hint, (snprintf(bmsg, sizeof(bmsg), fmt, a, b), bmsg))

static int bad_backfill_msg(const char *hint, const char *msg)
{
    struct base_err err;

    base_err_set(&err, BASE_ECONFIG, "%s", msg);
    base_err_hint(&err, "%s", hint);
    return cli_fail(CLI_EXIT_CONFIG, &err);
}

int cli_cmd_backfill(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    const struct jobs_job *job = NULL;
    const char *name = NULL, *from_s = NULL, *to_s = NULL;
    char from_txt[32], to_txt[32], bmsg[512];
    int64_t from, to, now = base_clock_wall_ms(base_clock_system()), id = 0;
    struct store *s;
    int code = 0;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from_s = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to_s = argv[++i];
        else if (argv[i][0] != '-' && name == NULL)
            name = argv[i];
        else
            return cli_fail_usage("unknown option or extra argument \"%s\" for backfill", argv[i]);
    }
    if (name == NULL || from_s == NULL)
        return cli_fail_usage("backfill needs a job name and --from DATE%s", "");
    if (!parse_date(from_s, &from))
        return bad_backfill("write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, in UTC",
                            "--from \"%s\" is not a date%s", from_s, "");
    if (to_s != NULL && !parse_date(to_s, &to))
        return bad_backfill("write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, in UTC",
                            "--to \"%s\" is not a date%s", to_s, "");
    if (to_s == NULL)
        to = now;
    if (from > now || to > now)
        return bad_backfill("a backfill reads history: give dates up to now (leave out --to "
                            "for now)",
                            "%s \"%s\" is in the future", from > now ? "--from" : "--to",
                            from > now ? from_s : to_s);
    if (from >= to)
        return bad_backfill("give a --from before --to", "--from \"%s\" is not before --to %s",
                            from_s, to_s ? to_s : "(now)");
    if (cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    for (size_t i = 0; i < set.n; i++)
        if (strcmp(cli_job_file_name(set.jobs[i].name), name) == 0)
            job = &set.jobs[i];
    if (job == NULL) {
        code = bad_backfill("run \"keapsync check\" to list the jobs", "no job is named \"%s\"%s",
                            name, "");
        goto out_jobs;
    }
    if (!job->incremental) {
        code = bad_backfill("only incremental jobs have a history to backfill; a job that reads "
                            "everything reads it all on each pass",
                            "job \"%s\" is not incremental%s", name, "");
        goto out_jobs;
    }
    if (cli_connect_migrated(&s, &err) < 0) {
        code = cli_fail(CLI_EXIT_CONFIG, &err);
        goto out_jobs;
    }
    if (store_backfill_add(s, job->name, from, to, &id, &err) < 0) {
        code = cli_fail(EXIT_FAILURE, &err);
    } else {
        base_time_format(from, from_txt, sizeof(from_txt));
        base_time_format(to, to_txt, sizeof(to_txt));
        printf("backfill %" PRId64 " of \"%s\" recorded: %s to %s; every run continues it "
               "after its incrementals until it is done\n",
               id, job->name, from_txt, to_txt);
    }
    store_close(s);
out_jobs:
    jobs_set_free(&set);
    return code;
}
