/*
 * ops: what the people who run keapsync read, built from Postgres alone (keapsync.runs,
 * keapsync.run_jobs, keapsync.quota_ledger), so any process with a store can write it: `run`
 * after each run, the daemon each minute.
 *
 * Words used here:
 *   textfile  a Prometheus exposition-format file for node_exporter's textfile collector,
 *             replaced atomically (written beside it, fsync'd, renamed over it).
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

#endif
