/*
 * store: everything keapsync keeps in Postgres. One struct store is one libpq connection,
 * used by one thread at a time; every call is synchronous (the scheduler runs them off the
 * loop, on a worker thread).
 *
 * Words used here:
 *   migration   a versioned file sql/NNNN_name.sql, compiled into the binary; applied in
 *               order, each in its own transaction, recorded in keapsync.migrations.
 *   target      a job's table keap.<table> (or <schema>.<table>, store_set_target_schema): id
 *               primary key, typed columns, data jsonb (the
 *               record as received), synced_at, deleted_at (set when Keap stopped listing the
 *               record; never a DELETE).
 *   page        a batch of rows in COPY text format (from map) committed in one
 *               transaction with the job's checkpoint and the ledger's spend.
 *   checkpoint  an opaque JSON text per job; store never reads it.
 *   ledger      keapsync.quota_ledger: per tenant and UTC day, how many requests were
 *               reserved (may be sent) and spent (were sent and committed). A reservation is
 *               durable before its requests go, so no crash can overspend.
 *   newer-wins  an upsert never replaces a row whose updated column is newer than the
 *               incoming one.
 */
#ifndef KEAPSYNC_STORE_H
#define KEAPSYNC_STORE_H

#include "base.h"
#include "map.h"

#include <stdbool.h>
#include <stdint.h>

struct store;

/*
 * Connects (conninfo NULL or "" means libpq's PG* variables). On failure err says what and
 * hints how to fix it, without any password. BASE_EDB.
 */
int store_connect(struct store **out, const char *conninfo, struct base_err *err);
void store_close(struct store *s); /* accepts NULL */

/*
 * The schema of the jobs' tables (KEAPSYNC_SCHEMA; "keap" until set): every connection made
 * after this call names its tables <schema>.<table>. schema must be an identifier,
 * [a-z_][a-z0-9_]{0,62}, other than keapsync's own and pg_*: BASE_ECONFIG otherwise.
 */
int store_set_target_schema(const char *schema, struct base_err *err);
const char *store_target_schema(void);
/* Creates the target schema when it does not exist (the default, keap, is migration 0001's). */
int store_ensure_schema(struct store *s, struct base_err *err);

/* Applies pending migrations; *applied counts them. Idempotent; safe with concurrent callers
 * (an advisory lock serialises them). */
int store_migrate(struct store *s, int *applied, struct base_err *err);
/* Highest applied version (0 when keapsync's schema does not exist yet). */
int store_schema_version(struct store *s, int *version, struct base_err *err);
/* Highest version compiled into this binary. */
int store_latest_version(void);

struct store_table {
    const char *table;          /* in schema keap; a validated identifier */
    const struct map_spec *map; /* id and typed columns */
    const char *updated_col;    /* newer-wins column (one of map's columns) or NULL */
    const char *parent_col;     /* child tables: the parent's id (bigint), first in each COPY
                                 * row and part of the primary key (parent_col, id); or NULL */
};

/*
 * Creates keap.<table> if missing and adds missing columns (never drops or retypes one).
 * Also prepares the per-connection staging table used by store_commit_page.
 */
int store_ensure_table(struct store *s, const struct store_table *t, struct base_err *err);

/*
 * Evolving a job's table (evolve.c) when its job file changes. Every record is kept whole in
 * data, so the table follows the definition from its own copy, without a request. The shape
 * a job's table was last given (table, id path and type, parent column, columns with name,
 * path and type) is recorded in keapsync.jobs; each change against it (or, for a job seen
 * the first time, against the table as it is) is applied in one transaction with the new
 * shape:
 *   renamed table    ALTER TABLE keap.<old> RENAME TO <new> (the old one must exist, the
 *                    new one not); refused otherwise, unless the job has no checkpoint
 *   added column     added and filled from data, as map would have written it (NULL on a
 *                    mismatch); a column back in the job is refilled the same way
 *   changed path     refilled from data
 *   changed type     rewritten from data (ALTER COLUMN ... TYPE ... USING); refused when a
 *                    value in data does not convert to the new type
 *   dropped column   kept with a notice, or dropped with drop_columns (which drops every
 *                    column of the table that is no longer the job's)
 * A change of the id or the parent column is refused. Refusals are BASE_ECONFIG (exit 2),
 * with nothing changed and err naming the job, the column and the value; each applied change
 * is logged once at info level. An unchanged job changes and logs nothing.
 */
