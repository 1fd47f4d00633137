/*
 * daemon_cmd.c: `keapsync daemon`: runs the jobs on their schedules until stopped.
 *
 * One loop: find the jobs whose next tick has come (their missed ticks coalesce into one run),
 * run them together through sched_run (one pacer, one ledger, the job leases: jobs whose ticks
 * coincide share one run), record each job's outcome and tick in keapsync.daemon_jobs, then
 * sleep until the next tick. A run stopped at the day's quota makes the daemon sleep until
 * 00:00 UTC plus a jitter; the jobs it stopped are due again then, so backfills and sweeps go
 * on day after day. Nothing is sent while the day is spent.
 *
 * Words used here:
 *   tick       a minute a job's schedule (cron.h, UTC) names.
 *   due        a job that never ran under the daemon, or whose next tick after the one its
 *              last run served has come.
 *   heartbeat  the lease "daemon:<tenant>" (holder host:pid), renewed every
 *              DAEMON_HEARTBEAT_MS by a thread of its own with a connection of its own, while
 *              the daemon runs and while it sleeps.
 *
 * Signals: SIGTERM and SIGINT stop a run as they stop `run` (pages in flight land within
 * KEAPSYNC_STOP_TIMEOUT, loop.c) and the daemon exits 0; while sleeping it exits 0 at once.
 * SIGHUP reloads the job files between runs; a bad reload keeps the old set and logs one line.
 * Only revoked credentials (77) and bad configuration (2) end it otherwise: a database that
 * goes away is reconnected with capped exponential backoff; a job that failed is retried
 * after its own backoff (KEAPSYNC_RETRY_SECONDS, default 10 s, doubling to 64 times that), or
 * at its next tick when that comes sooner; its tick is served only once it runs to its end.
 *
 *   retry      what the daemon keeps of a failed job between runs (in memory: a restarted
 *              daemon runs it at once, as a job whose tick is not served): not before
 *              retry_at (wall ms), the last backoff.
 */
#include "cli_int.h"
#include "auth_cmd.h"
#include "cron.h"
#include "labels.h"
#include "ops.h"
#include "plan_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DAEMON_DEFAULT_SCHEDULE "0 * * * *"
#define DAEMON_HEARTBEAT_MS     10000
#define DAEMON_BACKOFF_MIN_MS   1000
#define DAEMON_BACKOFF_MAX_MS   60000
/* Sleeps are cut into slices this long so that a wall clock that jumps (NTP, a VM resumed,
 * faketime in tests) is noticed within a slice. */
#define DAEMON_SLICE_MS           1000
#define DAEMON_METRICS_INTERVAL_S 60
#define DAEMON_RETRY_DEFAULT_S    10
#define DAEMON_RETRY_GROWTH       64 /* the longest backoff: this many times the first */
/* /healthz: unhealthy when the daemon's thread has not turned for this long (it turns at least
 * every DAEMON_SLICE_MS asleep, every second during a run). */
#define DAEMON_HEALTH_ALIVE_MS 120000

static const char daemon_usage[] =
    "Usage: keapsync daemon [--metrics-port N]\n"
    "\n"
    "Runs the jobs of KEAPSYNC_JOBS on their schedules until stopped. Each job's \"schedule\"\n"
    "is a 5-field cron expression in UTC (minute hour day-of-month month day-of-week); jobs\n"
    "without one use KEAPSYNC_SCHEDULE, else \"" DAEMON_DEFAULT_SCHEDULE "\" (hourly). A job\n"
    "that never ran, or whose ticks were missed, runs at once (missed ticks make one run).\n"
    "When the day's quota is spent it sleeps until 00:00 UTC plus a jitter and resumes.\n"
    "\n"
    "Signals: SIGTERM or SIGINT stop it (pages in flight land within KEAPSYNC_STOP_TIMEOUT\n"
    "seconds, default 10), exit 0; SIGHUP reloads the job files (a bad reload keeps the old\n"
    "ones, with one log line).\n"
    "\n"
    "Options:\n"
    "  --metrics-port N      serve GET /metrics (Prometheus text) and GET /healthz (200 while\n"
    "                        the daemon turns and the database answered within two metrics\n"
    "                        intervals plus 10 s, else 503) on port N of KEAPSYNC_METRICS_ADDR;\n"
    "                        0 picks a free port and logs it\n"
    "\n"
    "Environment (beyond keapsync --help's):\n"
    "  KEAPSYNC_SCHEDULE     default schedule (default \"" DAEMON_DEFAULT_SCHEDULE "\")\n"
    "  KEAPSYNC_STOP_TIMEOUT seconds pages in flight may take to land after a signal (10)\n"
    "  KEAPSYNC_QUOTA_JITTER most seconds to wait after 00:00 UTC once the quota is spent\n"
    "                        (60; the wait is at least 5 s, or 0 when this is under 5)\n"
    "  KEAPSYNC_RETRY_SECONDS first wait before a failed job runs again (10); it doubles at\n"
    "                        each failure up to 64 times that, never past the job's next tick\n"
    "  KEAPSYNC_METRICS_FILE rewritten atomically every interval and after each run\n"
    "  KEAPSYNC_METRICS_INTERVAL seconds between gatherings of the metrics (60; 1 to 3600)\n"
    "  KEAPSYNC_METRICS_ADDR address --metrics-port listens on (127.0.0.1; 0.0.0.0 or :: for\n"
    "                        every interface, as in a container)\n"
    "\n"
    "Exit codes: 0 stopped by a signal; 77 authentication refused; 2 bad configuration;\n"
    "1 could not start (e.g. another daemon runs for this tenant).\n";

