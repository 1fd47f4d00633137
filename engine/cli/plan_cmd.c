/*
 * plan_cmd.c: `keapsync plan [--json] [--only A,B]` (the quota planner's estimates and finish
 * dates), and the planner's part of `keapsync run`: what each job spent is recorded after the
 * run, and a run stopped at the quota ends with the planner's line of what is left.
 *
 * Words used here:
 *   tenant  the ledger key, as sched charges it: KEAPSYNC_TENANT, the tenant Keap named for
 *           this API root before (keapsync.settings), or the API root itself.
 */
#include "plan_cmd.h"
#include "cli_int.h"
#include "auth_cmd.h"
#include "cli_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char plan_usage[] =
    "Usage: keapsync plan [--json] [--only A,B] [--max-probes N]\n"
    "\n"
    "Estimates, before spending, what syncing the jobs will cost: per job its records, its\n"
    "requests and the UTC day it finishes at today's remaining budget (the quota ledger and\n"
    "Keap's quota headers) and the tenant's daily quota after KEAPSYNC_RESERVE; then the\n"
    "total requests and days. Order: list jobs, then child streams (then backfills and\n"
    "delete sweeps), as a run admits them.\n"
    "\n"
    "Estimates come from the jobs' earlier passes (keapsync.job_stats) where there are any,\n"
    "else from probes: a few v1 pages whose lengths bracket the window's size, the cap spent\n"
    "where the brackets are widest until each is within 1 % (v2 jobs probe the resource's\n"
    "v1 list when it has the same filter), else one page (said so). A child\n"
    "stream costs a request per parent to read. Probes are at most a few dozen requests,\n"
    "paced under KEAPSYNC_LIMITS and counted in the quota ledger.\n"
    "\n"
    "  --json       one JSON object: total_requests, days, finish_date, today_left,\n"
    "               daily_budget, probe_requests and jobs[] (name, kind, pass, records,\n"
    "               requests, source, detail, finish_day, finish_date)\n"
    "  --only A,B   plan only these jobs\n"
    "  --max-probes N\n"
    "               spend at most N probe requests (default 64); jobs left unprobed are\n"
    "               estimated at one page, and say so\n"
    "\n"
    "Needs DATABASE_URL (migrated) and KEAP_API_KEY (or KEAP_API_KEY_FILE) for probes.\n"
    "Exit codes: 0 planned; 2 bad usage or configuration; 77 authentication refused; 1 other.\n";

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : dflt;
}

static int say(int code, const struct base_err *err)
{
    if (err->hint[0] != '\0')
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", err->msg, err->hint);
    else
        fprintf(stderr, "keapsync: error: %s\n", err->msg);
    return code;
}

int cli_plan_tenant(struct store *s, const char *base_url, char **out, struct base_err *err)
{
    const char *env = env_or("KEAPSYNC_TENANT", NULL);
    struct base_buf key;
    char *t = NULL;
    int rc = 0;

    if (env != NULL) {
        t = strdup(env);
    } else {
        base_buf_init(&key, 4096);
        rc = base_buf_printf(&key, "tenant:%s", base_url);
        if (rc == 0)
            rc = store_setting_get(s, key.data, &t, err);
        base_buf_free(&key);
        if (rc < 0)
            return rc;
        if (t == NULL)
            t = strdup(base_url); /* as sched charges an unknown tenant */
    }
    if (t == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    *out = t;
    return 0;
}

static int load_config(struct pace_config *cfg, struct jobs_set *set, const char *only,
                       struct base_err *err)
{
    const char *spec = env_or("KEAPSYNC_LIMITS", NULL), *reserve = env_or("KEAPSYNC_RESERVE", NULL);
    int rc;

    pace_config_default(cfg);
    if (spec != NULL && (rc = pace_config_parse(spec, cfg, err)) < 0)
        return rc;
    if (reserve != NULL && (rc = pace_reserve_parse(reserve, &cfg->reserve_fraction, err)) < 0)
        return rc;
    rc = jobs_load_dir(env_or("KEAPSYNC_JOBS", "jobs"), set, err);
    if (rc == 0 && only != NULL && (rc = jobs_select(set, only, err)) < 0)
        jobs_set_free(set);
    else if (rc == 0 && (rc = cli_qualify_jobs(set, err)) < 0)
        jobs_set_free(set);
    return rc;
}

static int connect_migrated(struct store **out, struct base_err *err)
{
    struct store *s;
    int version = 0, rc = store_connect(&s, env_or("DATABASE_URL", NULL), err);

    if (rc < 0)
        return rc;
    rc = store_schema_version(s, &version, err);
    if (rc == 0 && version < store_latest_version()) {
        base_err_set(err, BASE_ECONFIG,
                     "the database schema is at version %d, this keapsync needs version %d",
                     version, store_latest_version());
        base_err_hint(err, "run \"keapsync migrate\" first");
        rc = BASE_ECONFIG;
    }
    if (rc < 0) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int cli_plan(int argc, char **argv)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct keap_credential cred = {0};
    struct sched_plan_options opt = {0};
    struct sched_plan plan = {0};
    struct store *s = NULL;
    struct base_buf out;
    char **headers = NULL, *tenant = NULL;
    const char *only = NULL;
    bool json = false;
    int code = 0, rc;

    base_err_clear(&err);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(plan_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--max-probes") == 0 && i + 1 < argc) {
            int64_t v;

            if (base_parse_int64(argv[++i], &v) < 0 || v < 1 || v > 10000) {
                base_err_set(&err, BASE_ECONFIG, "invalid --max-probes \"%s\"", argv[i]);
                base_err_hint(&err, "give a number of requests from 1 to 10000 (default 64)");
                return say(CLI_EXIT_CONFIG, &err);
            }
            opt.max_probes = (int)v;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strncmp(argv[i], "--only=", 7) == 0) {
            only = argv[i] + 7;
        } else {
            base_err_set(&err, BASE_ECONFIG, "unknown option \"%s\" for plan", argv[i]);
            base_err_hint(&err, "see keapsync plan --help");
            return say(CLI_EXIT_CONFIG, &err);
        }
    }
    if (load_config(&opt.limits, &set, only, &err) < 0)
        return say(CLI_EXIT_CONFIG, &err);
    if (cli_base_url(&opt.base_url, &err) < 0) {
        jobs_set_free(&set);
        return say(CLI_EXIT_CONFIG, &err);
    }
    if (connect_migrated(&s, &err) < 0) {
        code = say(CLI_EXIT_CONFIG, &err);
        goto out;
    }
    /* Without credentials the plan still reads history; it says where it had to guess. An
     * API key, or the stored OAuth2 token (refreshed first when due). */
    if (cli_credential(s, &cred, &err) == 0) {
        if (keap_auth_headers(&cred, &headers) < 0)
            headers = NULL;
    } else {
        fprintf(stderr, "keapsync: warning: no probes: %s\n", err.msg);
        base_err_clear(&err);
    }
    keap_credential_clear(&cred);
    if (cli_plan_tenant(s, opt.base_url, &tenant, &err) < 0) {
        code = say(EXIT_FAILURE, &err);
        goto out;
    }
    opt.tenant = tenant;
    opt.headers = (const char *const *)headers;
    opt.save = true;
    rc = sched_plan_build(&opt, &set, s, &plan, &err);
    if (rc < 0) {
        code = say(rc == BASE_EAUTH ? CLI_EXIT_AUTH : EXIT_FAILURE, &err);
        goto out;
    }
    base_buf_init(&out, 4u * 1024 * 1024);
    rc = json ? sched_plan_json(&plan, &out) : sched_plan_text(&plan, &out);
    if (rc < 0) {
        base_err_set(&err, rc, "could not print the plan: %s", base_strerror(rc));
        code = say(EXIT_FAILURE, &err);
    } else {
        fputs(out.data ? out.data : "", stdout);
    }
    base_buf_free(&out);
out:
    sched_plan_free(&plan);
    keap_headers_free(headers);
    free(tenant);
    store_close(s);
    jobs_set_free(&set);
    return code;
}

