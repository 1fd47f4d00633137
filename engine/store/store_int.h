/*
 * store_int.h: what the store's own files share and nobody else sees: the connection
 * struct, the per-table cache of the sink, the embedded migrations and the libpq helpers
 * (pq.c) that run statements and turn a libpq failure into a report.
 *
 * Words used here (see store.h for the public ones):
 *   staging   a per-connection temporary table pg_temp.ks_stage_<seq>, LIKE keap.<table>,
 *             ON COMMIT DELETE ROWS: a page is COPYed into it, then upserted from it.
 *   tcache    one entry per table a connection has ensured: its staging table, the COPY
 *             statement and the name of the prepared upsert. A store_table is matched to its
 *             entry by name, map pointer, column count and updated column: whoever changes a
 *             spec in place calls store_ensure_table again.
 */
#ifndef KEAPSYNC_STORE_INT_H
#define KEAPSYNC_STORE_INT_H

#include "store.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Caps on what the database hands back into our memory. */
#define STORE_MAX_CHECKPOINT (1u << 20) /* a checkpoint's JSON text */
#define STORE_MAX_SETTING    (1u << 16) /* a setting's value */
#define STORE_MAX_SQL        (1u << 20) /* a generated statement */
#define STORE_MAX_IDENT      63         /* NAMEDATALEN - 1: longer names would be truncated */

/* Lock class of pg_advisory_xact_lock(class, hashtext(table)) around DDL on one table. */
#define STORE_DDL_LOCK_CLASS "1802724723"
/* Lock class of pg_advisory_xact_lock(class, hashtext(job)) around evolving one job. */
#define STORE_JOB_LOCK_CLASS "1802724724"

/* Upserts a checkpoint: $1 job, $2 JSON text. */
#define STORE_SQL_CHECKPOINT_UPSERT                                                                \
    "INSERT INTO keapsync.checkpoints (job, state, updated_at) VALUES ($1, $2::jsonb, now()) "     \
    "ON CONFLICT (job) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at"

/* One compiled-in migration (store_sql.c, generated from sql/NNNN_name.sql). */
struct store_migration {
    int version;
    const char *name;
    const char *sql;
};
extern const struct store_migration store_migrations[];
extern const size_t store_nmigrations;

struct store_tcache {
    struct store_tcache *next;
    char *table;                /* unquoted name in schema keap */
    const struct map_spec *map; /* the spec it was prepared for (compared by identity) */
    size_t ncols;
    char *updated_col; /* NULL when the table has none */
    char *parent_col;  /* NULL unless a child table */
    int seq;           /* names ks_stage_<seq> and ks_upsert_<seq> */
    char *copy_sql;    /* COPY pg_temp.ks_stage_<seq> (id, cols..., data) FROM STDIN */
    char stmt[32];     /* prepared upsert */
};

struct store {
    PGconn *conn;
    struct store_tcache *tables;
    int next_seq;
    char schema[64];    /* the target schema (store_set_target_schema), a checked identifier */
    char last_state[6]; /* SQLSTATE of the last failure store_pg_error saw, "" when none */
    int64_t run_id;     /* the run whose lock this session holds (store_run_begin), or 0 */
};

/* ---- pq.c ---- */

/* Copies the first line of a libpq message (or "unknown error") into buf. */
void store_first_line(const char *msg, char *buf, size_t n);

/*
 * Sets err to "<what>: <the server's message>" (res's error, or the connection's when res is
 * NULL or has none) with the server's hint, if any. Returns BASE_EDB.
 */
int store_pg_error(struct store *s, const PGresult *res, struct base_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Runs sql with nparams text parameters. On success (the result's status is want) *out is
 * the result, which the caller PQclear()s; out may be NULL when the result is not needed. On
 * failure err says "<what>: <server's message>" and BASE_EDB is returned.
 */
int store_query(struct store *s, PGresult **out, ExecStatusType want, const char *sql, int nparams,
                const char *const *params, struct base_err *err, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* COMMIT, checking it was one (a failed transaction "commits" as ROLLBACK); err says
 * "<what>: ..." otherwise. */
int store_commit(struct store *s, struct base_err *err, const char *what);

/* Rolls back the current transaction, if any, ignoring errors (the first error is the one
 * reported). */
void store_rollback(struct store *s);

/* Formats the UTC day of day_wall ("2024-11-07") into buf (>= 11 bytes). */
int store_day(int64_t day_wall, char *buf, size_t n, struct base_err *err);

/* ---- sweep.c ---- */

/*
 * Inside store_commit_page's transaction: page's seen ids join its sweep's, and a closing
 * page marks the table's rows the sweep did not see (store.h, struct store_page). what
 * prefixes errors.
 */
int store_sweep_apply(struct store *s, const struct store_page *page, struct store_page_result *r,
                      struct base_err *err, const char *what);

/* ---- ledger.c ---- */

/*
 * Adds n requests to the spend of tenant's day (a "YYYY-MM-DD" text), raising reserved to at
 * least the new spend. Runs inside the caller's transaction; err says "<what>: ...".
 */
int store_ledger_spend(struct store *s, const char *tenant, const char *day, int64_t n,
                       struct base_err *err, const char *what);

/* ---- sink.c ---- */
/* Checks a table definition: names, types, no clash with id/data/synced_at, and the
 * updated column among the map's columns. */
int store_check_table(const struct store_table *t, struct base_err *err);

/* Forgets the staging table and prepared upsert of table, if this connection has them (its
 * shape changed under them). Must run outside a transaction. */
void store_tcache_forget(struct store *s, const char *table);

/* Frees the sink's per-table cache (store_close). */
void store_tcache_free_all(struct store *s);

#endif