/* A failed job's retry (see the file header); parallel to the set's jobs. */
struct daemon_retry {
    int64_t retry_at; /* wall ms; 0: not failing */
    int64_t backoff_ms;
};

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t wake;
    volatile bool stop, reload;

    struct jobs_set set;
    struct base_cron *crons;
    const char **scheds; /* each job's expression (its own or the default) */
    struct daemon_retry *retry;
    int64_t retry_first_ms; /* KEAPSYNC_RETRY_SECONDS */
    const char *default_sched;

    struct store *s;
    struct sched_options opt;
    struct keap_credential cred;
    struct cli_oauth *oauth;
    int64_t quota_until; /* wall ms: nothing runs before (the day's quota is spent) */
    int jitter_max_s;
    int metrics_port;       /* -1: no listener */
    int metrics_interval_s; /* KEAPSYNC_METRICS_INTERVAL */
    struct ops_server *ops; /* when KEAPSYNC_METRICS_FILE or --metrics-port, else NULL */

    /* heartbeat thread */
    pthread_t hb;
    bool hb_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hb_quit;
    char lease[256];
    char holder[128];
};

/* ---- the default schedule ----------------------------------------------------------------- */

int cli_default_schedule(const char **out, struct base_err *err)
{
    const char *v = cli_env_or("KEAPSYNC_SCHEDULE", NULL);
    char msg[256];

    *out = DAEMON_DEFAULT_SCHEDULE;
    if (v == NULL)
        return 0;
    if (jobs_check_schedule(v, msg, sizeof(msg)) < 0) {
        base_err_set(err, BASE_ECONFIG, "KEAPSYNC_SCHEDULE: %s", msg);
        base_err_hint(err,
                      "a 5-field cron expression in UTC such as \"0 2 * * *\"; see docs/jobs.md");
        return BASE_ECONFIG;
    }
    *out = v;
    return 0;
}

/* ---- signals and sleeping ------------------------------------------------------------------ */

static void signal_cb(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;

    if (signum == SIGHUP) {
        d->reload = true;
    } else {
        if (!d->stop)
            base_log_info("received signal %d: stopping", signum);
        d->stop = true;
    }
    uv_stop(&d->loop);
}

static void wake_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;

    uv_stop(&d->loop);
}

static int64_t wall_now(void)
{
    return base_clock_wall_ms(base_clock_system());
}

/* Sleeps until wall ms until, a signal, or a reload request. */
static void daemon_sleep_until(struct daemon *d, int64_t until)
{
    /* Signals that came during a run are waiting in the loop: look at them first. */
    uv_run(&d->loop, UV_RUN_NOWAIT);
    while (!d->stop && !d->reload) {
        int64_t left = until - wall_now();

        if (left <= 0)
            break;
        ops_server_alive(d->ops);
        uv_timer_start(&d->wake, wake_cb,
                       (uint64_t)(left < DAEMON_SLICE_MS ? left : DAEMON_SLICE_MS), 0);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_timer_stop(&d->wake);
    }
    ops_server_alive(d->ops);
}

static void log_sleep(int64_t until, const char *why)
{
    char at[32];

    base_time_format(until, at, sizeof(at));
    base_log_info("sleeping until %s (%s)", at, why);
}

/* ---- the heartbeat ------------------------------------------------------------------------- */

static void *heartbeat_main(void *arg)
{
    struct daemon *d = arg;
    struct store *s = NULL;
    struct base_err err;
    struct timespec ts;
    bool warned = false;

    pthread_mutex_lock(&d->mu);
    while (!d->hb_quit) {
        bool got = false;
        int rc;

        pthread_mutex_unlock(&d->mu);
        rc = s ? 0 : cli_connect_db(&s, &err);
        if (rc == 0)
            rc = store_lease_acquire(s, d->lease, d->holder, 3 * DAEMON_HEARTBEAT_MS, &got, NULL,
                                     &err);
        if (rc < 0 || !got) {
            if (!warned)
                base_log_warning("could not renew the heartbeat \"%s\": %s", d->lease,
                                 rc < 0 ? err.msg : "another process holds it");
            warned = true;
            if (s != NULL && !store_connection_ok(s)) {
                store_close(s);
                s = NULL;
            }
        } else {
            warned = false;
        }
        pthread_mutex_lock(&d->mu);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += DAEMON_HEARTBEAT_MS / 1000;
        while (!d->hb_quit && pthread_cond_timedwait(&d->cv, &d->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&d->mu);
    if (s == NULL)
        cli_connect_db(&s, &err);
    if (s != NULL && store_lease_release(s, d->lease, d->holder, &err) < 0)
        base_log_warning("%s", err.msg);
    store_close(s);
    return NULL;
}

static int heartbeat_start(struct daemon *d, struct base_err *err)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* not the wall clock: it may jump */
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&d->hb, NULL, heartbeat_main, d) != 0)
        return base_err_set(err, BASE_ENOMEM, "could not start the heartbeat thread");
    d->hb_started = true;
    return 0;
}

