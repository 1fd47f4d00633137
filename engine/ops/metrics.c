/*
 * metrics.c: the Prometheus textfile (ops.h): every figure from keapsync's tables, so it says
 * the same whichever process writes it.
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Appends a query's text (its first column of its first row; nothing when NULL). */
static int append_query(struct store *s, struct base_buf *out, const char *sql, int nparams,
                        const char *const *params, struct base_err *err)
{
    char *text = NULL;
    int rc = store_query_text(s, sql, nparams, params, &text, err);

    if (rc == 0 && text != NULL && base_buf_puts(out, text) < 0)
        rc = base_err_set(err, BASE_ETOOBIG, "could not build the metrics: too many jobs");
    free(text);
    return rc;
}

/* A label value escaped as Prometheus wants (backslash, quote, newline), in SQL. */
#define SQL_LABEL(x) "replace(replace(replace(" x ", '\\', '\\\\'), '\"', '\\\"'), E'\\n', '\\n')"

static const char sql_counters[] =
    "SELECT '# HELP keapsync_requests_total Requests sent to Keap, over every recorded run.\n"
    "# TYPE keapsync_requests_total counter\n"
    "keapsync_requests_total ' || coalesce(sum(requests), 0) || E'\\n"
    "# HELP keapsync_429_total Requests Keap refused with 429, by the window the 429 named.\n"
    "# TYPE keapsync_429_total counter\n"
    "keapsync_429_total{window=\"second\"} ' || coalesce(sum(rejected_429_second), 0) || E'\\n"
    "keapsync_429_total{window=\"minute\"} ' || coalesce(sum(rejected_429_minute), 0) || E'\\n"
    "keapsync_429_total{window=\"day\"} ' || coalesce(sum(rejected_429_day), 0) || E'\\n"
    "keapsync_429_total{window=\"other\"} ' || coalesce(sum(rejected_429_other), 0) || E'\\n' "
    "FROM keapsync.runs";

static const char sql_runs[] =
    "SELECT '# HELP keapsync_runs_total Runs by how they ended.\n"
    "# TYPE keapsync_runs_total counter\n' || coalesce(string_agg('keapsync_runs_total{outcome=\"' "
    "|| " SQL_LABEL("o") " || '\"} ' || n, E'\\n' ORDER BY o) || E'\\n', '') "
                         "FROM (SELECT outcome AS o, count(*) AS n FROM keapsync.runs WHERE "
                         "outcome IS NOT NULL "
                         "GROUP BY outcome) x";

static const char sql_jobs[] =
    "SELECT '# HELP keapsync_records_total Rows written, by job.\n"
    "# TYPE keapsync_records_total counter\n' || coalesce(string_agg("
    "'keapsync_records_total{job=\"' || " SQL_LABEL(
        "job") " || '\"} ' || r, E'\\n' ORDER BY job) "
               "|| E'\\n', '') || '# HELP keapsync_bytes_total Response bytes received, by job.\n"
               "# TYPE keapsync_bytes_total counter\n' || coalesce(string_agg("
               "'keapsync_bytes_total{job=\"' || " SQL_LABEL(
                   "job") " || '\"} ' || b, E'\\n' ORDER BY job) "
                          "|| E'\\n', '') FROM (SELECT job, sum(records) AS r, sum(bytes) AS b "
                          "FROM keapsync.run_jobs GROUP BY job) x";

static const char sql_success[] =
    "SELECT '# HELP keapsync_last_success_timestamp_seconds When a run last completed the job "
    "(Unix time).\n# TYPE keapsync_last_success_timestamp_seconds gauge\n' || coalesce("
    "string_agg('keapsync_last_success_timestamp_seconds{job=\"' || " SQL_LABEL(
        "job") " || "
               "'\"} ' || t, E'\\n' ORDER BY job) || E'\\n', '') FROM (SELECT j.job, "
               "floor(extract(epoch FROM max(r.finished_at)))::bigint AS t FROM keapsync.run_jobs "
               "j "
               "JOIN keapsync.runs r ON r.id = j.run_id WHERE j.state = 'done' GROUP BY j.job) x";

