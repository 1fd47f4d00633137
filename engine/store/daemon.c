/*
 * daemon.c: keapsync.daemon_jobs (sql/0006_daemon.sql), each job's ticks under
 * `keapsync daemon`, and the connection check the daemon reconnects on. Single statements in
 * autocommit: the daemon holds no lock another process's reads would wait for.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool store_connection_ok(const struct store *s)
{
    return s != NULL && s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK;
}

bool store_retryable(const struct store *s, const struct base_err *err)
{
    static const char *const states[] = {"57P01", "57P02", "57P03", "57014",
                                         "40001", "40P01", "55P03"};
    const char *st;

    if (s == NULL || err == NULL || err->code != BASE_EDB)
        return false;
    if (!store_connection_ok(s))
        return true;
    st = s->last_state;
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0)
        return true;
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(st, states[i]) == 0)
            return true;
    return false;
}

int store_daemon_last_tick(struct store *s, const char *job, int64_t *tick_ms, struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    int rc;

    *tick_ms = -1;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT (extract(epoch FROM last_tick_at) * 1000)::bigint "
                     "FROM keapsync.daemon_jobs WHERE job = $1 AND last_tick_at IS NOT NULL",
                     1, params, err, "could not read the last tick of job \"%s\"", job);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1 && base_parse_int64(PQgetvalue(res, 0, 0), tick_ms) < 0)
        rc = base_err_set(err, BASE_EDB, "could not read the last tick of job \"%s\"", job);
    PQclear(res);
    return rc;
}

int store_daemon_next(struct store *s, const char *job, int64_t *next_ms, struct base_err *err)
{
    const char *params[1] = {job};
    PGresult *res = NULL;
    int rc;

    *next_ms = -1;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT (extract(epoch FROM next_at) * 1000)::bigint "
                     "FROM keapsync.daemon_jobs WHERE job = $1 AND next_at IS NOT NULL",
                     1, params, err, "could not read the next run of job \"%s\"", job);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1 && base_parse_int64(PQgetvalue(res, 0, 0), next_ms) < 0)
        rc = base_err_set(err, BASE_EDB, "could not read the next run of job \"%s\"", job);
    PQclear(res);
    return rc;
}

int store_daemon_job_put(struct store *s, const struct store_daemon_job *j, struct base_err *err)
{
    char tick[24], next[24], run[24], records[24], requests[24];
    const char *params[8] = {j->job,
                             j->schedule,
                             tick,
                             j->next_ms >= 0 ? next : NULL,
                             j->run_ms >= 0 ? run : NULL,
                             j->outcome,
                             j->outcome ? records : NULL,
                             j->outcome ? requests : NULL};

    snprintf(tick, sizeof(tick), "%" PRId64, j->tick_ms);
    snprintf(next, sizeof(next), "%" PRId64, j->next_ms);
    snprintf(run, sizeof(run), "%" PRId64, j->run_ms);
    snprintf(records, sizeof(records), "%" PRId64, j->records);
    snprintf(requests, sizeof(requests), "%" PRId64, j->requests);
    /* tick_ms < 0 keeps the tick stored (a run that served none, or only next_at moves). */
    return store_query(
        s, NULL, PGRES_COMMAND_OK,
        "INSERT INTO keapsync.daemon_jobs AS d (job, schedule, last_tick_at, next_at, "
        "last_run_at, last_outcome, last_records, last_requests) VALUES ($1, $2, "
        "CASE WHEN $3::bigint >= 0 THEN to_timestamp($3::bigint / 1000.0) END, "
        "to_timestamp($4::bigint / 1000.0), to_timestamp($5::bigint / 1000.0), $6, $7, $8) "
        "ON CONFLICT (job) DO UPDATE SET schedule = EXCLUDED.schedule, "
        "last_tick_at = coalesce(EXCLUDED.last_tick_at, d.last_tick_at), "
        "next_at = EXCLUDED.next_at, "
        "last_run_at = coalesce(EXCLUDED.last_run_at, d.last_run_at), "
        "last_outcome = coalesce(EXCLUDED.last_outcome, d.last_outcome), "
        "last_records = coalesce(EXCLUDED.last_records, d.last_records), "
        "last_requests = coalesce(EXCLUDED.last_requests, d.last_requests), updated_at = now()",
        8, params, err, "could not record the schedule of job \"%s\"", j->job);
}
