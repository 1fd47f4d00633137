/*
 * run_cmd.c: `keapsync run [--only A,B] [--drop-columns]`: syncs the jobs into Postgres and
 * reports each job's outcome; the exit code is the run's outcome (cli_outcome_exit_code).
 */
#include "cli_int.h"
#include "auth_cmd.h"
#include "labels.h"
#include "ops.h"
#include "plan_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "Usage: keapsync run [--only A,B] [--drop-columns]\n"
    "\n"
    "Syncs the jobs in KEAPSYNC_JOBS (all, or those named) from Keap into DATABASE_URL:\n"
    "each job's window is read page by page under KEAPSYNC_LIMITS and the daily quota\n"
    "ledger, and each page is committed with the job's checkpoint, so a run stopped for any\n"
    "reason resumes where it stopped. Then pending backfills and delete sweeps continue.\n"
    "Prints one line per job and one for the run; records the run in keapsync.runs.\n"
    "\n"
    "  --only A,B      sync only these jobs\n"
    "  --drop-columns  drop the columns a job no longer has (default: keep them)\n"
    "\n"
    "Exit codes: 0 every job complete; 75 daily quota spent, progress saved (run again after\n"
    "00:00 UTC); 77 authentication refused; 130 stopped by SIGINT or SIGTERM, progress saved\n"
    "(a second signal leaves at once, exit 1); 2 bad usage or configuration; 1 other failure.\n";

static const char *outcome_word(enum sched_outcome o)
{
    switch (o) {
    case SCHED_OUTCOME_COMPLETE:
        return "complete";
    case SCHED_OUTCOME_QUOTA:
        return "quota";
    case SCHED_OUTCOME_AUTH:
        return "auth";
    case SCHED_OUTCOME_FAILED:
        return "failed";
    case SCHED_OUTCOME_INTERRUPTED:
        return "interrupted";
    case SCHED_OUTCOME_NOMEM:
        return "nomem";
    }
    return "failed";
}

/* KEAPSYNC_METRICS_FILE, when set, rewritten from the run history (a failure only warns). */
static void write_metrics(struct store *s, const struct sched_options *opt)
{
    const char *path = cli_env_or("KEAPSYNC_METRICS_FILE", NULL);
    struct ops_quota q = {0};
    struct base_err err;
    char *tenant = NULL;

    if (path == NULL)
        return;
    base_err_clear(&err);
    if (cli_plan_tenant(s, opt->base_url, &tenant, &err) == 0) {
        q.tenant = tenant;
        q.now_ms = base_clock_wall_ms(base_clock_system());
        q.daily_budget =
            opt->limits.per_day > 0
                ? (int64_t)((double)opt->limits.per_day * (1.0 - opt->limits.reserve_fraction))
                : 0;
        if (ops_metrics_write(s, &q, path, &err) == 0)
            base_log_debug("metrics written to \"%s\"", path);
    }
    if (err.msg[0] != '\0')
        base_log_warning("%s", err.msg);
    free(tenant);
}

/* cli_int.h */
void cli_record_run_end(struct store *s, int64_t run_id, int code, struct sched_result *res)
{
    struct store_run_job *jobs = calloc(res->njobs ? res->njobs : 1, sizeof(*jobs));
    struct store_run_end e = {
        .outcome = outcome_word(res->outcome),
        .exit_code = code,
        .requests = res->requests,
        .rows = res->rows,
        .bytes = res->bytes,
        .rejected_429 = res->rejected_429,
        .rejected_429_other = res->rejected_429_by[PACE_LIMIT_UNKNOWN],
        .rejected_429_second = res->rejected_429_by[PACE_LIMIT_SPIKE],
        .rejected_429_minute = res->rejected_429_by[PACE_LIMIT_MINUTE],
        .rejected_429_day = res->rejected_429_by[PACE_LIMIT_DAY],
        .message = res->message,
        .commit_buckets = res->commit_buckets,
        .commit_seconds = res->commit_seconds,
    };
    struct base_err err;

    base_err_clear(&err);
    if (res->message[0] == '\0' && res->outcome != SCHED_OUTCOME_COMPLETE) {
        size_t n = 0;

        for (size_t i = 0; i < res->njobs; i++)
            if (res->jobs[i].error[0] != '\0' && n + 8 < sizeof(res->message)) {
                int w = snprintf(res->message + n, sizeof(res->message) - n, "%sjob \"%s\": %s",
                                 n ? "; " : "", res->jobs[i].name, res->jobs[i].error);

                n = w > 0 && (size_t)w < sizeof(res->message) - n ? n + (size_t)w
                                                                  : sizeof(res->message) - 1;
            }
        if (n == 0)
            snprintf(res->message, sizeof(res->message), "the run ended %s",
                     outcome_word(res->outcome));
    }
    if (jobs != NULL) {
        for (size_t i = 0; i < res->njobs; i++) {
            const struct sched_job_result *j = &res->jobs[i];

            jobs[i] = (struct store_run_job){
                .job = j->name,
                .state = sched_job_state_name(j->state),
                .requests = j->requests,
                .rejected_429 = j->rejected_429,
                .pages = j->pages,
                .records = j->rows,
                .bytes = j->bytes,
                .error = j->error,
            };
        }
        e.jobs = jobs;
        e.njobs = res->njobs;
    }
    if (store_run_end(s, run_id, &e, &err) < 0)
        base_log_warning("%s", err.msg);
    free(jobs);
}