/* The cumulative buckets, their sum and count over every run. */
static const char sql_commit[] =
    "SELECT '# HELP keapsync_commit_seconds How long committing one page took.\n"
    "# TYPE keapsync_commit_seconds histogram\n' || string_agg('keapsync_commit_seconds_bucket"
    "{le=\"' || le || '\"} ' || cum, E'\\n' ORDER BY i) || E'\\n' || "
    "'keapsync_commit_seconds_sum ' || (SELECT coalesce(sum(commit_seconds), 0) FROM "
    "keapsync.runs) || E'\\n' || 'keapsync_commit_seconds_count ' || max(cum) || E'\\n' "
    "FROM (SELECT i, le, sum(n) OVER (ORDER BY i) AS cum FROM (SELECT b.i, b.le, "
    "coalesce(sum(r.commit_buckets[b.i]), 0) AS n FROM (SELECT * FROM unnest("
    "ARRAY['0.005','0.01','0.025','0.05','0.1','0.25','0.5','1','2.5','5','10','+Inf']) "
    "WITH ORDINALITY AS u(le, i)) b LEFT JOIN keapsync.runs r ON r.commit_buckets IS NOT NULL "
    "GROUP BY b.i, b.le) y) z";

static int quota_text(struct store *s, const struct ops_quota *q, struct base_buf *out,
                      struct base_err *err)
{
    struct store_ledger_row row = {0, 0};
    char label[512];
    size_t n = 0;
    int rc;

    if (q == NULL || q->tenant == NULL)
        return 0;
    rc = store_ledger_get(s, q->tenant, q->now_ms, &row, err);
    if (rc < 0)
        return rc;
    for (const char *p = q->tenant; *p != '\0' && n + 3 < sizeof(label); p++) {
        if (*p == '\\' || *p == '"')
            label[n++] = '\\';
        if (*p == '\n') {
            label[n++] = '\\';
            label[n++] = 'n';
            continue;
        }
        label[n++] = *p;
    }
    label[n] = '\0';
    rc = base_buf_printf(out,
                         "# HELP keapsync_quota_used Requests reserved of today's (UTC) quota.\n"
                         "# TYPE keapsync_quota_used gauge\n"
                         "keapsync_quota_used{tenant=\"%s\"} %" PRId64 "\n",
                         label, row.reserved);
    if (rc == 0 && q->daily_budget > 0)
        rc = base_buf_printf(out,
                             "# HELP keapsync_quota_left Requests today's budget has left "
                             "(after KEAPSYNC_RESERVE).\n"
                             "# TYPE keapsync_quota_left gauge\n"
                             "keapsync_quota_left{tenant=\"%s\"} %" PRId64 "\n",
                             label,
                             q->daily_budget > row.reserved ? q->daily_budget - row.reserved : 0);
    return rc < 0 ? base_err_set(err, rc, "could not build the metrics") : 0;
}

int ops_metrics_text(struct store *s, const struct ops_quota *q, struct base_buf *out,
                     struct base_err *err)
{
    int rc;

    if ((rc = append_query(s, out, sql_counters, 0, NULL, err)) < 0 ||
        (rc = append_query(s, out, sql_runs, 0, NULL, err)) < 0 ||
        (rc = append_query(s, out, sql_jobs, 0, NULL, err)) < 0 ||
        (rc = append_query(s, out, sql_commit, 0, NULL, err)) < 0 ||
        (rc = append_query(s, out, sql_success, 0, NULL, err)) < 0)
        return rc;
    return quota_text(s, q, out, err);
}

int ops_metrics_write(struct store *s, const struct ops_quota *q, const char *path,
                      struct base_err *err)
{
    struct base_buf text;
    int rc;

    base_buf_init(&text, 4 * 1024 * 1024);
    rc = ops_metrics_text(s, q, &text, err);
    if (rc == 0)
        rc = ops_textfile_write(path, text.data ? text.data : "", text.len, err);
    base_buf_free(&text);
    return rc;
}

int ops_textfile_write(const char *path, const char *data, size_t len, struct base_err *err)
{
    char tmp[4096];
    int fd = -1, rc = 0;
    size_t off = 0;

    if (base_snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) < 0)
        return base_err_set(err, BASE_ECONFIG, "KEAPSYNC_METRICS_FILE is too long");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = base_err_set(err, BASE_EIO, "could not write the metrics file \"%s\": %s", tmp,
                          strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = base_err_set(err, BASE_EIO, "could not write the metrics file \"%s\": %s", tmp,
                              strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        rc = base_err_set(err, BASE_EIO, "could not write the metrics file \"%s\": %s", tmp,
                          strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        rc = base_err_set(err, BASE_EIO, "could not replace the metrics file \"%s\": %s", path,
                          strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}
