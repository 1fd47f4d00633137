/*
 * sweep.c: delete sweeps and backfills, the two kinds of work a run does for a job beside
 * the job's own window (enum sched_kind). Each is a job of the run of its own, derived from
 * its job (struct sched_job's xdef), on the job's table, with its own checkpoint and lease:
 *
 *   sweep     "<job>#sweep": every id of the job's list, read the cheapest way (the largest
 *             page, no optional properties, v2 fields= only the id), due every sweep_days.
 *             Its pages record the ids they saw (store_page.seen_ids); its last page marks
 *             the rows it did not see, in that page's transaction (store_sweep_apply). A job
 *             that reads everything each pass sweeps with its own full pass, at no extra
 *             request (sched_begin_sweep).
 *   sync      "<job>#sync": the products job's /v1/products/sync, every run: the products it
 *             reports DELETED since its last pass's token are marked (store_page.gone_ids).
 *   backfill  "<job>#backfill<id>": the job's changes over a recorded range (keapsync
 *             backfill), read in windows on the job's changed-since filter, each sized to
 *             what today's budget still allows (cursor_backfill_until). Its watermark is how
 *             far it has read; it is done when the watermark reaches the range's end.
 *
 * Also sched_pending_work, what the quota planner and status read of both.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL

/* v2 fields= of a sweep: the id is all it needs. */
static char sweep_fields[] = "id";
/* A products sync's list, its array and its token parameter. */
static char sync_endpoint[] = "/v1/products/sync";
static char sync_key[] = "product_statuses";
static char sync_param[] = "sync_token";

bool cursor_sweep_due(const struct sched_cursor *sweep, int64_t main_watermark, int sweep_days,
                      int64_t now_ms)
{
    if (sweep_days <= 0)
        return false;
    if (sweep->in_window)
        return true;
    if (main_watermark < 0)
        return false;
    return sweep->completed_ms < 0 || now_ms - sweep->completed_ms >= (int64_t)sweep_days * DAY_MS;
}

int64_t cursor_backfill_until(int64_t since, int64_t to, int64_t prev_span_ms,
                              int64_t prev_requests, int64_t remaining)
{
    int64_t span;

    if (prev_span_ms <= 0) {
        span = SCHED_BACKFILL_FIRST_SPAN_MS;
    } else if (prev_requests <= 0 || remaining <= 0) {
        span = prev_requests <= 0 ? prev_span_ms * 4 : prev_span_ms;
    } else {
        /* the previous window's density, scaled to what remains today */
        double s = (double)prev_span_ms * (double)remaining / (double)prev_requests;

        if (s > (double)prev_span_ms * 4)
            s = (double)prev_span_ms * 4;
        if (s < (double)prev_span_ms / 4)
            s = (double)prev_span_ms / 4;
        span = (int64_t)s;
    }
    if (span < SCHED_BACKFILL_MIN_SPAN_MS)
        span = SCHED_BACKFILL_MIN_SPAN_MS;
    return since >= to || to - since <= span ? to : since + span;
}

void cursor_backfill_open(struct sched_cursor *c, int64_t since, int64_t until)
{
    free(c->page_token);
    c->page_token = NULL;
    c->in_window = true;
    c->since_ms = since;
    c->until_ms = until;
    c->next_offset = 0;
    c->win_pages = 0;
    c->have_last_id = false;
    c->done = false;
    c->stepback = 0;
    c->epoch++;
}

int cursor_ids_literal(const struct jobs_job *def, const cJSON *records, const char *status,
                       struct base_buf *out)
{
    bool first = true;
    int rc = base_buf_puts(out, "{");

    for (const cJSON *rec = records ? records->child : NULL; rc == 0 && rec != NULL;
         rec = rec->next) {
        const cJSON *r = rec;
        char id[128];

        if (status != NULL) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(rec, "status");

            if (!cJSON_IsString(st) || strcmp(st->valuestring, status) != 0)
                continue;
            r = cJSON_GetObjectItemCaseSensitive(rec, "product");
        }
        if (r == NULL || map_record_id(&def->map, r, id, sizeof(id)) != 0)
            continue; /* such a record is skipped, not stored */
        rc = base_buf_puts(out, first ? "\"" : ",\"");
        for (const char *p = id; rc == 0 && *p; p++)
            rc = base_buf_printf(out, "%s%c", (*p == '"' || *p == '\\') ? "\\" : "", *p);
        if (rc == 0)
            rc = base_buf_puts(out, "\"");
        first = false;
    }
    if (rc == 0)
        rc = base_buf_puts(out, "}");
    return rc;
}

