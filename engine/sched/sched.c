/*
 * sched.c: the run state machine (see sched.h for the words).
 *
 * Threads: everything here runs on the loop thread except the work callbacks of database
 * operations (op_work_cb), which run on libuv's thread pool, one at a time: the next
 * operation is queued only from the previous one's after-work callback, so a job's cursor
 * (written by its page operations) is never read by the loop while an operation runs.
 *
 * A page goes WANT -> INFLIGHT -> ARRIVED -> SUBMITTED and is freed when its database
 * operation completes. Pages reach the database in sequence order; the worker checks each
 * page against the cursor (drift-proof v1 offset paging: every page after the first overlaps
 * the previous one by one record, and a page that does not start with the last committed id
 * shows that records shifted, so the cursor steps back and the epoch moves on).
 */
#include "sched.h"

#include "http.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define SCHED_DEFAULT_DEPTH    4
#define SCHED_DEFAULT_ATTEMPTS 8
#define SCHED_MAX_BODY         (64u * 1024 * 1024)
#define SCHED_MAX_COPY         (256u * 1024 * 1024)

enum sched_job_state {
    SCHED_JOB_PAGING = 0, /* requesting pages of the current window */
    SCHED_JOB_DONE,       /* window complete, checkpoint committed */
    SCHED_JOB_FAILED,     /* stopped by an error; progress up to the last commit kept */
    SCHED_JOB_STOPPED,    /* the run stopped (quota, auth, signal) before the job finished */
};

const char *sched_job_state_name(int state)
{
    switch (state) {
    case SCHED_JOB_PAGING:
        return "paging";
    case SCHED_JOB_DONE:
        return "done";
    case SCHED_JOB_FAILED:
        return "failed";
    case SCHED_JOB_STOPPED:
        return "stopped";
    default:
        return "unknown";
    }
}

enum sched_page_state {
    PAGE_WANT = 0,  /* to be sent (new, or again after a failure) */
    PAGE_INFLIGHT,  /* request sent */
    PAGE_ARRIVED,   /* body here, waiting for earlier pages to be submitted */
    PAGE_SUBMITTED, /* handed to the database worker */
};

enum sched_stop {
    STOP_NONE = 0,
    STOP_QUOTA,  /* the day's budget is spent: exit 75 */
    STOP_AUTH,   /* credentials refused: exit 77 */
    STOP_SIGNAL, /* SIGINT/SIGTERM: exit 1 with progress saved */
};

/* Where a job's current window stands. Written only by page operations (worker). */
struct sched_cursor {
    int64_t watermark_ms; /* until of the last completed window, -1: none */
    int64_t completed_ms; /* wall time the last window completed, -1: never */
    bool in_window;
    int64_t since_ms; /* -1: open */
    int64_t until_ms; /* -1: open */
    int64_t next_offset;
    bool have_last_id;
    int64_t last_id;
    char *page_token; /* v2 */
    uint32_t epoch;
    bool done;
    /* child streams: every parent up to done_through is complete; parents begun after it
     * wait in plist, in id order, until those before them complete */
    unsigned stepback; /* consecutive step-backs: each doubles the distance */
    bool have_done;
    int64_t done_through;
    struct sched_parent *plist;
    int plist_n, plist_cap;
};

struct sched_parent {
    int64_t id;
    bool complete;
};

#define SCHED_PARENT_BATCH 1000

struct sched;
struct sched_job;

struct sched_page {
    struct sched_job *job;
    struct sched_page *next; /* the job's outstanding pages, in seq order */
    enum sched_page_state state;
    bool stale; /* dropped from its job while in flight; freed when the response comes */
    uint64_t seq;
    uint32_t epoch;
    int64_t offset;
    char *page_token;
    int attempts;
    int64_t requests;
    uint64_t not_before;
    uint64_t admitted_mono;
    int64_t sent_wall;
    int64_t server_used; /* x-keap-product-quota-used of the response, -1 unknown */
    int64_t parent_id;   /* child streams: whose list this page is */
    struct base_buf body;
};

struct sched_job {
    struct sched *s;
    const struct jobs_job *def;
    struct store_table table;
    enum sched_job_state state;
    struct sched_page *pages; /* outstanding (not stale) pages, in seq order */
    int npages;
    int depth;
    int overlap; /* 1 when drift-proof offset paging applies, else 0 */
    uint32_t epoch;
    int64_t next_offset;
    uint64_t next_seq;
    uint64_t submit_seq;
    bool end_known;          /* the worker saw the window's last page */
    int failures;            /* pages fetched again at the current cursor position */
    int token_restarts;      /* v2 windows restarted for a refused page token, this run */
    struct sched_cursor cur; /* worker-owned (see file comment) */
    /* child streams (loop-owned): the batch of parent ids being fanned out */
    bool child;
    int64_t *pids;
    int pn, ppos;
    bool have_after;
    int64_t after; /* last parent id read into a batch */
    bool parents_exhausted;
    bool fetching_parents;
    bool closing_window;      /* OP_CLOSE queued */
    struct sched_job *parent; /* the parent's job when it runs in this run too */
    struct base_buf copy;     /* worker-owned COPY buffer */
    struct sched_job_result *res;
};

enum sched_op_kind {
    OP_PAGE,
    OP_RESERVE,
    OP_HEARTBEAT, /* peer registration and job lease renewal */
    OP_PARENTS,   /* the next batch of parent ids of a child stream */
    OP_CLOSE,     /* a child stream's last parent is done: close its window */
};

#define SCHED_HEARTBEAT_MS 2000
#define SCHED_PEER_TTL_MS  8000
#define SCHED_LEASE_TTL_MS 60000

enum sched_op_result {
    OPR_COMMITTED, /* rows and checkpoint committed */
    OPR_DISCARDED, /* page of an older epoch, or after the window ended: dropped */
    OPR_STEP_BACK, /* records shifted: cursor moved back, epoch bumped */
    OPR_REFETCH,   /* page unparseable: fetch again at the cursor, epoch bumped */
    OPR_DB_ERROR,  /* the commit failed: the job stops */
};

struct sched_op {
    uv_work_t work;
    struct sched *s;
    struct sched_op *next;
    enum sched_op_kind kind;
    /* OP_PAGE */
    struct sched_page *page;
    enum sched_op_result result;
    struct store_page_result pres;
    int64_t nrecords;
    int64_t mismatches;
    int64_t nul_replaced;
    char *tenant;      /* ledger key at submit time */
    char *tenant_seen; /* x-keap-tenant-id to remember, or NULL */
    /* OP_RESERVE */
    int64_t carry;  /* tokens already spent under a provisional key, moved to tenant */
    int64_t budget; /* the day's budget when the op was queued */
    int64_t want;
    int64_t granted;
    int64_t day_wall;
    /* OP_HEARTBEAT */
    int npeers;
    bool *renew; /* per job: renew its lease (snapshot taken on the loop) */
    /* OP_PARENTS, OP_CLOSE */
    struct sched_job *job;
    int64_t *pids;
    int pn;
    /* OP_PAGE of a child stream: the parent needs another page at more_offset */
    bool more;
    int64_t more_offset;
    int rc;
    struct base_err err;
};

