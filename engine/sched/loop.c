/*
 * loop.c: the run's event loop: admission (sched_pump asks pace for each page and picks the
 * jobs round-robin), the ledger's grants, timers, the heartbeat, signals, and stopping.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sched_stop(struct sched *s, enum sched_stop why, const char *msg)
{
    if (s->stop != STOP_NONE)
        return;
    s->stop = why;
    if (msg != NULL)
        snprintf(s->message, sizeof(s->message), "%s", msg);
    /* Pages in flight and arrived ones are paid for and still land; the rest are dropped
     * here and in sched_maybe_finish (a page may ask for a follow-up after the stop). */
    for (size_t i = 0; i < s->njobs; i++)
        job_drop_wanted(&s->jobs[i]);
}

void sched_nomem(struct sched *s, const char *where)
{
    if (s->stop == STOP_NOMEM)
        return;
    base_log_error("out of memory while %s", where);
    /* It overrides any earlier stop: whatever stopped the run, memory is now the news. */
    s->stop = STOP_NOMEM;
    snprintf(s->message, sizeof(s->message),
             "out of memory while %s; progress up to the last committed page is saved", where);
    /* Nothing more is sent or handed to the worker: pages in flight are dropped when they
     * come back, operations already queued complete. */
    for (size_t i = 0; i < s->njobs; i++)
        job_drop_pages(&s->jobs[i]);
}

static void timer_cb(uv_timer_t *t)
{
    struct sched *s = container_of(t, struct sched, timer);

    s->timer_armed = false;
    sched_pump(s);
}

static void arm_timer(struct sched *s, uint64_t due_mono)
{
    uint64_t now = now_mono(s);

    if (s->closing)
        return;
    if (s->timer_armed && s->timer_due <= due_mono)
        return;
    s->timer_armed = true;
    s->timer_due = due_mono;
    uv_timer_start(&s->timer, timer_cb, due_mono > now ? due_mono - now : 0, 0);
}

static void heartbeat_cb(uv_timer_t *t)
{
    struct sched *s = container_of(t, struct sched, heartbeat);
    struct sched_op *op;

    if (s->closing || s->heartbeat_queued)
        return;
    op = calloc(1, sizeof(*op));
    if (op == NULL || (op->renew = calloc(s->njobs, sizeof(*op->renew))) == NULL ||
        (op->lost = calloc(s->njobs, sizeof(*op->lost))) == NULL) {
        if (op != NULL)
            free(op->renew);
        free(op);
        sched_nomem(s, "renewing the leases");
        sched_pump(s);
        return;
    }
    op->kind = OP_HEARTBEAT;
    for (size_t i = 0; i < s->njobs; i++)
        op->renew[i] = s->jobs[i].state == SCHED_JOB_PAGING;
    s->heartbeat_queued = true;
    op_submit(s, op);
}

/* The bound after a signal is over: abandon what is still in flight (not committed, so
 * nothing is lost: the next run fetches those pages again). */
static void stop_timer_cb(uv_timer_t *t)
{
    struct sched *s = container_of(t, struct sched, stop_timer);
    struct http_client *http = s->http;

    if (s->closing)
        return;
    base_log_warning("%zu requests still in flight after the stop timeout; abandoning them "
                     "(progress up to the last committed page is saved)",
                     s->inflight);
    for (size_t i = 0; i < s->njobs; i++)
        job_drop_pages(&s->jobs[i]);
    /* Their callbacks come back canceled and find their pages stale. */
    s->http = NULL;
    http_client_close(http);
    sched_pump(s);
}

/* KEAPSYNC_STOP_TIMEOUT: seconds, 0..3600; the default when unset or unreadable. */
static uint64_t stop_timeout_ms(void)
{
    const char *v = getenv("KEAPSYNC_STOP_TIMEOUT");
    double secs;

    if (v == NULL || v[0] == '\0')
        return SCHED_STOP_TIMEOUT_MS;
    if (base_parse_double(v, &secs) < 0 || secs < 0 || secs > 3600) {
        base_log_warning("KEAPSYNC_STOP_TIMEOUT \"%s\" is not 0 to 3600 seconds; using %d", v,
                         SCHED_STOP_TIMEOUT_MS / 1000);
        return SCHED_STOP_TIMEOUT_MS;
    }
    return (uint64_t)(secs * 1000);
}

/*
 * KEAPSYNC_LEASE_TTL: seconds a job's lease lasts without renewal, 3..3600 (renewals come
 * every SCHED_HEARTBEAT_MS); the default when unset or unreadable. Read once: the first call
 * is the run's set-up, on the loop thread, before any heartbeat.
 */