void cursor_sync_after_page(const cJSON *root, struct sched_cursor *next)
{
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "sync_token");

    /* The first page's token: what changes while the pass is read is reported again. */
    if (next->mark[0] == '\0' && cJSON_IsString(tok) &&
        strlen(tok->valuestring) < sizeof(next->mark) && strpbrk(tok->valuestring, "\"\\") == NULL)
        snprintf(next->mark, sizeof(next->mark), "%s", tok->valuestring);
    if (next->done && next->mark[0] != '\0') {
        memcpy(next->since_mark, next->mark, sizeof(next->since_mark));
        next->mark[0] = '\0';
    }
}

void sched_extra_free(struct sched_job *job)
{
    if (job->origin == NULL)
        return;
    free(job->xquery);
    job->xquery = NULL;
}

/* Makes job's own definition from orig, named name (copied); a sweep's reads only ids. */
static int derive_def(struct sched_job *job, const struct jobs_job *orig, const char *name,
                      enum sched_kind kind)
{
    struct jobs_job *d = &job->xdef;

    *d = *orig;
    job->origin = orig;
    job->kind = kind;
    snprintf(job->res->name_buf, sizeof(job->res->name_buf), "%s", name);
    d->name = job->res->name_buf; /* the result outlives the run */
    d->refresh_hours = 0;
    d->sweep_days = 0;
    if (kind == SCHED_KIND_SWEEP) {
        d->incremental = false;
        d->since_param = d->until_param = NULL;
        d->filter_since = d->filter_until = NULL;
        d->optional_properties = NULL;
        if (d->page_size < SCHED_SWEEP_PAGE)
            d->page_size = SCHED_SWEEP_PAGE;
        if (orig->nquery > 0) {
            job->xquery = calloc(orig->nquery, sizeof(*job->xquery));
            if (job->xquery == NULL)
                return BASE_ENOMEM;
            for (size_t i = 0; i < orig->nquery; i++) {
                job->xquery[i] = orig->query[i];
                if (orig->api == KEAP_API_V2 && strcmp(orig->query[i].name, "fields") == 0)
                    job->xquery[i].value = sweep_fields;
            }
            d->query = job->xquery;
        }
    }
    if (kind == SCHED_KIND_SWEEP && job->sync) {
        d->endpoint = sync_endpoint; /* never freed: the def is a copy */
        d->array_key = sync_key;
        d->order = NULL;
        d->query = NULL;
        d->nquery = 0;
    }
    job->def = d;
    return 0;
}

/* Reads what the ledger leaves of today's budget into s->day_left (set-up only: the loop
 * thread must not use the store, which the worker does). */
static void day_left_setup(struct sched *s)
{
    struct store_ledger_row row = {0, 0};
    struct base_err e2;

    s->day_left = -1;
    if (s->tenant != NULL && store_ledger_get(s->store, s->tenant, now_wall(s), &row, &e2) == 0)
        s->day_left = s->budget > row.reserved ? s->budget - row.reserved : 0;
}

/* What today's budget still allows: the ledger's at set-up less what this run sent since. */
static int64_t day_remaining(const struct sched *s)
{
    struct pace_stats st;
    int64_t left;

    if (s->day_left < 0)
        return s->budget;
    pace_get_stats(s->pace, &st);
    left = s->day_left - st.day_spent;
    return left > 0 ? left : 0;
}

void job_backfill_next(struct sched_job *job)
{
    struct sched_cursor *c = &job->cur;
    int64_t used = job->res->requests - job->win_requests;
    int64_t since = c->watermark_ms;
    int64_t until = cursor_backfill_until(since, job->bf_to, c->until_ms - c->since_ms, used,
                                          day_remaining(job->s));

    base_log_info("job \"%s\": window read in %" PRId64 " requests; next window ends %" PRId64
                  " h later",
                  job->def->name, used, (until - since) / 3600000);
    cursor_backfill_open(c, since, until);
    job->win_requests = job->res->requests;
    job->end_known = false;
    job_resync(job);
}

/* A backfill's first window of this run, unless one is open (it resumes). */
void job_backfill_first(struct sched_job *job, int64_t from)
{
    struct sched_cursor *c = &job->cur;
    int64_t since = c->watermark_ms >= 0 ? c->watermark_ms : from;

    job->win_requests = 0;
    if (c->in_window)
        return;
    /* Sized as the next window would have been, had the last run gone on. */
    cursor_backfill_open(c, since,
                         cursor_backfill_until(since, job->bf_to, c->last_span_ms, c->last_pages,
                                               day_remaining(job->s)));
}

int sched_begin_sweep(struct sched *s, struct sched_job *job, bool was_in_window,
                      struct base_err *err)
{
    const struct jobs_job *def = job->def;
    bool sweeps = (job->kind == SCHED_KIND_SWEEP && !job->sync) ||
                  (job->kind == SCHED_KIND_MAIN && !def->incremental && def->parent_job == NULL);
    int rc;