struct store_evolve_options {
    bool drop_columns; /* drop columns no longer in the job instead of keeping them */
    bool check_only;   /* find and check every change, apply none (nothing is logged) */
};

struct store_evolve_result {
    int renamed;  /* 1 when the table was renamed */
    int added;    /* columns added (or back in the job) and filled from data */
    int refilled; /* columns whose path changed, refilled from data */
    int retyped;  /* columns rewritten with another type */
    int kept;     /* columns no longer in the job, kept */
    int dropped;  /* columns dropped */
};

/*
 * Brings keap.<t->table> in line with t, the definition of job (see above). t's columns must
 * be compiled (map_column_compile). res (may be NULL) counts the changes found, applied or,
 * with check_only, not. The sink's prepared state for the table is forgotten: the next
 * store_commit_page (or store_ensure_table) prepares it again.
 */
int store_evolve_table(struct store *s, const char *job, const struct store_table *t,
                       const struct store_evolve_options *opt, struct store_evolve_result *res,
                       struct base_err *err);

/*
 * Appends to out the SQL expression (over the column data of keap.<table>) of the jsonb value
 * at col's compiled path: NULL wherever map_lookup finds nothing. Pure; BASE_ETOOBIG when out
 * is full.
 */
int store_evolve_sql_path(const struct map_column *col, struct base_buf *out, struct base_err *err);
/* The same, converted to col's type exactly as map writes it (NULL on a mismatch). Needs the
 * functions of migration 0002. */
int store_evolve_sql_value(const struct map_column *col, struct base_buf *out,
                           struct base_err *err);

/*
 * Up to max ids of keap.<table>, ascending, greater than after (all when !have_after), into
 * ids[0..*n); with since_mark (a timestamptz text from store_parent_mark), only the rows
 * written (synced_at) after it. A table that does not exist yet has no ids.
 */
int store_parent_ids(struct store *s, const char *table, bool have_after, int64_t after,
                     const char *since_mark, int max, int64_t *ids, int *n, struct base_err *err);
/*
 * The latest synced_at of keap.<table>, early_s seconds earlier, as timestamptz text into
 * mark[0..n) ("-infinity" for a missing or empty table): the rows written after it are the
 * ones a later store_parent_ids with this mark reads.
 */
int store_parent_mark(struct store *s, const char *table, int early_s, char *mark, size_t n,
                      struct base_err *err);

/* The job's checkpoint JSON text (malloc'd, caller frees), or NULL when there is none. */
int store_checkpoint_load(struct store *s, const char *job, char **json, struct base_err *err);
/* Saves a checkpoint on its own (outside a page), e.g. when a window closes empty. */
int store_checkpoint_save(struct store *s, const char *job, const char *json, struct base_err *err);
/* Deletes the checkpoint (a full re-sync of the job). */
int store_checkpoint_reset(struct store *s, const char *job, struct base_err *err);

struct store_page {
    const struct store_table *table;
    const char *rows; /* COPY text lines: id, columns..., data */
    size_t rows_len;
    int64_t nrows;
    const char *job;        /* for the checkpoint */
    const char *checkpoint; /* JSON text to save with the rows, or NULL */
    const char *tenant;     /* ledger row to charge, or NULL */
    int64_t day_wall;       /* any wall ms within the UTC day to charge */
    int64_t requests;       /* requests this page cost (spent in the ledger) */
    /* Child tables: this page ends the list of parent sweep_parent. Its rows that neither
     * this page nor sweep_keep (a text[] literal of the ids its earlier pages listed, or
     * NULL) holds get deleted_at: the parent no longer lists them. */
    bool sweep;
    int64_t sweep_parent;
    const char *sweep_keep;
    /* Sweeps (a delete sweep, or a full pass of a job that reads everything): seen_ids (a
     * text[] literal of this page's record ids, or NULL) join the ids sweep seen_key has seen
     * (keapsync.sweep_seen). With seen_close the sweep is complete: the rows of the table it
     * did not see and that were not written (synced_at) since seen_since (timestamptz text,
     * when the sweep began) get deleted_at; the rows it saw that had one are live again; the
     * key's ids are cleared. Not for child tables. */
    const char *seen_key;
    const char *seen_ids;
    bool seen_close;
    const char *seen_since;
    /* Ids Keap reports deleted (a text[] literal, e.g. /v1/products/sync's DELETED), or
     * NULL: those rows of the table get deleted_at. */
    const char *gone_ids;
    /* The lease (keapsync.leases name) the page is committed under, and its holder, or NULL:
     * the transaction first locks that lease row and refuses the page (BASE_ECANCELED,
     * nothing written) unless holder still has it, so a process that lost its job's lease
     * (it expired and another process took it) never commits over the new holder's work.
     * lease_ttl_ms (when > 0) bounds how long the transaction may sit idle holding that row
     * lock (idle_in_transaction_session_timeout, at most STORE_PAGE_IDLE_MAX_MS): a process
     * frozen mid-commit (SIGSTOP, a paused VM) has its session ended by the server, so a taker
     * (or another process spending the ledger's day) is not held off for long. */
    const char *lease;
    const char *lease_holder;
    int lease_ttl_ms;
};

