/*
 * status_cmd.c: `keapsync status`: each job's checkpoint, its pending sweeps and backfills;
 * exits 1 if a job's last run failed.
 */
#include "cli_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Did the last finished run of job fail (an exit code other than complete or stopped at the
 * quota)? Says so on stderr. A run covers all the jobs it selected, so a failure of one of
 * them counts for each.
 */
static bool last_run_failed(struct store *s, const char *job)
{
    struct store_run_info last;
    struct base_err err;
    bool found = false;

    base_err_clear(&err);
    if (store_run_last(s, job, &last, &found, &err) < 0) {
        cli_fail(EXIT_FAILURE, &err);
        return true;
    }
    if (!found || last.exit_code == 0 || last.exit_code == CLI_EXIT_QUOTA)
        return false;
    fprintf(stderr,
            "keapsync: error: the last run of job \"%s\" failed (run %" PRId64
            ", exit code %d)%s%s\n",
            job, last.id, last.exit_code, last.message[0] != '\0' ? ": " : "", last.message);
    return true;
}

/* status's sections on sweeps and backfills (sched_pending_work); returns code or 1. */
static int status_pending(struct store *s, const struct jobs_set *set, int code)
{
    struct sched_pending *p = NULL;
    struct base_err err;
    char a[32], b[32], c[32];

    base_err_clear(&err);
    if (sched_pending_work(s, set, NULL, &p, &err) < 0) {
        cli_fail(EXIT_FAILURE, &err);
        return EXIT_FAILURE;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (p[i].sweep_days <= 0)
            continue;
        if (p[i].last_sweep_ms >= 0)
            base_time_format(p[i].last_sweep_ms, a, sizeof(a));
        printf("sweep \"%s\": every %d days, last completed %s, %s\n", p[i].job, p[i].sweep_days,
               p[i].last_sweep_ms >= 0 ? a : "never",
               p[i].sweep_running ? "in progress"
               : p[i].sweep_due   ? "due at the next run"
                                  : "not due");
    }
    for (size_t i = 0; i < set->n; i++) {
        for (size_t k = 0; k < p[i].nbackfills; k++) {
            const struct sched_pending_backfill *bf = &p[i].backfills[k];
            double pct = 100.0 * (double)(bf->resume_ms - bf->from_ms) /
                         (double)(bf->to_ms > bf->from_ms ? bf->to_ms - bf->from_ms : 1);

            base_time_format(bf->from_ms, a, sizeof(a));
            base_time_format(bf->to_ms, b, sizeof(b));
            base_time_format(bf->resume_ms, c, sizeof(c));
            printf("backfill %" PRId64 " \"%s\": from %s to %s, read through %s (%.0f %%), %s\n",
                   bf->id, p[i].job, a, b, c, pct, bf->done ? "done" : "not done");
        }
    }
    sched_pending_free(p, set->n);
    return code;
}

int cli_cmd_status(void)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct store *s;
    int code = 0;

    base_err_clear(&err);
    if (cli_load_jobs(&set, NULL, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_connect_migrated(&s, &err) < 0) {
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    for (size_t i = 0; i < set.n; i++) {
        char *ckpt = NULL;

        if (store_checkpoint_load(s, set.jobs[i].name, &ckpt, &err) < 0) {
            cli_fail(EXIT_FAILURE, &err);
            code = EXIT_FAILURE;
            continue;
        }
        printf("job \"%s\": %s\n", set.jobs[i].name, ckpt ? ckpt : "never synced");
        free(ckpt);
        if (last_run_failed(s, set.jobs[i].name))
            code = EXIT_FAILURE;
    }
    code = status_pending(s, &set, code);
    store_close(s);
    jobs_set_free(&set);
    return code;
}
