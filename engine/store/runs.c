/*
 * runs.c: run history (keapsync.runs, keapsync.run_jobs): a run's start, its end with what it
 * and each job cost, the last run of a job, and the read-only queries status, report and the
 * metrics textfile build their figures with.
 *
 * Words used here:
 *   outcome  how a run ended, in words: complete, quota, auth, failed, interrupted, nomem,
 *            config, or crashed (the process ended without recording its end).
 *   run lock a session advisory lock (STORE_RUN_LOCK, id) the running process holds from
 *            store_run_begin until its end is recorded. A crashed process's session ends, so
 *            its lock goes with it: that is how the next start tells a dead run from a live
 *            one of another process.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The advisory lock class of run locks ("ksru"); the second key is the run id mod 2^31. */
#define STORE_RUN_LOCK     "1802728053"
#define STORE_RUN_LOCK_KEY STORE_RUN_LOCK ", (($1::bigint) % 2147483648)::int"

static int text_int64(const PGresult *res, int row, int col, int64_t dflt, int64_t *v)
{
    if (PQgetisnull(res, row, col)) {
        *v = dflt;
        return 0;
    }
    return base_parse_int64(PQgetvalue(res, row, col), v);
}

static const char *outcome_of_exit(int exit_code)
{
    switch (exit_code) {
    case 0:
        return "complete";
    case 75:
        return "quota";
    case 77:
        return "auth";
    case 2:
        return "config";
    case 130:
        return "interrupted";
    default:
        return "failed";
    }
}

bool store_run_outcome_failed(const char *outcome)
{
    return outcome == NULL ||
           (strcmp(outcome, "complete") != 0 && strcmp(outcome, "quota") != 0 &&
            strcmp(outcome, "interrupted") != 0 && strcmp(outcome, "running") != 0);
}

int store_run_begin_closing(struct store *s, const char *jobs_csv, int64_t *run_id, int *closed,
                            struct base_err *err)
{
    char pid[24], idtxt[24];
    const char *params[2] = {jobs_csv != NULL ? jobs_csv : "", pid};
    PGresult *res = NULL;
    int64_t id;
    int rc;

    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    /* One statement: others see the row only once its lock is held. */
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "WITH r AS (INSERT INTO keapsync.runs (jobs, pid) VALUES ($1, $2) RETURNING "
                     "id) SELECT id, pg_advisory_lock(" STORE_RUN_LOCK ", (id % 2147483648)::int) "
                     "FROM r",
                     2, params, err, "could not record the start of a run");
    if (rc < 0)
        goto out;
    if (text_int64(res, 0, 0, 0, &id) < 0 || id <= 0) {
        rc = base_err_set(err, BASE_EPROTO, "could not record the start of a run: bad id");
        goto out;
    }
    PQclear(res);
    res = NULL;
    snprintf(idtxt, sizeof(idtxt), "%" PRId64, id);
    params[0] = idtxt;
    /* Rows of runs whose lock no session holds (this one included): their process is gone.
     * Advisory locks are per database; pg_locks shows the whole cluster's. */
    rc = store_query(
        s, &res, PGRES_TUPLES_OK,
        "UPDATE keapsync.runs SET finished_at = now(), outcome = 'crashed', "
        "message = 'the process ended without recording how the run ended (killed or crashed); "
        "closed at the start of run ' || $1 "
        "WHERE finished_at IS NULL AND id <> $1::bigint AND NOT EXISTS (SELECT 1 FROM pg_locks l "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM "
        "pg_database WHERE datname = current_database()) AND l.classid = " STORE_RUN_LOCK
        " AND l.objid = (id % 2147483648)::oid AND l.objsubid = 2) RETURNING id",
        1, params, err, "could not close the runs of crashed processes");
    if (rc < 0)
        goto out;
    if (PQntuples(res) > 0)
        base_log_warning("closed %d earlier run%s as crashed: %s process ended without "
                         "recording its end",
                         PQntuples(res), PQntuples(res) == 1 ? "" : "s",
                         PQntuples(res) == 1 ? "its" : "their");
    if (closed != NULL)
        *closed = PQntuples(res);
    *run_id = id;
    s->run_id = id;
out:
    PQclear(res);
    return rc;
}

int store_run_begin(struct store *s, const char *jobs_csv, int64_t *run_id, struct base_err *err)
{
    return store_run_begin_closing(s, jobs_csv, run_id, NULL, err);
}

static void unlock_run(struct store *s, const char *idtxt)
{
    const char *params[1] = {idtxt};

    /* Best effort: the session's end releases it anyway. */
    s->run_id = 0;
    store_query(s, NULL, PGRES_TUPLES_OK, "SELECT pg_advisory_unlock(" STORE_RUN_LOCK_KEY ")", 1,
                params, NULL, "could not unlock run %s", idtxt);
}