static void heartbeat_stop(struct daemon *d)
{
    if (!d->hb_started)
        return;
    pthread_mutex_lock(&d->mu);
    d->hb_quit = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->hb, NULL);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
}

/* Is the holder ("host:pid") a process of this host that no longer exists? */
static bool holder_dead(const char *mine, const char *holder)
{
    size_t host = strcspn(mine, ":");
    int64_t pid;
    char buf[24];
    size_t n;

    if (strncmp(mine, holder, host + 1) != 0)
        return false;
    n = strcspn(holder + host + 1, ":");
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, holder + host + 1, n);
    buf[n] = '\0';
    return base_parse_int64(buf, &pid) == 0 && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Takes the heartbeat lease: one daemon per tenant. */
static int heartbeat_take(struct daemon *d, const char *tenant, struct base_err *err)
{
    char host[64] = "host", *other = NULL;
    bool got = false;
    int rc;

    gethostname(host, sizeof(host) - 1);
    snprintf(d->holder, sizeof(d->holder), "%s:%ld", host, (long)getpid());
    snprintf(d->lease, sizeof(d->lease), "daemon:%s", tenant);
    rc = store_lease_acquire(d->s, d->lease, d->holder, 3 * DAEMON_HEARTBEAT_MS, &got, &other, err);
    if (rc == 0 && !got && other != NULL && holder_dead(d->holder, other)) {
        base_log_info("releasing \"%s\" held by %s, a keapsync daemon that no longer exists",
                      d->lease, other);
        rc = store_lease_release(d->s, d->lease, other, err);
        if (rc == 0)
            rc = store_lease_acquire(d->s, d->lease, d->holder, 3 * DAEMON_HEARTBEAT_MS, &got, NULL,
                                     err);
    }
    if (rc == 0 && !got) {
        rc = base_err_set(err, BASE_EAGAIN, "another keapsync daemon (%s) runs for tenant \"%s\"",
                          other ? other : "unknown", tenant);
        base_err_hint(err, "stop it first, or wait %d s if it was killed on another host",
                      3 * DAEMON_HEARTBEAT_MS / 1000);
    }
    free(other);
    return rc;
}

/* ---- the job set ----------------------------------------------------------------------------- */

/* Takes *set (its schedules parsed) as the daemon's; frees the old one. */
static int daemon_take_set(struct daemon *d, struct jobs_set *set, struct base_err *err)
{
    struct base_cron *crons = calloc(set->n ? set->n : 1, sizeof(*crons));
    const char **scheds = calloc(set->n ? set->n : 1, sizeof(*scheds));
    struct daemon_retry *retry = calloc(set->n ? set->n : 1, sizeof(*retry));
    char msg[256];

    if (crons == NULL || scheds == NULL || retry == NULL) {
        free(crons);
        free(scheds);
        free(retry);
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < set->n; i++) {
        scheds[i] = set->jobs[i].schedule ? set->jobs[i].schedule : d->default_sched;
        if (base_cron_parse(scheds[i], &crons[i], msg, sizeof(msg)) < 0) { /* checked at load */
            free(crons);
            free(scheds);
            free(retry);
            return base_err_set(err, BASE_ECONFIG, "job \"%s\": schedule: %s", set->jobs[i].name,
                                msg);
        }
    }
    /* A job kept across a reload keeps its retry. */
    for (size_t i = 0; i < set->n; i++)
        for (size_t k = 0; k < d->set.n; k++)
            if (strcmp(set->jobs[i].name, d->set.jobs[k].name) == 0)
                retry[i] = d->retry[k];
    jobs_set_free(&d->set);
    free(d->crons);
    free(d->scheds);
    free(d->retry);
    d->retry = retry;
    d->set = *set;
    memset(set, 0, sizeof(*set));
    d->crons = crons;
    d->scheds = scheds;
    return 0;
}

/* SIGHUP: the job files again; a bad set keeps the old one, with one line. */
static void daemon_reload(struct daemon *d)
{
    struct jobs_set set = {0};
    struct base_err err;
    size_t old = d->set.n;

    d->reload = false;
    base_err_clear(&err);
    if (cli_load_jobs(&set, NULL, &err) < 0 || daemon_take_set(d, &set, &err) < 0) {
        base_log_error("reload of the job files failed, the %zu jobs loaded before keep running: "
                       "%s",
                       old, err.msg);
        jobs_set_free(&set);
        return;
    }
    base_log_info("reloaded the job files: %zu jobs (%zu before)", d->set.n, old);
}