struct sched {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_timer_t heartbeat;
    uv_signal_t sigint, sigterm;
    char holder[128];     /* this process among its peers: host:pid:nonce */
    char peer_group[512]; /* processes sharing this key's windows: "<base url>#<key id>" */
    uint64_t join_until;  /* joined running peers: send nothing before (mono ms) */
    int npeers;
    bool heartbeat_queued;
    bool timer_armed;
    uint64_t timer_due;
    const struct sched_options *opt;
    const struct base_clock *clock;
    struct store *store;
    struct http_client *http;
    struct pace *pace;
    char **auth_headers;
    struct sched_job *jobs;
    size_t njobs;
    size_t rr; /* round-robin position */
    /* database worker */
    struct sched_op *ops_head, *ops_tail;
    bool op_running;
    /* ledger */
    char *tenant;
    bool tenant_provisional;
    bool tenant_unsaved; /* learned, not yet written to keapsync.settings */
    bool naive;          /* KEAPSYNC_PAGING=naive: no overlap, no drift check */
    int64_t carry;       /* granted under the provisional key, to move on switch */
    int64_t budget;      /* day budget after the reserve */
    int64_t grant_day;   /* day start of the last grant */
    bool reserving;
    bool ledger_exhausted;
    /* state */
    enum sched_stop stop;
    bool closing;
    size_t inflight;
    int64_t requests;
    int64_t rejected_429;
    uint64_t started_mono;
    char message[512];
};

static void sched_pump(struct sched *s);
static void sched_maybe_finish(struct sched *s);
static void op_submit(struct sched *s, struct sched_op *op);
static void op_after_work_cb(uv_work_t *w, int status);
static struct sched_page *job_add_page(struct sched_job *job, int64_t parent_id, int64_t offset);

static uint64_t now_mono(const struct sched *s)
{
    return base_clock_mono_ms(s->clock);
}

static int64_t now_wall(const struct sched *s)
{
    return base_clock_wall_ms(s->clock);
}

/* ---- pages ---------------------------------------------------------------------------- */

static void page_free(struct sched_page *pg)
{
    if (pg == NULL)
        return;
    base_buf_free(&pg->body);
    free(pg->page_token);
    free(pg);
}

static void job_unlink_page(struct sched_job *job, struct sched_page *pg)
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
static void job_drop_pages(struct sched_job *job)
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

static void job_set_state(struct sched_job *job, enum sched_job_state st, const char *why)
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

static bool job_terminal(const struct sched_job *job)
{
    return job->state != SCHED_JOB_PAGING;
}

/* Resynchronises the loop's view of job with its cursor after the epoch moved. */
static void job_resync(struct sched_job *job)
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

/* ---- the database worker ---------------------------------------------------------------- */

static int cursor_checkpoint(const struct sched_cursor *c, struct base_buf *out)
{
    int rc = base_buf_printf(
        out, "{\"v\":1,\"watermark_ms\":%" PRId64 ",\"completed_ms\":%" PRId64 ",\"window\":",
        c->watermark_ms, c->completed_ms);

    if (rc < 0)
        return rc;
    if (!c->in_window)
        return base_buf_puts(out, "null}");
    rc = base_buf_printf(out,
                         "{\"since_ms\":%" PRId64 ",\"until_ms\":%" PRId64 ",\"offset\":%" PRId64
                         ",\"epoch\":%" PRIu32,
                         c->since_ms, c->until_ms, c->next_offset, c->epoch);
    if (rc == 0 && c->have_last_id)
        rc = base_buf_printf(out, ",\"last_id\":%" PRId64, c->last_id);
    if (rc == 0 && c->have_done)
        rc = base_buf_printf(out, ",\"parent_done\":%" PRId64, c->done_through);
    if (rc == 0 && c->page_token != NULL) {
        cJSON *item = cJSON_CreateStringReference(c->page_token);
        char *tok = item ? cJSON_PrintUnformatted(item) : NULL;

        rc = tok ? base_buf_printf(out, ",\"page_token\":%s", tok) : BASE_ENOMEM;
        cJSON_free(tok);
        cJSON_Delete(item); /* frees the item, not the referenced token */
    }
    if (rc == 0)
        rc = base_buf_puts(out, "}}");
    return rc;
}

static bool record_int_id(const struct jobs_job *def, const cJSON *rec, int64_t *id)
{
    char buf[64];

    if (map_record_id(&def->map, rec, buf, sizeof(buf)) != 0)
        return false;
    return base_parse_int64(buf, id) == 0;
}

/*
 * Decides which records of a v1 page are new, given the cursor. Returns the index of the
 * first new record, or -1 when the page shows that records shifted left past our position
 * (step back).
 */
static int v1_first_new(const struct sched_job *job, const struct sched_page *pg, cJSON *recs,
                        int n)
{
    const struct sched_cursor *c = &job->cur;
    int p = 0;

    if (!job->overlap || !c->have_last_id)
        return 0;
    for (p = 0; p < n; p++) {
        int64_t id;

        if (!record_int_id(job->def, cJSON_GetArrayItem(recs, p), &id))
            return 0; /* ids unusable: fall back to plain offsets */
        if (id > c->last_id)
            break;
    }
    if (p == 0 && pg->offset > 0)
        return -1;
    return p;
}

/* The parent's entry in the worker's list of begun parents, added (in id order) if new. */
static struct sched_parent *cursor_parent(struct sched_cursor *c, int64_t id)
{
    int i;

    for (i = 0; i < c->plist_n; i++)
        if (c->plist[i].id == id)
            return &c->plist[i];
    if (c->plist_n == c->plist_cap) {
        int ncap = c->plist_cap ? c->plist_cap * 2 : 16;
        struct sched_parent *np = realloc(c->plist, (size_t)ncap * sizeof(*np));

        if (np == NULL)
            return NULL;
        c->plist = np;
        c->plist_cap = ncap;
    }
    for (i = c->plist_n; i > 0 && c->plist[i - 1].id > id; i--)
        c->plist[i] = c->plist[i - 1];
    c->plist[i].id = id;
    c->plist[i].complete = false;
    c->plist_n++;
    return &c->plist[i];
}

/*
 * Commits the page's COPY rows (job->copy, nrows of them) with the checkpoint of cursor
 * `after` and the page's requests in the ledger, in one transaction. On failure op->result
 * is OPR_DB_ERROR and op->err says why.
 */
