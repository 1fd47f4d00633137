/*
 * sched_int.h: what the scheduler's own files share and nobody else sees: the run (struct
 * sched), its jobs, their pages and cursors, the database worker's operations, and the
 * functions one file of engine/sched calls in another. See sched.h for the words and the
 * files.
 *
 * Threads: everything runs on the loop thread except the work half of a database operation
 * (ops.c), which runs on libuv's thread pool, one operation at a time.
 */
#ifndef KEAPSYNC_SCHED_INT_H
#define KEAPSYNC_SCHED_INT_H

#include "sched.h"

#include "http.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SCHED_DEFAULT_DEPTH    4
#define SCHED_DEFAULT_ATTEMPTS 8
#define SCHED_MAX_BODY         (64u * 1024 * 1024)
#define SCHED_MAX_COPY         (256u * 1024 * 1024)
/* A database transaction that failed in a way another try may cure (store_retryable) is
 * tried up to SCHED_DB_ATTEMPTS times in all, SCHED_DB_BACKOFF_MIN_MS doubling up to
 * SCHED_DB_BACKOFF_MAX_MS apart, with a new connection when the old one is gone, and for no
 * longer than SCHED_DB_RETRY_MAX_MS in all: well inside the job's lease (SCHED_LEASE_TTL_MS),
 * which cannot be renewed meanwhile, so no other process takes the job while this one waits. */
#define SCHED_DB_ATTEMPTS       6
#define SCHED_DB_BACKOFF_MIN_MS 1000
#define SCHED_DB_BACKOFF_MAX_MS 30000
#define SCHED_DB_RETRY_MAX_MS   45000

enum sched_job_state {
    SCHED_JOB_PAGING = 0, /* requesting pages of the current window */
    SCHED_JOB_DONE,       /* window complete, checkpoint committed */
    SCHED_JOB_FAILED,     /* stopped by an error; progress up to the last commit kept */
    SCHED_JOB_STOPPED, /* the run stopped (quota, auth, signal, memory) before the job finished */
    SCHED_JOB_SKIPPED, /* a live peer holds its lease: it runs the job this tick, not us */
};

enum sched_page_state {
    PAGE_WANT = 0,  /* to be sent (new, or again after a failure) */
    PAGE_INFLIGHT,  /* request sent */
    PAGE_ARRIVED,   /* body here, waiting for earlier pages to be submitted */
    PAGE_SUBMITTED, /* handed to the database worker */
};

enum sched_stop {
    STOP_NONE = 0,
    STOP_QUOTA,  /* the day's budget is spent: SCHED_OUTCOME_QUOTA */
    STOP_AUTH,   /* credentials refused: SCHED_OUTCOME_AUTH */
    STOP_SIGNAL, /* SIGINT/SIGTERM: SCHED_OUTCOME_INTERRUPTED, progress saved */
    STOP_NOMEM,  /* out of memory (sched_nomem): SCHED_OUTCOME_NOMEM */
};

/*
 * Where a job's current window stands. Who writes it: cursor_load and cursor_open_window
 * before the loop runs; then the job's page operations on the worker (ops.c, child.c); and
 * response_cb on the loop, when Keap refuses a v2 page token (it clears the token and bumps
 * the epoch: a v2 job has one page outstanding at a time, so none of its operations runs
 * then). While an operation runs the loop reads only the window's bounds, which no
 * operation changes; the rest it reads in an operation's done half.
 */
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
    unsigned stepback; /* consecutive step-backs: each doubles the distance */
    /* child streams: every parent up to done_through is complete; parents begun after it
     * wait in plist, in id order, until those before them complete */
    bool have_done;
    int64_t done_through;
    struct sched_parent *plist;
    int plist_n, plist_cap;
    /* child streams: a pass reads the parents whose rows were written (synced_at) after
     * since_mark ("": every parent); mark is the latest synced_at of the parent's table when
     * the pass's fan-out began ("": not begun), the next pass's since_mark. parent_complete:
     * had the parent job completed a pass then (so its table held every parent)? -1: not
     * begun. Marks are timestamptz text, exact to the microsecond. */
    char since_mark[48];
    char mark[48];
    int parent_complete;
    /* pages read in the open window, and the last completed window's span and pages (0:
     * none): a backfill sizes its first window of a run from them, as it would have sized the
     * next one had the run gone on */
    int64_t win_pages;
    int64_t last_span_ms, last_pages;
};

