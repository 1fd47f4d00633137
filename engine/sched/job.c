/*
 * job.c: one job's page pipeline and its state (see sched.h for the words).
 *
 * A page goes WANT -> INFLIGHT -> ARRIVED -> SUBMITTED (back to WANT when a request must be
 * sent again) and is freed when its database operation completes (ops.c); page_set_state is
 * the one function that changes it. Pages reach the database in sequence order
 * (job_handoff).
 * A job is PAGING until its window is complete (DONE), an error stops it (FAILED) or the run
 * stops first (STOPPED); job_set_state is the one function that changes it.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *page_state_name(enum sched_page_state st)
{
    switch (st) {
    case PAGE_WANT:
        return "want";
    case PAGE_INFLIGHT:
        return "inflight";
    case PAGE_ARRIVED:
        return "arrived";
    case PAGE_SUBMITTED:
        return "submitted";
    }
    return "unknown";
}

/* The one function that changes a page's state; why (or NULL) is logged with it. */
static void page_set_state(struct sched_page *pg, enum sched_page_state st, const char *why)
{
    if (pg->state == st)
        return;
    base_log_debug("job \"%s\": page %" PRIu64 " at offset %" PRId64 ": %s -> %s%s%s",
                   pg->job->def->name, pg->seq, pg->offset, page_state_name(pg->state),
                   page_state_name(st), why ? ": " : "", why ? why : "");
    pg->state = st;
}

void page_free(struct sched_page *pg)
{
    if (pg == NULL)
        return;
    base_buf_free(&pg->body);
    free(pg->page_token);
    free(pg);
}

void job_unlink_page(struct sched_job *job, struct sched_page *pg)
{
    struct sched_page **pp;

    for (pp = &job->pages; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == pg) {
            *pp = pg->next;
            pg->next = NULL;
            job->npages--;
            return;
        }
    }
}

/* Drops every page of job not yet handed to the worker (in-flight ones become stale). */
void job_drop_pages(struct sched_job *job)
{
    struct sched_page **pp = &job->pages;

    while (*pp != NULL) {
        struct sched_page *pg = *pp;

        if (pg->state == PAGE_SUBMITTED) {
            pp = &pg->next;
            continue;
        }
        *pp = pg->next;
        pg->next = NULL;
        job->npages--;
        if (pg->state == PAGE_INFLIGHT)
            pg->stale = true;
        else
            page_free(pg);
    }
}

void job_set_state(struct sched_job *job, enum sched_job_state st, const char *why)
{
    if (job->state == st)
        return;
    base_log_debug("job \"%s\": %s -> %s%s%s", job->def->name, sched_job_state_name(job->state),
                   sched_job_state_name(st), why ? ": " : "", why ? why : "");
    job->state = st;
    job->res->state = st;
    if (st == SCHED_JOB_FAILED && why != NULL)
        snprintf(job->res->error, sizeof(job->res->error), "%s", why);
    if (st != SCHED_JOB_PAGING)
        job_drop_pages(job);
}

bool job_terminal(const struct sched_job *job)
{
    return job->state != SCHED_JOB_PAGING;
}

/* Resynchronises the loop's view of job with its cursor after the epoch moved. */
void job_resync(struct sched_job *job)
{
    job_drop_pages(job);
    job->epoch = job->cur.epoch;
    job->next_offset = job->cur.next_offset;
    job->submit_seq = job->next_seq;
    job->depth = 1;
    if (job->child) {
        /* Fan out again from the last parent known complete. */
        job->pn = 0;
        job->ppos = 0;
        job->have_after = job->cur.have_done;
        job->after = job->cur.done_through;
        job->parents_exhausted = false;
    }
}