int sched_lease_ttl_ms(void)
{
    static int ttl_ms;
    const char *v;
    double secs;

    if (ttl_ms > 0)
        return ttl_ms;
    ttl_ms = SCHED_LEASE_TTL_MS;
    v = getenv("KEAPSYNC_LEASE_TTL");
    if (v == NULL || v[0] == '\0')
        return ttl_ms;
    if (base_parse_double(v, &secs) < 0 || secs < 3 || secs > 3600)
        base_log_warning("KEAPSYNC_LEASE_TTL \"%s\" is not 3 to 3600 seconds; using %d", v,
                         SCHED_LEASE_TTL_MS / 1000);
    else
        ttl_ms = (int)(secs * 1000);
    return ttl_ms;
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct sched *s = h->data;

    if (s->stop == STOP_SIGNAL) {
        /* A second signal: do not wait. Every committed page is safe in Postgres. */
        fprintf(stderr,
                "keapsync: stopped: second signal %d; leaving now, progress up to the "
                "last committed page is saved\n",
                signum);
        _exit(1);
    }
    base_log_warning("received signal %d: finishing pages in flight, then stopping", signum);
    atomic_store(&s->db_give_up, true);
    sched_stop(s, STOP_SIGNAL, "interrupted by a signal; progress up to the last page is saved");
    if (!s->closing && !s->stop_timer_on) {
        s->stop_timer_on = true;
        uv_timer_start(&s->stop_timer, stop_timer_cb, stop_timeout_ms(), 0);
    }
    sched_pump(s);
}

static void close_noop_cb(uv_handle_t *h)
{
    (void)h;
}

static bool sched_idle(const struct sched *s)
{
    return s->inflight == 0 && !s->op_running && s->ops_head == NULL && !s->reserving &&
           !s->tok.refreshing;
}

static void sched_maybe_finish(struct sched *s)
{
    bool all_terminal = true;

    if (s->closing)
        return;
    for (size_t i = 0; i < s->njobs; i++) {
        struct sched_job *job = &s->jobs[i];

        if (s->stop != STOP_NONE)
            job_drop_wanted(job);
        if (!job_terminal(job)) {
            if (s->stop == STOP_NONE)
                all_terminal = false;
            else if (job->npages > 0)
                all_terminal = false; /* let paid pages land */
        }
    }
    if (!all_terminal || !sched_idle(s))
        return;
    for (size_t i = 0; i < s->njobs; i++)
        if (!job_terminal(&s->jobs[i]))
            job_set_state(&s->jobs[i], SCHED_JOB_STOPPED, NULL);
    s->closing = true;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, close_noop_cb);
    uv_timer_stop(&s->heartbeat);
    uv_close((uv_handle_t *)&s->heartbeat, close_noop_cb);
    uv_timer_stop(&s->stop_timer);
    uv_close((uv_handle_t *)&s->stop_timer, close_noop_cb);
    uv_close((uv_handle_t *)&s->sigint, close_noop_cb);
    uv_close((uv_handle_t *)&s->sigterm, close_noop_cb);
    if (s->opt->progress_cb != NULL) {
        uv_timer_stop(&s->progress);
        uv_close((uv_handle_t *)&s->progress, close_noop_cb);
    }
    http_client_close(s->http);
    s->http = NULL;
}

/* The first response named the tenant: switch the ledger key to it (see sched_setup_tenant). */
void sched_note_tenant(struct sched *s, const char *tenant)
{
    char *copy;

    if (tenant == NULL || tenant[0] == '\0' || s->opt->tenant != NULL)
        return; /* nothing said, or the user fixed the ledger key */
    if (s->tenant != NULL && strcmp(s->tenant, tenant) == 0)
        return;
    copy = strdup(tenant);
    if (copy == NULL) {
        sched_nomem(s, "noting the tenant");
        return;
    }
    base_log_info("tenant is \"%s\"", tenant);
    if (s->tenant_provisional) {
        /* Everything granted so far under the provisional key moves to the real one. */
        struct pace_stats st;

        pace_get_stats(s->pace, &st);
        s->carry += st.day_spent + pace_unspent(s->pace);
    }
    free(s->tenant);
    s->tenant = copy;
    s->tenant_provisional = false;
    s->tenant_unsaved = true;
}

/*
 * The page to send next: round-robin over the jobs of the earliest kind that has a job not
 * yet over (enum sched_kind: incremental and full passes, then child streams, backfills,
 * delete sweeps), so later kinds spend only what earlier ones left of the day.
 */
static struct sched_page *pick_page(struct sched *s, uint64_t now, uint64_t *wake)
{
    enum sched_kind first = SCHED_KIND_SWEEP;

    for (size_t k = 0; k < s->njobs; k++)
        if (!job_terminal(&s->jobs[k]) && s->jobs[k].kind < first)
            first = s->jobs[k].kind;
    for (size_t k = 0; k < s->njobs; k++) {
        struct sched_job *job = &s->jobs[(s->rr + k) % s->njobs];
        struct sched_page *pg;

        if (job_terminal(job) || job->kind != first)
            continue;
        pg = job_next_page(job, now, wake);
        if (s->stop != STOP_NONE)
            return NULL; /* e.g. out of memory while adding the page */
        if (pg != NULL) {
            s->rr = (s->rr + k + 1) % s->njobs;
            return pg;
        }
    }
    return NULL;
}

