/*
 * main.c: the keapsync command line. Reads the environment (DESIGN.md's table), validates
 * everything before touching the database, runs one command and maps its outcome to the
 * documented exit codes:
 *   0  all selected jobs complete
 *   75 stopped at the daily quota with progress saved (run again after 00:00 UTC)
 *   77 authentication refused
 *   2  bad usage or bad configuration (nothing written)
 *   1  any other failure (progress up to the last commit kept)
 * Errors are one line: "keapsync: error: <what is wrong> (hint: <how to fix it>)".
 */
#include "auth_cmd.h"
#include "base.h"
#include "http.h"
#include "jobs.h"
#include "keap.h"
#include "labels.h"
#include "pace.h"
#include "plan_cmd.h"
#include "sched.h"
#include "store.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_CONFIG 2
#define EXIT_QUOTA  75
#define EXIT_AUTH   77

static const char usage[] =
    "keapsync " KEAPSYNC_VERSION ": replicate a Keap CRM account into PostgreSQL\n"
    "\n"
    "Usage: keapsync [-v|-q] COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  migrate [--drop-columns]\n"
    "                        create or upgrade keapsync's schema in DATABASE_URL and bring\n"
    "                        each job's table in line with its job file\n"
    "  check                 validate the job files in KEAPSYNC_JOBS (no database needed)\n"
    "  run [--only A,B] [--drop-columns]\n"
    "                        sync the jobs (all, or the named ones) into Postgres\n"
    "  --drop-columns        drop the columns a job no longer has (default: keep them)\n"
    "  status                show each job's checkpoint, sweeps and backfills; exits 1 if a\n"
    "                        job's last run failed\n"
    "  backfill NAME --from DATE [--to DATE]\n"
    "                        record a backfill of incremental job NAME's history over\n"
    "                        [--from, --to) (YYYY-MM-DD or ISO-8601, UTC; --to defaults to\n"
    "                        now); every later run continues it until it is done\n"
    "  plan [--json] [--only A,B]\n"
    "                        estimate each job's records, requests and finish date against\n"
    "                        the daily quota (see keapsync plan --help)\n"
    "  auth --code CODE --redirect-uri URI | auth --refresh-token-file FILE\n"
    "                        store an OAuth2 client's first token pair: from an authorization\n"
    "                        code (short-lived, single-use) or an existing refresh token\n"
    "  --help, --version\n"
    "\n"
    "Environment:\n"
    "  DATABASE_URL          libpq connection string or URI (default: libpq's PG* variables)\n"
    "  KEAP_API_KEY          Personal Access Token or Service Account Key\n"
    "  KEAP_API_KEY_FILE     or a file holding it (mode 0600)\n"
    "  KEAP_CLIENT_ID        OAuth2 client id, used when no API key is set (keapsync auth)\n"
    "  KEAP_CLIENT_SECRET_FILE  a file holding its secret (mode 0600), or KEAP_CLIENT_SECRET\n"
    "  KEAP_TOKEN_URL        OAuth2 token endpoint (default " KEAP_DEFAULT_TOKEN_URL ")\n"
    "  KEAPSYNC_TOKEN_KEY_FILE  32-byte key: OAuth2 tokens encrypted at rest\n"
    "  KEAPSYNC_APP_LIMITS   the OAuth2 client's limits (default 1500/min,150000/day)\n"
    "  KEAPSYNC_TENANT_CEILING  every credential of the tenant (default 10000/min,250000/day)\n"
    "  KEAP_BASE_URL         API root (default " KEAP_DEFAULT_BASE_URL ")\n"
    "  KEAPSYNC_LIMITS       ceilings (default 10/s,240/min,30000/day)\n"
    "  KEAPSYNC_RESERVE      share of the daily quota left to other integrations (e.g. 10%)\n"
    "  KEAPSYNC_TENANT       ledger key for the daily quota (default: Keap's tenant id)\n"
    "  KEAPSYNC_JOBS         job definitions folder (default jobs)\n"
    "  KEAPSYNC_LOG_LEVEL    debug, info, warning or error (default info)\n"
    "\n"
    "Exit codes: 0 done; 75 daily quota spent, progress saved; 77 authentication refused;\n"
    "2 bad usage or configuration; 1 any other failure.\n";