/* A parent whose list a child stream has begun to read. */
struct sched_parent {
    int64_t id;
    bool complete;
    char *keep; /* ids its earlier pages listed, a text[] literal ("{"1","2"}"), or NULL */
    size_t keep_len;
};

#define SCHED_PARENT_BATCH 1000

/*
 * What a job of the run is, in the order the run admits them (pick_page): a kind's pages go
 * only when every job of an earlier kind is over (done, failed or stopped). A sweep and a
 * backfill are jobs of their own beside their job (their def is derived from it, named
 * "<job>#sweep" and "<job>#backfill<id>": their checkpoints and leases), on its table.
 */
enum sched_kind {
    SCHED_KIND_MAIN = 0, /* a job file's job: its incremental window, or its full pass */
    SCHED_KIND_CHILD,    /* a child stream */
    SCHED_KIND_BACKFILL, /* a recorded backfill of an incremental job's history */
    SCHED_KIND_SWEEP,    /* a delete sweep: every id of the list, the cheapest way */
};

/* A delete sweep's pages are as large as Keap allows. */
#define SCHED_SWEEP_PAGE 1000
/* A backfill's first window, before any tells how dense the history is. */
#define SCHED_BACKFILL_FIRST_SPAN_MS (7 * 86400000LL)
#define SCHED_BACKFILL_MIN_SPAN_MS   (3600000LL)

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
    bool gone;           /* child streams: Keap answered 404, the parent is deleted */
    int64_t token_gen;   /* OAuth2: the generation of the access token it was sent with */
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
    bool holds_lease;        /* this process took the job's lease (sched_setup_leases) */
    struct sched_cursor cur; /* see struct sched_cursor for who writes it */
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
    bool parent_completed;    /* else: its checkpoint shows a completed pass */
    struct base_buf copy;     /* worker-owned COPY buffer */
    /* worker-owned: the record members the page parse builds (ops.c job_keep), for keep_def */
    struct keap_keep keep;
    const char **keep_names; /* keep.full then keep.raw, into keep_def's map (or literals) */
    const struct jobs_job *keep_def;
    struct sched_job_result *res;
    /* sweeps and backfills (sweep.c): kind, the derived definition def points to (xdef,
     * with xquery its own query array), and the job it was derived from */
    enum sched_kind kind;
    bool sweeping; /* pages record their ids; the window's last page marks the rest */
    bool sync;     /* a sweep through /v1/products/sync: marks what it reports DELETED */
    bool opened;   /* set-up opened its window (it was not resuming one) */
    struct jobs_job xdef;
    struct keap_param *xquery;
    const struct jobs_job *origin;
    int64_t bf_to;        /* backfills: the end of the recorded range */
    int64_t win_requests; /* backfills: res->requests when the current window opened */
};

enum sched_op_kind {
    OP_PAGE,
    OP_RESERVE,
    OP_HEARTBEAT, /* peer registration and job lease renewal */
    OP_PARENTS,   /* the next batch of parent ids of a child stream */
    OP_CLOSE,     /* a child stream's last parent is done: close its window */
    OP_REFRESH,   /* OAuth2: the access token is due or was refused (oauth.c) */
    OP_NKINDS     /* the number of kinds (ops.c's table has one entry per kind) */
};

#define SCHED_HEARTBEAT_MS 2000
#define SCHED_PEER_TTL_MS  8000
#define SCHED_LEASE_TTL_MS 60000 /* the default of KEAPSYNC_LEASE_TTL */
int sched_lease_ttl_ms(void);    /* loop.c */
/* After SIGINT/SIGTERM, pages in flight may land for this long (KEAPSYNC_STOP_TIMEOUT, s). */
#define SCHED_STOP_TIMEOUT_MS 10000