static int op_commit_rows(struct sched_op *op, const struct sched_cursor *after, int64_t nrows)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;
    struct store_page sp;
    struct base_buf ckpt;
    int rc;

    base_buf_init(&ckpt, 64 * 1024);
    rc = cursor_checkpoint(after, &ckpt);
    if (rc < 0) {
        base_err_set(&op->err, rc, "could not build the checkpoint of \"%s\"", job->def->name);
    } else {
        memset(&sp, 0, sizeof(sp));
        sp.table = &job->table;
        sp.rows = job->copy.data ? job->copy.data : "";
        sp.rows_len = job->copy.len;
        sp.nrows = nrows;
        sp.job = job->def->name;
        sp.checkpoint = ckpt.data;
        sp.tenant = op->tenant;
        sp.day_wall = pg->sent_wall;
        sp.requests = pg->requests;
        rc = store_commit_page(op->s->store, &sp, &op->pres, &op->err);
    }
    if (rc < 0)
        op->result = OPR_DB_ERROR;
    base_buf_free(&ckpt);
    return rc;
}

/*
 * A child stream's page: its records are rows of parent pg->parent_id. The checkpoint says
 * which parents are complete (all up to done_through); a parent whose list is longer than a
 * page asks the loop for its next page (op->more).
 */
static void op_child_page_work(struct sched_op *op, struct keap_page *page)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;
    const struct jobs_job *def = job->def;
    struct sched_cursor *c = &job->cur;
    struct sched_parent *par;
    struct map_stats ms = {0};
    bool have_done = c->have_done;
    int64_t done_through = c->done_through;
    int n = page->nrecords, k = 0, rc;

    base_buf_reset(&job->copy);
    const cJSON *rec = page->records->child;

    for (int i = 0; i < n && rec != NULL; i++, rec = rec->next) {
        size_t mark = job->copy.len;

        rc = base_buf_printf(&job->copy, "%" PRId64 "\t", pg->parent_id);
        if (rc == 0 && page->spans != NULL)
            rc = map_record_to_copy_raw(&def->map, rec, pg->body.data + page->spans[i].off,
                                        page->spans[i].len, &job->copy, &ms, &op->err);
        else if (rc == 0)
            rc = map_record_to_copy(&def->map, rec, &job->copy, &ms, &op->err);
        if (rc == BASE_EPROTO) {
            base_log_warning("job \"%s\": record %d of parent %" PRId64 " skipped: %s", def->name,
                             i, pg->parent_id, op->err.msg);
            base_err_clear(&op->err);
            job->copy.len = mark;
            job->copy.data[mark] = '\0';
            continue;
        }
        if (rc < 0) {
            op->result = OPR_DB_ERROR;
            if (op->err.msg[0] == '\0')
                base_err_set(&op->err, rc, "could not map page of \"%s\": %s", def->name,
                             base_strerror(rc));
            return;
        }
        k++;
    }
    op->mismatches = ms.mismatches;
    par = cursor_parent(c, pg->parent_id);
    if (par == NULL) {
        op->result = OPR_DB_ERROR;
        base_err_set(&op->err, BASE_ENOMEM, "out of memory");
        return;
    }
    if (n < def->page_size) {
        par->complete = true;
    } else {
        op->more = true;
        op->more_offset = pg->offset + n;
    }
    /* Complete parents at the head of the list are done for good. */
    {
        int drop = 0;

        while (drop < c->plist_n && c->plist[drop].complete) {
            have_done = true;
            done_through = c->plist[drop].id;
            drop++;
        }
        c->have_done = have_done;
        c->done_through = done_through;
        memmove(c->plist, c->plist + drop, (size_t)(c->plist_n - drop) * sizeof(*c->plist));
        c->plist_n -= drop;
    }
    rc = op_commit_rows(op, c, k);
    if (rc == 0)
        op->result = OPR_COMMITTED;
}

static void op_page_work(struct sched_op *op)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;
    const struct jobs_job *def = job->def;
    struct sched_cursor *c = &job->cur;
    struct keap_page page = {0};
    struct map_stats ms = {0};
    int64_t new_last = c->last_id;
    bool have_new_last = c->have_last_id;
    const cJSON *rec;
    int first, n, rc;

    if (pg->epoch != c->epoch || c->done) {
        op->result = OPR_DISCARDED;
        goto out;
    }
    rc = keap_page_parse(pg->body.data ? pg->body.data : (char *)"", pg->body.len, def->array_key,
                         &page, &op->err);
    if (rc < 0) {
        c->epoch++;
        c->plist_n = 0; /* child streams restart from the last complete parent */
        op->result = OPR_REFETCH;
        goto out;
    }
    op->nul_replaced = page.nul_replaced;
    n = page.nrecords;
    op->nrecords = n;
    if (job->child) {
        op_child_page_work(op, &page);
        goto observe;
    }
    if (def->api == KEAP_API_V1) {
        first = v1_first_new(job, pg, page.records, n);
        if (first < 0) {
            /* Few records leave a window while one page is read: step back a little first
             * (more new records per request), then twice as far each time it is not enough. */
            int64_t step = (int64_t)16 << (c->stepback < 16 ? c->stepback : 16);
            int64_t back;

            if (step > def->page_size - 1)
                step = def->page_size - 1;
            back = pg->offset - step;
            c->stepback++;

            c->next_offset = back > 0 ? back : 0;
            c->epoch++;
            op->result = OPR_STEP_BACK;
            base_err_set(&op->err, 0, "records shifted before offset %" PRId64, pg->offset);
            goto out;
        }
    } else {
        first = 0;
    }

    base_buf_reset(&job->copy);
    rec = page.records->child;
    for (int i = 0; i < first && rec != NULL; i++)
        rec = rec->next;
    for (int i = first; i < n && rec != NULL; i++, rec = rec->next) {
        /* data is the record's text as received (page.spans), not a reprint */
        if (page.spans != NULL)
            rc = map_record_to_copy_raw(&def->map, rec, pg->body.data + page.spans[i].off,
                                        page.spans[i].len, &job->copy, &ms, &op->err);
        else
            rc = map_record_to_copy(&def->map, rec, &job->copy, &ms, &op->err);
        if (rc == BASE_EPROTO) {
            base_log_warning("job \"%s\": record %d at offset %" PRId64 " skipped: %s", def->name,
                             i, pg->offset, op->err.msg);
            base_err_clear(&op->err);
            continue;
        }
        if (rc < 0) {
            op->result = OPR_DB_ERROR;
            if (op->err.msg[0] == '\0')
                base_err_set(&op->err, rc, "could not map page of \"%s\": %s", def->name,
                             base_strerror(rc));
            goto out;
        }
    }
    if (n > 0 && def->api == KEAP_API_V1 && job->overlap) {
        int64_t id;

        if (record_int_id(def, cJSON_GetArrayItem(page.records, n - 1), &id) &&
            (!have_new_last || id > new_last)) {
            new_last = id;
            have_new_last = true;
        }
    }
    op->mismatches = ms.mismatches;

    /* The cursor after this page, committed with its rows. */
    {
        struct sched_cursor next = *c;

        if (def->api == KEAP_API_V1) {
            next.next_offset = n > 0 ? pg->offset + n - job->overlap : pg->offset;
            next.have_last_id = have_new_last;
            next.last_id = new_last;
            next.done = n < def->page_size;
            next.page_token = NULL;
        } else {
            next.page_token = page.next_page_token;
            next.done = page.next_page_token == NULL || page.next_page_token[0] == '\0';
        }
        if (next.done) {
            if (def->incremental)
                next.watermark_ms = c->until_ms;
            next.completed_ms = pg->sent_wall;
            next.in_window = false;
        }
        rc = op_commit_rows(op, &next, n - first);
        if (rc < 0)
            goto out;
        /* Committed: the cursor moves forward. */
        free(c->page_token);
        c->page_token = next.page_token ? strdup(next.page_token) : NULL;
        c->next_offset = next.next_offset;
        c->have_last_id = next.have_last_id;
        c->last_id = next.last_id;
        c->done = next.done;
        c->watermark_ms = next.watermark_ms;
        c->completed_ms = next.completed_ms;
        c->in_window = next.in_window;
        c->stepback = 0;
        op->result = OPR_COMMITTED;
    }
