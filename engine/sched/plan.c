/*
 * plan.c: the quota planner. Before a run spends anything, it estimates each selected job's
 * records and requests for its current pass, in admission order (list jobs, then child
 * streams, then backfills and delete sweeps), and spreads them over the UTC days the
 * tenant's quota allows (sched.h has the words).
 *
 * Where an estimate comes from, first that applies:
 *   fresh     the job's last complete pass is within refresh_hours: nothing this run
 *   history   the job's last complete pass of the same kind (full or incremental) in
 *             keapsync.job_stats, less what the open pass has spent already
 *   probe     the window's size from v1 page lengths (sched_probe_size), with the same
 *             since/until the run would send; a v2 job probes its resource's v1 list when
 *             that list has the same filter, or when the window reads everything
 *   estimate  the last `keapsync plan`'s figure (keapsync.job_estimates) less what was spent
 *             since (so a run stopped at the quota can say what is left without a request)
 *   default   one page
 * A child stream costs a request per parent to read (its parents in Postgres written since its
 * pass began, plus those its parent job has still to write) times its pages per parent in
 * its last full pass.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#define PLAN_DEFAULT_PROBES 64
#define PLAN_MAX_DAYS       3650

/* ---- pure: requests for records, and the size probe ----------------------------------- */

/* Pages of a list of records, the last one short (v1) or without a next token (v2). */
static int64_t list_pages(enum keap_api api, int page_size, bool overlap, int64_t records)
{
    int64_t l = page_size > 0 ? page_size : 1000;

    if (records <= 0)
        return 1; /* one page, empty or short, ends the window */
    if (api == KEAP_API_V2)
        return (records + l - 1) / l;
    if (overlap && l > 1) {
        /* Pages at offsets 0, l-1, 2(l-1), ...; the first short one ends the window. */
        if (records < l)
            return 1;
        return (records - l) / (l - 1) + 2;
    }
    return records / l + 1;
}

int64_t sched_plan_list_requests(enum keap_api api, int page_size, bool overlap, int64_t records)
{
    int64_t pages = list_pages(api, page_size, overlap, records), ahead = pages - 1;

    if (api == KEAP_API_V2)
        return pages; /* tokens chain: nothing is sent past the last page */
    /* v1 pages go several at a time: the pipeline deepens by one with each full page (to
     * SCHED_DEFAULT_DEPTH), and what it sent past the short last page is spent too. */
    if (ahead > SCHED_DEFAULT_DEPTH - 1)
        ahead = SCHED_DEFAULT_DEPTH - 1;
    return pages + ahead;
}

int64_t sched_plan_sweep_requests(enum keap_api api, int64_t records, int page_size)
{
    /* A sweep reads pages of at least SCHED_SWEEP_PAGE ids, without overlap (sweep.c). */
    return sched_plan_list_requests(
        api, page_size > SCHED_SWEEP_PAGE ? page_size : SCHED_SWEEP_PAGE, false, records);
}

void sched_probe_init(struct sched_probe *p, sched_probe_fn fn, void *ctx, int limit)
{
    memset(p, 0, sizeof(*p));
    p->fn = fn;
    p->ctx = ctx;
    p->limit = limit < 1 ? 1 : limit;
    p->hi = p->exact = p->count = -1;
}

bool sched_probe_done(const struct sched_probe *p, double tol)
{
    if (p->rc < 0 || p->exact >= 0)
        return true;
    if (p->stage < 3 || p->hi < 0)
        return false;
    return (double)(p->hi - p->lo) <= tol * (double)(p->hi + p->lo);
}

int64_t sched_probe_estimate(const struct sched_probe *p)
{
    if (p->exact >= 0)
        return p->exact;
    /* The middle in ratio while the bracket spans more than a factor of 2: its error either
     * way is then at most sqrt(hi / lo), where the arithmetic middle's could be hi / 2lo. */
    if (p->hi > 2 * p->lo)
        return (int64_t)sqrt((double)p->lo * (double)p->hi);
    if (p->hi >= 0)
        return p->lo + (p->hi - p->lo) / 2;
    return p->lo;
}

/* Fetches the page at offset; a short page settles the size. Returns fn's result. */
static int probe_fetch(struct sched_probe *p, int64_t offset, int limit, int *n, int64_t *count)
{
    int rc;

    *n = 0;
    *count = -1;
    rc = p->fn(p->ctx, offset, limit, n, count);
    p->requests++;
    if (rc < 0)
        p->rc = rc;
    return rc;
}

/* lo <= size <= hi: equal bounds are the size; crossed ones mean the list grew meanwhile. */
static void probe_settle(struct sched_probe *p)
{
    if (p->exact < 0 && p->hi >= 0 && p->hi == p->lo)
        p->exact = p->lo;
    else if (p->hi >= 0 && p->hi < p->lo)
        p->hi = -1; /* bound it again */
}