struct store_page_result {
    int64_t inserted; /* new ids */
    int64_t updated;  /* existing ids overwritten (not older) */
    int64_t skipped;  /* rows older than what the table holds, or the same, left alone */
    int64_t deleted;  /* rows marked deleted by the page's sweep */
    int64_t revived;  /* rows a completed sweep saw again: deleted_at back to NULL */
};

/*
 * One transaction: COPY rows into staging, one INSERT ... ON CONFLICT (id) DO UPDATE ...
 * WHERE not older, the checkpoint upsert, the ledger's spend. All or nothing; on error the
 * transaction is rolled back and err says why.
 */
int store_commit_page(struct store *s, const struct store_page *page, struct store_page_result *res,
                      struct base_err *err);

/*
 * Reserves up to want requests of tenant's UTC day without letting reserved exceed budget.
 * *granted (0..want) is what was reserved; *reserved_total the day's total after it.
 */
int store_ledger_reserve(struct store *s, const char *tenant, int64_t day_wall, int64_t budget,
                         int64_t want, int64_t *granted, int64_t *reserved_total,
                         struct base_err *err);
/* Hands back n reserved requests that were never sent (clean shutdown). */
int store_ledger_release(struct store *s, const char *tenant, int64_t day_wall, int64_t n,
                         struct base_err *err);
/*
 * The server reported server_used requests spent today for the tenant (by any integration):
 * raise reserved to at least that, so later reservations see it.
 */
int store_ledger_observe(struct store *s, const char *tenant, int64_t day_wall, int64_t server_used,
                         struct base_err *err);

struct store_ledger_row {
    int64_t reserved;
    int64_t spent;
};
int store_ledger_get(struct store *s, const char *tenant, int64_t day_wall,
                     struct store_ledger_row *row, struct base_err *err);

/* Small settings table (keapsync.settings): text key -> text value. */
int store_setting_get(struct store *s, const char *key, char **value, struct base_err *err);
int store_setting_put(struct store *s, const char *key, const char *value, struct base_err *err);

/*
 * A sweep under key begins (sweep.c): forgets the ids an earlier sweep of key saw, and
 * writes the database's now() as timestamptz text into mark[0..n) (the sweep's seen_since).
 */
int store_sweep_begin(struct store *s, const char *key, char *mark, size_t n, struct base_err *err);

/* A recorded backfill (keapsync.backfills): job's history over [from_ms, to_ms). */
struct store_backfill {
    int64_t id;
    char job[128];
    int64_t from_ms, to_ms;
};
/* Records a backfill of job over [from_ms, to_ms); *id is its id. */
int store_backfill_add(struct store *s, const char *job, int64_t from_ms, int64_t to_ms,
                       int64_t *id, struct base_err *err);
/* Every recorded backfill, in id order, into *out (malloc'd, caller frees; NULL when none). */
int store_backfill_list(struct store *s, struct store_backfill **out, size_t *n,
                        struct base_err *err);