observe:
    if (op->result == OPR_COMMITTED && pg->server_used >= 0 && op->tenant != NULL) {
        struct base_err e2;

        if (store_ledger_observe(op->s->store, op->tenant, pg->sent_wall, pg->server_used, &e2) < 0)
            base_log_warning("%s", e2.msg);
    }
    if (op->tenant_seen != NULL) {
        struct base_buf key;
        struct base_err e2;

        base_buf_init(&key, 4096);
        if (base_buf_printf(&key, "tenant:%s", op->s->opt->base_url) == 0 &&
            store_setting_put(op->s->store, key.data, op->tenant_seen, &e2) < 0)
            base_log_warning("%s", e2.msg);
        base_buf_free(&key);
    }
out:
    keap_page_free(&page);
    /* The body is no longer needed; free it here, off the loop. */
    base_buf_free(&pg->body);
}

static void op_reserve_work(struct sched_op *op)
{
    struct sched *s = op->s;
    int64_t total;

    op->granted = 0;
    if (op->carry > 0) {
        int64_t moved = 0;

        op->rc = store_ledger_reserve(s->store, op->tenant, op->day_wall, op->budget, op->carry,
                                      &moved, &total, &op->err);
        if (op->rc < 0)
            return;
        if (moved < op->carry) {
            /* Others already spent the rest of the day: nothing more for us. */
            return;
        }
    }
    op->rc = store_ledger_reserve(s->store, op->tenant, op->day_wall, op->budget, op->want,
                                  &op->granted, &total, &op->err);
}

static void op_heartbeat_work(struct sched_op *op)
{
    struct sched *s = op->s;

    op->rc = store_peer_heartbeat(s->store, s->peer_group, s->holder, SCHED_PEER_TTL_MS,
                                  &op->npeers, &op->err);
    for (size_t i = 0; op->rc == 0 && i < s->njobs; i++) {
        bool got = false;
        char name[128];

        if (op->renew == NULL || !op->renew[i])
            continue;
        snprintf(name, sizeof(name), "job:%s", s->jobs[i].def->name);
        op->rc = store_lease_acquire(s->store, name, s->holder, SCHED_LEASE_TTL_MS, &got, NULL,
                                     &op->err);
    }
}

static void op_parents_work(struct sched_op *op)
{
    struct sched_job *job = op->job;

    op->pids = malloc(SCHED_PARENT_BATCH * sizeof(*op->pids));
    if (op->pids == NULL) {
        op->rc = base_err_set(&op->err, BASE_ENOMEM, "out of memory");
        return;
    }
    op->rc = store_parent_ids(op->s->store, job->def->parent_table, job->have_after, job->after,
                              SCHED_PARENT_BATCH, op->pids, &op->pn, &op->err);
}

static void op_close_work(struct sched_op *op)
{
    struct sched_job *job = op->job;
    struct sched_cursor closed = job->cur;
    struct base_buf ckpt;

    base_buf_init(&ckpt, 4096);
    closed.in_window = false;
    closed.completed_ms = base_clock_wall_ms(op->s->clock);
    op->rc = cursor_checkpoint(&closed, &ckpt);
    if (op->rc == 0)
        op->rc = store_checkpoint_save(op->s->store, job->def->name, ckpt.data, &op->err);
    else
        base_err_set(&op->err, op->rc, "could not build the checkpoint of \"%s\"", job->def->name);
    base_buf_free(&ckpt);
}

static void op_work_cb(uv_work_t *w)
{
    struct sched_op *op = container_of(w, struct sched_op, work);

    if (op->kind == OP_PAGE)
        op_page_work(op);
    else if (op->kind == OP_RESERVE)
        op_reserve_work(op);
    else if (op->kind == OP_PARENTS)
        op_parents_work(op);
    else if (op->kind == OP_CLOSE)
        op_close_work(op);
    else
        op_heartbeat_work(op);
}

static void op_free(struct sched_op *op)
{
    free(op->pids);
    free(op->renew);
    free(op->tenant);
    free(op->tenant_seen);
    free(op);
}

static void op_start_next(struct sched *s)
{
    struct sched_op *op = s->ops_head;

    if (s->op_running || op == NULL)
        return;
    s->ops_head = op->next;
    if (s->ops_head == NULL)
        s->ops_tail = NULL;
    op->next = NULL;
    s->op_running = true;
    /* uv_queue_work only fails for a NULL work_cb. */
    uv_queue_work(&s->loop, &op->work, op_work_cb, op_after_work_cb);
}

/* Queues a database operation of kind for job; false (job failed) when out of memory. */
static bool job_submit_op(struct sched_job *job, enum sched_op_kind kind)
{
    struct sched_op *op = calloc(1, sizeof(*op));

    if (op == NULL) {
        job_set_state(job, SCHED_JOB_FAILED, "out of memory");
        return false;
    }
    op->kind = kind;
    op->job = job;
    op_submit(job->s, op);
    return true;
}

static void job_check_done(struct sched_job *job)
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

static void op_page_done(struct sched *s, struct sched_op *op)
{
    struct sched_page *pg = op->page;
    struct sched_job *job = pg->job;

    job_unlink_page(job, pg);
    job->res->nul_replaced += op->nul_replaced;
    switch (op->result) {
    case OPR_COMMITTED:
        job->res->pages++;
        job->res->rows += op->pres.inserted + op->pres.updated;
        job->res->skipped += op->pres.skipped;
        job->res->mismatches += op->mismatches;
        job->failures = 0;
        if (pg->page_token != NULL)
            job->token_restarts = 0; /* a token worked: refusals are expiry, not a loop */
        if (job->child) {
            /* Parents fan out side by side: the pipeline opens fully after one commit. */
            job->depth = s->opt->max_depth;
            if (op->more && job_add_page(job, pg->parent_id, op->more_offset) == NULL)
                job_set_state(job, SCHED_JOB_FAILED, "out of memory");
        } else if (job->cur.done) {
            job->end_known = true;
        } else if (op->nrecords >= job->def->page_size && job->depth < s->opt->max_depth) {
            job->depth++;
        }
        break;
    case OPR_DISCARDED:
        break;
    case OPR_STEP_BACK:
        base_log_info("job \"%s\": %s; stepping back to offset %" PRId64, job->def->name,
                      op->err.msg, job->cur.next_offset);
        job_resync(job);
        break;
    case OPR_REFETCH:
        job->failures++;
        base_log_warning("job \"%s\": could not parse page at offset %" PRId64 ": %s",
                         job->def->name, pg->offset, op->err.msg);
        if (job->failures >= s->opt->max_attempts) {
            char why[512];

            snprintf(why, sizeof(why),
                     "could not parse page at offset %" PRId64 " of \"%s\" after %d attempts: %s",
                     pg->offset, job->def->name, job->failures, op->err.msg);
            base_log_error("%s", why);
            job_set_state(job, SCHED_JOB_FAILED, why);
        } else {
            job_resync(job);
        }
        break;
    case OPR_DB_ERROR:
        job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        break;
    }
    page_free(pg);
    job_check_done(job);
}