int sched_probe_step(struct sched_probe *p)
{
    int64_t off, count;
    int n, rc;

    if (p->rc < 0 || p->exact >= 0)
        return p->rc;
    switch (p->stage) {
    case 0: /* the first page */
        if ((rc = probe_fetch(p, 0, p->limit, &n, &count)) < 0)
            return rc;
        if (n < p->limit) {
            p->exact = n;
            return 0;
        }
        p->lo = p->limit;
        p->count = count;
        p->stage = count > n ? 1 : 3;
        return 0;
    case 1: /* a count above the page: is there a record at count - 1 ... */
        if ((rc = probe_fetch(p, p->count - 1, 1, &n, &count)) < 0)
            return rc;
        if (n == 1) {
            p->lo = p->count > p->lo ? p->count : p->lo;
            p->stage = 2;
        } else {
            p->hi = p->count - 1;
            p->stage = 3;
        }
        probe_settle(p);
        return 0;
    case 2: /* ... and none at count? */
        if ((rc = probe_fetch(p, p->count, 1, &n, &count)) < 0)
            return rc;
        if (n == 0)
            p->exact = p->count;
        else
            p->lo = p->count + 1;
        p->stage = 3;
        return 0;
    default:
        break;
    }
    if (p->hi >= 0 && p->hi - p->lo <= p->limit - 2) {
        /* One page over [hi - limit + 1, hi + 1) starts below lo: it is short, and exact. */
        off = p->hi - p->limit + 1 > 0 ? p->hi - p->limit + 1 : 0;
    } else if (p->hi < 0) {
        if (p->lo > INT64_MAX / (4 * SCHED_PROBE_GROWTH)) {
            p->rc = BASE_ERANGE;
            return p->rc;
        }
        off = p->lo * SCHED_PROBE_GROWTH;
    } else {
        off = p->hi > 2 * p->lo ? (int64_t)sqrt((double)p->lo * (double)p->hi)
                                : p->lo + (p->hi - p->lo) / 2;
        if (off < p->lo)
            off = p->lo;
        if (off > p->hi - 1)
            off = p->hi - 1;
    }
    if ((rc = probe_fetch(p, off, p->limit, &n, &count)) < 0)
        return rc;
    if (n >= p->limit)
        p->lo = off + p->limit;
    else if (n > 0)
        p->exact = off + n;
    else
        p->hi = off;
    probe_settle(p);
    return 0;
}

/* The bracket's width in probe pages (a list not yet bounded above is the widest). */
static double probe_width(const struct sched_probe *p)
{
    if (p->stage < 3 || p->hi < 0)
        return HUGE_VAL;
    return (double)(p->hi - p->lo) / (double)p->limit;
}

int sched_probe_many(struct sched_probe *const *v, size_t n, int budget, double tol)
{
    int spent = 0;

    while (spent < budget) {
        struct sched_probe *best = NULL;
        int before;

        for (size_t i = 0; i < n; i++)
            if (!sched_probe_done(v[i], tol) &&
                (best == NULL || probe_width(v[i]) > probe_width(best)))
                best = v[i];
        if (best == NULL)
            break;
        before = best->requests;
        sched_probe_step(best);
        spent += best->requests - before;
        if (best->rc == BASE_EAUTH)
            return BASE_EAUTH;
    }
    return spent;
}

int sched_probe_size(sched_probe_fn fn, void *ctx, int limit, int64_t *size, int *requests)
{
    struct sched_probe p;

    sched_probe_init(&p, fn, ctx, limit);
    while (!sched_probe_done(&p, 0.0))
        sched_probe_step(&p);
    *requests = p.requests;
    if (p.rc < 0)
        return p.rc;
    *size = p.exact;
    return 0;
}

/* ---- the plan's storage ---------------------------------------------------------------- */

void sched_plan_free(struct sched_plan *p)
{
    if (p == NULL)
        return;
    free(p->jobs);
    p->jobs = NULL;
    p->njobs = p->cap = 0;
}

int sched_plan_add(struct sched_plan *p, const struct sched_plan_job *j)
{
    if (p->njobs == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct sched_plan_job *grown = realloc(p->jobs, cap * sizeof(*grown));

        if (grown == NULL)
            return BASE_ENOMEM;
        p->jobs = grown;
        p->cap = cap;
    }
    p->jobs[p->njobs++] = *j;
    return 0;
}

static int kind_cmp(const void *a, const void *b)
{
    const struct sched_plan_job *x = a, *y = b;

    return (int)x->kind - (int)y->kind;
}

void sched_plan_schedule(struct sched_plan *p)
{
    int64_t left = p->today_left, recost = 0;
    int day = 0, last = 0;

    /* Stable by kind: insertion order within a kind (qsort is not stable, so sort indices). */
    for (size_t i = 1; i < p->njobs; i++)
        for (size_t k = i; k > 0 && kind_cmp(&p->jobs[k - 1], &p->jobs[k]) > 0; k--) {
            struct sched_plan_job t = p->jobs[k];

            p->jobs[k] = p->jobs[k - 1];
            p->jobs[k - 1] = t;
        }
    p->total_requests = 0;
    for (size_t i = 0; i < p->njobs; i++) {
        struct sched_plan_job *j = &p->jobs[i];
        int64_t need = j->requests;

        p->total_requests += need;
        while (p->daily > 0 && need > left && day < PLAN_MAX_DAYS) {
            need -= left > 0 ? left : 0;
            day++;
            /* What the jobs done by now cost again each day comes first. */
            left = p->daily - recost;
        }
        left -= need;
        j->finish_day = day;
        recost += j->recost;
        if (need > 0 || j->requests > 0)
            last = day;
        base_time_format_day(base_time_day_start(p->now_ms) + (int64_t)day * 86400000,
                             j->finish_date, sizeof(j->finish_date));
    }
    p->days = p->total_requests > 0 ? last + 1 : 0;
    base_time_format_day(base_time_day_start(p->now_ms) + (int64_t)last * 86400000, p->finish_date,
                         sizeof(p->finish_date));
}

/* ---- probes ------------------------------------------------------------------------- */

