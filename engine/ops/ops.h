/*
 * ops: what the people who run keapsync read, built from Postgres alone (keapsync.runs,
 * keapsync.run_jobs, keapsync.quota_ledger), so any process with a store can write it: `run`
 * after each run, the daemon each minute.
 *
 * Words used here:
 *   textfile  a Prometheus exposition-format file for node_exporter's textfile collector,
 *             replaced atomically (written beside it, fsync'd, renamed over it).
 *   server    the daemon's metrics: a thread that gathers the text each interval into a
 *             snapshot (and the textfile), and an HTTP listener (libmicrohttpd) serving it.
 */
#ifndef KEAPSYNC_OPS_H
#define KEAPSYNC_OPS_H

#include "base.h"
#include "store.h"

#include <stdint.h>

/* The tenant whose quota the metrics show, and its day's budget after the reserve (0: none). */
struct ops_quota {
    const char *tenant;
    int64_t daily_budget;
    int64_t now_ms; /* wall ms: which UTC day */
};

/*
 * The metrics as Prometheus text into out (appended):
 *   keapsync_requests_total, keapsync_429_total{window="second|minute|day|other"},
 *   keapsync_runs_total{outcome}, keapsync_records_total{job}, keapsync_bytes_total{job},
 *   keapsync_commit_seconds (histogram), keapsync_quota_used{tenant},
 *   keapsync_quota_left{tenant}, keapsync_last_success_timestamp_seconds{job}.
 * Counters sum every recorded run. Returns 0 or an error with err set.
 */
int ops_metrics_text(struct store *s, const struct ops_quota *q, struct base_buf *out,
                     struct base_err *err);

/* ops_metrics_text written atomically to path (path.tmp.<pid>, fsync, rename). */
int ops_metrics_write(struct store *s, const struct ops_quota *q, const char *path,
                      struct base_err *err);

/* data written to path atomically (path.tmp.<pid>, fsync, rename). */
int ops_textfile_write(const char *path, const char *data, size_t len, struct base_err *err);

/* ---- the daemon's metrics server ---------------------------------------------------------- */

struct ops_server;

struct ops_server_config {
    /* Opens a connection of the server's own (called on its thread; 0 or an error). */
    int (*connect_cb)(struct store **out, struct base_err *err);
    const char *tenant;       /* the quota's tenant (copied), or NULL */
    int64_t daily_budget;     /* as in struct ops_quota */
    const char *metrics_path; /* KEAPSYNC_METRICS_FILE (copied), or NULL: no file */
    int port;                 /* -1: no listener; 0: any free port; else that port */
    const char *addr;         /* where to listen (NULL: 127.0.0.1); IPv4 or IPv6 literal */
    int interval_ms;          /* gathering period (<= 0: 60000) */
    uint64_t health_db_ms;    /* /healthz 503 when the database has not answered for longer */
    uint64_t health_alive_ms; /* ... or ops_server_alive was not called for longer */
};

/*
 * Starts the gatherer (its first gathering at once) and, when cfg->port >= 0, the listener:
 *   GET /metrics  the last gathered text (text/plain; version=0.0.4), 503 before the first;
 *   GET /healthz  200 "ok: ..." while the daemon is alive and the database answered recently,
 *                 503 with one line saying which is not.
 * Returns 0 with *out set, or an error (BASE_ECONFIG: bad address, port taken) and no thread.
 */
int ops_server_start(const struct ops_server_config *cfg, struct ops_server **out,
                     struct base_err *err);
/* The port listened on (the one picked when cfg->port was 0), or -1 without a listener. */
int ops_server_port(const struct ops_server *srv);
/* The quota's tenant from now on (copied; NULL: none), e.g. once the first run named it. */
void ops_server_set_tenant(struct ops_server *srv, const char *tenant);
/* Asks for a gathering now (after a run); returns at once. Accepts NULL. */
void ops_server_refresh(struct ops_server *srv);
/* The daemon's thread turns: call at least every health_alive_ms. Accepts NULL. */
void ops_server_alive(struct ops_server *srv);
/* Stops the listener, then the gatherer; frees srv. Accepts NULL. */
void ops_server_stop(struct ops_server *srv);

#endif