enum sched_op_result {
    OPR_COMMITTED, /* rows and checkpoint committed */
    OPR_DISCARDED, /* page of an older epoch, or after the window ended: dropped */
    OPR_STEP_BACK, /* records shifted: cursor moved back, epoch bumped */
    OPR_REFETCH,   /* page unparseable: fetch again at the cursor, epoch bumped */
    OPR_DB_ERROR,  /* the commit failed: the job stops (the run, when out of memory) */
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
    bool *lost;  /* per job: the renewal found the lease another holder's, or gone */
    /* OP_PARENTS, OP_CLOSE */
    struct sched_job *job;
    int64_t *pids;
    int pn;
    /* OP_PAGE of a child stream: the parent needs another page at more_offset; or its list
     * ended with this page, and its rows no page listed are marked deleted (sweep; the
     * earlier pages' ids in sweep_keep, borrowed from the worker) */
    bool more;
    int64_t more_offset;
    bool sweep;
    const char *sweep_keep;
    /* OP_PAGE of a sweeping job: the page's ids (a text[] literal), and is it the last?
     * Of a products sync: the ids it reports DELETED */
    char *seen_ids;
    bool seen_close;
    char *gone_ids;
    /* OP_PARENTS, OP_CLOSE: has the parent job completed a pass, and does it run in this
     * run (read on the loop)? */
    bool parent_complete;
    bool parent_here;
    /* OP_REFRESH */
    int64_t have_gen;
    bool force;
    struct sched_token token;
    int rc;
    struct base_err err;
};

struct sched {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_timer_t heartbeat;
    uv_timer_t progress; /* opt->progress_cb's timer, when there is one */
    uv_signal_t sigint, sigterm;
    uv_timer_t stop_timer; /* after a signal: the bound on waiting for pages in flight */
    bool stop_timer_on;
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
    /* OAuth2 (oauth.c; only when opt->oauth): the access token in auth_headers */
    struct {
        int64_t gen, obtained_ms, expires_ms;
        bool refreshing;  /* an OP_REFRESH is queued or running: nothing is admitted */
        bool force;       /* a 401 asks for a refresh */
        bool retried_401; /* a refresh for a 401 happened and no request succeeded since */
    } tok;
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
    int64_t day_left;    /* what the ledger left of today's budget at set-up (-1: unknown) */
    int64_t grant_day;   /* day start of the last grant */
    bool reserving;
    bool ledger_exhausted;
    /* state */
    enum sched_stop stop;
    bool closing;
    size_t inflight;
    int64_t requests;
    int64_t rejected_429;
    int64_t rejected_429_by[4]; /* enum pace_limit_kind */
    int64_t commit_buckets[12]; /* written by the database worker, one operation at a time */
    double commit_seconds;
    uint64_t started_mono;
    char message[512];
    /* Set by a signal: the database worker stops waiting for the database (sched_db_retry). */
    atomic_bool db_give_up;
    uint64_t db_failed_ms; /* worker only: when the transaction being retried first failed */
};

static inline uint64_t now_mono(const struct sched *s)
{
    return base_clock_mono_ms(s->clock);
}

static inline int64_t now_wall(const struct sched *s)
{
    return base_clock_wall_ms(s->clock);
}

/* Did the worker run out of memory during op? It says so with BASE_ENOMEM in op->err; the
 * run then stops (sched_nomem) and the operation's failure fails no job. */
static inline bool op_nomem(const struct sched_op *op)
{
    return op->err.code == BASE_ENOMEM;
}

/* ---- job.c: one job's pages and state ------------------------------------------------- */