/* Queues a database operation of kind for job; false (the run stops) when out of memory. */
bool job_submit_op(struct sched_job *job, enum sched_op_kind kind)
{
    struct sched_op *op = calloc(1, sizeof(*op));

    if (op == NULL) {
        sched_nomem(job->s, "queueing a database operation");
        return false;
    }
    op->kind = kind;
    op->job = job;
    if (job->child) {
        op->parent_complete = child_parent_complete(job);
        op->parent_here = job->parent != NULL;
    }
    op_submit(job->s, op);
    return true;
}

void job_check_done(struct sched_job *job)
{
    if (job->child && job->state == SCHED_JOB_PAGING && !job->end_known && job->parents_exhausted &&
        job->ppos >= job->pn && job->npages == 0 && !job->closing_window) {
        /* Every parent is done: close the window (a later run starts a new fan-out). */
        job->closing_window = job_submit_op(job, OP_CLOSE);
        return;
    }
    if (job->state == SCHED_JOB_PAGING && job->end_known && job->npages == 0) {
        job_set_state(job, SCHED_JOB_DONE, NULL);
        base_log_info("job \"%s\": done: %" PRId64 " rows in %" PRId64 " pages, %" PRId64
                      " requests",
                      job->def->name, job->res->rows, job->res->pages, job->res->requests);
    }
}

/* Hands arrived pages to the worker in sequence order. */
static void job_handoff(struct sched *s, struct sched_job *job)
{
    for (struct sched_page *pg = job->pages; pg != NULL; pg = pg->next) {
        struct sched_op *op;

        if (pg->state == PAGE_SUBMITTED)
            continue;
        if (pg->state != PAGE_ARRIVED || pg->seq != job->submit_seq)
            break;
        op = calloc(1, sizeof(*op));
        if (op == NULL || (s->tenant && (op->tenant = strdup(s->tenant)) == NULL) ||
            (s->tenant_unsaved && (op->tenant_seen = strdup(s->tenant)) == NULL)) {
            if (op != NULL)
                free(op->tenant);
            free(op);
            sched_nomem(s, "handing a page to the database worker");
            return;
        }
        /* Remember a newly learned tenant durably with this page's commit. */
        s->tenant_unsaved = false;
        op->kind = OP_PAGE;
        op->page = pg;
        page_set_state(pg, PAGE_SUBMITTED, NULL);
        job->submit_seq++;
        op_submit(s, op);
    }
}

/* Drops the pages of job that wait to be sent: after a stop they never will be. */
void job_drop_wanted(struct sched_job *job)
{
    struct sched_page **pp = &job->pages;

    while (*pp != NULL) {
        struct sched_page *pg = *pp;

        if (pg->state == PAGE_WANT) {
            *pp = pg->next;
            job->npages--;
            page_free(pg);
        } else {
            pp = &pg->next;
        }
    }
}

/*
 * The wait before a page's next attempt, after attempts failed ones (1, 2, ...): a ceiling of
 * 500 ms << attempts (1 s, 2 s, 4 s, ...) capped at 30 s, with equal jitter: a delay drawn
 * in [ceiling / 2, ceiling], so 0.5..1 s after the first failure, 15..30 s from the sixth on.
 */
static uint64_t backoff_ms(int attempts)
{
    uint64_t base = 500u << (attempts < 6 ? attempts : 6);

    if (base > 30000)
        base = 30000;
    return base / 2 + (uint64_t)(rand() % (int)(base / 2 + 1));
}

void job_fail_page(struct sched_job *job, struct sched_page *pg, const char *reason)
{
    char why[512];

    snprintf(why, sizeof(why), "could not fetch page at offset %" PRId64 " of \"%s\": %s",
             pg->offset, job->def->name, reason);
    base_log_error("%s", why);
    /* Its response is in hand: let job_drop_pages free it rather than wait for one. */
    page_set_state(pg, PAGE_WANT, "failed");
    job_set_state(job, SCHED_JOB_FAILED, why);
}

/*
 * Does a 404 of a child list say its parent is not found (Keap: {"message":"Contact not
 * found"})? Any other 404 (a wrong endpoint) is an error, not a deleted parent.
 */
