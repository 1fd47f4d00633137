/*
 * ledger.c: the durable daily quota ledger (keapsync.quota_ledger), one row per tenant and UTC
 * day. Every change is one statement, so concurrent processes and keys of one tenant
 * serialise on the row lock and can never reserve past the budget together.
 *
 * Words used here (see store.h and sql/0001_init.sql):
 *   reserved     may be sent today; only store_ledger_reserve raises it against a budget
 *   spent        sent and committed with a page
 *   server_used  the highest count of today's requests the server has reported
 * Invariant kept by every statement: reserved >= spent and reserved >= server_used.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>

int store_ledger_reserve(struct store *s, const char *tenant, int64_t day_wall, int64_t budget,
                         int64_t want, int64_t *granted, int64_t *reserved_total,
                         struct base_err *err)
{
    char day[16], b[24], w[24];
    const char *params[4] = {tenant, day, b, w};
    PGresult *res = NULL;
    int64_t g, total;
    int rc;

    if (tenant == NULL || budget < 0 || want < 0)
        return base_err_set(err, BASE_EINVAL, "could not reserve quota: invalid request");
    rc = store_day(day_wall, day, sizeof(day), err);
    if (rc < 0)
        return rc;
    snprintf(b, sizeof(b), "%" PRId64, budget);
    snprintf(w, sizeof(w), "%" PRId64, want);
    /* ON CONFLICT DO UPDATE locks the row and computes from its latest version; the grant is
     * written beside the total so RETURNING can report both. */
    rc = store_query(
        s, &res, PGRES_TUPLES_OK,
        "INSERT INTO keapsync.quota_ledger AS q (tenant, day, reserved, last_granted) "
        "VALUES ($1, $2::date, LEAST($4::bigint, GREATEST($3::bigint, 0)), "
        "LEAST($4::bigint, GREATEST($3::bigint, 0))) "
        "ON CONFLICT (tenant, day) DO UPDATE SET "
        "reserved = q.reserved + LEAST($4::bigint, GREATEST($3::bigint - q.reserved, 0)), "
        "last_granted = LEAST($4::bigint, GREATEST($3::bigint - q.reserved, 0)), "
        "updated_at = now() "
        "RETURNING last_granted, reserved",
        4, params, err, "could not reserve quota of \"%s\" for %s", tenant, day);
    if (rc < 0)
        goto out;
    if (PQntuples(res) != 1 || base_parse_int64(PQgetvalue(res, 0, 0), &g) < 0 ||
        base_parse_int64(PQgetvalue(res, 0, 1), &total) < 0) {
        rc = base_err_set(err, BASE_EDB, "could not reserve quota: unexpected result");
        goto out;
    }
    *granted = g;
    *reserved_total = total;
out:
    PQclear(res);
    return rc;
}

int store_ledger_release(struct store *s, const char *tenant, int64_t day_wall, int64_t n,
                         struct base_err *err)
{
    char day[16], nb[24];
    const char *params[3] = {tenant, day, nb};
    int rc;

    if (tenant == NULL || n < 0)
        return base_err_set(err, BASE_EINVAL, "could not release quota: invalid request");
    rc = store_day(day_wall, day, sizeof(day), err);
    if (rc < 0)
        return rc;
    snprintf(nb, sizeof(nb), "%" PRId64, n);
    /* Never below what was sent (spent) or what the server says was used. */
    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "UPDATE keapsync.quota_ledger SET "
                       "reserved = GREATEST(reserved - $3::bigint, spent, server_used), "
                       "updated_at = now() WHERE tenant = $1 AND day = $2::date",
                       3, params, err, "could not release quota of \"%s\" for %s", tenant, day);
}

int store_ledger_observe(struct store *s, const char *tenant, int64_t day_wall, int64_t server_used,
                         struct base_err *err)
{
    char day[16], u[24];
    const char *params[3] = {tenant, day, u};
    int rc;

    if (tenant == NULL || server_used < 0)
        return base_err_set(err, BASE_EINVAL, "could not record quota use: invalid request");
    rc = store_day(day_wall, day, sizeof(day), err);
    if (rc < 0)
        return rc;
    snprintf(u, sizeof(u), "%" PRId64, server_used);
    return store_query(
        s, NULL, PGRES_COMMAND_OK,
        "INSERT INTO keapsync.quota_ledger AS q (tenant, day, reserved, server_used) "
        "VALUES ($1, $2::date, $3::bigint, $3::bigint) "
        "ON CONFLICT (tenant, day) DO UPDATE SET "
        "reserved = GREATEST(q.reserved, EXCLUDED.server_used), "
        "server_used = GREATEST(q.server_used, EXCLUDED.server_used), "
        "updated_at = now()",
        3, params, err, "could not record quota use of \"%s\" for %s", tenant, day);
}

int store_ledger_spend(struct store *s, const char *tenant, const char *day, int64_t n,
                       struct base_err *err, const char *what)
{
    char nb[24];
    const char *params[3] = {tenant, day, nb};

    snprintf(nb, sizeof(nb), "%" PRId64, n);
    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "INSERT INTO keapsync.quota_ledger AS q (tenant, day, reserved, spent) "
                       "VALUES ($1, $2::date, $3::bigint, $3::bigint) "
                       "ON CONFLICT (tenant, day) DO UPDATE SET "
                       "spent = q.spent + EXCLUDED.spent, "
                       "reserved = GREATEST(q.reserved, q.spent + EXCLUDED.spent), "
                       "updated_at = now()",
                       3, params, err, "%s", what);
}

int store_ledger_get(struct store *s, const char *tenant, int64_t day_wall,
                     struct store_ledger_row *row, struct base_err *err)
{
    char day[16];
    const char *params[2] = {tenant, day};
    struct store_ledger_row r = {0, 0};
    PGresult *res = NULL;
    int rc;

    if (tenant == NULL)
        return base_err_set(err, BASE_EINVAL, "could not read the quota ledger: no tenant");
    rc = store_day(day_wall, day, sizeof(day), err);
    if (rc < 0)
        return rc;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT reserved, spent FROM keapsync.quota_ledger "
                     "WHERE tenant = $1 AND day = $2::date",
                     2, params, err, "could not read the quota ledger of \"%s\" for %s", tenant,
                     day);
    if (rc < 0)
        goto out;
    /* No row: nothing reserved or spent that day. */
    if (PQntuples(res) == 1 && (base_parse_int64(PQgetvalue(res, 0, 0), &r.reserved) < 0 ||
                                base_parse_int64(PQgetvalue(res, 0, 1), &r.spent) < 0)) {
        rc = base_err_set(err, BASE_EDB, "could not read the quota ledger: unexpected result");
        goto out;
    }
    *row = r;
out:
    PQclear(res);
    return rc;
}