void page_free(struct sched_page *pg); /* accepts NULL */
/* Takes pg off job's list of outstanding pages (it stays allocated). */
void job_unlink_page(struct sched_job *job, struct sched_page *pg);
/* Drops every page not yet handed to the worker; pages in flight become stale. */
void job_drop_pages(struct sched_job *job);
/* Drops the pages waiting to be sent (after a stop they never will be). */
void job_drop_wanted(struct sched_job *job);
/* The one function that changes a job's state; why is the error of a FAILED job. */
void job_set_state(struct sched_job *job, enum sched_job_state st, const char *why);
bool job_terminal(const struct sched_job *job);
/* Realigns the loop's view of job (epoch, offset, parents) with its cursor; drops pages. */
void job_resync(struct sched_job *job);
/* Queues an operation of kind for job; false when out of memory (the run stops). */
bool job_submit_op(struct sched_job *job, enum sched_op_kind kind);
/* Marks job DONE when its window is complete, or queues OP_CLOSE for a child stream. */
void job_check_done(struct sched_job *job);
/* Fails job because page pg could not be fetched (reason says why). */
void job_fail_page(struct sched_job *job, struct sched_page *pg, const char *reason);
/* A new page (WANT) at the end of job's pipeline; NULL when out of memory (the run stops). */
struct sched_page *job_add_page(struct sched_job *job, int64_t parent_id, int64_t offset);
/* The page of job to send at now, or NULL (*wake: when a waiting page may go, if earlier). */
struct sched_page *job_next_page(struct sched_job *job, uint64_t now, uint64_t *wake);
/* Sends pg (admitted by pace); on failure nothing was sent and pg is still WANT. */
int job_send_page(struct sched *s, struct sched_page *pg);

/* ---- cursor.c: windows, the drift check, checkpoints ---------------------------------- */

/*
 * Pure: no I/O, and time only from the clock passed in (tests drive them on a
 * base_fake_clock).
 */

/* Appends c as the checkpoint's JSON text to out (what cursor_load reads back). */
int cursor_checkpoint(const struct sched_cursor *c, struct base_buf *out);
/*
 * Reads checkpoint json (NULL: the job never ran) into c, which must be zeroed. Outside a
 * window only the watermark and completion time are kept. BASE_EPROTO when json is not
 * JSON; err names def's job.
 */
int cursor_load(struct sched_cursor *c, const char *json, const struct jobs_job *def,
                struct base_err *err);
/* True when def's last complete pass ended less than its refresh_hours ago (skip the job). */
bool cursor_fresh(const struct sched_cursor *c, const struct jobs_job *def,
                  const struct base_clock *clock);
/*
 * Opens a new window unless c is in one: for an incremental job, [watermark - overlap_s,
 * now - lag_s), open below when there is no watermark yet; for others, everything.
 */
void cursor_open_window(struct sched_cursor *c, const struct jobs_job *def,
                        const struct base_clock *clock);
/* The record's id as an integer; false when it has none or it is not one. */
bool cursor_record_id(const struct jobs_job *def, const cJSON *rec, int64_t *id);
/*
 * Which records of the v1 page at offset (the array recs, n of them) are new: the index of
 * the first whose id is above c's last id, 0 when there is no drift check (overlap 0, no
 * last id yet, or ids unusable), or -1 when the page shows that records shifted left past
 * c's position (it starts above the last id but is not the window's first page).
 */
int cursor_v1_first_new(const struct sched_cursor *c, const struct jobs_job *def, int overlap,
                        int64_t offset, const cJSON *recs, int n);
/*
 * Records shifted before offset: moves c back (16 records at the first step-back, twice as
 * far at each one after it without a commit between, at most page_size - 1, never below 0)
 * and bumps its epoch. Returns the new offset.
 */
int64_t cursor_v1_step_back(struct sched_cursor *c, int page_size, int64_t offset);
/*
 * *next is c after the page at offset (recs, n records; for v2, next_token, the page's next
 * page token, which next->page_token borrows) is committed: v1 moves the offset on by n less
 * the overlap and remembers the last id; the window's last page (v1: short, v2: no token)
 * closes it, moving the watermark to its until (incremental jobs) and completed_ms to
 * sent_wall.
 */
void cursor_after_page(const struct sched_cursor *c, const struct jobs_job *def, int overlap,
                       int64_t offset, const cJSON *recs, int n, char *next_token,
                       int64_t sent_wall, struct sched_cursor *next);
/*
 * Its page committed, next (from cursor_after_page) becomes c: c copies next's page token
 * and the step-back distance starts over. BASE_ENOMEM when the token could not be copied
 * (c then has none); everything else has moved all the same.
 */
int cursor_advance(struct sched_cursor *c, const struct sched_cursor *next);
/* Opens a child stream's pass over the parents written after c->since_mark. */
void cursor_open_pass(struct sched_cursor *c);
/* Forgets the begun parents and frees what they kept (their pages will be fetched again). */
void cursor_plist_clear(struct sched_cursor *c);

