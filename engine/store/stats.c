/*
 * stats.c: what jobs' passes cost (keapsync.job_stats), the planner's latest estimates
 * (keapsync.job_estimates), and row counts of a job's table, for the quota planner.
 *
 * Words used here (see sql/0004_job_stats.sql):
 *   pass       one complete read of a job's window: the job's rows after its previous
 *              pass_done row up to and including the next pass_done row (it may span runs)
 *   open pass  the rows after the job's last pass_done row: a pass begun and not finished
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int parse_or_zero(const PGresult *res, int row, int col, int64_t *v)
{
    if (PQgetisnull(res, row, col)) {
        *v = 0;
        return 0;
    }
    return base_parse_int64(PQgetvalue(res, row, col), v);
}

int store_stats_record(struct store *s, const struct store_stats_row *row, struct base_err *err)
{
    char run[24], req[24], pages[24], recs[24], units[24];
    const char *params[8] = {run,  row->job, row->full_pass ? "t" : "f", req, pages,
                             recs, units,    row->pass_done ? "t" : "f"};

    snprintf(run, sizeof(run), "%" PRId64, row->run_id);
    snprintf(req, sizeof(req), "%" PRId64, row->requests);
    snprintf(pages, sizeof(pages), "%" PRId64, row->pages);
    snprintf(recs, sizeof(recs), "%" PRId64, row->records);
    snprintf(units, sizeof(units), "%" PRId64, row->units);
    if (row->run_id <= 0)
        params[0] = NULL;
    if (row->units < 0)
        params[6] = NULL;
    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "INSERT INTO keapsync.job_stats (run_id, job, full_pass, requests, pages, "
                       "records, units, pass_done) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                       8, params, err, "could not record what job \"%s\" spent", row->job);
}

int store_stats_last_pass(struct store *s, const char *job, bool full_pass,
                          struct store_pass_cost *out, bool *found, struct base_err *err)
{
    const char *params[2] = {job, full_pass ? "t" : "f"};
    PGresult *res = NULL;
    struct store_pass_cost c = {0};
    int rc;

    *found = false;
    rc = store_query(
        s, &res, PGRES_TUPLES_OK,
        "WITH last AS (SELECT id, units FROM keapsync.job_stats WHERE job = $1 AND pass_done "
        "AND full_pass = $2::boolean ORDER BY id DESC LIMIT 1), "
        "prev AS (SELECT coalesce(max(id), 0) AS id FROM keapsync.job_stats WHERE job = $1 AND "
        "pass_done AND id < (SELECT id FROM last)) "
        "SELECT sum(requests), sum(pages), sum(records), (SELECT units FROM last), count(*) "
        "FROM keapsync.job_stats WHERE job = $1 AND id > (SELECT id FROM prev) "
        "AND id <= (SELECT id FROM last)",
        2, params, err, "could not read the passes of job \"%s\"", job);
    if (rc < 0)
        goto out;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
        goto out; /* no complete pass of that kind */
    if (parse_or_zero(res, 0, 0, &c.requests) < 0 || parse_or_zero(res, 0, 1, &c.pages) < 0 ||
        parse_or_zero(res, 0, 2, &c.records) < 0 || parse_or_zero(res, 0, 3, &c.units) < 0 ||
        parse_or_zero(res, 0, 4, &c.runs) < 0) {
        rc = base_err_set(err, BASE_EDB,
                          "could not read the passes of job \"%s\": unexpected "
                          "result",
                          job);
        goto out;
    }
    if (PQgetisnull(res, 0, 3))
        c.units = -1;
    *out = c;
    *found = true;
out:
    PQclear(res);
    return rc;
}