/* The exit code of a run's outcome (DESIGN.md): the one place that spells it. */
static int outcome_exit_code(enum sched_outcome outcome)
{
    switch (outcome) {
    case SCHED_OUTCOME_COMPLETE:
        return 0;
    case SCHED_OUTCOME_QUOTA:
        return EXIT_QUOTA;
    case SCHED_OUTCOME_AUTH:
        return EXIT_AUTH;
    case SCHED_OUTCOME_FAILED:
    case SCHED_OUTCOME_INTERRUPTED:
    case SCHED_OUTCOME_NOMEM:
        return EXIT_FAILURE;
    }
    return EXIT_FAILURE; /* not reached: every outcome is listed above */
}

static int fail(int code, const struct base_err *err)
{
    if (err->hint[0] != '\0')
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", err->msg, err->hint);
    else
        fprintf(stderr, "keapsync: error: %s\n", err->msg);
    return code;
}

/* what: a message with one %s for arg. */
static int fail_usage(const char *what, const char *arg)
{
    struct base_err err;
    const char *at = strstr(what, "%s");
    int prefix = at ? (int)(at - what) : (int)strlen(what);

    base_err_set(&err, BASE_ECONFIG, "%.*s%s%s", prefix, what, at ? arg : "", at ? at + 2 : "");
    base_err_hint(&err, "see keapsync --help");
    return fail(EXIT_CONFIG, &err);
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : dflt;
}

static int set_log_level(struct base_err *err)
{
    const char *lvl = env_or("KEAPSYNC_LOG_LEVEL", NULL);

    if (lvl == NULL)
        return 0;
    if (strcmp(lvl, "debug") == 0)
        base_log_set_level(BASE_LOG_DEBUG);
    else if (strcmp(lvl, "info") == 0)
        base_log_set_level(BASE_LOG_INFO);
    else if (strcmp(lvl, "warning") == 0)
        base_log_set_level(BASE_LOG_WARNING);
    else if (strcmp(lvl, "error") == 0)
        base_log_set_level(BASE_LOG_ERROR);
    else {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_LOG_LEVEL \"%s\"", lvl);
        base_err_hint(err, "use debug, info, warning or error");
        return BASE_ECONFIG;
    }
    return 0;
}

static int load_limits(struct pace_config *cfg, struct base_err *err)
{
    const char *spec = env_or("KEAPSYNC_LIMITS", NULL);
    const char *reserve = env_or("KEAPSYNC_RESERVE", NULL);
    int rc;

    pace_config_default(cfg);
    if (spec != NULL && (rc = pace_config_parse(spec, cfg, err)) < 0)
        return rc;
    if (reserve != NULL && (rc = pace_reserve_parse(reserve, &cfg->reserve_fraction, err)) < 0)
        return rc;
    return 0;
}

static int load_jobs(struct jobs_set *set, const char *only, struct base_err *err)
{
    int rc = jobs_load_dir(env_or("KEAPSYNC_JOBS", "jobs"), set, err);

    if (rc < 0)
        return rc;
    if (only != NULL && (rc = jobs_select(set, only, err)) < 0) {
        jobs_set_free(set);
        return rc;
    }
    return 0;
}

static int connect_db(struct store **s, struct base_err *err)
{
    return store_connect(s, env_or("DATABASE_URL", NULL), err);
}