struct probe_ctx {
    const struct sched_plan_options *opt;
    struct store *store;
    struct sched_plan *plan;
    const char *endpoint;
    const char *since_param, *until_param;
    int64_t since_ms, until_ms;
    const struct keap_param *extra;
    size_t nextra;
    const char *array_key;
    uint64_t *next_mono; /* the plan's: when the next probe may be sent */
    struct base_err *err;
};

/*
 * A plan's probes. The plan is built twice: a survey (pr->survey) that registers the probe
 * each estimate would need and estimates nothing, then, once sched_probe_many has spent the
 * cap over all of them together, the real pass, which reads each probe's result back.
 */
struct plan_probe {
    char key[80]; /* the job's name, or the backfill's ("<job>#backfill<id>") */
    char endpoint[256];
    struct probe_ctx cx;
    struct sched_probe st;
    struct base_err err;
};

struct plan_probes {
    struct plan_probe *v;
    size_t n, cap;
    bool survey;
    uint64_t next_mono;
};

#define PLAN_PROBE_TOL 0.01 /* a probed size within 1 % is close enough */

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int probe_page_cb(void *data, int64_t offset, int limit, int *n, int64_t *count)
{
    struct probe_ctx *cx = data;
    const struct sched_plan_options *opt = cx->opt;
    struct keap_v1_query q = {0};
    struct keap_probe_result r;
    struct base_buf url;
    int64_t granted = 0, total = 0, wall;
    uint64_t now;
    int rc;

    wall = base_clock_wall_ms(opt->clock);
    /* Counted in the ledger before it is sent, as every request is. */
    rc = store_ledger_reserve(cx->store, opt->tenant, wall,
                              cx->plan->daily > 0 ? cx->plan->daily : INT64_MAX / 4, 1, &granted,
                              &total, cx->err);
    if (rc < 0)
        return rc;
    if (granted < 1)
        return base_err_set(cx->err, BASE_EQUOTA, "the day's request budget is spent");
    now = base_clock_mono_ms(opt->clock);
    if (now < *cx->next_mono)
        sleep_ms(*cx->next_mono - now);
    *cx->next_mono = base_clock_mono_ms(opt->clock) + pace_probe_interval_ms(&opt->limits);
    cx->plan->probe_requests++;
    q.limit = limit;
    q.offset = offset;
    q.since_param = cx->since_ms >= 0 ? cx->since_param : NULL;
    q.since_ms = cx->since_ms;
    q.until_param = cx->until_ms >= 0 ? cx->until_param : NULL;
    q.until_ms = cx->until_ms;
    q.extra = cx->extra;
    q.nextra = cx->nextra;
    base_buf_init(&url, 64 * 1024);
    rc = keap_build_v1_url(&url, opt->base_url, cx->endpoint, &q);
    if (rc < 0) {
        base_buf_free(&url);
        return base_err_set(cx->err, rc, "could not build the probe of %s", cx->endpoint);
    }
    rc = keap_probe_list(url.data, opt->headers, cx->array_key, &r, cx->err);
    base_buf_free(&url);
    if (rc < 0)
        return rc;
    if (r.obs.quota_used >= 0 || r.obs.quota_available >= 0) {
        int64_t used = r.obs.quota_used, limit_hdr = r.obs.quota_limit;

        if (limit_hdr > 0 && (cx->plan->per_day <= 0 || limit_hdr < cx->plan->per_day))
            cx->plan->per_day = limit_hdr;
        if (used < 0 && r.obs.quota_available >= 0 && limit_hdr > 0)
            used = limit_hdr - r.obs.quota_available;
        if (used >= 0) {
            struct base_err e2;

            cx->plan->headers_seen = true;
            /* Others' use of the tenant's day, as the run's pages would tell the ledger. */
            if (store_ledger_observe(cx->store, opt->tenant, wall, used, &e2) < 0)
                base_log_warning("%s", e2.msg);
        }
    }
    *n = r.n;
    *count = r.count;
    return 0;
}

/* The v1 list a job's window can be counted on: false when there is none. */
static bool v1_equivalent(const struct jobs_job *def, const struct sched_cursor *c,
                          struct probe_ctx *cx, char *endpoint, size_t n)
{
    static const struct {
        const char *v2, *v1, *since, *until;
    } map[] = {
        {"/v2/contacts", "/v1/contacts", "since", "until"},
        {"/v2/orders", "/v1/orders", "since", "until"},
        {"/v2/tasks", "/v1/tasks", "since", "until"},
        {"/v2/sales/transactions", "/v1/transactions", "since", "until"},
        {"/v2/emails", "/v1/emails", "since_sent_date", "until_sent_date"},
    };
    bool filtered = false;

    cx->since_param = cx->until_param = NULL;
    cx->extra = NULL;
    cx->nextra = 0;
    if (def->api == KEAP_API_V1) {
        snprintf(endpoint, n, "%s", def->endpoint);
        cx->since_param = def->since_param;
        cx->until_param = def->until_param;
        cx->extra = def->query;
        cx->nextra = def->nquery;
        filtered = def->incremental;
    } else {
        for (size_t i = 0; i < BASE_ARRAY_SIZE(map); i++)
            if (strcmp(def->endpoint, map[i].v2) == 0) {
                snprintf(endpoint, n, "%s", map[i].v1);
                cx->since_param = map[i].since;
                cx->until_param = map[i].until;
                filtered = true;
            }
        if (!filtered) {
            if (strncmp(def->endpoint, "/v2/", 4) != 0)
                return false;
            snprintf(endpoint, n, "/v1/%s", def->endpoint + 4);
        }
    }
    cx->since_ms = filtered && c->since_ms >= 0 ? c->since_ms : -1;
    cx->until_ms = filtered && c->until_ms >= 0 ? c->until_ms : -1;
    /* A window after a watermark needs the filter; a first window reads everything. */
    if (def->incremental && c->since_ms >= 0 && !filtered)
        return false;
    return true;
}

