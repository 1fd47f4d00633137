/*
 * sched: runs jobs. One run drives every selected job on one libuv loop: it asks pace for
 * admission, sends page requests through http, classifies responses with keap, and hands
 * each page to a database worker that parses, maps and commits it (store) with the job's
 * checkpoint, in page order.
 *
 * Words used here:
 *   run       one execution of `keapsync run` over the selected jobs.
 *   window    the slice of a job's data one pass reads: for an incremental job the records
 *             whose update time lies in [since, until); for others, everything.
 *   watermark the until of the last window that completed; the next window starts at it
 *             (minus the job's overlap).
 *   cursor    where the current window stands: the next offset and the last id committed.
 *             It lives in the checkpoint and moves forward with each committed page, back
 *             only when records shifted (step back) or a page token was refused (restart).
 *   epoch     bumped whenever the cursor is corrected (a page showed that records shifted,
 *             or a page had to be fetched again); pages requested under an older epoch are
 *             dropped unread.
 *
 * Files (sched_int.h holds what they share):
 *   run.c     sched_run: set-up (pace, http, tenant, jobs' cursors, peers, leases), teardown
 *   loop.c    the loop: admission (sched_pump, pick_page), grants, timers, heartbeat, signals,
 *             stopping (sched_stop, and sched_nomem when memory runs out)
 *   job.c     one job: its page pipeline (request, response, hand-off) and its state
 *   cursor.c  a job's cursor: windows, the v1 drift check, the checkpoint's JSON text
 *   child.c   child streams: passes over the parents written since the last pass (marks),
 *             batches of parent ids, fan-out, marking what a parent no longer lists,
 *             closing a pass only over a complete parent
 *   ops.c     the database worker: the operation queue and each operation's work and done
 *   result.c  the run's result: how it ended, what each job did
 *   sweep.c   delete sweeps and backfills: jobs derived from a job, and sched_pending_work
 *   plan.c    the quota planner: each job's estimated records and requests (history, probes,
 *             parents in Postgres), in admission order, against the day's budget
 *   plan_out.c the plan as text, as JSON, and the line a run stopped at the quota ends with
 */
#ifndef KEAPSYNC_SCHED_H
#define KEAPSYNC_SCHED_H

#include "base.h"
#include "jobs.h"
#include "keap.h"
#include "pace.h"
#include "store.h"

#include <stdint.h>

struct sched_options {
    const char *base_url;      /* KEAP_BASE_URL */
    const char *tenant;        /* ledger key override (KEAPSYNC_TENANT) or NULL */
    struct pace_config limits; /* KEAPSYNC_LIMITS + KEAPSYNC_RESERVE */
    const struct base_clock *clock;
    int max_depth;                   /* pages of one job in flight at once; 0: default */
    int max_attempts;                /* tries of one page before its job fails; 0: default */
    const struct sched_oauth *oauth; /* the credential is an OAuth2 access token, or NULL */
    int64_t ceiling_per_day;         /* every credential of the tenant together; 0: none */
};

struct sched_job_result {
    const char *name;
    int64_t requests; /* requests sent for this job (incl. retries and 429s) */
    int64_t pages;    /* pages committed */
    int64_t rows;     /* rows written (inserted + updated) */
    int64_t skipped;  /* rows older than the table's, left alone */
    int64_t deleted;  /* rows marked deleted: Keap no longer lists them (sweeps, parents) */
    int64_t revived;  /* rows a sweep saw again: deleted_at back to NULL */
    int64_t mismatches;
    int64_t nul_replaced;
    int state; /* enum sched_job_state (sched_int.h); see sched_job_state_name */
    char error[512];
    char name_buf[160]; /* name of a sweep ("<job>#sweep") or backfill ("<job>#backfill<id>") */
};

/* How a run ended. Only the command line turns an outcome into an exit code (DESIGN.md). */
enum sched_outcome {
    SCHED_OUTCOME_COMPLETE = 0, /* every selected job completed its window */
    SCHED_OUTCOME_QUOTA,        /* stopped at the day's quota, progress saved */
    SCHED_OUTCOME_AUTH,         /* Keap refused the credentials */
    SCHED_OUTCOME_FAILED,       /* a job failed; progress up to its last commit kept */
    SCHED_OUTCOME_INTERRUPTED,  /* stopped by SIGINT/SIGTERM, progress saved */
    SCHED_OUTCOME_NOMEM,        /* stopped: out of memory, progress up to the last commit kept */
};

