/*
 * lease.c: named leases in keapsync.leases, shared by every keapsync process of one
 * database.
 *
 * Words used here:
 *   holder  a process's name for itself ("host:pid:nonce"), unique while it lives.
 *   lease   a row (name, holder, expires_at). It is held while expires_at is in the future;
 *           an expired lease may be taken by anyone, so a process that dies holding one
 *           frees it after the ttl.
 *   peer    a lease named "peer:<tenant>:<holder>": one per live process syncing a tenant.
 *           Counting them tells each process how many split the key's windows.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_lease_acquire(struct store *s, const char *name, const char *holder, int ttl_ms,
                        bool *got, char **other, struct base_err *err)
{
    char ttl[32], wait[64];
    const char *params[3] = {name, holder, ttl};
    PGresult *res = NULL;
    int rc;

    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    /* In a transaction of its own, so that lock_timeout bounds the wait for a row another
     * session locked: a holder frozen mid-commit must not freeze its takers too. */
    snprintf(wait, sizeof(wait), "SET LOCAL lock_timeout = %d",
             ttl_ms > 0 && ttl_ms < STORE_LEASE_LOCK_WAIT_MS ? ttl_ms : STORE_LEASE_LOCK_WAIT_MS);
    rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err,
                     "could not take lease \"%s\"", name);
    if (rc == 0)
        rc = store_query(s, NULL, PGRES_COMMAND_OK, wait, 0, NULL, err,
                         "could not take lease \"%s\"", name);
    if (rc < 0) {
        store_rollback(s);
        return rc;
    }
    /* Take it if free or expired, renew it if ours; otherwise report who holds it. */
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "INSERT INTO keapsync.leases AS l (name, holder, acquired_at, expires_at) "
                     "VALUES ($1, $2, now(), clock_timestamp() + $3::int * interval '1 ms') "
                     "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, "
                     "acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at "
                     "ELSE now() END, expires_at = EXCLUDED.expires_at "
                     "WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp() "
                     "RETURNING holder",
                     3, params, err, "could not take lease \"%s\"", name);
    if (rc < 0 && strcmp(s->last_state, "55P03") == 0) {
        /* lock_not_available: its holder is committing a page under it (or froze doing so) */
        store_rollback(s);
        base_err_clear(err);
        *got = false;
    } else if (rc < 0) {
        store_rollback(s);
        return rc;
    } else {
        *got = PQntuples(res) == 1;
        PQclear(res);
        res = NULL;
        rc = store_commit(s, err, "could not take lease");
        if (rc < 0) {
            *got = false;
            return rc;
        }
    }
    if (!*got && other != NULL) {
        const char *p1[1] = {name};

        *other = NULL;
        if (store_query(s, &res, PGRES_TUPLES_OK,
                        "SELECT holder FROM keapsync.leases WHERE name = $1", 1, p1, err,
                        "could not read lease \"%s\"", name) == 0) {
            if (PQntuples(res) == 1)
                *other = strdup(PQgetvalue(res, 0, 0));
            PQclear(res);
        }
    }
    return 0;
}

int store_lease_release(struct store *s, const char *name, const char *holder, struct base_err *err)
{
    const char *params[2] = {name, holder};

    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "DELETE FROM keapsync.leases WHERE name = $1 AND holder = $2", 2, params,
                       err, "could not release lease \"%s\"", name);
}

int store_lease_renew(struct store *s, const char *name, const char *holder, int ttl_ms, bool *held,
                      struct base_err *err)
{
    char ttl[32];
    const char *params[3] = {name, holder, ttl};
    PGresult *res = NULL;
    int rc;

    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "UPDATE keapsync.leases SET expires_at = clock_timestamp() + "
                     "$3::int * interval '1 ms' WHERE name = $1 AND holder = $2 RETURNING 1",
                     3, params, err, "could not renew lease \"%s\"", name);
    if (rc < 0)
        return rc;
    *held = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

int store_peer_heartbeat(struct store *s, const char *tenant, const char *holder, int ttl_ms,
                         int *npeers, struct base_err *err)
{
    char ttl[32];
    const char *params[3] = {tenant, holder, ttl};
    PGresult *res = NULL;
    int64_t n;
    int rc;

    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "WITH me AS (INSERT INTO keapsync.leases (name, holder, expires_at) "
                     "VALUES ('peer:' || $1 || ':' || $2, $2, clock_timestamp() + $3::int * "
                     "interval '1 ms') ON CONFLICT (name) DO UPDATE SET expires_at = "
                     "EXCLUDED.expires_at, holder = EXCLUDED.holder RETURNING name) "
                     "SELECT 1 + count(*) FROM keapsync.leases WHERE "
                     "left(name, length('peer:' || $1 || ':')) = 'peer:' || $1 || ':' "
                     "AND name <> 'peer:' || $1 || ':' || $2 AND expires_at > clock_timestamp()",
                     3, params, err, "could not register with the other keapsync processes");
    if (rc < 0)
        return rc;
    rc = base_parse_int64(PQgetvalue(res, 0, 0), &n);
    PQclear(res);
    if (rc < 0 || n < 1)
        return base_err_set(err, BASE_EDB, "could not count keapsync processes");
    *npeers = (int)n;
    return 0;
}

int store_peer_leave(struct store *s, const char *tenant, const char *holder, struct base_err *err)
{
    const char *params[2] = {tenant, holder};

    return store_query(s, NULL, PGRES_COMMAND_OK,
                       "DELETE FROM keapsync.leases WHERE name = 'peer:' || $1 || ':' || $2", 2,
                       params, err, "could not leave the other keapsync processes");
}

int store_lease_list(struct store *s, const char *prefix, char ***names, char ***holders, int *n,
                     struct base_err *err)
{
    const char *params[1] = {prefix};
    PGresult *res = NULL;
    char **nv = NULL, **hv = NULL;
    int rows, rc;

    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT name, holder FROM keapsync.leases WHERE "
                     "left(name, length($1)) = $1 AND expires_at > clock_timestamp() "
                     "ORDER BY name LIMIT 1000",
                     1, params, err, "could not list leases");
    if (rc < 0)
        return rc;
    rows = PQntuples(res);
    nv = calloc((size_t)rows + 1, sizeof(*nv));
    hv = calloc((size_t)rows + 1, sizeof(*hv));
    for (int i = 0; nv != NULL && hv != NULL && i < rows; i++) {
        nv[i] = strdup(PQgetvalue(res, i, 0));
        hv[i] = strdup(PQgetvalue(res, i, 1));
        if (nv[i] == NULL || hv[i] == NULL) {
            rc = BASE_ENOMEM;
            break;
        }
    }
    PQclear(res);
    if (nv == NULL || hv == NULL || rc < 0) {
        store_lease_list_free(nv, hv);
        return base_err_set(err, BASE_ENOMEM, "could not list leases: out of memory");
    }
    *names = nv;
    *holders = hv;
    *n = rows;
    return 0;
}

void store_lease_list_free(char **names, char **holders)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        free(names[i]);
    for (size_t i = 0; holders != NULL && holders[i] != NULL; i++)
        free(holders[i]);
    free(names);
    free(holders);
}