/*
 * A job whose first page was a 404 (Keap has no such list: a wrong "endpoint") and that never
 * committed a page (no checkpoint) leaves no table: its table, made at its start, goes again
 * if it is still empty. One line says so, naming the job, the endpoint and the status.
 */
static void drop_missing_lists(struct store *s, const struct jobs_set *set,
                               const struct sched_result *res)
{
    for (size_t i = 0; i < res->njobs; i++) {
        const struct sched_job_result *r = &res->jobs[i];
        const struct jobs_job *job = NULL;
        char want[300], *ckpt = NULL;
        struct base_err err;
        bool dropped = false;

        if (strcmp(sched_job_state_name(r->state), "failed") != 0 || r->pages != 0)
            continue;
        for (size_t k = 0; k < set->n; k++)
            if (strcmp(set->jobs[k].name, r->name) == 0)
                job = &set->jobs[k];
        if (job == NULL || job->parent_job != NULL)
            continue;
        snprintf(want, sizeof(want), "could not fetch page at offset 0 of \"%s\": HTTP 404",
                 r->name);
        if (strncmp(r->error, want, strlen(want)) != 0)
            continue;
        base_err_clear(&err);
        if (store_checkpoint_load(s, job->name, &ckpt, &err) < 0 || ckpt != NULL) {
            free(ckpt);
            continue; /* it committed before: its table stays */
        }
        if (store_drop_empty_table(s, job->table, &dropped, &err) < 0)
            base_log_warning("%s", err.msg);
        if (dropped)
            fprintf(stderr,
                    "keapsync: error: job \"%s\": endpoint %s does not exist at KEAP_BASE_URL "
                    "(HTTP 404 on its first page); its empty table %s.%s was not kept (hint: fix "
                    "\"endpoint\" in %s)\n",
                    job->name, job->endpoint, store_target_schema(), job->table, job->file);
    }
}