/* ---- child.c: child streams ------------------------------------------------------------ */

/* OP_PAGE of a child stream, on the worker: maps and commits page, marks its parent. */
void op_child_page_work(struct sched_op *op, struct keap_page *page);
/* OP_PARENTS: the next batch of parent ids. */
void op_parents_work(struct sched_op *op);
void op_parents_done(struct sched *s, struct sched_op *op);
/* OP_CLOSE: the pass's last parent is done: close it, open the next, or leave it open. */
void op_close_work(struct sched_op *op);
void op_close_done(struct sched *s, struct sched_op *op);
/* Queues OP_PARENTS unless a batch is being read or there are no more. */
void job_fetch_parents(struct sched_job *job);
/* Has the parent job completed a pass, so that its table holds every parent? (loop) */
bool child_parent_complete(const struct sched_job *job);
/* Links each child stream to its parent's job when both run now. */
void sched_link_parents(struct sched *s);

/* ---- sweep.c: delete sweeps and backfills (pure parts first) ------------------------- */

/*
 * Is a sweep due? sweep is the sweep's cursor (loaded), sweep_days the job's cadence. A
 * sweep in its window is due (it resumes). A job that has never completed a window
 * (main_watermark < 0) is reading everything for the first time: no sweep yet. Else due when
 * no sweep completed, or the last completed sweep_days or more ago (now_ms, wall). (At its
 * first run after its first complete window a job's sweep checkpoint is started as if a
 * sweep had completed then: that window read every record. sched_setup_extras.)
 */
bool cursor_sweep_due(const struct sched_cursor *sweep, int64_t main_watermark, int sweep_days,
                      int64_t now_ms);
/*
 * The end of the backfill window that starts at since, for a backfill that ends at to: the
 * previous window spanned prev_span_ms and cost prev_requests (0, 0: none yet); remaining is
 * what today's budget still allows. The span aims at a window that costs what remains today
 * (it completes today, and its watermark holds), from the previous one's density, at most 4
 * times and at least a quarter of the previous span, never under an hour; the first window
 * spans SCHED_BACKFILL_FIRST_SPAN_MS. Never beyond to.
 */
int64_t cursor_backfill_until(int64_t since, int64_t to, int64_t prev_span_ms,
                              int64_t prev_requests, int64_t remaining);
/* Opens the backfill window [since, until) at its start (bumps the epoch). */
void cursor_backfill_open(struct sched_cursor *c, int64_t since, int64_t until);
/*
 * Appends the ids of records (a JSON array) to out as a text[] literal ("{"1","2"}"). With
 * status (a products sync), only the records whose "status" is status count, and the id is
 * their "product"'s.
 */
int cursor_ids_literal(const struct jobs_job *def, const cJSON *records, const char *status,
                       struct base_buf *out);
/*
 * A products sync's page is committed: *next (from cursor_after_page) takes the response's
 * sync_token (root, the page's JSON) when the pass has none yet (mark), and a pass that
 * ends makes it the token of the next one (since_mark). A sync's cursor keeps its tokens
 * there: since_mark the token the pass reads with, mark the one the next pass will.
 */
void cursor_sync_after_page(const cJSON *root, struct sched_cursor *next);
/*
 * Adds to s->jobs (room for them was allocated) the sweeps that are due and the backfills
 * not yet done of the jobs of set, each set up as sched_setup_jobs sets up a job; main[i] is
 * the job of set->jobs[i]. Logs what it adds.
 */
int sched_setup_extras(struct sched *s, const struct jobs_set *set, struct sched_result *res,
                       struct base_err *err);
/* The number of extra jobs (sweeps, backfills) set may need: an upper bound for the array. */
int sched_count_extras(struct sched *s, const struct jobs_set *set, size_t *n,
                       struct base_err *err);
/* Decides whether job's pages sweep, and begins its sweep (store_sweep_begin) when its
 * window has just opened. After the job's lease is taken (run.c), before the loop. */
int sched_begin_sweep(struct sched *s, struct sched_job *job, bool was_in_window,
                      struct base_err *err);