struct sched_result {
    enum sched_outcome outcome;
    int64_t requests; /* all requests sent */
    int64_t rejected_429;
    int64_t rows;
    double seconds;
    size_t njobs;
    struct sched_job_result *jobs; /* njobs entries, owned by the result */
    char message[512];             /* why the run stopped early, or "" */
};

/*
 * Runs the jobs of set (already loaded, selected and validated) with store s (connected,
 * migrated). Blocks until the run ends. Returns 0 with *res filled in (its outcome tells
 * how the run ended), or an error code with err set when the run could not start.
 */
int sched_run(const struct sched_options *opt, struct jobs_set *set, struct store *s,
              const struct keap_credential *cred, struct sched_result *res, struct base_err *err);
void sched_result_free(struct sched_result *res);
const char *sched_job_state_name(int state);

/*
 * The work a job has pending beyond its own window, for the quota planner to cost and for
 * status to show. A sweep reads every id of the job's list (about one request per 1,000
 * records); a backfill reads the job's changes over [resume_ms, to_ms) (on the job's
 * changed-since filter).
 */
struct sched_pending_backfill {
    int64_t id;      /* keapsync.backfills.id */
    int64_t from_ms; /* the recorded range [from_ms, to_ms) */
    int64_t to_ms;
    int64_t resume_ms; /* read up to here: what remains is [resume_ms, to_ms) */
    int64_t offset;    /* records read into the window being read (resumes there) */
    bool done;         /* resume_ms reached to_ms */
};

struct sched_pending {
    const char *job;       /* the job's name (borrowed from the set) */
    int sweep_days;        /* the job's "deletes" cadence; 0: no sweeps */
    bool sweep_due;        /* the next run sweeps (cursor_sweep_due) */
    bool sweep_running;    /* a sweep is part read: the next run continues it */
    int64_t last_sweep_ms; /* when the last sweep completed (wall ms), -1 never */
    size_t nbackfills;     /* the job's recorded backfills, done ones included */
    struct sched_pending_backfill *backfills;
};

/*
 * Reads, for each job of set, its pending sweep and backfills into *out (set->n entries,
 * in set order; free with sched_pending_free). clock: NULL for the system clock. Only reads.
 */
int sched_pending_work(struct store *s, const struct jobs_set *set, const struct base_clock *clock,
                       struct sched_pending **out, struct base_err *err);
void sched_pending_free(struct sched_pending *p, size_t n); /* accepts NULL */

/*
 * ---- the quota planner (plan.c, plan_out.c) ----
 *
 * Words used here:
 *   estimate  a job's records and requests still to read in its current pass, with where the
 *             figure comes from (its source): "history" (what the job's last complete pass of
 *             the same kind cost, keapsync.job_stats), "probe" (one-record or one-page v1
 *             requests that find the window's size), "parents" (a child stream: its parents in
 *             Postgres plus those its parent job has still to write), "estimate" (the last
 *             `keapsync plan`'s figure less what has been spent since), "default" (one page).
 *   recost    what a job that completed costs again on each later day (an incremental
 *             window, a refresh_hours re-read), charged to the days after it completes.
 *   day       a UTC day; day 0 is today, with the budget the ledger and Keap's headers leave.
 *
 * Backfills and delete sweeps (the deletes branch) join a plan through sched_plan_add with
 * their kind, then sched_plan_schedule again: a sweep costs sched_plan_sweep_requests of the
 * job's records (its list job's estimate), a backfill the list requests of its remaining range.
 */
enum sched_plan_kind {
    SCHED_PLAN_LIST = 0, /* a list job (incremental or full): admitted first */
    SCHED_PLAN_CHILD,    /* a child stream: after the list jobs */
    SCHED_PLAN_BACKFILL, /* a backfill's remaining range (the deletes branch adds these) */
    SCHED_PLAN_SWEEP,    /* a delete sweep: a full id listing of the resource */
};

struct sched_plan_job {
    char name[64];
    enum sched_plan_kind kind;
    const char *pass; /* "full", "incremental", "fresh", "child", "backfill", "sweep" */
    int64_t records;  /* -1: unknown */
    int64_t requests;
    int64_t recost;
    int64_t sweep_requests; /* a delete sweep of the job (a full id listing); -1: unknown */
    char source[32];        /* history, probe, parents, estimate, default, fresh */
    char detail[200];       /* e.g. "probe /v1/contacts: 3 requests" */
    int finish_day;         /* 0: today */
    char finish_date[11];
};

