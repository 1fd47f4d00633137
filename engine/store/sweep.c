/*
 * sweep.c: delete sweeps and backfills in keapsync's schema (migration 0003). A sweep reads
 * every id of a job's list; the ids it has seen wait in keapsync.sweep_seen under the sweep's
 * key, written with each page. The page that completes the sweep marks, in its own
 * transaction, the rows the sweep did not see: deleted_at is set, never a DELETE. A row
 * written (synced_at) after the sweep began is alive whatever the sweep saw: it was created
 * or updated during it.
 *
 * Words used here: key (the sweep's checkpoint name), seen (ids a sweep read), mark (the
 * database's now() when the sweep began), backfill (keapsync.backfills).
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_sweep_begin(struct store *s, const char *key, char *mark, size_t n, struct base_err *err)
{
    const char *params[1] = {key};
    PGresult *res = NULL;
    int rc;

    rc = store_query(s, NULL, PGRES_COMMAND_OK, "DELETE FROM keapsync.sweep_seen WHERE key = $1", 1,
                     params, err, "could not begin the sweep \"%s\"", key);
    if (rc == 0)
        rc = store_query(s, &res, PGRES_TUPLES_OK, "SELECT now()::text", 0, NULL, err,
                         "could not begin the sweep \"%s\"", key);
    if (rc == 0 &&
        (PQntuples(res) != 1 || base_snprintf(mark, n, "%s", PQgetvalue(res, 0, 0)) < 0 ||
         strpbrk(mark, "\"\\") != NULL))
        rc = base_err_set(err, BASE_EDB, "could not begin the sweep \"%s\": unexpected now()", key);
    PQclear(res);
    return rc;
}

/* Runs sql (with $1 key, $2 since) and adds the rows it changed to *count. */
static int sweep_update(struct store *s, const char *sql, const struct store_page *p,
                        int64_t *count, struct base_err *err, const char *what)
{
    const char *params[2] = {p->seen_key, p->seen_since};
    PGresult *res = NULL;
    int64_t n = 0;
    int rc;

    rc = store_query(s, &res, PGRES_COMMAND_OK, sql, 2, params, err, "%s", what);
    if (rc == 0 && base_parse_int64(PQcmdTuples(res), &n) < 0)
        rc = base_err_set(err, BASE_EDB, "%s: unexpected UPDATE result", what);
    if (rc == 0 && count != NULL)
        *count += n;
    PQclear(res);
    return rc;
}

int store_sweep_apply(struct store *s, const struct store_page *page, struct store_page_result *r,
                      struct base_err *err, const char *what)
{
    const char *t = page->table->table;
    char *ident = NULL;
    struct base_buf q;
    int rc = 0;