/*
 * ---- run history (runs.c; keapsync.runs, keapsync.run_jobs: sql/0001, sql/0007) ----
 *
 * store_run_begin records a run's start (jobs_csv: the names it selected, comma-separated)
 * and holds a session advisory lock on it until store_run_finish/store_run_end; before that
 * it closes, as "crashed", every unfinished run whose lock no live session holds (a process
 * killed or crashed mid-run). *closed (may be NULL) counts them.
 */
int store_run_begin(struct store *s, const char *jobs_csv, int64_t *run_id, struct base_err *err);
int store_run_begin_closing(struct store *s, const char *jobs_csv, int64_t *run_id, int *closed,
                            struct base_err *err);
/* Records the end of a run: its outcome is worded from exit_code (store_run_end words it). */
int store_run_finish(struct store *s, int64_t run_id, int exit_code, int64_t requests, int64_t rows,
                     const char *message, struct base_err *err);

/* One job's share of a run (keapsync.run_jobs). */
struct store_run_job {
    const char *job;
    const char *state; /* done, stopped, failed, paging */
    int64_t requests, rejected_429, pages, records, bytes;
    const char *error; /* NULL or "" when none */
};
/* How a run ended, in full. */
struct store_run_end {
    const char *outcome; /* complete, quota, auth, failed, interrupted, nomem, config */
    int exit_code;
    int64_t requests, rows, bytes;
    int64_t rejected_429, rejected_429_second, rejected_429_minute, rejected_429_day,
        rejected_429_other;
    const char *message;           /* why it stopped or failed; "" when it completed */
    const int64_t *commit_buckets; /* 12 counts (sql/0007_runs.sql), or NULL */
    double commit_seconds;
    const struct store_run_job *jobs;
    size_t njobs;
};
/* Records the end of run_id and each job's share, in one transaction; releases its lock. */
int store_run_end(struct store *s, int64_t run_id, const struct store_run_end *end,
                  struct base_err *err);

/* A finished run, as store_run_last reads it. */
struct store_run_info {
    int64_t id;
    int exit_code;     /* -1: none (a crashed run) */
    char outcome[16];  /* complete, quota, ..., crashed */
    char message[512]; /* "" when none; cut short when longer */
};
/*
 * The last finished run whose jobs list (store_run_begin's jobs_csv) names job: *found says
 * whether there is one, and *out is filled in when there is. Runs not finished (still going)
 * are left out; runs closed as crashed are in.
 */
int store_run_last(struct store *s, const char *job, struct store_run_info *out, bool *found,
                   struct base_err *err);
/* Does outcome (a keapsync.runs outcome) count as a failure? (not complete, quota, interrupted) */
bool store_run_outcome_failed(const char *outcome);

/* The latest run naming job, going or finished, with the job's share, for keapsync status. */
struct store_job_run {
    int64_t id;
    int64_t started_ms;
    int64_t finished_ms; /* -1: still going */
    char outcome[16];    /* "running" while going */
    int exit_code;       /* -1: none */
    char message[512];
    bool have_job; /* the run recorded the job's share (run_jobs) */
    char state[16];
    int64_t requests, records, pages, bytes;
};
int store_job_run_last(struct store *s, const char *job, struct store_job_run *out, bool *found,
                       struct base_err *err);

/*
 * Runs sql (a read-only query, no parameters) and hands back its first column of the first
 * row as malloc'd text (NULL when no row or NULL): for status, report and metrics, whose
 * queries build their JSON in SQL.
 */
int store_query_text(struct store *s, const char *sql, int nparams, const char *const *params,
                     char **out, struct base_err *err);

/*
 * Drops <schema>.<table> if it has no row (locked, so no page lands meanwhile), and forgets
 * this connection's cache of it; *dropped says whether it went. For a table the run made for
 * a job whose list turned out not to exist (a 404 on its first page).
 */
int store_drop_empty_table(struct store *s, const char *table, bool *dropped, struct base_err *err);

/* Runs one SQL statement that returns nothing (for tests and tools). */
int store_exec(struct store *s, const char *sql, struct base_err *err);

/*
 * Leases (keapsync.leases): a named lease is held by one holder until it expires.
 * store_lease_acquire takes name for holder (or renews it) for ttl_ms; *got says whether it
 * did, and when not, *other (malloc'd, may be NULL) names the holder that has it. A lease row
 * locked by another session (its holder committing a page) is waited for at most
 * STORE_LEASE_LOCK_WAIT_MS (or ttl_ms when shorter), then counted as held.
 */