static bool parent_not_found(const struct http_response *resp)
{
    const char *b = resp->body.data;
    static const char want[] = "not found";

    for (size_t i = 0; b != NULL && i + sizeof(want) - 1 <= resp->body.len; i++)
        if (strncasecmp(b + i, want, sizeof(want) - 1) == 0)
            return true;
    return false;
}

static void response_cb(struct http_response *resp, void *data)
{
    struct sched_page *pg = data;
    struct sched_job *job = pg->job;
    struct sched *s = job->s;
    struct pace_observation obs;
    struct keap_verdict v;
    uint64_t now = now_mono(s);
    int64_t wall = now_wall(s);

    s->inflight--;
    job->res->bytes += (int64_t)resp->body.len;
    if (resp->status > 0) {
        pace_on_response(s->pace, pg->admitted_mono, now);
        /* uv_hrtime and the system clock's mono are both CLOCK_MONOTONIC */
        if (resp->request_mono_us > 0 && s->clock == base_clock_system())
            pace_on_sent(s->pace, pg->admitted_mono, resp->request_mono_us / 1000,
                         resp->tcp_rttvar_us, resp->tcp_min_rtt_us);
    }
    keap_read_headers(resp, &obs);
    obs.admitted_mono = pg->admitted_mono;
    pace_observe(s->pace, now, wall, &obs);
    if (obs.quota_limit > 0 && s->opt->limits.per_day > 0 &&
        obs.quota_limit > s->opt->limits.per_day) {
        /* The server's quota is the truth (one real response said 150000): budget by it. */
        int64_t b = (int64_t)((double)obs.quota_limit * (1.0 - s->opt->limits.reserve_fraction));

        if (b > s->budget) {
            base_log_info("Keap reports a daily quota of %" PRId64 "; budgeting %" PRId64,
                          obs.quota_limit, b);
            s->budget = b;
            s->ledger_exhausted = false;
        }
    }
    pg->server_used = obs.quota_used;
    keap_classify_api(resp, job->def->api, wall, &v);
    if (v.outcome == KEAP_OUTCOME_OK) {
        sched_note_tenant(s, obs.tenant_id);
        s->tok.retried_401 = false;
    }
    if (v.outcome == KEAP_OUTCOME_RATE_LIMITED) {
        s->rejected_429++;
        job->res->rejected_429++;
        if ((unsigned)v.limit < BASE_ARRAY_SIZE(s->rejected_429_by))
            s->rejected_429_by[v.limit]++;
        pace_on_429(s->pace, now, wall, v.limit, v.retry_after_ms);
    } else if (v.outcome == KEAP_OUTCOME_OK) {
        pace_on_success(s->pace, now);
    }

    if (pg->stale || job_terminal(job) || pg->epoch != job->epoch) {
        if (!pg->stale)
            job_unlink_page(job, pg);
        page_free(pg);
        goto pump;
    }
    if (job->child && resp->status == 404 && parent_not_found(resp)) {
        /* The parent is gone from Keap (deleted since its row was read): its list is empty,
         * and its rows are marked deleted like any the parent no longer lists. */
        base_log_info("job \"%s\": parent %" PRId64 " is gone from Keap (HTTP 404); its rows "
                      "are marked deleted",
                      job->def->name, pg->parent_id);
        base_buf_reset(&pg->body);
        if (base_buf_printf(&pg->body, "{\"%s\":[]}", job->def->array_key) < 0) {
            sched_nomem(s, "reading a parent that is gone");
            goto pump;
        }
        pg->gone = true;
        page_set_state(pg, PAGE_ARRIVED, "gone");
        job_handoff(s, job);
        goto pump;
    }
    switch (v.outcome) {
    case KEAP_OUTCOME_OK:
        pg->body = resp->body;
        resp->body.data = NULL;
        page_set_state(pg, PAGE_ARRIVED, NULL);
        job_handoff(s, job);
        break;
    case KEAP_OUTCOME_RATE_LIMITED:
        page_set_state(pg, PAGE_WANT, v.reason);
        pg->not_before = 0;
        base_log_warning("job \"%s\": %s", job->def->name, v.reason);
        break;
    case KEAP_OUTCOME_BAD_TOKEN:
        if (pg->page_token == NULL) {
            /* No token was sent: restarting would loop. */
            job_fail_page(job, pg, v.reason);
            break;
        }
        /* fall through */
    case KEAP_OUTCOME_RETRY:
        if (v.outcome == KEAP_OUTCOME_BAD_TOKEN && job->def->api == KEAP_API_V2 &&
            pg->page_token != NULL) {
            /* The saved page token expired: read the window again from its start. A token
             * refused again and again is not expiry: stop rather than loop. */
            if (++job->token_restarts > s->opt->max_attempts) {
                char why[300];

                snprintf(why, sizeof(why),
                         "page tokens keep being refused (%s), %d restarts of the window", v.reason,
                         job->token_restarts - 1);
                job_fail_page(job, pg, why);
                break;
            }
            base_log_warning("job \"%s\": %s; restarting the window", job->def->name, v.reason);
            free(job->cur.page_token);
            job->cur.page_token = NULL;
            job->cur.epoch++;
            job_unlink_page(job, pg);
            page_free(pg);
            job_resync(job);
            break;
        }
        pg->attempts++;
        if (pg->attempts >= s->opt->max_attempts) {
            char why[300];

            snprintf(why, sizeof(why), "%s after %d attempts", v.reason, pg->attempts);
            job_fail_page(job, pg, why);
            break;
        }
        base_log_warning("job \"%s\": %s; trying again", job->def->name, v.reason);
        page_set_state(pg, PAGE_WANT, v.reason);
        pg->not_before = now + backoff_ms(pg->attempts);
        break;
    case KEAP_OUTCOME_AUTH: {
        char why[512];

        if (sched_oauth_on_401(s, pg)) {
            /* OAuth2: sent again once the token is refreshed (sched_pump waits for it). */
            page_set_state(pg, PAGE_WANT, v.reason);
            pg->not_before = 0;
            base_log_info("job \"%s\": %s; refreshing the access token", job->def->name, v.reason);
            break;
        }

        snprintf(why, sizeof(why), "Keap refused the credentials: %s", v.reason);
        job_unlink_page(job, pg);
        page_free(pg);
        sched_stop(s, STOP_AUTH, why);
        break;
    }
    case KEAP_OUTCOME_FATAL:
        job_fail_page(job, pg, v.reason);
        break;
    }
pump:
    sched_pump(s);
}