/*
 * The probed size of key's list, with cx set up for it (v1_equivalent). In the survey the
 * probe is only registered and *size is 0. Afterwards: 0 with *size (exact, or the middle of
 * a bracket within PLAN_PROBE_TOL, or what the cap left), *nreq its requests and *detail a
 * word on its precision; BASE_EAGAIN when the cap left it nothing; or the probe's error.
 */
static int plan_probe(struct plan_probes *pr, const char *key, const struct probe_ctx *cx,
                      int limit, int64_t *size, int *nreq, char *detail, size_t dn,
                      struct base_err *err)
{
    struct plan_probe *e = NULL;

    *size = 0;
    *nreq = 0;
    detail[0] = '\0';
    if (pr->survey) {
        if (pr->n == pr->cap) {
            size_t cap = pr->cap ? pr->cap * 2 : 16;
            struct plan_probe *grown = realloc(pr->v, cap * sizeof(*grown));

            if (grown == NULL)
                return base_err_set(err, BASE_ENOMEM, "out of memory");
            pr->v = grown;
            pr->cap = cap;
        }
        e = &pr->v[pr->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->key, sizeof(e->key), "%s", key);
        snprintf(e->endpoint, sizeof(e->endpoint), "%s", cx->endpoint);
        e->cx = *cx;
        sched_probe_init(&e->st, probe_page_cb, NULL, limit); /* ctx: once v stops moving */
        return 0;
    }
    for (size_t i = 0; i < pr->n && e == NULL; i++)
        if (strcmp(pr->v[i].key, key) == 0)
            e = &pr->v[i];
    if (e == NULL || e->st.requests == 0)
        return base_err_set(err, BASE_EAGAIN, "the plan's probe requests are used up");
    *nreq = e->st.requests;
    if (e->st.rc < 0) {
        *err = e->err;
        return e->st.rc;
    }
    *size = sched_probe_estimate(&e->st);
    if (e->st.exact < 0 && e->st.hi < 0)
        snprintf(detail, dn, ", at least (the cap ended it)");
    else if (e->st.exact < 0)
        snprintf(detail, dn, ", within %.1f %%",
                 e->st.hi + e->st.lo > 0
                     ? 100.0 * (double)(e->st.hi - e->st.lo) / (double)(e->st.hi + e->st.lo)
                     : 0.0);
    return 0;
}

/* Spends the cap over the surveyed probes, widest bracket first. */
static int plan_probe_all(struct plan_probes *pr, struct sched_plan *plan, int budget,
                          struct base_err *err)
{
    struct sched_probe **all;
    int rc;

    for (size_t i = 0; i < pr->n; i++) {
        struct plan_probe *e = &pr->v[i];

        e->cx.endpoint = e->endpoint;
        e->cx.next_mono = &pr->next_mono;
        e->cx.err = &e->err;
        e->cx.plan = plan;
        e->st.ctx = &e->cx;
        base_err_clear(&e->err);
    }
    pr->survey = false;
    if (budget <= 0 || pr->n == 0)
        return 0;
    all = calloc(pr->n, sizeof(*all));
    if (all == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    for (size_t i = 0; i < pr->n; i++)
        all[i] = &pr->v[i].st;
    rc = sched_probe_many(all, pr->n, budget, PLAN_PROBE_TOL);
    free(all);
    if (rc == BASE_EAUTH) {
        for (size_t i = 0; i < pr->n; i++)
            if (pr->v[i].st.rc == BASE_EAUTH)
                *err = pr->v[i].err;
        return BASE_EAUTH;
    }
    for (size_t i = 0; i < pr->n; i++)
        if (pr->v[i].st.rc < 0)
            base_log_warning("job \"%s\": probe stopped: %s", pr->v[i].key, pr->v[i].err.msg);
    return 0;
}

/* ---- estimates ------------------------------------------------------------------------ */

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static bool has_labels(const struct jobs_job *def)
{
    for (size_t i = 0; def->custom_labels != NULL && i < def->map.ncols; i++)
        if (def->custom_labels[i] != NULL)
            return true;
    return false;
}

/* Requests left of a pass of records, given where the cursor stands and what it has spent. */
static int64_t left_of_pass(const struct jobs_job *def, bool overlap, const struct sched_cursor *c,
                            int64_t records, int64_t spent)
{
    if (def->api == KEAP_API_V1 && c->next_offset > 0)
        return sched_plan_list_requests(def->api, def->page_size, overlap,
                                        max64(0, records - c->next_offset));
    return max64(1, sched_plan_list_requests(def->api, def->page_size, overlap, records) - spent);
}

static int estimate_list(const struct sched_plan_options *opt, struct store *s,
                         const struct jobs_job *def, struct sched_plan *plan,
                         struct plan_probes *pr, struct sched_plan_job *pj, struct base_err *err)
{
    struct sched_cursor c = {0};
    struct store_pass_cost hist, open, inc;
    struct store_estimate est;
    bool found = false, full, overlap, resuming, inc_found = false;
    char *ckpt = NULL;
    int rc;