static void op_reserve_done(struct sched *s, struct sched_op *op)
{
    s->reserving = false;
    if (op->rc < 0) {
        base_log_error("%s", op->err.msg);
        for (size_t i = 0; i < s->njobs; i++)
            if (!job_terminal(&s->jobs[i]))
                job_set_state(&s->jobs[i], SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    if (s->tenant == NULL || strcmp(op->tenant, s->tenant) != 0) {
        /* The tenant became known while this ran: move these tokens along with the rest. */
        s->carry += op->granted;
    }
    if (op->granted == 0) {
        s->ledger_exhausted = true;
        base_log_info("the ledger has no requests left for tenant \"%s\" today", op->tenant);
        return;
    }
    s->grant_day = base_time_day_start(op->day_wall);
    pace_grant(s->pace, op->day_wall, op->granted);
}

static void op_parents_done(struct sched *s, struct sched_op *op)
{
    struct sched_job *job = op->job;

    (void)s;
    job->fetching_parents = false;
    if (op->rc < 0) {
        job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    free(job->pids);
    job->pids = op->pids;
    op->pids = NULL;
    job->pn = op->pn;
    job->ppos = 0;
    if (op->pn > 0) {
        job->have_after = true;
        job->after = job->pids[op->pn - 1];
    }
    if (op->pn < SCHED_PARENT_BATCH)
        job->parents_exhausted = true;
    job_check_done(job);
}

static void op_close_done(struct sched *s, struct sched_op *op)
{
    struct sched_job *job = op->job;

    (void)s;
    if (op->rc < 0) {
        job_set_state(job, SCHED_JOB_FAILED, op->err.msg);
        return;
    }
    job->end_known = true;
    job_check_done(job);
}

static void op_heartbeat_done(struct sched *s, struct sched_op *op)
{
    s->heartbeat_queued = false;
    if (op->rc < 0) {
        base_log_warning("%s", op->err.msg);
        return;
    }
    if (op->npeers != s->npeers) {
        base_log_info("%d keapsync process%s share this key", op->npeers,
                      op->npeers == 1 ? "" : "es");
        s->npeers = op->npeers;
        pace_set_share(s->pace, op->npeers);
    }
}

static void op_after_work_cb(uv_work_t *w, int status)
{
    struct sched_op *op = container_of(w, struct sched_op, work);
    struct sched *s = op->s;

    (void)status;
    s->op_running = false;
    if (op->kind == OP_PAGE)
        op_page_done(s, op);
    else if (op->kind == OP_RESERVE)
        op_reserve_done(s, op);
    else if (op->kind == OP_PARENTS)
        op_parents_done(s, op);
    else if (op->kind == OP_CLOSE)
        op_close_done(s, op);
    else
        op_heartbeat_done(s, op);
    op_free(op);
    op_start_next(s);
    sched_pump(s);
}

static void op_submit(struct sched *s, struct sched_op *op)
{
    op->s = s;
    if (s->ops_tail)
        s->ops_tail->next = op;
    else
        s->ops_head = op;
    s->ops_tail = op;
    op_start_next(s);
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
        if (op == NULL || (s->tenant && (op->tenant = strdup(s->tenant)) == NULL)) {
            free(op);
            job_set_state(job, SCHED_JOB_FAILED, "out of memory");
            return;
        }
        if (s->tenant_unsaved) {
            /* Remember the tenant durably with this page's commit. */
            op->tenant_seen = strdup(s->tenant);
            s->tenant_unsaved = false;
        }
        op->kind = OP_PAGE;
        op->page = pg;
        pg->state = PAGE_SUBMITTED;
        job->submit_seq++;
        op_submit(s, op);
    }
}

/* ---- stopping ------------------------------------------------------------------------- */

/* Drops the pages of job that wait to be sent: after a stop they never will be. */
static void job_drop_wanted(struct sched_job *job)
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

static void sched_stop(struct sched *s, enum sched_stop why, const char *msg)
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
    if (op == NULL || (op->tenant = strdup(s->tenant)) == NULL) {
        free(op);
        return;
    }
    op->kind = OP_HEARTBEAT;
    op->renew = calloc(s->njobs, sizeof(*op->renew));
    for (size_t i = 0; op->renew != NULL && i < s->njobs; i++)
        op->renew[i] = s->jobs[i].state == SCHED_JOB_PAGING;
    s->heartbeat_queued = true;
    op_submit(s, op);
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
    sched_stop(s, STOP_SIGNAL, "interrupted by a signal; progress up to the last page is saved");
    sched_pump(s);
}

static void close_noop_cb(uv_handle_t *h)
{
    (void)h;
}

static bool sched_idle(const struct sched *s)
{
    return s->inflight == 0 && !s->op_running && s->ops_head == NULL && !s->reserving;
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
    uv_close((uv_handle_t *)&s->sigint, close_noop_cb);
    uv_close((uv_handle_t *)&s->sigterm, close_noop_cb);
    http_client_close(s->http);
    s->http = NULL;
}

/* ---- requests ------------------------------------------------------------------------- */

static uint64_t backoff_ms(int attempts)
{
    uint64_t base = 500u << (attempts < 6 ? attempts : 6); /* 1 s .. 32 s */

    if (base > 30000)
        base = 30000;
    return base / 2 + (uint64_t)(rand() % (int)(base / 2 + 1));
}

/* The first response named the tenant: switch the ledger key to it (see sched_setup_tenant). */
static void note_tenant(struct sched *s, const char *tenant)
{
    char *copy;

    if (tenant == NULL || tenant[0] == '\0' || s->opt->tenant != NULL)
        return; /* nothing said, or the user fixed the ledger key */
    if (s->tenant != NULL && strcmp(s->tenant, tenant) == 0)
        return;
    copy = strdup(tenant);
    if (copy == NULL)
        return;
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

static void job_fail_page(struct sched_job *job, struct sched_page *pg, const char *reason)
{
    char why[512];

    snprintf(why, sizeof(why), "could not fetch page at offset %" PRId64 " of \"%s\": %s",
             pg->offset, job->def->name, reason);
    base_log_error("%s", why);
    /* Its response is in hand: let job_drop_pages free it rather than wait for one. */
    pg->state = PAGE_WANT;
    job_set_state(job, SCHED_JOB_FAILED, why);
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
    keap_read_headers(resp, &obs);
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
    if (v.outcome == KEAP_OUTCOME_OK)
        note_tenant(s, obs.tenant_id);
    if (v.outcome == KEAP_OUTCOME_RATE_LIMITED) {
        s->rejected_429++;
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
    switch (v.outcome) {
    case KEAP_OUTCOME_OK:
        pg->body = resp->body;
        resp->body.data = NULL;
        pg->state = PAGE_ARRIVED;
        job_handoff(s, job);
        break;
    case KEAP_OUTCOME_RATE_LIMITED:
        pg->state = PAGE_WANT;
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
        pg->state = PAGE_WANT;
        pg->not_before = now + backoff_ms(pg->attempts);
        break;
    case KEAP_OUTCOME_AUTH: {
        char why[512];

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

static int send_page(struct sched *s, struct sched_page *pg)
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
    rc = http_send(s->http, &req, response_cb, pg);
    base_buf_free(&url);
    if (rc < 0)
        return rc;
    pg->state = PAGE_INFLIGHT;
    pg->requests++;
    pg->sent_wall = now_wall(s);
    s->inflight++;
    s->requests++;
    job->res->requests++;
    return 0;
}

/* Appends a new page (WANT) to job's pipeline; NULL when out of memory. */
static struct sched_page *job_add_page(struct sched_job *job, int64_t parent_id, int64_t offset)
{
    struct sched_page *pg, **tail;

    pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        return NULL;
    base_buf_init(&pg->body, SCHED_MAX_BODY);
    pg->job = job;
    pg->seq = job->next_seq++;
    pg->epoch = job->epoch;
    pg->offset = offset;
    pg->parent_id = parent_id;
    pg->server_used = -1;
    if (job->def->api == KEAP_API_V2 && job->cur.page_token != NULL) {
        pg->page_token = strdup(job->cur.page_token);
        if (pg->page_token == NULL) {
            free(pg);
            return NULL;
        }
    }
    for (tail = &job->pages; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = pg;
    job->npages++;
    return pg;
}

static void job_fetch_parents(struct sched_job *job)
{
    if (job->fetching_parents || job->parents_exhausted)
        return;
    job->fetching_parents = job_submit_op(job, OP_PARENTS);
}

/* The next page of job worth sending now, creating one when the pipeline has room. */
static struct sched_page *job_next_page(struct sched_job *job, uint64_t now, uint64_t *wake)
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

static struct sched_page *pick_page(struct sched *s, uint64_t now, uint64_t *wake)
{
    for (size_t k = 0; k < s->njobs; k++) {
        struct sched_job *job = &s->jobs[(s->rr + k) % s->njobs];
        struct sched_page *pg;

        if (job_terminal(job))
            continue;
        pg = job_next_page(job, now, wake);
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
        sched_stop(s, STOP_SIGNAL, "out of memory");
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

static void sched_pump(struct sched *s)
{
    if (s->closing)
        return;
    while (s->stop == STOP_NONE) {
        uint64_t now = now_mono(s), wake = 0;
        int64_t wall = now_wall(s);
        struct sched_page *pg;
        struct pace_decision d;

        /* A new UTC day: the ledger has a fresh row. */
        if (s->ledger_exhausted && base_time_day_start(wall) != s->grant_day && s->grant_day != 0) {
            s->ledger_exhausted = false;
        }
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
        if (send_page(s, pg) < 0) {
            pace_refund(s->pace, now, wall);
            job_fail_page(pg->job, pg, "could not start the request");
        }
    }
    sched_maybe_finish(s);
}

/* ---- setup ------------------------------------------------------------------------------ */

static int cursor_load(struct sched_cursor *c, const char *json, const struct jobs_job *def,
                       struct base_err *err)
{
    cJSON *root, *w, *it;

    c->watermark_ms = -1;
    c->completed_ms = -1;
    c->in_window = false;
    if (json == NULL)
        return 0;
    root = cJSON_Parse(json);
    if (root == NULL)
        return base_err_set(err, BASE_EPROTO, "checkpoint of job \"%s\" is not valid JSON",
                            def->name);
    it = cJSON_GetObjectItemCaseSensitive(root, "watermark_ms");
    if (cJSON_IsNumber(it))
        c->watermark_ms = (int64_t)it->valuedouble;
    it = cJSON_GetObjectItemCaseSensitive(root, "completed_ms");
    if (cJSON_IsNumber(it))
        c->completed_ms = (int64_t)it->valuedouble;
    w = cJSON_GetObjectItemCaseSensitive(root, "window");
    if (cJSON_IsObject(w)) {
        c->in_window = true;
        it = cJSON_GetObjectItemCaseSensitive(w, "since_ms");
        c->since_ms = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : -1;
        it = cJSON_GetObjectItemCaseSensitive(w, "until_ms");
        c->until_ms = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : -1;
        it = cJSON_GetObjectItemCaseSensitive(w, "offset");
        c->next_offset = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "epoch");
        c->epoch = cJSON_IsNumber(it) ? (uint32_t)it->valuedouble : 0;
        it = cJSON_GetObjectItemCaseSensitive(w, "last_id");
        if (cJSON_IsNumber(it)) {
            c->have_last_id = true;
            c->last_id = (int64_t)it->valuedouble;
        }
        it = cJSON_GetObjectItemCaseSensitive(w, "parent_done");
        if (cJSON_IsNumber(it)) {
            c->have_done = true;
            c->done_through = (int64_t)it->valuedouble;
        }
        it = cJSON_GetObjectItemCaseSensitive(w, "page_token");
        if (cJSON_IsString(it) && (c->page_token = strdup(it->valuestring)) == NULL) {
            cJSON_Delete(root);
            return base_err_set(err, BASE_ENOMEM, "out of memory");
        }
    }
    cJSON_Delete(root);
    return 0;
}

/* Opens a new window when the checkpoint holds none. */
static void cursor_open_window(struct sched_cursor *c, const struct jobs_job *def, int64_t wall)
{
    if (c->in_window)
        return;
    c->in_window = true;
    c->next_offset = 0;
    c->have_last_id = false;
    c->since_ms = -1;
    c->until_ms = -1;
    if (def->incremental) {
        if (c->watermark_ms >= 0)
            c->since_ms = c->watermark_ms - (int64_t)def->overlap_s * 1000;
        c->until_ms = wall - (int64_t)def->lag_s * 1000;
    }
}

static int sched_setup_jobs(struct sched *s, struct jobs_set *set, struct sched_result *res,
                            struct base_err *err)
{
    int64_t wall = now_wall(s);

    s->jobs = calloc(set->n, sizeof(*s->jobs));
    res->jobs = calloc(set->n, sizeof(*res->jobs));
    if (s->jobs == NULL || res->jobs == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    s->njobs = set->n;
    res->njobs = set->n;
    for (size_t i = 0; i < set->n; i++) {
        struct sched_job *job = &s->jobs[i];
        const struct jobs_job *def = &set->jobs[i];
        char *ckpt = NULL;
        int rc;

        job->s = s;
        job->def = def;
        job->res = &res->jobs[i];
        job->res->name = def->name;
        job->depth = 1;
        /* Drift-proof paging needs ids in order. KEAPSYNC_PAGING=naive turns it off: plain
         * offsets, as most tools page; only for comparing the two in tests and benchmarks. */
        job->overlap =
            def->api == KEAP_API_V1 && def->order && strcmp(def->order, "id") == 0 && !s->naive;
        base_buf_init(&job->copy, SCHED_MAX_COPY);
        job->table.table = def->table;
        job->table.map = &def->map;
        job->table.updated_col = def->updated_field;
        job->table.parent_col = def->parent_col;
        job->child = def->parent_job != NULL;
        rc = store_ensure_table(s->store, &job->table, err);
        if (rc < 0)
            return rc;
        rc = store_checkpoint_load(s->store, def->name, &ckpt, err);
        if (rc < 0)
            return rc;
        rc = cursor_load(&job->cur, ckpt, def, err);
        free(ckpt);
        if (rc < 0)
            return rc;
        if (def->refresh_hours > 0 && !job->cur.in_window && job->cur.completed_ms >= 0 &&
            wall - job->cur.completed_ms < (int64_t)def->refresh_hours * 3600000) {
            /* Read in full less than refresh_hours ago: nothing to do this run. */
            base_log_info("job \"%s\": fresh, its last complete pass was %" PRId64
                          " min ago (refresh_hours %d); skipped",
                          def->name, (wall - job->cur.completed_ms) / 60000, def->refresh_hours);
            job_set_state(job, SCHED_JOB_DONE, NULL);
            continue;
        }
        cursor_open_window(&job->cur, def, wall);
        job->epoch = job->cur.epoch;
        job->next_offset = job->cur.next_offset;
        if (job->child) {
            job->have_after = job->cur.have_done;
            job->after = job->cur.done_through;
            if (job->cur.have_done)
                base_log_info("job \"%s\": resuming after parent %" PRId64, def->name,
                              job->cur.done_through);
        }
        if (job->cur.in_window && job->cur.next_offset > 0)
            base_log_info("job \"%s\": resuming at offset %" PRId64, def->name,
                          job->cur.next_offset);
    }
    return 0;
}

/* Links each child stream to its parent's job when both run now. */
static void sched_link_parents(struct sched *s)
{
    for (size_t i = 0; i < s->njobs; i++) {
        struct sched_job *job = &s->jobs[i];

        for (size_t j = 0; job->child && j < s->njobs; j++)
            if (strcmp(s->jobs[j].def->name, job->def->parent_job) == 0)
                job->parent = &s->jobs[j];
    }
}

static int sched_setup_tenant(struct sched *s, struct base_err *err)
{
    struct base_buf key;
    char *cached = NULL;
    int rc;

    if (s->opt->tenant != NULL) {
        s->tenant = strdup(s->opt->tenant);
        return s->tenant ? 0 : base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    base_buf_init(&key, 4096);
    rc = base_buf_printf(&key, "tenant:%s", s->opt->base_url);
    if (rc == 0)
        rc = store_setting_get(s->store, key.data, &cached, err);
    base_buf_free(&key);
    if (rc < 0)
        return rc;
    if (cached != NULL) {
        s->tenant = cached;
        return 0;
    }
    /* Unknown until the first response names it: charge the API root meanwhile. */
    s->tenant = strdup(s->opt->base_url);
    s->tenant_provisional = true;
    return s->tenant ? 0 : base_err_set(err, BASE_ENOMEM, "out of memory");
}

/*
 * The peer group: processes that share one key's per-second and per-minute windows, so the
 * API root and an identifier of the credential. The identifier is 32 bits of FNV-1a of the
 * key: enough to tell a tenant's keys apart, far too little to say anything of the key.
 */
static void sched_peer_group(struct sched *s, const struct keap_credential *cred)
{
    const char *secret = cred->api_key ? cred->api_key : cred->access_token;
    uint64_t h = 14695981039346656037ull;

    for (const char *p = secret ? secret : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(s->peer_group, sizeof(s->peer_group), "%s#%08x", s->opt->base_url,
             (unsigned)((h >> 32) ^ h));
}

/*
 * Is holder ("host:pid:nonce") a process of this host that no longer exists? Such a holder
 * was killed (SIGKILL, a crash) and never released what it held.
 */
static bool holder_is_dead(const struct sched *s, const char *holder)
{
    const char *colon = strchr(s->holder, ':'), *p;
    size_t hostlen = colon ? (size_t)(colon - s->holder) + 1 : 0;
    char pidbuf[24];
    int64_t pid;
    size_t n;

    if (hostlen == 0 || strncmp(holder, s->holder, hostlen) != 0)
        return false; /* another host: cannot tell, wait for the lease to expire */
    p = holder + hostlen;
    n = strcspn(p, ":");
    if (n == 0 || n >= sizeof(pidbuf))
        return false;
    memcpy(pidbuf, p, n);
    pidbuf[n] = '\0';
    if (base_parse_int64(pidbuf, &pid) < 0 || pid <= 0 || pid == (int64_t)getpid())
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Releases the leases (peer entries, job leases) of dead processes of this host. */
static void sched_reap_dead(struct sched *s, const char *prefix)
{
    char **names = NULL, **holders = NULL;
    struct base_err e2;
    int n = 0;

    if (store_lease_list(s->store, prefix, &names, &holders, &n, &e2) < 0) {
        base_log_warning("%s", e2.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!holder_is_dead(s, holders[i]))
            continue;
        base_log_info("releasing \"%s\" held by %s, a keapsync process that no longer exists",
                      names[i], holders[i]);
        if (store_lease_release(s->store, names[i], holders[i], &e2) < 0)
            base_log_warning("%s", e2.msg);
    }
    store_lease_list_free(names, holders);
}

/*
 * Joins the tenant's live processes (they split the key's windows) and takes each job's
 * lease: a job another live process is running is not run twice; it fails with a message.
 * Leases left by dead processes of this host are released first.
 */
static int sched_setup_leases(struct sched *s, struct base_err *err)
{
    char host[64] = "host";
    int rc;

    gethostname(host, sizeof(host) - 1);
    snprintf(s->holder, sizeof(s->holder), "%s:%ld:%08x", host, (long)getpid(), (unsigned)rand());
    sched_reap_dead(s, "job:");
    sched_reap_dead(s, "peer:");
    rc = store_peer_heartbeat(s->store, s->peer_group, s->holder, SCHED_PEER_TTL_MS, &s->npeers,
                              err);
    if (rc < 0)
        return rc;
    if (s->npeers > 1) {
        base_log_info("%d keapsync processes share this key", s->npeers);
        pace_set_share(s->pace, s->npeers);
        /* The others learn of us at their next heartbeat; until then they still use the
         * whole key. */
        s->join_until = now_mono(s) + SCHED_HEARTBEAT_MS + 500;
    }
    for (size_t i = 0; i < s->njobs; i++) {
        struct sched_job *job = &s->jobs[i];
        char name[128], why[512];
        char *other = NULL;
        bool got = false;

        if (job_terminal(job))
            continue; /* fresh: nothing to run, nothing to hold */
        snprintf(name, sizeof(name), "job:%s", job->def->name);
        rc = store_lease_acquire(s->store, name, s->holder, SCHED_LEASE_TTL_MS, &got, &other, err);
        if (rc < 0)
            return rc;
        if (!got) {
            snprintf(why, sizeof(why),
                     "job \"%s\" is already being run by another keapsync process (%s); "
                     "not running it twice",
                     job->def->name, other ? other : "unknown");
            base_log_error("%s", why);
            job_set_state(job, SCHED_JOB_FAILED, why);
        }
        free(other);
    }
    return 0;
}

static void sched_release_leases(struct sched *s)
{
    struct base_err e2;

    for (size_t i = 0; i < s->njobs; i++) {
        char name[128];
        const char *why = s->jobs[i].res->error;

        if (strstr(why, "already being run by another") != NULL)
            continue; /* not ours */
        snprintf(name, sizeof(name), "job:%s", s->jobs[i].def->name);
        if (store_lease_release(s->store, name, s->holder, &e2) < 0)
            base_log_warning("%s", e2.msg);
    }
    if (s->holder[0] != '\0' && store_peer_leave(s->store, s->peer_group, s->holder, &e2) < 0)
        base_log_warning("%s", e2.msg);
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int sched_run(const struct sched_options *opt_in, struct jobs_set *set, struct store *store,
              const struct keap_credential *cred, struct sched_result *res, struct base_err *err)
{
    struct sched_options opt = *opt_in;
    struct http_options hopt = {0};
    struct sched *s;
    int rc;

    memset(res, 0, sizeof(*res));
    if (opt.max_depth <= 0)
        opt.max_depth = SCHED_DEFAULT_DEPTH;
    if (opt.max_attempts <= 0)
        opt.max_attempts = SCHED_DEFAULT_ATTEMPTS;
    if (opt.clock == NULL)
        opt.clock = base_clock_system();
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    s->opt = &opt;
    s->clock = opt.clock;
    s->store = store;
    s->started_mono = now_mono(s);
    {
        const char *paging = getenv("KEAPSYNC_PAGING");

        s->naive = paging != NULL && strcmp(paging, "naive") == 0;
        if (s->naive)
            base_log_warning("KEAPSYNC_PAGING=naive: offset paging without drift checks; records "
                             "may be missed");
    }
    {
        double keep = 1.0 - opt.limits.reserve_fraction;

        s->budget =
            opt.limits.per_day > 0 ? (int64_t)((double)opt.limits.per_day * keep) : INT64_MAX / 4;
    }
    rc = uv_loop_init(&s->loop);
    if (rc < 0) {
        free(s);
        return base_err_set(err, BASE_EIO, "could not start the event loop: %s", uv_strerror(rc));
    }
    rc = pace_new(&s->pace, &opt.limits);
    if (rc < 0) {
        base_err_set(err, rc, "could not set up pacing: %s", base_strerror(rc));
        goto out_loop;
    }
    /* Processes sharing a key must not retry in step. */
    pace_set_seed(s->pace, (uint64_t)getpid() * 2654435761u ^ (uint64_t)now_wall(s));
    srand((unsigned)getpid() ^ (unsigned)now_wall(s));
    sched_peer_group(s, cred);
    rc = keap_auth_headers(cred, &s->auth_headers);
    if (rc < 0) {
        base_err_set(err, rc, "could not build request headers: %s", base_strerror(rc));
        goto out_loop;
    }
    hopt.max_body = SCHED_MAX_BODY;
    hopt.max_connections = opt.max_depth * (int)(set->n < 4 ? set->n : 4) + 2;
    rc = http_client_new(&s->http, &s->loop, &hopt);
    if (rc < 0) {
        base_err_set(err, rc, "could not set up HTTP: %s", base_strerror(rc));
        goto out_loop;
    }
    rc = sched_setup_tenant(s, err);
    if (rc == 0)
        rc = sched_setup_jobs(s, set, res, err);
    if (rc == 0)
        rc = sched_setup_leases(s, err);
    sched_link_parents(s);
    if (rc < 0)
        goto out_http;
    uv_timer_init(&s->loop, &s->timer);
    uv_timer_init(&s->loop, &s->heartbeat);
    uv_timer_start(&s->heartbeat, heartbeat_cb, SCHED_HEARTBEAT_MS, SCHED_HEARTBEAT_MS);
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s;
    s->sigterm.data = s;
    uv_signal_start(&s->sigint, signal_cb, SIGINT);
    uv_signal_start(&s->sigterm, signal_cb, SIGTERM);

    sched_pump(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);

    /* Hand back what the ledger reserved and we did not send. */
    {
        int64_t unspent = pace_unspent(s->pace);
        struct base_err e2;

        if (unspent > 0 && s->tenant != NULL &&
            store_ledger_release(store, s->tenant, now_wall(s), unspent, &e2) < 0)
            base_log_warning("%s", e2.msg);
    }

    sched_release_leases(s);
    res->requests = s->requests;
    res->rejected_429 = s->rejected_429;
    res->seconds = (double)(now_mono(s) - s->started_mono) / 1000.0;
    snprintf(res->message, sizeof(res->message), "%s", s->message);
    {
        bool failed = false, incomplete = false;

        for (size_t i = 0; i < s->njobs; i++) {
            res->rows += s->jobs[i].res->rows;
            if (s->jobs[i].state == SCHED_JOB_FAILED)
                failed = true;
            if (s->jobs[i].state != SCHED_JOB_DONE)
                incomplete = true;
        }
        if (s->stop == STOP_AUTH)
            res->exit_code = 77;
        else if (failed || s->stop == STOP_SIGNAL)
            res->exit_code = 1;
        else if (s->stop == STOP_QUOTA && incomplete)
            res->exit_code = 75;
        else
            res->exit_code = incomplete ? 1 : 0;
    }
    rc = 0;
    goto out_jobs;

out_http:
    http_client_close(s->http);
    s->http = NULL;
out_jobs:
    uv_walk(&s->loop, walk_close_cb, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < s->njobs; i++) {
        base_buf_free(&s->jobs[i].copy);
        free(s->jobs[i].cur.page_token);
        free(s->jobs[i].cur.plist);
        free(s->jobs[i].pids);
        job_drop_pages(&s->jobs[i]);
    }
    free(s->jobs);
out_loop:
    if (uv_loop_close(&s->loop) != 0)
        base_log_warning("event loop closed with handles still open");
    keap_headers_free(s->auth_headers);
    pace_free(s->pace);
    free(s->tenant);
    free(s);
    return rc;
}

void sched_result_free(struct sched_result *res)
{
    if (res == NULL)
        return;
    free(res->jobs);
    res->jobs = NULL;
    res->njobs = 0;
}