static int job_build_url(struct sched *s, struct sched_job *job, struct sched_page *pg,
                         struct base_buf *url)
{
    const struct jobs_job *def = job->def;
    const struct sched_cursor *c = &job->cur;
    char endpoint[1024];
    const char *ep = def->endpoint;

    if (job->child) {
        const char *at = strstr(def->endpoint, "{parent_id}");

        if (at == NULL || base_snprintf(endpoint, sizeof(endpoint), "%.*s%" PRId64 "%s",
                                        (int)(at - def->endpoint), def->endpoint, pg->parent_id,
                                        at + strlen("{parent_id}")) < 0)
            return BASE_EINVAL;
        ep = endpoint;
    }
    if (def->api == KEAP_API_V1) {
        struct keap_v1_query q = {
            .limit = def->page_size,
            .offset = pg->offset,
            .order = def->order,
            .order_direction = def->order ? "ASCENDING" : NULL,
            .since_param = def->since_param,
            .since_ms = def->incremental ? c->since_ms : -1,
            .until_param = def->until_param,
            .until_ms = def->incremental ? c->until_ms : -1,
            .optional_properties = def->optional_properties,
            .extra = def->query,
            .nextra = def->nquery,
        };
        return keap_build_v1_url(url, s->opt->base_url, ep, &q);
    } else {
        struct keap_v2_query q = {
            .page_size = def->page_size,
            .page_token = pg->page_token,
            .order_by = def->order,
            .filter_since_field = def->filter_since,
            /* Every page repeats the query the token was minted for (as Google-style
             * page tokens require); only the token changes. */
            .since_ms = def->incremental ? c->since_ms : -1,
            .filter_until_field = def->filter_until,
            .until_ms = def->incremental ? c->until_ms : -1,
            .fields = NULL,
            .extra = def->query,
            .nextra = def->nquery,
        };
        return keap_build_v2_url(url, s->opt->base_url, ep, &q);
    }
}