    rc = store_checkpoint_load(s, def->name, &ckpt, err);
    if (rc == 0)
        rc = cursor_load(&c, ckpt, def, err);
    free(ckpt);
    if (rc < 0)
        goto out;
    overlap = def->api == KEAP_API_V1 && def->order != NULL && strcmp(def->order, "id") == 0;
    resuming = c.in_window;
    if (cursor_fresh(&c, def, opt->clock)) {
        rc = store_stats_last_pass(s, def->name, true, &hist, &found, err);
        pj->pass = "fresh";
        snprintf(pj->source, sizeof(pj->source), "fresh");
        snprintf(pj->detail, sizeof(pj->detail), "read in full %" PRId64 " min ago",
                 (base_clock_wall_ms(opt->clock) - c.completed_ms) / 60000);
        pj->records = 0;
        pj->requests = 0;
        pj->recost = found ? hist.requests : 1;
        pj->sweep_requests =
            found ? sched_plan_sweep_requests(def->api, hist.records, def->page_size) : -1;
        goto out;
    }
    cursor_open_window(&c, def, opt->clock);
    full = !def->incremental || c.since_ms < 0;
    pj->pass = full ? "full" : "incremental";
    rc = store_stats_open_pass(s, def->name, &open, err);
    if (rc == 0)
        rc = store_stats_last_pass(s, def->name, full, &hist, &found, err);
    if (rc == 0 && def->incremental)
        rc = store_stats_last_pass(s, def->name, false, &inc, &inc_found, err);
    if (rc < 0)
        goto out;
    if (!resuming)
        open.requests = open.records = 0;
    if (found) {
        pj->records = max64(0, hist.records - open.records);
        pj->requests = max64(1, hist.requests - open.requests);
        if (resuming && def->api == KEAP_API_V1 && c.next_offset > 0)
            pj->requests = left_of_pass(def, overlap, &c, hist.records, open.requests);
        snprintf(pj->source, sizeof(pj->source), "history");
        snprintf(pj->detail, sizeof(pj->detail),
                 "last %s pass: %" PRId64 " records, %" PRId64 " requests", pj->pass, hist.records,
                 hist.requests);
    } else {
        char endpoint[256], prec[64];
        struct probe_ctx cx = {.opt = opt, .store = s, .plan = plan, .err = err};
        const char *why = ", and no v1 list to probe";
        int64_t size = 0;
        int nreq = 0;

        rc = -1;
        cx.endpoint = endpoint;
        cx.array_key = def->array_key;
        if (opt->headers != NULL && v1_equivalent(def, &c, &cx, endpoint, sizeof(endpoint))) {
            int limit = def->api == KEAP_API_V1 ? def->page_size : 1000;

            rc = plan_probe(pr, def->name, &cx, limit > 0 ? limit : 1000, &size, &nreq, prec,
                            sizeof(prec), err);
            if (rc == BASE_ENOMEM)
                goto out;
            if (rc < 0) {
                base_err_clear(err);
                why = rc == BASE_EAGAIN ? ", and the probe cap (--max-probes) was reached"
                                        : ", and the probe failed";
            } else {
                pj->records = size;
                pj->requests = left_of_pass(def, overlap, &c, size, open.requests);
                snprintf(pj->source, sizeof(pj->source), "probe");
                snprintf(pj->detail, sizeof(pj->detail), "%s%s: %d requests%s", endpoint,
                         cx.since_ms >= 0 ? " since the watermark" : "", nreq, prec);
            }
        }
        if (rc < 0) {
            rc = store_estimate_get(s, def->name, &est, &found, err);
            if (rc < 0)
                goto out;
            if (found && resuming) {
                pj->records = max64(0, est.records - open.records);
                pj->requests = left_of_pass(def, overlap, &c, est.records, open.requests);
                snprintf(pj->source, sizeof(pj->source), "estimate");
                snprintf(pj->detail, sizeof(pj->detail),
                         "keapsync plan: %" PRId64 " requests, %" PRId64 " spent since",
                         est.requests, open.requests);
            } else {
                pj->records = -1;
                pj->requests = 1;
                snprintf(pj->source, sizeof(pj->source), "default");
                snprintf(pj->detail, sizeof(pj->detail), "one page: no history%s",
                         opt->headers == NULL ? ", and no probes" : why);
            }
        }
    }
    /* A sweep lists every id: as many pages as a full pass has records. */
    pj->sweep_requests = full && pj->records >= 0 && !resuming
                             ? sched_plan_sweep_requests(def->api, pj->records, def->page_size)
                             : -1;
    if (has_labels(def))
        pj->requests++; /* the object's model, read once a run */
    /* A later day: an incremental window (as the last one cost), or the list again. */
    pj->recost = def->incremental ? (inc_found ? max64(1, inc.requests) : 1) : pj->requests;
out:
    free(c.page_token);
    cursor_plist_clear(&c);
    free(c.plist);
    return rc;
}

static int estimate_child(const struct sched_plan_options *opt, struct store *s,
                          const struct jobs_job *def, const struct sched_plan *plan,
                          struct sched_plan_job *pj, struct base_err *err)
{
    struct sched_cursor c = {0};
    struct store_pass_cost hist;
    bool found = false;
    int64_t in_pg = 0, to_come = 0;
    char *ckpt = NULL;
    int rc;