/* ---- one run -------------------------------------------------------------------------------- */

/*
 * The state of main job name across the run's jobs (its sweeps and backfills count too):
 * 0 done, 1 failed, 2 stopped, 3 skipped (a peer runs all of it).
 */
static int job_state_of(const struct sched_result *res, const char *name, int64_t *rows,
                        int64_t *requests)
{
    size_t n = strlen(name);
    bool stopped = false, failed = false, skipped = false, other = false;

    *rows = *requests = 0;
    for (size_t k = 0; k < res->njobs; k++) {
        const struct sched_job_result *j = &res->jobs[k];

        if (j->name == NULL || strncmp(j->name, name, n) != 0 ||
            (j->name[n] != '\0' && j->name[n] != '#'))
            continue;
        *rows += j->rows;
        *requests += j->requests;
        if (strcmp(sched_job_state_name(j->state), "stopped") == 0)
            stopped = true;
        else if (strcmp(sched_job_state_name(j->state), "failed") == 0)
            failed = true;
        else if (strcmp(sched_job_state_name(j->state), "skipped") == 0)
            skipped = true;
        else
            other = true;
    }
    return stopped ? 2 : failed ? 1 : skipped && !other ? 3 : 0;
}

/*
 * Job i failed at now: its backoff grows (the first KEAPSYNC_RETRY_SECONDS, doubling to 64
 * times that), not past its next tick. Returns when it is due again; logs it.
 */
static int64_t daemon_retry_failed(struct daemon *d, size_t i, int64_t now)
{
    struct daemon_retry *r = &d->retry[i];
    int64_t cap = d->retry_first_ms * DAEMON_RETRY_GROWTH, tick = -1;
    char at[32];

    r->backoff_ms = r->backoff_ms == 0        ? d->retry_first_ms
                    : r->backoff_ms * 2 > cap ? cap
                                              : r->backoff_ms * 2;
    r->retry_at = now + r->backoff_ms;
    if (base_cron_next(&d->crons[i], now, &tick) == 0 && tick > now && tick < r->retry_at)
        r->retry_at = tick;
    base_time_format(r->retry_at, at, sizeof(at));
    base_log_warning("job \"%s\" failed; running it again at %s (in %.1f s)", d->set.jobs[i].name,
                     at, (double)(r->retry_at - now) / 1000.0);
    return r->retry_at;
}

static int jitter_ms(const struct daemon *d)
{
    int lo = d->jitter_max_s < 5 ? 0 : 5, hi = d->jitter_max_s;

    return (lo + (hi > lo ? rand() % (hi - lo + 1) : 0)) * 1000 + rand() % 1000 * (hi > 0);
}

/*
 * Runs the due jobs (due[i] for d->set.jobs[i]) as one run started at start_ms. Returns the
 * outcome through *outcome, or an error when the run could not happen (err set).
 */
static int daemon_run(struct daemon *d, const bool *due, int64_t start_ms,
                      enum sched_outcome *outcome, struct base_err *err)
{
    struct jobs_set sub = {0};
    struct sched_result res;
    struct base_buf names;
    int64_t run_id = 0;
    bool *passes, checked;
    char stop_line[512] = "";
    int rc, code;