/* Backfills: the window job completed was not the last: opens the next (loop thread). */
void job_backfill_next(struct sched_job *job);
/* Backfills, at set-up: opens the first window of this run from the watermark (or from). */
void job_backfill_first(struct sched_job *job, int64_t from);
/* Is def the products job that /v1/products/sync can tell deletions for ("<job>#sync")? */
bool sched_products_sync(const struct jobs_job *def);
/* Frees what a job's derived definition owns. */
void sched_extra_free(struct sched_job *job);

/* ---- ops.c: the database worker -------------------------------------------------------- */

/* Queues op (owned by the queue from now on); it runs when those before it are done. */
void op_submit(struct sched *s, struct sched_op *op);
/* On the worker: commits the job's COPY rows with cursor after's checkpoint (ops.c). */
int op_commit_rows(struct sched_op *op, const struct sched_cursor *after, int64_t nrows);
/*
 * On the worker, after a store call failed with err at its *attempt'th try (1 the first):
 * when another try may cure it (store_retryable) and tries are left, waits (capped
 * backoff), reconnects when the connection is gone, counts the try and returns true: run
 * the transaction again. Otherwise false, with "after N attempts" added to err when it gave
 * up.
 */
bool sched_db_retry(struct sched *s, int *attempt, struct base_err *err);

/* ---- loop.c: admission, timers, signals, stopping ------------------------------------- */

/* Starts the timers and signal handlers and runs the loop until the run is over. */
void sched_loop_run(struct sched *s);
/* Sends every page pace admits now, arms a timer for the next, finishes the run when done. */
void sched_pump(struct sched *s);
/* Stops the run for why (the first stop wins) with msg; pages waiting to be sent drop. */
void sched_stop(struct sched *s, enum sched_stop why, const char *msg);
/*
 * The one answer to an allocation that failed on the loop thread: stops the run with
 * STOP_NOMEM (whatever stopped it before) and a message naming where ("adding a page").
 * Every page not yet handed to the worker is dropped, so callers must not touch a page of
 * the list they were walking. The worker reports its own failures with BASE_ENOMEM in the
 * operation's err, and ops.c calls this on its behalf.
 */
void sched_nomem(struct sched *s, const char *where);
/* A response named the tenant: the ledger key switches to it (once). */
void sched_note_tenant(struct sched *s, const char *tenant);

/* ---- oauth.c: the access token during a run -------------------------------------------- */

/* Called by sched_pump before each admission: true while admissions must wait for a refresh
 * (one is queued when the token is due or was refused). */
bool sched_oauth_pause(struct sched *s);
/* A 401 for pg: true when pg should be sent again (the token was or will be refreshed), false
 * when the run must stop (a refreshed token was refused too, or no OAuth2). */
bool sched_oauth_on_401(struct sched *s, const struct sched_page *pg);
/* The worker and loop halves of OP_REFRESH. */
void sched_oauth_refresh_work(struct sched_op *op);
void sched_oauth_refresh_done(struct sched *s, struct sched_op *op);
/* In the worker after a ledger grant: the client's day and the tenant's ceiling must have room
 * too; op->granted shrinks to what all rows granted (the rest is handed back). */
void sched_oauth_reserve_more(struct sched_op *op);
/* At the end of a run: hands unspent requests back to the client's and the ceiling's rows. */
void sched_oauth_release_more(struct sched *s, int64_t unspent);
/* The ledger rows beyond the tenant's: "client:<id>" and "all:<tenant>" (buf, n). */
int sched_ledger_client_key(const struct sched *s, char *buf, size_t n);
int sched_ledger_ceiling_key(const struct sched *s, const char *tenant, char *buf, size_t n);

/* ---- run.c ------------------------------------------------------------------------------ */

/*
 * Sets up job (its res and, for a sweep or a backfill, its kind and derived def already set)
 * as a job of the run with definition def: its table (prepared for main jobs), its cursor from
 * its checkpoint, skipped when fresh, its window opened (a backfill's from from). */
int sched_setup_job(struct sched *s, struct sched_job *job, const struct jobs_job *def,
                    int64_t from, struct base_err *err);

/* ---- result.c: how the run ended ------------------------------------------------------- */

/* Fills in res from the run that ended (each job's figures are already in res->jobs). */
void sched_result_fill(const struct sched *s, struct sched_result *res);

#endif