    rc = store_checkpoint_load(s, def->name, &ckpt, err);
    if (rc == 0)
        rc = cursor_load(&c, ckpt, def, err);
    free(ckpt);
    if (rc < 0)
        goto out;
    pj->kind = SCHED_PLAN_CHILD;
    pj->pass = "child";
    pj->sweep_requests = -1; /* a child's sweep is its pass: each parent's list in full */
    if (cursor_fresh(&c, def, opt->clock)) {
        snprintf(pj->source, sizeof(pj->source), "fresh");
        snprintf(pj->detail, sizeof(pj->detail), "read in full %" PRId64 " min ago",
                 (base_clock_wall_ms(opt->clock) - c.completed_ms) / 60000);
        pj->records = pj->requests = pj->recost = 0;
        goto out;
    }
    cursor_open_window(&c, def, opt->clock);
    rc = store_count_rows(s, def->parent_table, c.have_done, c.done_through, c.since_mark, &in_pg,
                          err);
    if (rc == 0)
        rc = store_stats_last_pass(s, def->name, true, &hist, &found, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < plan->njobs; i++)
        if (strcmp(plan->jobs[i].name, def->parent_job) == 0 && plan->jobs[i].records > 0)
            to_come = plan->jobs[i].records;
    pj->records = in_pg + to_come; /* parents to read */
    if (found && hist.units > 0) {
        double per = (double)hist.requests / (double)hist.units;

        pj->requests = (int64_t)((double)pj->records * (per < 1.0 ? 1.0 : per) + 0.5);
        snprintf(pj->source, sizeof(pj->source), "parents");
        snprintf(pj->detail, sizeof(pj->detail),
                 "%" PRId64 " parents in postgres + %" PRId64 " to come, %.3f requests each "
                 "(history)",
                 in_pg, to_come, per);
    } else {
        pj->requests = pj->records;
        snprintf(pj->source, sizeof(pj->source), "parents");
        snprintf(pj->detail, sizeof(pj->detail),
                 "%" PRId64 " parents in postgres + %" PRId64 " to come, 1 request each "
                 "(no history of extra pages)",
                 in_pg, to_come);
    }
    pj->recost = 0; /* the parents that change are counted in the parent's window */
out:
    free(c.page_token);
    cursor_plist_clear(&c);
    free(c.plist);
    return rc;
}

/* The day's budget and what today leaves of it: KEAPSYNC_LIMITS, the ledger, the headers. */
static int plan_budget(const struct sched_plan_options *opt, struct store *s, struct sched_plan *p,
                       struct base_err *err)
{
    struct store_ledger_row row = {0, 0};
    int rc;

    p->reserve_fraction = opt->limits.reserve_fraction;
    if (p->per_day <= 0 || (opt->limits.per_day > 0 && opt->limits.per_day < p->per_day))
        p->per_day = opt->limits.per_day;
    p->daily = p->per_day > 0 ? (int64_t)((double)p->per_day * (1.0 - p->reserve_fraction)) : 0;
    rc = store_ledger_get(s, opt->tenant, p->now_ms, &row, err);
    if (rc < 0)
        return rc;
    p->today_left = p->daily > 0 ? max64(0, p->daily - row.reserved) : 0;
    return 0;
}

/* The plan's entry for a job of the set (its list or child estimate), or NULL. */
static const struct sched_plan_job *plan_find(const struct sched_plan *p, const char *name)
{
    for (size_t i = 0; i < p->njobs; i++)
        if (strcmp(p->jobs[i].name, name) == 0 &&
            (p->jobs[i].kind == SCHED_PLAN_LIST || p->jobs[i].kind == SCHED_PLAN_CHILD))
            return &p->jobs[i];
    return NULL;
}

/* A delete sweep that the next run begins or continues: a full id listing of the job's list. */
static int estimate_sweep(struct store *s, const struct jobs_job *def,
                          const struct sched_pending *pd, const struct sched_plan *plan,
                          struct sched_plan_job *pj, struct base_err *err)
{
    const struct sched_plan_job *list = plan_find(plan, def->name);
    int page = def->page_size > SCHED_SWEEP_PAGE ? def->page_size : SCHED_SWEEP_PAGE;
    struct store_pass_cost hist, full;
    bool found = false, full_found = false;
    int rc;

    snprintf(pj->name, sizeof(pj->name), "%s#sweep", def->name);
    pj->kind = SCHED_PLAN_SWEEP;
    pj->pass = "sweep";
    pj->sweep_requests = -1;
    rc = store_stats_last_pass(s, pj->name, true, &hist, &found, err);
    if (rc == 0)
        rc = store_stats_last_pass(s, def->name, true, &full, &full_found, err);
    if (rc < 0)
        return rc;
    if (found) {
        pj->records = hist.records;
        pj->requests = max64(1, hist.requests);
        snprintf(pj->source, sizeof(pj->source), "history");
        snprintf(pj->detail, sizeof(pj->detail),
                 "last sweep: %" PRId64 " ids, %" PRId64 " requests", hist.records, hist.requests);
    } else if (full_found ||
               (list != NULL && list->records >= 0 && strcmp(list->pass, "full") == 0)) {
        pj->records = full_found ? full.records : list->records;
        pj->requests = sched_plan_sweep_requests(def->api, pj->records, page);
        snprintf(pj->source, sizeof(pj->source), "%s", full_found ? "history" : list->source);
        snprintf(pj->detail, sizeof(pj->detail), "%" PRId64 " ids in pages of %d", pj->records,
                 page);
    } else {
        pj->records = -1;
        pj->requests = 1;
        snprintf(pj->source, sizeof(pj->source), "default");
        snprintf(pj->detail, sizeof(pj->detail), "one page: the list's size is not known");
    }
    if (pd->sweep_running)
        snprintf(pj->detail + strlen(pj->detail), sizeof(pj->detail) - strlen(pj->detail),
                 " (continues a sweep begun earlier)");
    return 0;
}

/* What remains of a recorded backfill: its range probed like a window, or one page. */
static int estimate_backfill(const struct sched_plan_options *opt, struct store *s,
                             const struct jobs_job *def, const struct sched_pending_backfill *b,
                             struct sched_plan *plan, struct plan_probes *pr,
                             struct sched_plan_job *pj, struct base_err *err)
{
    bool overlap = def->api == KEAP_API_V1 && def->order != NULL && strcmp(def->order, "id") == 0;
    struct sched_cursor c = {0};
    struct probe_ctx cx = {.opt = opt, .store = s, .plan = plan, .err = err};
    char endpoint[256];
    const char *why = ", and no probes";
    int rc = -1;