int cli_cmd_run(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct keap_credential cred = {0};
    struct cli_oauth *oauth = NULL;
    struct sched_options opt = {0};
    struct sched_result res;
    struct store *s = NULL;
    const char *only = NULL;
    bool drop = false;
    int64_t run_id = 0;
    char stop_line[512] = "";
    bool *passes;
    int code, rc;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return fputs(run_usage, stdout), 0;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strncmp(argv[i], "--only=", 7) == 0)
            only = argv[i] + 7;
        else if (strcmp(argv[i], "--drop-columns") == 0)
            drop = true;
        else
            return cli_fail_usage("unknown option \"%s\" for run", argv[i]);
    }
    /* Everything that can be wrong with the configuration is found before any write. */
    if (cli_load_limits(&opt.limits, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_base_url(&opt.base_url, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_load_jobs(&set, only, &err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (cli_credential_env(&cred, &oauth, &err) < 0 || cli_app_limits(&opt, oauth, &err) < 0) {
        cli_oauth_free(oauth);
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    if (cli_connect_migrated(&s, &err) < 0) {
        keap_credential_clear(&cred);
        cli_oauth_free(oauth);
        jobs_set_free(&set);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    /* OAuth2: the stored access token, refreshed first when due. */
    if (cli_credential_db(s, &cred, oauth, &err) < 0) {
        code = cli_fail(err.code == BASE_EAUTH     ? CLI_EXIT_AUTH
                        : err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG
                                                   : EXIT_FAILURE,
                        &err);
        goto out;
    }
    opt.oauth = oauth ? &oauth->so : NULL;
    opt.tenant = cli_env_or("KEAPSYNC_TENANT", NULL);
    {
        bool checked;

        /* Labels are resolved before anything but the model requests' ledger reservation. */
        if (cli_resolve_labels(&set, s, &opt.limits, opt.base_url, opt.tenant, &checked, &err) <
            0) {
            code = err.code == BASE_EQUOTA                                  ? CLI_EXIT_QUOTA
                   : err.code == BASE_EAUTH                                 ? CLI_EXIT_AUTH
                   : err.code == BASE_ECONFIG || err.code == BASE_ENOTFOUND ? CLI_EXIT_CONFIG
                                                                            : EXIT_FAILURE;
            cli_fail(code, &err);
            goto out;
        }
    }
    /* The tables follow the job files (labels resolved) before any page or run record. */
    if (cli_evolve_jobs(s, &set, drop, &err) < 0) {
        code = cli_fail(err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE, &err);
        goto out;
    }
    {
        struct base_buf names;

        base_buf_init(&names, 64 * 1024);
        for (size_t i = 0; i < set.n; i++)
            base_buf_printf(&names, "%s%s", i ? "," : "", set.jobs[i].name);
        if (store_run_begin(s, names.data ? names.data : "", &run_id, &err) < 0)
            base_log_warning("%s", err.msg);
        else
            base_log_set_run(run_id);
        base_buf_free(&names);
    }
    passes = cli_plan_run_begin(s, &set, &opt);
    cli_progress_begin(&opt);
    rc = sched_run(&opt, &set, s, &cred, &res, &err);
    cli_progress_end();
    if (rc < 0) {
        free(passes);
        code = err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE;
        cli_fail(code, &err);
        if (run_id > 0)
            store_run_finish(s, run_id, code, 0, 0, err.msg, &err);
        goto out;
    }
    for (size_t i = 0; i < res.njobs; i++) {
        const struct sched_job_result *j = &res.jobs[i];

        printf("job \"%s\": %s, %" PRId64 " rows written, %" PRId64 " pages, %" PRId64 " requests",
               j->name, sched_job_state_name(j->state), j->rows, j->pages, j->requests);
        if (j->mismatches > 0)
            printf(", %" PRId64 " values of the wrong type stored as NULL", j->mismatches);
        if (j->nul_replaced > 0)
            printf(", %" PRId64 " NUL characters replaced", j->nul_replaced);
        if (j->deleted > 0)
            printf(", %" PRId64 " rows marked deleted", j->deleted);
        if (j->revived > 0)
            printf(", %" PRId64 " deleted rows listed again", j->revived);
        if (j->error[0] != '\0')
            printf(" (%s)", j->error);
        printf("\n");
    }
    drop_missing_lists(s, &set, &res);
    printf("run: %" PRId64 " requests, %" PRId64 " rejected with 429, %" PRId64
           " rows written in %.1f s\n",
           res.requests, res.rejected_429, res.rows, res.seconds);
    code = cli_outcome_exit_code(res.outcome);
    cli_plan_run_end(passes, s, &set, &opt, run_id, &res, stop_line, sizeof(stop_line));
    if (stop_line[0] != '\0') /* stopped at the quota: what is left, and when to come back */
        snprintf(res.message, sizeof(res.message), "%s", stop_line);
    if (res.outcome == SCHED_OUTCOME_AUTH)
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", res.message,
                oauth ? SCHED_OAUTH_REAUTH_HINT
                      : "check that KEAP_API_KEY holds a valid Personal Access Token or Service "
                        "Account Key for this account");
    else if (res.message[0] != '\0')
        fprintf(stderr, "keapsync: %s: %s\n",
                res.outcome == SCHED_OUTCOME_COMPLETE ? "note" : "stopped", res.message);
    if (run_id > 0)
        cli_record_run_end(s, run_id, code, &res);
    write_metrics(s, &opt);
    sched_result_free(&res);
out:
    store_close(s);
    keap_credential_clear(&cred);
    cli_oauth_free(oauth);
    jobs_set_free(&set);
    return code;
}