int store_stats_open_pass(struct store *s, const char *job, struct store_pass_cost *out,
                          struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    struct store_pass_cost c = {0};
    int rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT coalesce(sum(requests), 0), coalesce(sum(pages), 0), "
                     "coalesce(sum(records), 0), count(*) FROM keapsync.job_stats WHERE job = $1 "
                     "AND id > (SELECT coalesce(max(id), 0) FROM keapsync.job_stats "
                     "WHERE job = $1 AND pass_done)",
                     1, params, err, "could not read the open pass of job \"%s\"", job);
    if (rc < 0)
        goto out;
    if (PQntuples(res) != 1 || parse_or_zero(res, 0, 0, &c.requests) < 0 ||
        parse_or_zero(res, 0, 1, &c.pages) < 0 || parse_or_zero(res, 0, 2, &c.records) < 0 ||
        parse_or_zero(res, 0, 3, &c.runs) < 0) {
        rc = base_err_set(err, BASE_EDB,
                          "could not read the open pass of job \"%s\": "
                          "unexpected result",
                          job);
        goto out;
    }
    c.units = -1;
    *out = c;
out:
    PQclear(res);
    return rc;
}

int store_estimate_put(struct store *s, const char *job, const char *source, int64_t records,
                       int64_t requests, struct base_err *err)
{
    char recs[24], req[24];
    const char *params[4] = {job, source, recs, req};

    snprintf(recs, sizeof(recs), "%" PRId64, records);
    snprintf(req, sizeof(req), "%" PRId64, requests);
    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "INSERT INTO keapsync.job_estimates (job, source, records, requests) "
                       "VALUES ($1, $2, $3, $4) ON CONFLICT (job) DO UPDATE SET at = now(), "
                       "source = EXCLUDED.source, records = EXCLUDED.records, "
                       "requests = EXCLUDED.requests",
                       4, params, err, "could not save the estimate of job \"%s\"", job);
}

int store_estimate_get(struct store *s, const char *job, struct store_estimate *out, bool *found,
                       struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    int rc;

    *found = false;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT records, requests, (extract(epoch FROM at) * 1000)::bigint "
                     "FROM keapsync.job_estimates WHERE job = $1",
                     1, params, err, "could not read the estimate of job \"%s\"", job);
    if (rc < 0 || PQntuples(res) != 1)
        goto out;
    if (parse_or_zero(res, 0, 0, &out->records) < 0 ||
        parse_or_zero(res, 0, 1, &out->requests) < 0 || parse_or_zero(res, 0, 2, &out->at_ms) < 0) {
        rc = base_err_set(err, BASE_EDB, "could not read the estimate of job \"%s\"", job);
        goto out;
    }
    *found = true;
out:
    PQclear(res);
    return rc;
}

static bool ident_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

int store_count_rows(struct store *s, const char *table, bool have_after, int64_t after,
                     const char *since_mark, int64_t *n, struct base_err *err)
{
    char sqlbuf[512], reg[160], after_s[24];
    const char *params[2];
    PGresult *res = NULL;
    int rc;

    *n = 0;
    if (!ident_ok(table))
        return base_err_set(err, BASE_EINVAL,
                            "could not count the rows of \"%s\": not a table "
                            "name",
                            table ? table : "");
    snprintf(reg, sizeof(reg), "%s.%s", s->schema, table);
    params[0] = reg;
    rc = store_query(s, &res, PGRES_TUPLES_OK, "SELECT to_regclass($1) IS NOT NULL", 1, params, err,
                     "could not count the rows of \"%s\"", table);
    if (rc < 0 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        goto out; /* no table yet: no rows */
    PQclear(res);
    res = NULL;
    snprintf(sqlbuf, sizeof(sqlbuf),
             "SELECT count(*) FROM %s.\"%s\" WHERE ($1::bigint IS NULL OR id > $1::bigint) "
             "AND ($2::timestamptz IS NULL OR synced_at > $2::timestamptz)",
             s->schema, table);
    snprintf(after_s, sizeof(after_s), "%" PRId64, after);
    params[0] = have_after ? after_s : NULL;
    params[1] = since_mark != NULL && since_mark[0] != '\0' ? since_mark : NULL;
    rc = store_query(s, &res, PGRES_TUPLES_OK, sqlbuf, 2, params, err,
                     "could not count the rows of \"%s\"", table);
    if (rc == 0 && (PQntuples(res) != 1 || parse_or_zero(res, 0, 0, n) < 0))
        rc = base_err_set(err, BASE_EDB, "could not count the rows of \"%s\"", table);
out:
    PQclear(res);
    return rc;
}