/* Connects and checks that `keapsync migrate` has been run with this version. */
static int connect_migrated(struct store **out, struct base_err *err)
{
    struct store *s;
    int version, rc;

    rc = connect_db(&s, err);
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

/*
 * Brings every job's table in line with its job file (store_evolve_table): all are checked
 * first, so a refused change (BASE_ECONFIG) leaves every table as it was. A job whose custom
 * field labels are not resolved yet (migrate asks Keap nothing) follows at the next run.
 */
static int evolve_jobs(struct store *s, const struct jobs_set *set, bool drop_columns,
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

static int cmd_migrate(int argc, char **argv)
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
            return fail_usage("unknown option \"%s\" for migrate", argv[i]);
    }
    if (has_job_files(env_or("KEAPSYNC_JOBS", "jobs")) && load_jobs(&set, NULL, &err) < 0)
        return fail(EXIT_CONFIG, &err);
    if (connect_db(&s, &err) < 0) {
        jobs_set_free(&set);
        return fail(EXIT_CONFIG, &err);
    }
    if (store_migrate(s, &applied, &err) < 0)
        code = fail(EXIT_FAILURE, &err);
    else if (evolve_jobs(s, &set, drop, &err) < 0)
        code = fail(err.code == BASE_ECONFIG ? EXIT_CONFIG : EXIT_FAILURE, &err);
    if (code == 0) {
        store_schema_version(s, &version, &err);
        printf("migrate: %d migration%s applied, schema at version %d, %zu job%s in line\n",
               applied, applied == 1 ? "" : "s", version, set.n, set.n == 1 ? "" : "s");
    }
    store_close(s);
    jobs_set_free(&set);
    return code;
}

static int cmd_check(void)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct pace_config cfg;

    bool labels = true;

    base_err_clear(&err);
    if (load_limits(&cfg, &err) < 0 || load_jobs(&set, NULL, &err) < 0)
        return fail(EXIT_CONFIG, &err);
    if (cli_resolve_labels(&set, NULL, &cfg, env_or("KEAP_BASE_URL", KEAP_DEFAULT_BASE_URL), NULL,
                           &labels, &err) < 0) {
        jobs_set_free(&set);
        return fail(EXIT_CONFIG, &err);
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

static int cmd_run(int argc, char **argv)
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
            return fail_usage("unknown option \"%s\" for run", argv[i]);
    }
    /* Everything that can be wrong with the configuration is found before any write. */
    if (load_limits(&opt.limits, &err) < 0)
        return fail(EXIT_CONFIG, &err);
    if (load_jobs(&set, only, &err) < 0)
        return fail(EXIT_CONFIG, &err);
    if (cli_credential_env(&cred, &oauth, &err) < 0 || cli_app_limits(&opt, oauth, &err) < 0) {
        cli_oauth_free(oauth);
        jobs_set_free(&set);
        return fail(EXIT_CONFIG, &err);
    }
    if (connect_migrated(&s, &err) < 0) {
        keap_credential_clear(&cred);
        cli_oauth_free(oauth);
        jobs_set_free(&set);
        return fail(EXIT_CONFIG, &err);
    }
    /* OAuth2: the stored access token, refreshed first when due. */
    if (cli_credential_db(s, &cred, oauth, &err) < 0) {
        code = fail(err.code == BASE_EAUTH     ? EXIT_AUTH
                    : err.code == BASE_ECONFIG ? EXIT_CONFIG
                                               : EXIT_FAILURE,
                    &err);
        goto out;
    }
    opt.oauth = oauth ? &oauth->so : NULL;
    opt.base_url = env_or("KEAP_BASE_URL", KEAP_DEFAULT_BASE_URL);
    opt.tenant = env_or("KEAPSYNC_TENANT", NULL);
    {
        bool checked;

        /* Labels are resolved before anything but the model requests' ledger reservation. */
        if (cli_resolve_labels(&set, s, &opt.limits, opt.base_url, opt.tenant, &checked, &err) <
            0) {
            code = err.code == BASE_EQUOTA                                  ? EXIT_QUOTA
                   : err.code == BASE_EAUTH                                 ? EXIT_AUTH
                   : err.code == BASE_ECONFIG || err.code == BASE_ENOTFOUND ? EXIT_CONFIG
                                                                            : EXIT_FAILURE;
            fail(code, &err);
            goto out;
        }
    }
    /* The tables follow the job files (labels resolved) before any page or run record. */
    if (evolve_jobs(s, &set, drop, &err) < 0) {
        code = fail(err.code == BASE_ECONFIG ? EXIT_CONFIG : EXIT_FAILURE, &err);
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
        code = err.code == BASE_ECONFIG ? EXIT_CONFIG : EXIT_FAILURE;
        fail(code, &err);
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
    code = outcome_exit_code(res.outcome);
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
        fail(EXIT_FAILURE, &err);
        return true;
    }
    if (!found || last.exit_code == 0 || last.exit_code == EXIT_QUOTA)
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
        fail(EXIT_FAILURE, &err);
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