    snprintf(pj->name, sizeof(pj->name), "%s#backfill%" PRId64, def->name, b->id);
    pj->kind = SCHED_PLAN_BACKFILL;
    pj->pass = "backfill";
    pj->sweep_requests = -1;
    c.since_ms = b->resume_ms;
    c.until_ms = b->to_ms;
    cx.endpoint = endpoint;
    cx.array_key = def->array_key;
    if (opt->headers != NULL && v1_equivalent(def, &c, &cx, endpoint, sizeof(endpoint)) &&
        cx.since_ms >= 0) {
        int limit = def->api == KEAP_API_V1 ? def->page_size : 1000;
        int64_t size = 0;
        char prec[64];
        int nreq = 0;

        rc = plan_probe(pr, pj->name, &cx, limit > 0 ? limit : 1000, &size, &nreq, prec,
                        sizeof(prec), err);
        if (rc == BASE_ENOMEM)
            return rc;
        if (rc < 0) {
            base_err_clear(err);
            why = rc == BASE_EAGAIN ? ", and the probe cap (--max-probes) was reached"
                                    : ", and the probe failed";
        } else {
            int64_t days;

            pj->records = max64(0, size - b->offset);
            pj->requests = sched_plan_list_requests(def->api, def->page_size, overlap, pj->records);
            /* Each day's window ends on a short page of its own. */
            days = plan->daily > 0 ? pj->requests / plan->daily : 0;
            pj->requests += days;
            snprintf(pj->source, sizeof(pj->source), "probe");
            snprintf(pj->detail, sizeof(pj->detail), "%s over the range left: %d requests%s",
                     endpoint, nreq, prec);
        }
    } else if (opt->headers != NULL) {
        why = ", and no changed-since list to probe";
    }
    if (rc < 0) {
        struct store_estimate est;
        struct store_pass_cost open;
        bool found = false;

        /* The last `keapsync plan`'s figure, less what the backfill has spent since. */
        rc = store_estimate_get(s, pj->name, &est, &found, err);
        if (rc == 0 && found)
            rc = store_stats_open_pass(s, pj->name, &open, err);
        if (rc < 0)
            return rc;
        if (found) {
            pj->records = max64(0, est.records - open.records);
            pj->requests = max64(1, est.requests - open.requests);
            snprintf(pj->source, sizeof(pj->source), "estimate");
            snprintf(pj->detail, sizeof(pj->detail),
                     "keapsync plan: %" PRId64 " requests, %" PRId64 " spent since", est.requests,
                     open.requests);
        } else {
            pj->records = -1;
            pj->requests = 1;
            snprintf(pj->source, sizeof(pj->source), "default");
            snprintf(pj->detail, sizeof(pj->detail), "one page%s", why);
        }
    }
    return 0;
}

/* Backfills and delete sweeps: the work beyond each job's window (sched_pending_work). */
static int plan_pending(const struct sched_plan_options *opt, const struct jobs_set *set,
                        struct store *s, struct sched_plan *p, struct plan_probes *pr,
                        struct base_err *err)
{
    struct sched_pending *pend = NULL;
    int rc;

    rc = sched_pending_work(s, set, opt->clock, &pend, err);
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const struct jobs_job *def = &set->jobs[i];
        struct sched_plan_job pj;

        for (size_t k = 0; rc == 0 && k < pend[i].nbackfills; k++) {
            if (pend[i].backfills[k].done)
                continue;
            memset(&pj, 0, sizeof(pj));
            rc = estimate_backfill(opt, s, def, &pend[i].backfills[k], p, pr, &pj, err);
            if (rc == 0 && sched_plan_add(p, &pj) < 0)
                rc = base_err_set(err, BASE_ENOMEM, "out of memory");
            if (rc == 0 && opt->save && !pr->survey && strcmp(pj.source, "probe") == 0)
                rc = store_estimate_put(s, pj.name, pj.source, pj.records, pj.requests, err);
        }
        if (rc == 0 && pend[i].sweep_days > 0 && (pend[i].sweep_due || pend[i].sweep_running)) {
            memset(&pj, 0, sizeof(pj));
            rc = estimate_sweep(s, def, &pend[i], p, &pj, err);
            if (rc == 0 && sched_plan_add(p, &pj) < 0)
                rc = base_err_set(err, BASE_ENOMEM, "out of memory");
        }
    }
    sched_pending_free(pend, set->n);
    return rc;
}