/* A plan from history, the last plan and Postgres alone: no request is sent. */
static int plan_quietly(struct store *s, const struct jobs_set *set,
                        const struct sched_options *sopt, struct sched_plan *plan,
                        struct base_err *err)
{
    struct sched_plan_options opt = {0};
    char *tenant = NULL;
    int rc;

    opt.base_url = sopt->base_url;
    opt.limits = sopt->limits;
    rc = cli_plan_tenant(s, sopt->base_url, &tenant, err);
    if (rc == 0) {
        opt.tenant = tenant;
        rc = sched_plan_build(&opt, set, s, plan, err);
    }
    free(tenant);
    return rc;
}

bool *cli_plan_run_begin(struct store *s, const struct jobs_set *set,
                         const struct sched_options *sopt)
{
    struct sched_plan plan = {0};
    struct base_err err;
    bool *full = calloc(set->n ? set->n : 1, sizeof(*full));

    if (full == NULL)
        return NULL;
    if (sched_plan_passes(s, set, NULL, full, &err) < 0) {
        base_log_warning("%s", err.msg);
        free(full);
        return NULL;
    }
    /* Before spending: what the run is expected to cost (debug level: a run logs little
     * before its first page; keapsync plan probes for more). */
    if (plan_quietly(s, set, sopt, &plan, &err) < 0) {
        base_log_warning("%s", err.msg);
    } else if (plan.daily > 0) {
        base_log_debug("plan: ~%" PRId64 " requests over %d day%s (today %" PRId64 " of %" PRId64
                       " left), from history and earlier plans",
                       plan.total_requests, plan.days, plan.days == 1 ? "" : "s", plan.today_left,
                       plan.daily);
    } else {
        base_log_debug("plan: ~%" PRId64 " requests, from history and earlier plans",
                       plan.total_requests);
    }
    sched_plan_free(&plan);
    return full;
}

void cli_plan_run_end(bool *full, struct store *s, const struct jobs_set *set,
                      const struct sched_options *sopt, int64_t run_id,
                      const struct sched_result *res, char *line, size_t n)
{
    struct sched_plan plan = {0};
    struct base_err err;

    base_err_clear(&err);
    if (full != NULL && sched_plan_record(s, set, run_id, full, res, &err) < 0)
        base_log_warning("%s", err.msg);
    free(full);
    if (res->outcome != SCHED_OUTCOME_QUOTA || n == 0)
        return;
    /* What is left, from history and the last plan: no request is sent. */
    if (plan_quietly(s, set, sopt, &plan, &err) < 0) {
        base_log_warning("%s", err.msg);
        return;
    }
    sched_plan_stop_line(&plan, res, line, n);
    sched_plan_free(&plan);
}