    /* OAuth2: the stored access token, refreshed first when due (another process may have). */
    if (d->oauth != NULL) {
        base_secret_free(d->cred.access_token);
        d->cred.access_token = NULL;
        rc = cli_credential_db(d->s, &d->cred, d->oauth, err);
        if (rc < 0)
            return rc;
    }
    rc = cli_resolve_labels(&d->set, d->s, &d->opt.limits, d->opt.base_url, d->opt.tenant, &checked,
                            err);
    if (rc < 0)
        return rc;
    sub.jobs = calloc(d->set.n, sizeof(*sub.jobs));
    if (sub.jobs == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->set.n; i++)
        if (due[i])
            sub.jobs[sub.n++] = d->set.jobs[i]; /* borrowed: never freed through sub */
    rc = cli_evolve_jobs(d->s, &sub, false, err);
    if (rc < 0) {
        free(sub.jobs);
        return rc;
    }
    base_buf_init(&names, 64 * 1024);
    for (size_t i = 0; i < sub.n; i++)
        base_buf_printf(&names, "%s%s", i ? "," : "", sub.jobs[i].name);
    if (store_run_begin(d->s, names.data ? names.data : "", &run_id, err) < 0)
        base_log_warning("%s", err->msg);
    base_buf_free(&names);
    /* A signal that came during the set-up: sched_run would not see it. */
    uv_run(&d->loop, UV_RUN_NOWAIT);
    if (d->stop) {
        store_run_finish(d->s, run_id, EXIT_FAILURE, 0, 0, "interrupted by a signal", err);
        free(sub.jobs);
        *outcome = SCHED_OUTCOME_INTERRUPTED;
        return 0;
    }
    passes = cli_plan_run_begin(d->s, &sub, &d->opt);
    rc = sched_run(&d->opt, &sub, d->s, &d->cred, &res, err);
    if (rc < 0) {
        free(passes);
        {
            struct base_err e2;

            store_run_finish(d->s, run_id, EXIT_FAILURE, 0, 0, err->msg, &e2);
        }
        free(sub.jobs);
        return rc;
    }
    code = cli_outcome_exit_code(res.outcome);
    cli_plan_run_end(passes, d->s, &sub, &d->opt, run_id, &res, stop_line, sizeof(stop_line));
    for (size_t k = 0; k < res.njobs; k++) {
        const struct sched_job_result *j = &res.jobs[k];

        base_log_info("job=%s outcome=%s records=%" PRId64 " requests=%" PRId64 " pages=%" PRId64
                      "%s%s",
                      j->name, sched_job_state_name(j->state), j->rows, j->requests, j->pages,
                      j->error[0] ? " error=" : "", j->error);
    }
    base_log_info("run: outcome=%s requests=%" PRId64 " rejected_429=%" PRId64 " records=%" PRId64
                  " seconds=%.1f%s%s",
                  res.outcome == SCHED_OUTCOME_COMPLETE      ? "complete"
                  : res.outcome == SCHED_OUTCOME_QUOTA       ? "quota"
                  : res.outcome == SCHED_OUTCOME_AUTH        ? "auth"
                  : res.outcome == SCHED_OUTCOME_INTERRUPTED ? "interrupted"
                  : res.outcome == SCHED_OUTCOME_NOMEM       ? "nomem"
                                                             : "failed",
                  res.requests, res.rejected_429, res.rows, res.seconds, res.message[0] ? ": " : "",
                  stop_line[0] ? stop_line : res.message);
    if (stop_line[0] != '\0')
        snprintf(res.message, sizeof(res.message), "%s", stop_line);
    cli_record_run_end(d->s, run_id, code, &res);
    if (res.outcome == SCHED_OUTCOME_QUOTA) {
        d->quota_until = base_time_next_day(wall_now()) + jitter_ms(d);
    }
    /* Each job's tick: served when it ran to its end (done; skipped: a peer ran it); a failed
     * job is due again after its backoff, a stopped one (quota, signal) at once or after the
     * quota's sleep. */
    for (size_t i = 0; i < d->set.n; i++) {
        struct store_daemon_job row = {0};
        int64_t rows, reqs, next = -1;
        int st;

        if (!due[i])
            continue;
        st = job_state_of(&res, d->set.jobs[i].name, &rows, &reqs);
        row.job = d->set.jobs[i].name;
        row.schedule = d->scheds[i];
        /* served only when it ran to its end: a stopped or failed job is due again */
        row.tick_ms = st == 0 || st == 3 ? start_ms : -1;
        row.run_ms = start_ms;
        row.outcome = st == 3 ? "skipped" : st == 2 ? "stopped" : st == 1 ? "failed" : "done";
        row.records = rows;
        row.requests = reqs;
        if (st == 1 && res.outcome != SCHED_OUTCOME_AUTH) {
            next = daemon_retry_failed(d, i, wall_now());
        } else if (st == 2) {
            next = res.outcome == SCHED_OUTCOME_QUOTA ? d->quota_until : wall_now();
        } else {
            d->retry[i].retry_at = d->retry[i].backoff_ms = 0;
            if (base_cron_next(&d->crons[i], start_ms, &next) < 0)
                next = -1;
        }
        row.next_ms = next;
        if (store_daemon_job_put(d->s, &row, err) < 0) {
            sched_result_free(&res);
            free(sub.jobs);
            return err->code ? err->code : BASE_EDB;
        }
    }
    *outcome = res.outcome;
    if (d->ops != NULL && d->opt.tenant == NULL) {
        char *tenant = NULL;
        struct base_err e2;

        /* the first run may have named Keap's tenant: the quota lines follow it */
        if (cli_plan_tenant(d->s, d->opt.base_url, &tenant, &e2) == 0)
            ops_server_set_tenant(d->ops, tenant);
        free(tenant);
    }
    ops_server_refresh(d->ops); /* the file and /metrics show the run at once */
    if (res.outcome == SCHED_OUTCOME_AUTH)
        fprintf(stderr, "keapsync: error: %s (hint: %s)\n", res.message,
                d->oauth ? SCHED_OAUTH_REAUTH_HINT
                         : "check that KEAP_API_KEY holds a valid Personal Access Token or "
                           "Service Account Key for this account");
    sched_result_free(&res);
    free(sub.jobs);
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------------- */

/* Which jobs are due at now; *next the earliest tick of those that are not (INT64_MAX). */
static int daemon_due(struct daemon *d, int64_t now, bool *due, size_t *ndue, int64_t *next,
                      struct base_err *err)
{
    *ndue = 0;
    *next = INT64_MAX;
    for (size_t i = 0; i < d->set.n; i++) {
        int64_t last, t;
        int rc = store_daemon_last_tick(d->s, d->set.jobs[i].name, &last, err);

        if (rc < 0)
            return rc;
        due[i] = false;
        if (d->retry[i].retry_at > now) {
            if (d->retry[i].retry_at < *next)
                *next = d->retry[i].retry_at; /* failed: not before its backoff is over */
        } else if (last < 0) {
            due[i] = true; /* never ran under the daemon (or failed since): at once */
        } else if (base_cron_next(&d->crons[i], last, &t) == 0) {
            if (t <= now)
                due[i] = true; /* one run for every tick missed since */
            else if (t < *next)
                *next = t;
        }
        if (due[i])
            (*ndue)++;
    }
    return 0;
}

/* Writes each job's next tick (next_at) for status to show. */
static int daemon_note_next(struct daemon *d, int64_t now, struct base_err *err)
{
    for (size_t i = 0; i < d->set.n; i++) {
        struct store_daemon_job row = {
            .job = d->set.jobs[i].name, .schedule = d->scheds[i], .tick_ms = -1, .run_ms = -1};
        int64_t last, t = -1;
        int rc = store_daemon_last_tick(d->s, row.job, &last, err);

        if (rc < 0)
            return rc;
        if (base_cron_next(&d->crons[i], last >= 0 ? last : now, &t) < 0)
            t = -1;
        if (d->retry[i].retry_at > now)
            t = d->retry[i].retry_at;
        if (t >= 0 && d->quota_until > t)
            t = d->quota_until;
        row.next_ms = t;
        rc = store_daemon_job_put(d->s, &row, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/*
 * After the database came back: the leases a run of this process took (holder
 * "host:pid:nonce") could not be released while it was away; release them now, or the next
 * run would find its own jobs "run by another process" until they expire.
 */
static void daemon_release_own(struct daemon *d)
{
    static const char *const prefixes[] = {"job:", "peer:"};
    char mine[140];
    size_t n = (size_t)snprintf(mine, sizeof(mine), "%s:", d->holder);

    for (size_t p = 0; p < BASE_ARRAY_SIZE(prefixes); p++) {
        char **names = NULL, **holders = NULL;
        struct base_err err;
        int count = 0;

        if (store_lease_list(d->s, prefixes[p], &names, &holders, &count, &err) < 0) {
            base_log_warning("%s", err.msg);
            continue;
        }
        for (int i = 0; i < count; i++)
            if (strncmp(holders[i], mine, n) == 0 &&
                store_lease_release(d->s, names[i], holders[i], &err) < 0)
                base_log_warning("%s", err.msg);
        store_lease_list_free(names, holders);
    }
}

/* The database went away: reconnect, backing off (1 s doubling to 60 s), until it answers. */
static void daemon_reconnect(struct daemon *d)
{
    int64_t backoff = DAEMON_BACKOFF_MIN_MS;

    store_close(d->s);
    d->s = NULL;
    while (!d->stop) {
        struct base_err err;

        base_err_clear(&err);
        if (cli_connect_migrated(&d->s, &err) == 0) {
            base_log_info("reconnected to the database");
            daemon_release_own(d);
            return;
        }
        base_log_warning("could not reconnect to the database: %s; retrying in %" PRId64 " s",
                         err.msg, backoff / 1000);
        daemon_sleep_until(d, wall_now() + backoff);
        d->reload = false; /* a reload waits for the database: it evolves tables */
        backoff = backoff * 2 > DAEMON_BACKOFF_MAX_MS ? DAEMON_BACKOFF_MAX_MS : backoff * 2;
    }
}

static int daemon_loop(struct daemon *d)
{
    int64_t backoff = DAEMON_BACKOFF_MIN_MS;
    bool *due = NULL;
    size_t cap = 0;

    while (!d->stop) {
        struct base_err err;
        enum sched_outcome outcome = SCHED_OUTCOME_FAILED;
        int64_t now = wall_now(), next;
        size_t ndue;
        int rc;

        base_err_clear(&err);
        ops_server_alive(d->ops);
        if (d->reload)
            daemon_reload(d);
        if (d->s == NULL || !store_connection_ok(d->s)) {
            daemon_reconnect(d);
            continue;
        }
        if (now < d->quota_until) {
            log_sleep(d->quota_until, "the day's quota is spent");
            if (daemon_note_next(d, now, &err) < 0)
                base_log_warning("%s", err.msg);
            daemon_sleep_until(d, d->quota_until);
            continue;
        }
        if (cap < d->set.n) {
            free(due);
            cap = d->set.n;
            due = calloc(cap, sizeof(*due));
            if (due == NULL) {
                base_log_error("out of memory");
                return EXIT_FAILURE;
            }
        }
        rc = daemon_due(d, now, due, &ndue, &next, &err);
        if (rc == 0 && ndue == 0) {
            rc = daemon_note_next(d, now, &err);
            if (rc == 0) {
                if (next == INT64_MAX) {
                    base_log_warning("no job has a tick to come; sleeping until signalled");
                    next = now + 86400000LL;
                } else {
                    log_sleep(next, "the next tick");
                }
                daemon_sleep_until(d, next);
                continue;
            }
        }
        if (rc == 0)
            rc = daemon_run(d, due, now, &outcome, &err);
        if (rc < 0) {
            if (err.code == BASE_EAUTH) {
                free(due);
                return cli_fail(CLI_EXIT_AUTH, &err);
            }
            if (err.code == BASE_ECONFIG && store_connection_ok(d->s)) {
                free(due);
                return cli_fail(CLI_EXIT_CONFIG, &err);
            }
            if (err.code == BASE_EQUOTA) {
                d->quota_until = base_time_next_day(wall_now()) + jitter_ms(d);
                continue;
            }
            base_log_error("%s%s%s; retrying in %" PRId64 " s", err.msg,
                           err.hint[0] ? " (hint: " : "", err.hint[0] ? err.hint : "",
                           backoff / 1000);
            daemon_sleep_until(d, wall_now() + backoff);
            backoff = backoff * 2 > DAEMON_BACKOFF_MAX_MS ? DAEMON_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = DAEMON_BACKOFF_MIN_MS;
        if (outcome == SCHED_OUTCOME_AUTH) {
            free(due);
            return CLI_EXIT_AUTH;
        }
        if (outcome == SCHED_OUTCOME_INTERRUPTED)
            d->stop = true; /* the signal stopped the run; the daemon loop saw it too */
        if (outcome == SCHED_OUTCOME_NOMEM) {
            free(due);
            return EXIT_FAILURE;
        }
        if (!store_connection_ok(d->s))
            base_log_warning("the database went away during the run; reconnecting");
    }
    free(due);
    base_log_info("stopped; progress up to the last committed page is saved");
    return 0;
}

/* ---- the metrics ------------------------------------------------------------------------------
 */

/* During a run: the daemon's thread turns (sched_options.progress_cb, on the run's loop). */
static void run_alive_cb(const struct sched_progress *p, void *ud)
{
    struct daemon *d = ud;

    (void)p;
    ops_server_alive(d->ops);
}

static int daemon_connect_cb(struct store **out, struct base_err *err)
{
    return cli_connect_db(out, err);
}

/* KEAPSYNC_METRICS_INTERVAL into d->metrics_interval_s. */
static int metrics_interval(struct daemon *d, struct base_err *err)
{
    const char *v = cli_env_or("KEAPSYNC_METRICS_INTERVAL", NULL);
    int64_t n = DAEMON_METRICS_INTERVAL_S;

    if (v != NULL && (base_parse_int64(v, &n) < 0 || n < 1 || n > 3600)) {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_METRICS_INTERVAL \"%s\"", v);
        base_err_hint(err, "seconds, 1 to 3600 (default 60)");
        return BASE_ECONFIG;
    }
    d->metrics_interval_s = (int)n;
    return 0;
}

/* KEAPSYNC_RETRY_SECONDS into d->retry_first_ms. */
static int retry_first(struct daemon *d, struct base_err *err)
{
    const char *v = cli_env_or("KEAPSYNC_RETRY_SECONDS", NULL);
    int64_t n = DAEMON_RETRY_DEFAULT_S;

    if (v != NULL && (base_parse_int64(v, &n) < 0 || n < 1 || n > 3600)) {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_RETRY_SECONDS \"%s\"", v);
        base_err_hint(err, "seconds, 1 to 3600 (default 10)");
        return BASE_ECONFIG;
    }
    d->retry_first_ms = n * 1000;
    return 0;
}

/* The metrics' gatherer and listener, when KEAPSYNC_METRICS_FILE or --metrics-port asks. */
static int metrics_start(struct daemon *d, const char *tenant, struct base_err *err)
{
    struct ops_server_config cfg = {0};

    cfg.metrics_path = cli_env_or("KEAPSYNC_METRICS_FILE", NULL);
    if (cfg.metrics_path == NULL && d->metrics_port < 0)
        return 0;
    cfg.connect_cb = daemon_connect_cb;
    cfg.tenant = tenant;
    cfg.daily_budget =
        d->opt.limits.per_day > 0
            ? (int64_t)((double)d->opt.limits.per_day * (1.0 - d->opt.limits.reserve_fraction))
            : 0;
    cfg.port = d->metrics_port;
    cfg.addr = cli_env_or("KEAPSYNC_METRICS_ADDR", NULL);
    cfg.interval_ms = d->metrics_interval_s * 1000;
    cfg.health_db_ms = 2 * (uint64_t)cfg.interval_ms + 10000;
    cfg.health_alive_ms = DAEMON_HEALTH_ALIVE_MS;
    if (ops_server_start(&cfg, &d->ops, err) < 0)
        return err->code;
    d->opt.progress_cb = run_alive_cb;
    d->opt.progress_ud = d;
    d->opt.progress_ms = 1000;
    return 0;
}

int cli_cmd_daemon(int argc, char **argv)
{
    struct daemon *d;
    struct jobs_set set = {0};
    struct base_err err;
    char *tenant = NULL;
    int64_t port = -1;
    int code;

    for (int i = 0; i < argc; i++) {
        const char *v = NULL;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(daemon_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--metrics-port") == 0) {
            if (i + 1 >= argc)
                return cli_fail_usage("%s needs a port number", "--metrics-port");
            v = argv[++i];
        } else if (strncmp(argv[i], "--metrics-port=", 15) == 0) {
            v = argv[i] + 15;
        } else {
            return cli_fail_usage("unknown option \"%s\" for daemon", argv[i]);
        }
        if (base_parse_int64(v, &port) < 0 || port < 0 || port > 65535) {
            base_err_set(&err, BASE_ECONFIG, "invalid --metrics-port \"%s\"", v);
            base_err_hint(&err, "a TCP port, 1 to 65535, or 0 for any free one");
            return cli_fail(CLI_EXIT_CONFIG, &err);
        }
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return EXIT_FAILURE;
    d->metrics_port = (int)port;
    base_err_clear(&err);
    if (metrics_interval(d, &err) < 0 || retry_first(d, &err) < 0) {
        free(d);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    {
        const char *j = cli_env_or("KEAPSYNC_QUOTA_JITTER", NULL);
        int64_t v = 60;

        if (j != NULL && (base_parse_int64(j, &v) < 0 || v < 0 || v > 3600)) {
            base_err_set(&err, BASE_ECONFIG, "invalid KEAPSYNC_QUOTA_JITTER \"%s\"", j);
            base_err_hint(&err, "seconds, 0 to 3600");
            free(d);
            return cli_fail(CLI_EXIT_CONFIG, &err);
        }
        d->jitter_max_s = (int)v;
    }
    /* Everything that can be wrong with the configuration is found before any write. */
    if (cli_default_schedule(&d->default_sched, &err) < 0 ||
        cli_load_limits(&d->opt.limits, &err) < 0 || cli_load_jobs(&set, NULL, &err) < 0 ||
        daemon_take_set(d, &set, &err) < 0) {
        jobs_set_free(&set);
        free(d);
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    if (cli_credential_env(&d->cred, &d->oauth, &err) < 0 ||
        cli_app_limits(&d->opt, d->oauth, &err) < 0) {
        code = cli_fail(CLI_EXIT_CONFIG, &err);
        goto out;
    }
    d->opt.oauth = d->oauth ? &d->oauth->so : NULL;
    d->opt.base_url = cli_env_or("KEAP_BASE_URL", KEAP_DEFAULT_BASE_URL);
    d->opt.tenant = cli_env_or("KEAPSYNC_TENANT", NULL);
    if (cli_connect_migrated(&d->s, &err) < 0) {
        code = cli_fail(CLI_EXIT_CONFIG, &err);
        goto out;
    }
    if (d->oauth != NULL && cli_credential_db(d->s, &d->cred, d->oauth, &err) < 0) {
        code = cli_fail(err.code == BASE_EAUTH     ? CLI_EXIT_AUTH
                        : err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG
                                                   : EXIT_FAILURE,
                        &err);
        goto out;
    }
    if (d->opt.tenant != NULL)
        tenant = strdup(d->opt.tenant);
    else if (cli_plan_tenant(d->s, d->opt.base_url, &tenant, &err) < 0)
        tenant = NULL;
    if (heartbeat_take(d, tenant ? tenant : d->opt.base_url, &err) < 0) {
        code = cli_fail(EXIT_FAILURE, &err);
        goto out;
    }
    if (heartbeat_start(d, &err) < 0) {
        code = cli_fail(EXIT_FAILURE, &err);
        goto out;
    }
    if (metrics_start(d, tenant, &err) < 0) {
        code = cli_fail(err.code == BASE_ECONFIG ? CLI_EXIT_CONFIG : EXIT_FAILURE, &err);
        goto out;
    }
    uv_loop_init(&d->loop);
    uv_timer_init(&d->loop, &d->wake);
    d->wake.data = d;
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sighup);
    d->sigterm.data = d->sigint.data = d->sighup.data = d;
    /* Held for the daemon's life, so that a signal during a run is never the default action
     * (SIGHUP would end the process) and is seen by the loop once the run is over. */
    uv_signal_start(&d->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&d->sigint, signal_cb, SIGINT);
    uv_signal_start(&d->sighup, signal_cb, SIGHUP);
    srand((unsigned)getpid() ^ (unsigned)wall_now());
    base_log_info("daemon started: %zu jobs, heartbeat \"%s\" held by %s", d->set.n, d->lease,
                  d->holder);

    code = daemon_loop(d);

    uv_close((uv_handle_t *)&d->wake, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
out:
    ops_server_stop(d->ops);
    heartbeat_stop(d);
    free(tenant);
    store_close(d->s);
    keap_credential_clear(&d->cred);
    cli_oauth_free(d->oauth);
    jobs_set_free(&d->set);
    free(d->crons);
    free(d->scheds);
    free(d->retry);
    free(d);
    return code;
}