static int cmd_status(void)
{
    struct base_err err;
    struct jobs_set set = {0};
    struct store *s;
    int code = 0;

    base_err_clear(&err);
    if (load_jobs(&set, NULL, &err) < 0)
        return fail(EXIT_CONFIG, &err);
    if (connect_migrated(&s, &err) < 0) {
        jobs_set_free(&set);
        return fail(EXIT_CONFIG, &err);
    }
    for (size_t i = 0; i < set.n; i++) {
        char *ckpt = NULL;

        if (store_checkpoint_load(s, set.jobs[i].name, &ckpt, &err) < 0) {
            fail(EXIT_FAILURE, &err);
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
    return fail(EXIT_CONFIG, &err);
}

static int cmd_backfill(int argc, char **argv)
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
            return fail_usage("unknown option or extra argument \"%s\" for backfill", argv[i]);
    }
    if (name == NULL || from_s == NULL)
        return fail_usage("backfill needs a job name and --from DATE%s", "");
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
    if (load_jobs(&set, NULL, &err) < 0)
        return fail(EXIT_CONFIG, &err);
    for (size_t i = 0; i < set.n; i++)
        if (strcmp(set.jobs[i].name, name) == 0)
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
    if (connect_migrated(&s, &err) < 0) {
        code = fail(EXIT_CONFIG, &err);
        goto out_jobs;
    }
    if (store_backfill_add(s, job->name, from, to, &id, &err) < 0) {
        code = fail(EXIT_FAILURE, &err);
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

int main(int argc, char **argv)
{
    struct base_err err;
    int i = 1, rc;

    base_log_set_prog("keapsync");
    base_err_clear(&err);
    if (set_log_level(&err) < 0)
        return fail(EXIT_CONFIG, &err);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            puts("keapsync " KEAPSYNC_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-v") == 0) {
            base_log_set_level(BASE_LOG_DEBUG);
        } else if (strcmp(argv[i], "-q") == 0) {
            base_log_set_level(BASE_LOG_WARNING);
        } else {
            return fail_usage("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return EXIT_CONFIG;
    }
    if (http_global_init() < 0) {
        base_err_set(&err, BASE_EIO, "could not initialise libcurl");
        return fail(EXIT_FAILURE, &err);
    }
    if (strcmp(argv[i], "migrate") == 0)
        rc = cmd_migrate(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "check") == 0 && argc == i + 1)
        rc = cmd_check();
    else if (strcmp(argv[i], "run") == 0)
        rc = cmd_run(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "status") == 0 && argc == i + 1)
        rc = cmd_status();
    else if (strcmp(argv[i], "backfill") == 0)
        rc = cmd_backfill(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "plan") == 0)
        rc = cli_plan(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "auth") == 0)
        rc = cli_cmd_auth(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "daemon") == 0)
        rc = fail_usage("command \"%s\" is not available in this version", argv[i]);
    else
        rc = fail_usage("unknown command or extra arguments: \"%s\"", argv[i]);
    http_global_cleanup();
    return rc;
}