    if (!sweeps || !job->cur.in_window)
        return 0;
    if (!was_in_window) {
        rc = store_sweep_begin(s->store, def->name, job->cur.mark, sizeof(job->cur.mark), err);
        if (rc < 0)
            return rc;
    }
    /* A pass begun before keapsync swept (no mark) marks nothing when it completes. */
    job->sweeping = job->cur.mark[0] != '\0';
    return 0;
}

/* The checkpoint of name into c (zeroed by the caller); NULL json: never ran. */
static int load_cursor(struct store *st, const char *name, const struct jobs_job *def,
                       struct sched_cursor *c, struct base_err *err)
{
    char *ckpt = NULL;
    int rc = store_checkpoint_load(st, name, &ckpt, err);

    if (rc == 0)
        rc = cursor_load(c, ckpt, def, err);
    free(ckpt);
    return rc;
}

/*
 * The job has completed a window but never swept: its first window read every record, so
 * its first sweep is due sweep_days from now, as if one had just completed (saved in c and
 * as the sweep's checkpoint).
 */
static int sweep_clock_start(struct sched *s, const char *name, const struct jobs_job *def,
                             struct sched_cursor *c, struct base_err *err)
{
    struct base_buf ckpt;
    int rc;

    c->completed_ms = now_wall(s);
    base_buf_init(&ckpt, 4096);
    rc = cursor_checkpoint(c, &ckpt);
    if (rc == 0)
        rc = store_checkpoint_save(s->store, name, ckpt.data, err);
    else
        base_err_set(err, rc, "could not build the checkpoint of \"%s\"", name);
    base_buf_free(&ckpt);
    if (rc == 0)
        base_log_info("job \"%s\": its first sweep is due in %d days", name, def->sweep_days);
    return rc;
}

static int extras_of(struct sched *s, const struct jobs_set *set, struct store_backfill **bf,
                     size_t *nbf, struct base_err *err)
{
    (void)set;
    return store_backfill_list(s->store, bf, nbf, err);
}

bool sched_products_sync(const struct jobs_job *def)
{
    return def->api == KEAP_API_V1 && strcmp(def->endpoint, "/v1/products") == 0;
}

int sched_count_extras(struct sched *s, const struct jobs_set *set, size_t *n, struct base_err *err)
{
    struct store_backfill *bf = NULL;
    size_t nbf = 0;
    int rc = extras_of(s, set, &bf, &nbf, err);

    *n = nbf;
    for (size_t i = 0; rc == 0 && i < set->n; i++)
        if (set->jobs[i].sweep_days > 0 || sched_products_sync(&set->jobs[i]))
            (*n)++;
    free(bf);
    return rc;
}

/* Sets up job (derived from orig as name, of kind) as a job of the run. */
static int add_extra(struct sched *s, const struct jobs_job *orig, const char *name,
                     enum sched_kind kind, bool sync, int64_t from, int64_t to,
                     struct sched_result *res, struct base_err *err)
{
    struct sched_job *job = &s->jobs[s->njobs];
    int rc;

    memset(job, 0, sizeof(*job));
    job->res = &res->jobs[res->njobs];
    job->bf_to = to;
    job->sync = sync;
    rc = derive_def(job, orig, name, kind);
    s->njobs++; /* from here on teardown frees it */
    res->njobs++;
    if (rc < 0)
        return base_err_set(err, rc, "out of memory");
    rc = sched_setup_job(s, job, job->def, from, err);
    if (rc == 0 && sync && job->cur.since_mark[0] != '\0') {
        /* Changes since the last pass's token; without one, Keap lists every product. */
        job->xquery = calloc(1, sizeof(*job->xquery));
        if (job->xquery == NULL)
            return base_err_set(err, BASE_ENOMEM, "out of memory");
        job->xquery[0].name = sync_param;
        job->xquery[0].value = job->cur.since_mark;
        job->xdef.query = job->xquery;
        job->xdef.nquery = 1;
    }
    if (rc == 0 && !job_terminal(job) && !sync)
        base_log_info("job \"%s\": %s", name,
                      kind == SCHED_KIND_SWEEP ? "a delete sweep is due: reading every id"
                                               : "continuing the backfill");
    return rc;
}

int sched_setup_extras(struct sched *s, const struct jobs_set *set, struct sched_result *res,
                       struct base_err *err)
{
    struct store_backfill *bf = NULL;
    size_t nbf = 0;
    int rc = extras_of(s, set, &bf, &nbf, err);