int job_send_page(struct sched *s, struct sched_page *pg)
{
    struct sched_job *job = pg->job;
    struct base_buf url;
    struct http_request req = {0};
    int rc;

    base_buf_init(&url, 16 * 1024);
    rc = job_build_url(s, job, pg, &url);
    if (rc < 0) {
        base_buf_free(&url);
        return rc;
    }
    req.method = "GET";
    req.url = url.data;
    base_log_debug("job \"%s\": GET %s", job->def->name, url.data);
    req.headers = (const char *const *)s->auth_headers;
    pg->token_gen = s->tok.gen;
    rc = http_send(s->http, &req, response_cb, pg);
    base_buf_free(&url);
    if (rc < 0)
        return rc;
    page_set_state(pg, PAGE_INFLIGHT, NULL);
    pg->requests++;
    pg->sent_wall = now_wall(s);
    s->inflight++;
    s->requests++;
    job->res->requests++;
    return 0;
}

/* Appends a new page (WANT) to job's pipeline; NULL when out of memory (the run stops). */
struct sched_page *job_add_page(struct sched_job *job, int64_t parent_id, int64_t offset)
{
    struct sched_page *pg, **tail;

    pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        goto nomem;
    if (job->def->api == KEAP_API_V2 && job->cur.page_token != NULL) {
        pg->page_token = strdup(job->cur.page_token);
        if (pg->page_token == NULL)
            goto nomem;
    }
    base_buf_init(&pg->body, SCHED_MAX_BODY);
    pg->job = job;
    pg->seq = job->next_seq++;
    pg->epoch = job->epoch;
    pg->offset = offset;
    pg->parent_id = parent_id;
    pg->server_used = -1;
    for (tail = &job->pages; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = pg;
    job->npages++;
    return pg;

nomem:
    free(pg);
    sched_nomem(job->s, "adding a page");
    return NULL;
}

/* The next page of job worth sending now, creating one when the pipeline has room. */
struct sched_page *job_next_page(struct sched_job *job, uint64_t now, uint64_t *wake)
{
    struct sched_page *pg;
    int active = 0;

    for (pg = job->pages; pg != NULL; pg = pg->next) {
        if (pg->state == PAGE_WANT) {
            if (pg->not_before <= now)
                return pg;
            if (*wake == 0 || pg->not_before < *wake)
                *wake = pg->not_before;
        }
        active++;
    }
    if (job->end_known || active >= job->depth)
        return NULL;
    if (job->child) {
        /* Fan out over the parent's rows once the parent itself is synced. */
        if (job->parent != NULL && !job_terminal(job->parent))
            return NULL;
        if (job->ppos >= job->pn) {
            job_fetch_parents(job);
            return NULL;
        }
        pg = job_add_page(job, job->pids[job->ppos], 0);
        if (pg != NULL)
            job->ppos++;
        return pg;
    }
    if (job->def->api == KEAP_API_V2 && active > 0)
        return NULL; /* tokens chain: one page at a time */
    pg = job_add_page(job, 0, job->next_offset);
    if (pg != NULL)
        job->next_offset += job->def->page_size - job->overlap;
    return pg;
}