#define STORE_LEASE_LOCK_WAIT_MS 3000 /* a page commit takes milliseconds */
/* The longest a page transaction under a lease may sit idle (lease_ttl_ms when shorter). */
#define STORE_PAGE_IDLE_MAX_MS 5000
int store_lease_acquire(struct store *s, const char *name, const char *holder, int ttl_ms,
                        bool *got, char **other, struct base_err *err);
int store_lease_release(struct store *s, const char *name, const char *holder,
                        struct base_err *err);
/*
 * Extends holder's lease name by ttl_ms from now, only if holder still has it (expired or
 * not): *held says whether it did. Unlike store_lease_acquire it never takes a lease that
 * another holder took or that was given back meanwhile, so a process that was stopped
 * (SIGSTOP, a long pause) past its lease learns that it lost it.
 */
int store_lease_renew(struct store *s, const char *name, const char *holder, int ttl_ms, bool *held,
                      struct base_err *err);
/*
 * Registers holder as a live process syncing tenant for ttl_ms and counts the live ones
 * (itself included) into *npeers: they split the key's per-second and per-minute windows.
 */
int store_peer_heartbeat(struct store *s, const char *tenant, const char *holder, int ttl_ms,
                         int *npeers, struct base_err *err);
int store_peer_leave(struct store *s, const char *tenant, const char *holder, struct base_err *err);
/*
 * The daemon (daemon.c, keapsync.daemon_jobs): a job's schedule, the tick its last run served
 * and when it runs next. store_daemon_last_tick gives -1 when the job has no tick stored.
 * store_daemon_job_put upserts the row; tick_ms, next_ms, run_ms < 0 and outcome NULL keep
 * what is stored (next_ms < 0 clears next_at).
 */
struct store_daemon_job {
    const char *job, *schedule;
    int64_t tick_ms, next_ms, run_ms;
    const char *outcome; /* the job's state: done, failed, stopped; NULL: no run */
    int64_t records, requests;
};
int store_daemon_last_tick(struct store *s, const char *job, int64_t *tick_ms,
                           struct base_err *err);
int store_daemon_job_put(struct store *s, const struct store_daemon_job *j, struct base_err *err);
/* When the daemon runs job next (keapsync.daemon_jobs.next_at), or -1 when nothing is stored. */
int store_daemon_next(struct store *s, const char *job, int64_t *next_ms, struct base_err *err);
/* Is the connection up? (After a failure: false when the server went away.) */
bool store_connection_ok(const struct store *s);
/*
 * May the failure just reported (err, from a store call on s) pass if the transaction is
 * tried again, after a wait and maybe a new connection? True for BASE_EDB when the
 * connection is gone, or the server's SQLSTATE is of class 08 (connection), 53 (insufficient
 * resources: 53100 disk full, 53200 out of memory, 53300 too many connections), 57P01..57P03
 * (shut down, restarting), 57014 (statement timeout, canceled), 40001 or 40P01
 * (serialization failure, deadlock) or 55P03 (lock not available).
 */
bool store_retryable(const struct store *s, const struct base_err *err);
/*
 * Connects s again to the same database (the old session is gone or abandoned): the
 * session's staging tables and prepared statements are forgotten (made again on the next
 * page), the run's lock taken again (store_run_begin).
 */
int store_reconnect(struct store *s, struct base_err *err);

/* Live leases whose names start with prefix: NULL-terminated arrays of names and holders
 * (free with store_lease_list_free), *n entries. */
int store_lease_list(struct store *s, const char *prefix, char ***names, char ***holders, int *n,
                     struct base_err *err);
void store_lease_list_free(char **names, char **holders);

/* ---- what jobs' passes cost, for the quota planner (stats.c, sql/0004_job_stats.sql) ---- */

/* One job's figures for one run. */
struct store_stats_row {
    int64_t run_id; /* keapsync.runs id, or <= 0 when none */
    const char *job;
    bool full_pass; /* the pass reads everything (not an incremental window after a watermark) */
    int64_t requests, pages, records;
    int64_t units;  /* child streams completing a full pass: parents read; -1 otherwise */
    bool pass_done; /* this run completed the job's pass */
};
int store_stats_record(struct store *s, const struct store_stats_row *row, struct base_err *err);