    day_left_setup(s);
    for (size_t i = 0; rc == 0 && i < nbf; i++) {
        const struct jobs_job *orig = NULL;
        char name[160];
        struct sched_cursor c = {0};

        for (size_t j = 0; j < set->n; j++)
            if (strcmp(set->jobs[j].name, bf[i].job) == 0)
                orig = &set->jobs[j];
        if (orig == NULL || !orig->incremental)
            continue; /* not selected (or no longer incremental) */
        snprintf(name, sizeof(name), "%s#backfill%" PRId64, orig->name, bf[i].id);
        rc = load_cursor(s->store, name, orig, &c, err);
        free(c.page_token);
        if (rc == 0 && !c.in_window && c.watermark_ms >= bf[i].to_ms)
            continue; /* done */
        if (rc == 0)
            rc = add_extra(s, orig, name, SCHED_KIND_BACKFILL, false, bf[i].from_ms, bf[i].to_ms,
                           res, err);
    }
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const struct jobs_job *orig = &set->jobs[i];
        struct sched_cursor c = {0};
        char name[160];

        if (orig->sweep_days <= 0)
            continue;
        snprintf(name, sizeof(name), "%s#sweep", orig->name);
        rc = load_cursor(s->store, name, orig, &c, err);
        free(c.page_token);
        if (rc == 0 && c.completed_ms < 0 && !c.in_window && s->jobs[i].cur.watermark_ms >= 0)
            rc = sweep_clock_start(s, name, orig, &c, err);
        if (rc == 0 &&
            cursor_sweep_due(&c, s->jobs[i].cur.watermark_ms, orig->sweep_days, now_wall(s)))
            rc = add_extra(s, orig, name, SCHED_KIND_SWEEP, false, 0, 0, res, err);
    }
    /* Products: /v1/products/sync reports what was deleted since its last token, every run,
     * for about a request (KEAP_API.md). */
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const struct jobs_job *orig = &set->jobs[i];
        char name[160];

        if (!sched_products_sync(orig))
            continue;
        snprintf(name, sizeof(name), "%s#sync", orig->name);
        rc = add_extra(s, orig, name, SCHED_KIND_SWEEP, true, 0, 0, res, err);
    }
    free(bf);
    return rc;
}

void sched_pending_free(struct sched_pending *p, size_t n)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(p[i].backfills);
    free(p);
}

int sched_pending_work(struct store *st, const struct jobs_set *set, const struct base_clock *clock,
                       struct sched_pending **out, struct base_err *err)
{
    struct store_backfill *bf = NULL;
    struct sched_pending *p;
    size_t nbf = 0;
    int rc;

    if (clock == NULL)
        clock = base_clock_system();
    *out = NULL;
    p = calloc(set->n ? set->n : 1, sizeof(*p));
    if (p == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    rc = store_backfill_list(st, &bf, &nbf, err);
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const struct jobs_job *def = &set->jobs[i];
        struct sched_cursor m = {0}, c = {0};
        char name[160];

        p[i].job = def->name;
        p[i].sweep_days = def->sweep_days;
        p[i].last_sweep_ms = -1;
        rc = load_cursor(st, def->name, def, &m, err);
        free(m.page_token);
        if (rc == 0 && def->sweep_days > 0) {
            snprintf(name, sizeof(name), "%s#sweep", def->name);
            rc = load_cursor(st, name, def, &c, err);
            free(c.page_token);
            p[i].sweep_due =
                cursor_sweep_due(&c, m.watermark_ms, def->sweep_days, base_clock_wall_ms(clock));
            p[i].sweep_running = c.in_window;
            p[i].last_sweep_ms = c.completed_ms;
        }
        for (size_t k = 0; rc == 0 && k < nbf; k++) {
            struct sched_pending_backfill *b;
            struct sched_cursor bc = {0};

            if (strcmp(bf[k].job, def->name) != 0)
                continue;
            if (p[i].backfills == NULL &&
                (p[i].backfills = calloc(nbf, sizeof(*p[i].backfills))) == NULL) {
                rc = base_err_set(err, BASE_ENOMEM, "out of memory");
                break;
            }
            snprintf(name, sizeof(name), "%s#backfill%" PRId64, def->name, bf[k].id);
            rc = load_cursor(st, name, def, &bc, err);
            free(bc.page_token);
            b = &p[i].backfills[p[i].nbackfills++];
            b->id = bf[k].id;
            b->from_ms = bf[k].from_ms;
            b->to_ms = bf[k].to_ms;
            b->resume_ms = bc.watermark_ms >= bf[k].from_ms ? bc.watermark_ms : bf[k].from_ms;
            if (b->resume_ms > b->to_ms)
                b->resume_ms = b->to_ms;
            b->offset = bc.in_window ? bc.next_offset : 0;
            b->done = !bc.in_window && bc.watermark_ms >= bf[k].to_ms;
        }
    }
    free(bf);
    if (rc < 0) {
        sched_pending_free(p, set->n);
        return rc;
    }
    *out = p;
    return 0;
}