struct sched_plan {
    struct sched_plan_job *jobs;
    size_t njobs, cap;
    int64_t now_ms;
    int64_t next_day_ms;
    int64_t daily;      /* the day's budget after the reserve; 0: no daily limit */
    int64_t today_left; /* what today leaves of it */
    int64_t per_day;    /* the day's quota before the reserve (headers or KEAPSYNC_LIMITS) */
    double reserve_fraction;
    int64_t probe_requests; /* requests the plan itself spent (counted in the ledger) */
    bool headers_seen;      /* Keap's quota headers told today's use */
    /* sched_plan_schedule */
    int64_t total_requests;
    int days; /* UTC days until every job is done, today included; 0: nothing to do */
    char finish_date[11];
};

struct sched_plan_options {
    const char *base_url;
    const char *tenant;         /* the ledger key (as sched charges it) */
    const char *const *headers; /* auth headers for probes; NULL: no probes */
    struct pace_config limits;
    const struct base_clock *clock; /* NULL: the system clock */
    int max_probes;                 /* cap on probe requests; 0: 64 */
    bool save;                      /* store each estimate in keapsync.job_estimates */
};

/*
 * Estimates each job of set (in admission order: list jobs, then child streams) and schedules
 * them over the days (sched_plan_schedule). Probes are blocking requests paced under
 * KEAPSYNC_LIMITS' second and minute, each reserved in the ledger before it is sent. Returns
 * 0 with *out filled (free with sched_plan_free), or an error with err set.
 */
int sched_plan_build(const struct sched_plan_options *opt, const struct jobs_set *set,
                     struct store *s, struct sched_plan *out, struct base_err *err);
void sched_plan_free(struct sched_plan *p); /* accepts a zeroed plan */
/* Adds a job's estimate (e.g. a sweep or a backfill); BASE_ENOMEM. Schedule again after. */
int sched_plan_add(struct sched_plan *p, const struct sched_plan_job *j);
/* Orders the jobs by kind (stable), fills each finish day and date, the total and days. */
void sched_plan_schedule(struct sched_plan *p);

/* Requests to read records of a list: v1 pages of page_size (overlapping by one record when
 * overlap, keapsync's drift-proof paging) until a short page, v2 pages until no token. */
int64_t sched_plan_list_requests(enum keap_api api, int page_size, bool overlap, int64_t records);
/* A delete sweep: a full id listing of records, in pages of page_size but at least 1,000. */
int64_t sched_plan_sweep_requests(enum keap_api api, int64_t records, int page_size);

/*
 * The size of a v1 list from page lengths alone. fn(ctx, offset, limit, &n, &count) fetches
 * the page at offset with that limit: n its records, count its "count" member (-1: none);
 * returns 0 or an error, which ends the probe. The first page at offset 0 tells a short list
 * exactly; a count above its length is only a hint, believed after two one-record pages
 * confirm it. Otherwise the size is bracketed, lo <= size <= hi: offsets grow by
 * SCHED_PROBE_GROWTH until a page is empty, then the bracket is bisected (geometrically while
 * hi > 2 lo), and a short page anywhere gives the size exactly. Pure apart from fn.
 *
 * sched_probe_step sends one request; sched_probe_many spends a budget over several lists,
 * each time on the one whose bracket is widest in pages, until each is exact or within tol
 * (the bracket's half-width over its middle), so that the budget goes where the requests are.
 */
#define SCHED_PROBE_GROWTH 32

typedef int (*sched_probe_fn)(void *ctx, int64_t offset, int limit, int *n, int64_t *count);

struct sched_probe {
    sched_probe_fn fn;
    void *ctx;
    int limit;     /* records per probe page */
    int stage;     /* 0 first page, 1 and 2 the count check, 3 bracket and bisect */
    int64_t lo;    /* size >= lo */
    int64_t hi;    /* size <= hi; -1: no empty page seen yet */
    int64_t exact; /* the size, once known; -1 until then */
    int64_t count; /* the first page's count, checked in stages 1 and 2 */
    int requests;  /* pages fetched */
    int rc;        /* the error that ended the probe, or 0 */
};