static void request_grant(struct sched *s)
{
    struct sched_op *op;
    int64_t want;

    if (s->reserving)
        return;
    op = calloc(1, sizeof(*op));
    if (op == NULL || (op->tenant = strdup(s->tenant)) == NULL) {
        free(op);
        sched_nomem(s, "requesting requests from the ledger");
        return;
    }
    /* About ten seconds of requests at the minute's pace: few round trips, little lost if
     * the process dies holding them. */
    want = s->opt->limits.per_min > 0 ? s->opt->limits.per_min / 6 : 50;
    if (want < 5)
        want = 5;
    if (want > 100)
        want = 100;
    op->kind = OP_RESERVE;
    op->want = want;
    op->budget = s->budget;
    op->carry = s->carry;
    s->carry = 0;
    op->day_wall = now_wall(s);
    s->reserving = true;
    op_submit(s, op);
}

void sched_pump(struct sched *s)
{
    if (s->closing)
        return;
    while (s->stop == STOP_NONE) {
        uint64_t now = now_mono(s), wake = 0;
        int64_t wall = now_wall(s);
        struct sched_page *pg;
        struct pace_decision d;
        int rc;

        /* A new UTC day: the ledger has a fresh row. */
        if (s->ledger_exhausted && base_time_day_start(wall) != s->grant_day && s->grant_day != 0) {
            s->ledger_exhausted = false;
        }
        if (sched_oauth_pause(s))
            break;
        if (now < s->join_until) {
            arm_timer(s, s->join_until);
            break;
        }
        pg = pick_page(s, now, &wake);
        if (pg == NULL) {
            if (wake != 0)
                arm_timer(s, wake);
            break;
        }
        if (s->reserving)
            break;
        d = pace_acquire(s->pace, now, wall);
        if (d.verdict == PACE_WAIT) {
            arm_timer(s, d.retry_mono_ms);
            break;
        }
        if (d.verdict == PACE_NEED_GRANT) {
            if (s->ledger_exhausted) {
                sched_stop(s, STOP_QUOTA,
                           "the day's request budget is spent; progress is saved, run again "
                           "after 00:00 UTC to resume");
                break;
            }
            request_grant(s);
            break;
        }
        if (d.verdict == PACE_DAY_SPENT) {
            sched_stop(s, STOP_QUOTA,
                       "Keap's daily quota is spent; progress is saved, run again after "
                       "00:00 UTC to resume");
            break;
        }
        rc = job_send_page(s, pg);
        if (rc < 0) {
            pace_refund(s->pace, now, wall);
            if (rc == BASE_ENOMEM)
                sched_nomem(s, "starting a request");
            else
                job_fail_page(pg->job, pg, "could not start the request");
        } else {
            pg->admitted_mono = now;
            if (base_log_get_level() == BASE_LOG_DEBUG) {
                struct pace_stats st;

                pace_get_stats(s->pace, &st);
                base_log_debug("pace: admitted at %" PRIu64 " ms (margin %" PRId64
                               " ms, jitter %" PRId64 " ms, arrival %" PRId64 " ms, learnt %" PRId64
                               " ms, %.1f/s)",
                               now, st.margin_ms, st.jitter_ms, st.arrival_ms, st.learnt_ms,
                               st.current_per_sec);
            }
        }
    }
    sched_maybe_finish(s);
}

/* opt->progress_cb with the run's figures so far. */
static void progress_cb(uv_timer_t *t)
{
    struct sched *s = container_of(t, struct sched, progress);
    const struct sched_job_result **jobs = calloc(s->njobs ? s->njobs : 1, sizeof(*jobs));
    struct sched_progress p = {0};

    if (jobs == NULL)
        return;
    for (size_t i = 0; i < s->njobs; i++)
        jobs[i] = s->jobs[i].res;
    p.njobs = s->njobs;
    p.jobs = jobs;
    p.requests = s->requests;
    p.quota_left = s->day_left < 0 ? -1 : s->day_left > s->requests ? s->day_left - s->requests : 0;
    p.seconds = (double)(now_mono(s) - s->started_mono) / 1000.0;
    s->opt->progress_cb(&p, s->opt->progress_ud);
    free(jobs);
}

/* Starts the run's timers and signal handlers and runs the loop until the run is over. */
void sched_loop_run(struct sched *s)
{
    if (s->opt->progress_cb != NULL) {
        uint64_t ms = s->opt->progress_ms > 0 ? (uint64_t)s->opt->progress_ms : 250;

        uv_timer_init(&s->loop, &s->progress);
        uv_timer_start(&s->progress, progress_cb, ms, ms);
    }
    uv_timer_init(&s->loop, &s->timer);
    uv_timer_init(&s->loop, &s->heartbeat);
    uv_timer_init(&s->loop, &s->stop_timer);
    uv_timer_start(&s->heartbeat, heartbeat_cb, SCHED_HEARTBEAT_MS, SCHED_HEARTBEAT_MS);
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s;
    s->sigterm.data = s;
    uv_signal_start(&s->sigint, signal_cb, SIGINT);
    uv_signal_start(&s->sigterm, signal_cb, SIGTERM);

    sched_pump(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
}