int sched_plan_build(const struct sched_plan_options *opt_in, const struct jobs_set *set,
                     struct store *s, struct sched_plan *out, struct base_err *err)
{
    struct sched_plan_options opt = *opt_in;
    struct sched_plan p = {0}, scratch = {0};
    struct plan_probes pr = {.survey = true};
    int rc = 0;

    if (opt.clock == NULL)
        opt.clock = base_clock_system();
    p.now_ms = base_clock_wall_ms(opt.clock);
    p.next_day_ms = base_time_next_day(p.now_ms);
    rc = plan_budget(&opt, s, &p, err); /* the probes reserve against it */
    /* The survey: which lists need probing (child streams never do). */
    scratch = p;
    for (size_t i = 0; rc == 0 && opt.headers != NULL && i < set->n; i++) {
        struct sched_plan_job pj = {0};

        if (set->jobs[i].parent_job != NULL)
            continue;
        snprintf(pj.name, sizeof(pj.name), "%s", set->jobs[i].name);
        rc = estimate_list(&opt, s, &set->jobs[i], &scratch, &pr, &pj, err);
    }
    if (rc == 0 && opt.headers != NULL)
        rc = plan_pending(&opt, set, s, &scratch, &pr, err);
    sched_plan_free(&scratch);
    if (rc == 0)
        rc = plan_probe_all(&pr, &p,
                            (opt.max_probes > 0 ? opt.max_probes : PLAN_DEFAULT_PROBES) -
                                (int)p.probe_requests,
                            err);
    pr.survey = false;
    /* List jobs first: a child stream counts the parents its parent job will write. */
    for (int pass = 0; rc == 0 && pass < 2; pass++)
        for (size_t i = 0; rc == 0 && i < set->n; i++) {
            const struct jobs_job *def = &set->jobs[i];
            struct sched_plan_job pj = {0};

            if ((def->parent_job != NULL) != (pass == 1))
                continue;
            snprintf(pj.name, sizeof(pj.name), "%s", def->name);
            pj.kind = SCHED_PLAN_LIST;
            rc = pass == 0 ? estimate_list(&opt, s, def, &p, &pr, &pj, err)
                           : estimate_child(&opt, s, def, &p, &pj, err);
            if (rc == 0)
                rc = sched_plan_add(&p, &pj) < 0 ? base_err_set(err, BASE_ENOMEM, "out of memory")
                                                 : 0;
            if (rc == 0 && opt.save && strcmp(pj.source, "fresh") != 0)
                rc = store_estimate_put(s, def->name, pj.source, pj.records, pj.requests, err);
        }
    if (rc == 0)
        rc = plan_pending(&opt, set, s, &p, &pr, err);
    if (rc == 0)
        rc = plan_budget(&opt, s, &p, err); /* again: the probes spent some, headers told more */
    free(pr.v);
    if (rc < 0) {
        sched_plan_free(&p);
        return rc;
    }
    sched_plan_schedule(&p);
    *out = p;
    return 0;
}

/* ---- what a run spent, per job (keapsync.job_stats) ------------------------------------ */

int sched_plan_passes(struct store *s, const struct jobs_set *set, const struct base_clock *clock,
                      bool *full, struct base_err *err)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct jobs_job *def = &set->jobs[i];
        struct sched_cursor c = {0};
        char *ckpt = NULL;
        int rc;

        rc = store_checkpoint_load(s, def->name, &ckpt, err);
        if (rc == 0)
            rc = cursor_load(&c, ckpt, def, err);
        free(ckpt);
        if (rc == 0) {
            cursor_open_window(&c, def, clock ? clock : base_clock_system());
            full[i] = def->parent_job != NULL ? c.since_mark[0] == '\0'
                                              : !def->incremental || c.since_ms < 0;
        }
        free(c.page_token);
        cursor_plist_clear(&c);
        free(c.plist);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sched_plan_record(struct store *s, const struct jobs_set *set, int64_t run_id, const bool *full,
                      const struct sched_result *res, struct base_err *err)
{
    for (size_t i = 0; i < res->njobs && i < set->n; i++) {
        const struct sched_job_result *r = &res->jobs[i];
        const struct jobs_job *def = &set->jobs[i];
        struct store_stats_row row = {0};
        int rc;

        if (r->requests == 0)
            continue; /* fresh, or never started: not a pass */
        row.run_id = run_id;
        row.job = def->name;
        row.full_pass = full[i];
        row.requests = r->requests;
        row.pages = r->pages;
        row.records = r->rows + r->skipped;
        row.pass_done = r->state == SCHED_JOB_DONE;
        row.units = -1;
        if (def->parent_job != NULL && row.pass_done && row.full_pass) {
            rc = store_count_rows(s, def->parent_table, false, 0, NULL, &row.units, err);
            if (rc < 0)
                return rc;
        }
        rc = store_stats_record(s, &row, err);
        if (rc < 0)
            return rc;
    }
    /* The jobs derived from them (sweeps, backfills, products' sync): each its own pass. */
    for (size_t i = set->n; i < res->njobs; i++) {
        const struct sched_job_result *r = &res->jobs[i];
        struct store_stats_row row = {0};
        int rc;

        if (r->requests == 0 || r->name == NULL)
            continue;
        row.run_id = run_id;
        row.job = r->name;
        row.full_pass = true;
        row.requests = r->requests;
        row.pages = r->pages;
        row.records = r->rows + r->skipped;
        row.pass_done = r->state == SCHED_JOB_DONE;
        row.units = -1;
        rc = store_stats_record(s, &row, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