void sched_probe_init(struct sched_probe *p, sched_probe_fn fn, void *ctx, int limit);
/* One request. Returns 0, or fn's error (kept in p->rc; the probe is over). */
int sched_probe_step(struct sched_probe *p);
/* Exact, failed, or the bracket within tol of its middle (tol 0: exact only). */
bool sched_probe_done(const struct sched_probe *p, double tol);
/* The size if exact, else the bracket's middle (in ratio while hi > 2 lo), else (no upper
 * bound yet) its lower bound. */
int64_t sched_probe_estimate(const struct sched_probe *p);
/*
 * Steps the probes of v[0..n) until each is done within tol or budget requests are spent,
 * always the widest bracket first (one not yet bounded above is the widest). Returns the
 * requests spent, or BASE_EAUTH when fn reported refused credentials (nothing else will do).
 */
int sched_probe_many(struct sched_probe *const *v, size_t n, int budget, double tol);
/* The exact size: sched_probe_step until exact. *requests counts the pages fetched. */
int sched_probe_size(sched_probe_fn fn, void *ctx, int limit, int64_t *size, int *requests);

/* The plan as JSON: {"total_requests", "days", "jobs": [{"name", "requests", ...}], ...}. */
int sched_plan_json(const struct sched_plan *p, struct base_buf *out);
/* The plan as text, one line a job and a summary line. */
int sched_plan_text(const struct sched_plan *p, struct base_buf *out);
/*
 * The one line a run stopped at the quota ends with: the jobs res left unfinished with their
 * estimated requests (from p, built without probes after the run), and when the next UTC day
 * starts.
 */
void sched_plan_stop_line(const struct sched_plan *p, const struct sched_result *res, char *buf,
                          size_t n);

/*
 * Around a run: sched_plan_passes notes, before it, whether each job of set reads its whole
 * list this pass (full[i]); sched_plan_record writes, after it, what each job spent with it
 * (keapsync.job_stats), the history later plans read.
 */
int sched_plan_passes(struct store *s, const struct jobs_set *set, const struct base_clock *clock,
                      bool *full, struct base_err *err);
int sched_plan_record(struct store *s, const struct jobs_set *set, int64_t run_id, const bool *full,
                      const struct sched_result *res, struct base_err *err);

/* ---- OAuth2 (oauth.c) ------------------------------------------------------------------- */

/* What a run needs to refresh its access token (cred->access_token) mid-run. */
struct sched_oauth {
    const struct keap_oauth_client *client;
    const struct store_token_key *key; /* KEAPSYNC_TOKEN_KEY_FILE, or NULL: tokens in clear */
    int64_t generation;                /* of the access token the run starts with */
    int64_t obtained_ms, expires_ms;
    int64_t app_per_day; /* the client id's day, across all tenants (ledger "client:<id>") */
};

/* An access token handed out by sched_oauth_token. access_token is secret. */
struct sched_token {
    char *access_token;
    int64_t generation, obtained_ms, expires_ms;
    bool refreshed; /* this call spent the refresh token (and committed the new pair) */
    bool rotated;   /* another process had rotated the pair since have_generation */
};
void sched_token_clear(struct sched_token *t); /* wipes; accepts NULL */

/* How to re-authorize, for the line an exit 77 prints. */
#define SCHED_OAUTH_REAUTH_HINT                                                                    \
    "re-authorize: keapsync auth --code CODE --redirect-uri URI, with a fresh code from Keap's "   \
    "authorize page (README, \"OAuth2\")"

/*
 * The access token to use, serialized across every process of the tenant: takes the row lock
 * of client c's pair in store s (waiting for a process refreshing it), decides
 * (keap_oauth_decide: have_generation -1 when holding none, force after a 401), and when a
 * refresh is due calls the token endpoint with the lock held and commits the new pair before
 * returning it. Blocking: meant for set-up and the run's database worker. Errors: BASE_EAUTH
 * when no pair is stored or Keap answers invalid_grant (the hint says how to re-authorize);
 * BASE_ECONFIG for a key that does not open the stored pair; BASE_EIO, BASE_EDB otherwise.
 * KEAPSYNC_TEST_CRASH_AFTER_TOKEN=1 (tests only) makes the process _exit(1) after the token
 * endpoint answered and before the commit, losing the new pair as a crash would.
 */
int sched_oauth_token(struct store *s, const struct keap_oauth_client *c,
                      const struct store_token_key *key, int64_t have_generation, bool force,
                      int64_t now_ms, struct sched_token *out, struct base_err *err);

#endif
