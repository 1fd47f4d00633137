/*
 * run_cmd.c: `keapsync run [--only A,B] [--drop-columns]`: syncs the jobs into Postgres and
 * reports each job's outcome; the exit code is the run's outcome (cli_outcome_exit_code).
 */
#include "cli_int.h"
#include "auth_cmd.h"
#include "labels.h"
#include "plan_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int code;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
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
        base_buf_free(&names);
    }
    passes = cli_plan_run_begin(s, &set, &opt);
    if (sched_run(&opt, &set, s, &cred, &res, &err) < 0) {
        free(passes);
        code = err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE;
        cli_fail(code, &err);
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
    if (store_run_finish(s, run_id, code, res.requests, res.rows, res.message, &err) < 0)
        base_log_warning("%s", err.msg);
    sched_result_free(&res);
out:
    store_close(s);
    keap_credential_clear(&cred);
    cli_oauth_free(oauth);
    jobs_set_free(&set);
    return code;
}