    if (page->gone_ids != NULL) {
        const char *params[1] = {page->gone_ids};
        PGresult *res = NULL;
        int64_t n = 0;

        ident = PQescapeIdentifier(s->conn, t, strlen(t));
        base_buf_init(&q, STORE_MAX_SQL);
        rc = ident ? base_buf_printf(&q,
                                     "UPDATE %s.%s SET deleted_at = now() WHERE deleted_at IS "
                                     "NULL AND id::text = ANY ($1::text[])",
                                     s->schema, ident)
                   : BASE_ENOMEM;
        if (rc == 0)
            rc = store_query(s, &res, PGRES_COMMAND_OK, q.data, 1, params, err, "%s", what);
        else
            base_err_set(err, rc, "%s: could not build a statement", what);
        if (rc == 0 && base_parse_int64(PQcmdTuples(res), &n) < 0)
            rc = base_err_set(err, BASE_EDB, "%s: unexpected UPDATE result", what);
        r->deleted += n;
        PQclear(res);
        base_buf_free(&q);
        PQfreemem(ident);
        ident = NULL;
        if (rc < 0 || page->seen_key == NULL)
            return rc;
    }
    if (page->seen_ids != NULL) {
        const char *params[2] = {page->seen_key, page->seen_ids};

        rc = store_query(s, NULL, PGRES_COMMAND_OK,
                         "INSERT INTO keapsync.sweep_seen (key, id) SELECT $1, unnest($2::text[]) "
                         "ON CONFLICT DO NOTHING",
                         2, params, err, "%s", what);
        if (rc < 0 || !page->seen_close)
            return rc;
    }
    if (!page->seen_close)
        return 0;
    ident = PQescapeIdentifier(s->conn, t, strlen(t));
    if (ident == NULL)
        return base_err_set(err, BASE_ENOMEM, "%s: out of memory", what);
    base_buf_init(&q, STORE_MAX_SQL);
    /* Not seen, not written since the sweep began: gone from Keap. */
    rc = base_buf_printf(&q,
                         "UPDATE %s.%s AS cur SET deleted_at = now() WHERE cur.deleted_at IS "
                         "NULL AND cur.synced_at < $2::timestamptz AND NOT EXISTS (SELECT 1 FROM "
                         "keapsync.sweep_seen w WHERE w.key = $1 AND w.id = cur.id::text)",
                         s->schema, ident);
    if (rc == 0)
        rc = sweep_update(s, q.data, page, &r->deleted, err, what);
    /* Seen again: live again ($2 is unused but keeps one parameter list). */
    base_buf_reset(&q);
    if (rc == 0)
        rc = base_buf_printf(&q,
                             "UPDATE %s.%s AS cur SET deleted_at = NULL WHERE cur.deleted_at IS "
                             "NOT NULL AND $2::timestamptz IS NOT NULL AND EXISTS (SELECT 1 FROM "
                             "keapsync.sweep_seen w WHERE w.key = $1 AND w.id = cur.id::text)",
                             s->schema, ident);
    if (rc == 0)
        rc = sweep_update(s, q.data, page, &r->revived, err, what);
    if (rc == 0)
        rc = sweep_update(s,
                          "DELETE FROM keapsync.sweep_seen WHERE key = $1 AND $2::timestamptz IS "
                          "NOT NULL",
                          page, NULL, err, what);
    if (rc > 0)
        rc = 0;
    if (rc < 0 && err->msg[0] == '\0')
        base_err_set(err, rc, "%s: could not build a statement", what);
    base_buf_free(&q);
    PQfreemem(ident);
    return rc;
}

int store_backfill_add(struct store *s, const char *job, int64_t from_ms, int64_t to_ms,
                       int64_t *id, struct base_err *err)
{
    char from[32], to[32];
    const char *params[3] = {job, from, to};
    PGresult *res = NULL;
    int rc;

    snprintf(from, sizeof(from), "%" PRId64, from_ms);
    snprintf(to, sizeof(to), "%" PRId64, to_ms);
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "INSERT INTO keapsync.backfills (job, from_at, to_at) VALUES ($1, "
                     "to_timestamp($2::bigint / 1000.0), to_timestamp($3::bigint / 1000.0)) "
                     "RETURNING id",
                     3, params, err, "could not record the backfill of \"%s\"", job);
    if (rc == 0 && (PQntuples(res) != 1 || base_parse_int64(PQgetvalue(res, 0, 0), id) < 0))
        rc = base_err_set(err, BASE_EDB, "could not record the backfill of \"%s\": no id", job);
    PQclear(res);
    return rc;
}

int store_backfill_list(struct store *s, struct store_backfill **out, size_t *n,
                        struct base_err *err)
{
    struct store_backfill *v = NULL;
    PGresult *res = NULL;
    int rc, rows;

    *out = NULL;
    *n = 0;
    rc = store_query(
        s, &res, PGRES_TUPLES_OK,
        "SELECT id, job, (extract(epoch FROM from_at) * 1000)::bigint, "
        "(extract(epoch FROM to_at) * 1000)::bigint FROM keapsync.backfills ORDER BY id",
        0, NULL, err, "could not read the backfills");
    if (rc < 0)
        goto out;
    rows = PQntuples(res);
    if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL) {
        rc = base_err_set(err, BASE_ENOMEM, "could not read the backfills: out of memory");
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        if (base_parse_int64(PQgetvalue(res, i, 0), &v[i].id) < 0 ||
            base_snprintf(v[i].job, sizeof(v[i].job), "%s", PQgetvalue(res, i, 1)) < 0 ||
            base_parse_int64(PQgetvalue(res, i, 2), &v[i].from_ms) < 0 ||
            base_parse_int64(PQgetvalue(res, i, 3), &v[i].to_ms) < 0) {
            rc = base_err_set(err, BASE_EDB, "could not read the backfills: unexpected row");
            free(v);
            goto out;
        }
    }
    *out = v;
    *n = (size_t)rows;
out:
    PQclear(res);
    return rc;
}