/* What a pass cost, summed over the runs it spanned. */
struct store_pass_cost {
    int64_t requests, pages, records;
    int64_t units; /* see store_stats_row; -1 when not recorded */
    int64_t runs;  /* rows summed */
};
/* The job's last complete pass of that kind (*found false when none). */
int store_stats_last_pass(struct store *s, const char *job, bool full_pass,
                          struct store_pass_cost *out, bool *found, struct base_err *err);
/* What the job's open pass (begun, not complete) has cost so far; zeros when none. */
int store_stats_open_pass(struct store *s, const char *job, struct store_pass_cost *out,
                          struct base_err *err);

/* The planner's latest estimate of a job's pass (keapsync.job_estimates). */
struct store_estimate {
    int64_t records, requests;
    int64_t at_ms; /* when it was made */
};
int store_estimate_put(struct store *s, const char *job, const char *source, int64_t records,
                       int64_t requests, struct base_err *err);
int store_estimate_get(struct store *s, const char *job, struct store_estimate *out, bool *found,
                       struct base_err *err);
/*
 * Rows of keap.<table> with id above after (when have_after) and, with since_mark (timestamptz
 * text, or NULL/""), written after it. A table that does not exist has none.
 */
int store_count_rows(struct store *s, const char *table, bool have_after, int64_t after,
                     const char *since_mark, int64_t *n, struct base_err *err);

/* ---- OAuth2 tokens (tokens.c): keapsync.oauth_tokens, one row per client id ----------- */

#define STORE_TOKEN_KEY_LEN 32

/* The key of KEAPSYNC_TOKEN_KEY_FILE (libsodium crypto_secretbox). Secret. */
struct store_token_key {
    unsigned char k[STORE_TOKEN_KEY_LEN];
};

/*
 * Reads a key file: exactly STORE_TOKEN_KEY_LEN bytes, not group- or world-readable. Any other
 * length is BASE_ECONFIG ("holds 31 bytes, not 32") with a hint on how to make one.
 */
int store_token_key_load(const char *path, struct store_token_key *key, struct base_err *err);
/* Encrypts plain into a fresh "sb1:<base64>" text (*out, freed by the caller). */
int store_token_seal(const struct store_token_key *key, const char *plain, char **out,
                     struct base_err *err);
/* Decrypts a sealed text into a fresh *out. A wrong key is BASE_ECONFIG (with a hint);
 * malformed text BASE_EPROTO. */
int store_token_open(const struct store_token_key *key, const char *sealed, char **out,
                     struct base_err *err);

/* A client's stored pair, in the clear (decrypted). Secret: store_oauth_row_clear wipes it. */
struct store_oauth_row {
    char *access_token;
    char *refresh_token;
    char scope[256];
    int64_t obtained_ms; /* when the access token was issued (wall ms) */
    int64_t expires_ms;  /* when it expires */
    int64_t generation;  /* bumped by every save */
    bool encrypted;      /* stored sealed */
};
void store_oauth_row_clear(struct store_oauth_row *r); /* accepts NULL */

/*
 * Reads client_id's pair into *out (*found false: no row, out untouched). key: NULL when
 * KEAPSYNC_TOKEN_KEY_FILE is not set; an encrypted row then is BASE_ECONFIG. lock: begins a
 * transaction and takes the row's lock (SELECT ... FOR UPDATE), waiting for any other
 * holder; the transaction stays open, found or not, until store_oauth_save commits it or
 * store_oauth_unlock rolls it back (on error it is rolled back here).
 */
int store_oauth_load(struct store *s, const char *client_id, const struct store_token_key *key,
                     bool lock, struct store_oauth_row *out, bool *found, struct base_err *err);
/*
 * Upserts client_id's pair (sealed with key when key is not NULL) and bumps its generation
 * (row->generation is set to the new one); commits the lock's transaction when one is open.
 */
int store_oauth_save(struct store *s, const char *client_id, const struct store_token_key *key,
                     struct store_oauth_row *row, struct base_err *err);
/* Releases the lock without saving (rolls its transaction back). */
void store_oauth_unlock(struct store *s);

#endif