int store_reconnect(struct store *s, struct base_err *err)
{
    char line[320], idtxt[24];
    const char *params[1] = {idtxt};

    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        store_first_line(PQerrorMessage(s->conn), line, sizeof(line));
        return base_err_set(err, BASE_EDB, "could not reconnect to the database: %s", line);
    }
    /* The old session's temporary tables and prepared statements went with it. */
    store_tcache_free_all(s);
    s->last_state[0] = '\0';
    if (s->run_id <= 0)
        return BASE_OK;
    snprintf(idtxt, sizeof(idtxt), "%" PRId64, s->run_id);
    return store_query(s, NULL, PGRES_TUPLES_OK, "SELECT pg_advisory_lock(" STORE_RUN_LOCK_KEY ")",
                       1, params, err, "could not lock run %s again", idtxt);
}

int store_run_finish(struct store *s, int64_t run_id, int exit_code, int64_t requests, int64_t rows,
                     const char *message, struct base_err *err)
{
    struct store_run_end end = {
        .outcome = outcome_of_exit(exit_code),
        .exit_code = exit_code,
        .requests = requests,
        .rows = rows,
        .bytes = -1,
        .rejected_429 = -1,
        .message = message,
    };

    return store_run_end(s, run_id, &end, err);
}

/* n as text into buf, or NULL (SQL NULL) when n < 0. */
static const char *num_or_null(int64_t n, char *buf, size_t len)
{
    if (n < 0)
        return NULL;
    snprintf(buf, len, "%" PRId64, n);
    return buf;
}

static int record_job(struct store *s, const char *idtxt, const struct store_run_job *j,
                      struct base_err *err)
{
    char v[5][24];
    const char *params[9] = {
        idtxt,
        j->job,
        j->state != NULL ? j->state : "paging",
        num_or_null(j->requests, v[0], sizeof(v[0])),
        num_or_null(j->rejected_429, v[1], sizeof(v[1])),
        num_or_null(j->pages, v[2], sizeof(v[2])),
        num_or_null(j->records, v[3], sizeof(v[3])),
        num_or_null(j->bytes, v[4], sizeof(v[4])),
        j->error != NULL && j->error[0] != '\0' ? j->error : NULL,
    };

    return store_query(
        s, NULL, PGRES_COMMAND_OK,
        "INSERT INTO keapsync.run_jobs (run_id, job, state, requests, rejected_429, pages, "
        "records, bytes, error) VALUES ($1, $2, $3, coalesce($4, 0), coalesce($5, 0), "
        "coalesce($6, 0), coalesce($7, 0), coalesce($8, 0), $9) "
        "ON CONFLICT (run_id, job) DO UPDATE SET state = EXCLUDED.state, "
        "requests = EXCLUDED.requests, rejected_429 = EXCLUDED.rejected_429, "
        "pages = EXCLUDED.pages, records = EXCLUDED.records, bytes = EXCLUDED.bytes, "
        "error = EXCLUDED.error",
        9, params, err, "could not record job \"%s\" of run %s", j->job, idtxt);
}

int store_run_end(struct store *s, int64_t run_id, const struct store_run_end *e,
                  struct base_err *err)
{
    char idtxt[24], code[16], v[8][24], buckets[12 * 24 + 4], secs[32];
    const char *params[14];
    PGresult *res = NULL;
    int rc;

    snprintf(idtxt, sizeof(idtxt), "%" PRId64, run_id);
    snprintf(code, sizeof(code), "%d", e->exit_code);
    params[0] = idtxt;
    params[1] = e->outcome != NULL ? e->outcome : outcome_of_exit(e->exit_code);
    params[2] = code;
    params[3] = num_or_null(e->requests, v[0], sizeof(v[0]));
    params[4] = num_or_null(e->rows, v[1], sizeof(v[1]));
    params[5] = num_or_null(e->bytes, v[2], sizeof(v[2]));
    params[6] = num_or_null(e->rejected_429, v[3], sizeof(v[3]));
    params[7] = num_or_null(e->rejected_429 < 0 ? -1 : e->rejected_429_second, v[4], sizeof(v[4]));
    params[8] = num_or_null(e->rejected_429 < 0 ? -1 : e->rejected_429_minute, v[5], sizeof(v[5]));
    params[9] = num_or_null(e->rejected_429 < 0 ? -1 : e->rejected_429_day, v[6], sizeof(v[6]));
    params[10] = num_or_null(e->rejected_429 < 0 ? -1 : e->rejected_429_other, v[7], sizeof(v[7]));
    params[11] = e->message != NULL ? e->message : "";
    params[12] = NULL;
    params[13] = NULL;
    if (e->commit_buckets != NULL) {
        size_t n = 0;

        buckets[n++] = '{';
        for (int i = 0; i < 12; i++)
            n += (size_t)snprintf(buckets + n, sizeof(buckets) - n, "%s%" PRId64, i ? "," : "",
                                  e->commit_buckets[i]);
        snprintf(buckets + n, sizeof(buckets) - n, "}");
        snprintf(secs, sizeof(secs), "%.6f", e->commit_seconds);
        params[12] = buckets;
        params[13] = secs;
    }
    rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err,
                     "could not record the end of run %s", idtxt);
    if (rc < 0)
        return rc;
    rc = store_query(s, &res, PGRES_COMMAND_OK,
                     "UPDATE keapsync.runs SET finished_at = now(), outcome = $2, exit_code = $3, "
                     "requests = $4, rows = $5, bytes = $6, rejected_429 = $7, "
                     "rejected_429_second = $8, rejected_429_minute = $9, rejected_429_day = $10, "
                     "rejected_429_other = $11, message = $12, commit_buckets = $13, "
                     "commit_seconds = $14 WHERE id = $1",
                     14, params, err, "could not record the end of run %s", idtxt);
    if (rc < 0)
        goto out;
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        rc = base_err_set(err, BASE_ENOTFOUND, "could not record the end of run %s: no such run",
                          idtxt);
        goto out;
    }
    for (size_t i = 0; i < e->njobs && rc == 0; i++)
        rc = record_job(s, idtxt, &e->jobs[i], err);
    if (rc == 0)
        rc = store_commit(s, err, "could not record the end of a run");
