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
 * The quota planner (which jobs get how much of the day's budget) will be a file of its own
 * beside these, called from run.c and loop.c.
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