out:
    PQclear(res);
    if (rc < 0)
        store_rollback(s);
    unlock_run(s, idtxt);
    return rc;
}

int store_run_last(struct store *s, const char *job, struct store_run_info *out, bool *found,
                   struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    int64_t id, code;
    int rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT id, exit_code, coalesce(outcome, 'failed'), coalesce(message, '') "
                     "FROM keapsync.runs WHERE finished_at IS NOT NULL "
                     "AND $1 = ANY (string_to_array(jobs, ',')) ORDER BY id DESC LIMIT 1",
                     1, params, err, "could not read the last run of \"%s\"", job);
    if (rc < 0)
        goto out;
    *found = PQntuples(res) > 0;
    if (!*found)
        goto out;
    if (text_int64(res, 0, 0, 0, &id) < 0 || text_int64(res, 0, 1, -1, &code) < 0) {
        rc = base_err_set(err, BASE_EPROTO, "could not read the last run of \"%s\"", job);
        goto out;
    }
    out->id = id;
    out->exit_code = (int)code;
    snprintf(out->outcome, sizeof(out->outcome), "%s", PQgetvalue(res, 0, 2));
    snprintf(out->message, sizeof(out->message), "%s", PQgetvalue(res, 0, 3));
out:
    PQclear(res);
    return rc;
}

int store_job_run_last(struct store *s, const char *job, struct store_job_run *out, bool *found,
                       struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    int64_t code;
    int rc;

    rc = store_query(
        s, &res, PGRES_TUPLES_OK,
        "SELECT r.id, (extract(epoch FROM r.started_at) * 1000)::bigint, "
        "(extract(epoch FROM r.finished_at) * 1000)::bigint, "
        "coalesce(r.outcome, CASE WHEN r.finished_at IS NULL THEN 'running' ELSE 'failed' END), "
        "r.exit_code, coalesce(r.message, ''), j.state, j.requests, j.records, j.pages, j.bytes "
        "FROM keapsync.runs r LEFT JOIN keapsync.run_jobs j ON j.run_id = r.id AND j.job = $1 "
        "WHERE $1 = ANY (string_to_array(r.jobs, ',')) AND j.state IS DISTINCT FROM 'skipped' "
        "ORDER BY r.id DESC LIMIT 1",
        1, params, err, "could not read the last run of \"%s\"", job);
    if (rc < 0)
        goto out;
    *found = PQntuples(res) > 0;
    if (!*found)
        goto out;
    memset(out, 0, sizeof(*out));
    if (text_int64(res, 0, 0, 0, &out->id) < 0 || text_int64(res, 0, 1, 0, &out->started_ms) < 0 ||
        text_int64(res, 0, 2, -1, &out->finished_ms) < 0 || text_int64(res, 0, 4, -1, &code) < 0 ||
        text_int64(res, 0, 7, 0, &out->requests) < 0 ||
        text_int64(res, 0, 8, 0, &out->records) < 0 || text_int64(res, 0, 9, 0, &out->pages) < 0 ||
        text_int64(res, 0, 10, 0, &out->bytes) < 0) {
        rc = base_err_set(err, BASE_EPROTO, "could not read the last run of \"%s\"", job);
        goto out;
    }
    out->exit_code = (int)code;
    snprintf(out->outcome, sizeof(out->outcome), "%s", PQgetvalue(res, 0, 3));
    snprintf(out->message, sizeof(out->message), "%s", PQgetvalue(res, 0, 5));
    out->have_job = !PQgetisnull(res, 0, 6);
    snprintf(out->state, sizeof(out->state), "%s", PQgetvalue(res, 0, 6));
out:
    PQclear(res);
    return rc;
}

int store_query_text(struct store *s, const char *sql, int nparams, const char *const *params,
                     char **out, struct base_err *err)
{
    PGresult *res = NULL;
    char *text = NULL;
    int rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK, sql, nparams, params, err, "could not read %s",
                     "keapsync's history");
    if (rc < 0)
        goto out;
    if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
        text = strdup(PQgetvalue(res, 0, 0));
        if (text == NULL) {
            rc = base_err_set(err, BASE_ENOMEM, "out of memory");
            goto out;
        }
    }
    *out = text;
out:
    PQclear(res);
    return rc;
}
