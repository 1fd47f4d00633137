/*
 * sink.c: target tables and pages. store_ensure_table creates or widens <schema>.<table> and
 * prepares this connection's staging table and upsert; store_commit_page writes one page in
 * one transaction: COPY into staging, one set-based upsert, the checkpoint, the ledger spend.
 *
 * Words used here (see store.h and store_int.h): target, page, staging, tcache, newer-wins.
 * "cols" are the map's typed columns; every row is id, cols..., data (COPY text format), led
 * by the parent's id for a child table, whose key is (parent, id).
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows go to the server in pieces of this size, so libpq never holds a second copy of a page. */
#define SINK_COPY_CHUNK (256 * 1024)

/* A statement under construction; the first failure sticks and later appends do nothing. */
struct sql {
    struct store *s;
    struct base_buf b;
    int rc;
};

static void sql_init(struct sql *q, struct store *s)
{
    q->s = s;
    base_buf_init(&q->b, STORE_MAX_SQL);
    q->rc = BASE_OK;
}

static void sql_puts(struct sql *q, const char *text)
{
    if (q->rc == BASE_OK)
        q->rc = base_buf_puts(&q->b, text);
}

/* Appends name as a quoted identifier. */
static void sql_ident(struct sql *q, const char *name)
{
    char *quoted;

    if (q->rc != BASE_OK)
        return;
    quoted = PQescapeIdentifier(q->s->conn, name, strlen(name));
    if (quoted == NULL) {
        q->rc = BASE_ENOMEM;
        return;
    }
    q->rc = base_buf_puts(&q->b, quoted);
    PQfreemem(quoted);
}

/* Sets err from a failed build; returns the code. */
static int sql_fail(struct sql *q, struct base_err *err, const char *what)
{
    return base_err_set(err, q->rc, "%s: could not build a statement: %s", what,
                        base_strerror(q->rc));
}

static int check_ident(const char *name, const char *kind, struct base_err *err)
{
    size_t len = name != NULL ? strlen(name) : 0;

    if (len == 0)
        return base_err_set(err, BASE_EINVAL, "%s name is empty", kind);
    if (len > STORE_MAX_IDENT)
        return base_err_set(err, BASE_EINVAL, "%s name \"%.64s...\" is longer than %d bytes", kind,
                            name, STORE_MAX_IDENT);
    return BASE_OK;
}

int store_check_table(const struct store_table *t, struct base_err *err)
{
    const struct map_spec *m;
    int found = 0;
    int rc;

    if (t == NULL || t->map == NULL)
        return base_err_set(err, BASE_EINVAL, "could not prepare a table: no definition");
    m = t->map;
    rc = check_ident(t->table, "table", err);
    if (rc < 0)
        return rc;
    if (map_type_sql(m->id.type) == NULL)
        return base_err_set(err, BASE_EINVAL, "table \"%s\" has an id of unknown type", t->table);
    if (m->ncols > 0 && m->cols == NULL)
        return base_err_set(err, BASE_EINVAL, "table \"%s\" has no columns array", t->table);
    for (size_t i = 0; i < m->ncols; i++) {
        const char *c = m->cols[i].name;

        rc = check_ident(c, "column", err);
        if (rc < 0)
            return rc;
        if (strcmp(c, "id") == 0 || strcmp(c, "data") == 0 || strcmp(c, "synced_at") == 0 ||
            strcmp(c, "deleted_at") == 0)
            return base_err_set(err, BASE_EINVAL,
                                "column \"%s\" of table \"%s\" is reserved by keapsync", c,
                                t->table);
        if (map_type_sql(m->cols[i].type) == NULL)
            return base_err_set(err, BASE_EINVAL,
                                "column \"%s\" of table \"%s\" has an unknown type", c, t->table);
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->cols[j].name, c) == 0)
                return base_err_set(err, BASE_EINVAL, "column \"%s\" of table \"%s\" appears twice",
                                    c, t->table);
        if (t->updated_col != NULL && strcmp(t->updated_col, c) == 0)
            found = 1;
    }
    if (t->parent_col != NULL) {
        rc = check_ident(t->parent_col, "parent column", err);
        if (rc < 0)
            return rc;
        if (strcmp(t->parent_col, "id") == 0 || strcmp(t->parent_col, "data") == 0 ||
            strcmp(t->parent_col, "synced_at") == 0 || strcmp(t->parent_col, "deleted_at") == 0)
            return base_err_set(err, BASE_EINVAL, "parent column \"%s\" is reserved by keapsync",
                                t->parent_col);
        for (size_t i = 0; i < m->ncols; i++)
            if (strcmp(m->cols[i].name, t->parent_col) == 0)
                return base_err_set(err, BASE_EINVAL,
                                    "parent column \"%s\" of table \"%s\" is also a column",
                                    t->parent_col, t->table);
    }
    if (t->updated_col != NULL && !found)
        return base_err_set(err, BASE_EINVAL,
                            "updated column \"%s\" is not a column of table \"%s\"", t->updated_col,
                            t->table);
    return BASE_OK;
}

static void tcache_free(struct store_tcache *tc)
{
    if (tc == NULL)
        return;
    free(tc->table);
    free(tc->updated_col);
    free(tc->parent_col);
    free(tc->copy_sql);
    free(tc);
}

void store_tcache_free_all(struct store *s)
{
    struct store_tcache *tc = s->tables, *next;

    for (; tc != NULL; tc = next) {
        next = tc->next;
        tcache_free(tc);
    }
    s->tables = NULL;
}

/* Unlinks and returns the entry of table, or NULL. */
static struct store_tcache *tcache_take(struct store *s, const char *table)
{
    struct store_tcache **pp;

    for (pp = &s->tables; *pp != NULL; pp = &(*pp)->next) {
        struct store_tcache *tc = *pp;

        if (strcmp(tc->table, table) == 0) {
            *pp = tc->next;
            tc->next = NULL;
            return tc;
        }
    }
    return NULL;
}

/* The entry prepared for exactly this definition, or NULL. */
static struct store_tcache *tcache_find(struct store *s, const struct store_table *t)
{
    for (struct store_tcache *tc = s->tables; tc != NULL; tc = tc->next) {
        if (strcmp(tc->table, t->table) != 0)
            continue;
        if (tc->map != t->map || tc->ncols != t->map->ncols)
            return NULL;
        if ((tc->updated_col == NULL) != (t->updated_col == NULL))
            return NULL;
        if (tc->updated_col != NULL && strcmp(tc->updated_col, t->updated_col) != 0)
            return NULL;
        if ((tc->parent_col == NULL) != (t->parent_col == NULL))
            return NULL;
        if (tc->parent_col != NULL && strcmp(tc->parent_col, t->parent_col) != 0)
            return NULL;
        return tc;
    }
    return NULL;
}

/* <schema>."<table>" (keap."<table>" by default) */
static void sql_target(struct sql *q, const char *table)
{
    sql_puts(q, q->s->schema);
    sql_puts(q, ".");
    sql_ident(q, table);
}

/* The key: "id", or "parent", "id" for a child table. */
static void sql_key(struct sql *q, const struct store_table *t)
{
    if (t->parent_col != NULL) {
        sql_ident(q, t->parent_col);
        sql_puts(q, ", ");
    }
    sql_ident(q, "id");
}

/* key, "c1", ..., "data" */
static void sql_row_columns(struct sql *q, const struct store_table *t)
{
    const struct map_spec *m = t->map;

    sql_key(q, t);
    for (size_t i = 0; i < m->ncols; i++) {
        sql_puts(q, ", ");
        sql_ident(q, m->cols[i].name);
    }
    sql_puts(q, ", ");
    sql_ident(q, "data");
}

static int build_create(struct sql *q, const struct store_table *t)
{
    const struct map_spec *m = t->map;

    sql_puts(q, "CREATE TABLE IF NOT EXISTS ");
    sql_target(q, t->table);
    sql_puts(q, " (");
    if (t->parent_col != NULL) {
        sql_ident(q, t->parent_col);
        sql_puts(q, " bigint NOT NULL, ");
    }
    sql_ident(q, "id");
    sql_puts(q, " ");
    sql_puts(q, map_type_sql(m->id.type));
    sql_puts(q, t->parent_col != NULL ? " NOT NULL" : " PRIMARY KEY");
    for (size_t i = 0; i < m->ncols; i++) {
        sql_puts(q, ", ");
        sql_ident(q, m->cols[i].name);
        sql_puts(q, " ");
        sql_puts(q, map_type_sql(m->cols[i].type));
    }
    sql_puts(q, ", data jsonb NOT NULL, synced_at timestamptz NOT NULL DEFAULT now(), "
                "deleted_at timestamptz");
    if (t->parent_col != NULL) {
        sql_puts(q, ", PRIMARY KEY (");
        sql_key(q, t);
        sql_puts(q, ")");
    }
    sql_puts(q, ")");
    return q->rc;
}

/* Is name among the nrows names in column 0 of res? */
static int result_has(const PGresult *res, const char *name)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 0), name) == 0)
            return 1;
    return 0;
}

/* ALTER TABLE ... ADD COLUMN IF NOT EXISTS for the columns missing from existing (the
 * table's current column names). Leaves q empty when none is missing. */
static int build_alter(struct sql *q, const struct store_table *t, const PGresult *existing)
{
    const struct map_spec *m = t->map;
    int n = 0;

    for (size_t i = 0; i <= m->ncols; i++) {
        /* the typed columns, then deleted_at (tables made before it existed lack it) */
        const char *name = i < m->ncols ? m->cols[i].name : "deleted_at";
        const char *type = i < m->ncols ? map_type_sql(m->cols[i].type) : "timestamptz";

        if (result_has(existing, name))
            continue;
        if (n++ == 0) {
            sql_puts(q, "ALTER TABLE ");
            sql_target(q, t->table);
        } else {
            sql_puts(q, ",");
        }
        sql_puts(q, " ADD COLUMN IF NOT EXISTS ");
        sql_ident(q, name);
        sql_puts(q, " ");
        sql_puts(q, type);
    }
    return q->rc;
}

/* FNV-1a, for index names that would not fit in an identifier. */
static uint32_t fnv1a(const char *a, const char *b)
{
    uint32_t h = 2166136261u;

    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static int build_index(struct sql *q, const struct store_table *t)
{
    char name[STORE_MAX_IDENT + 1];

    /* "<table>_<col>_idx"; when that is too long, a prefix and a hash of both names, so
     * two long names never meet in one truncated identifier. */
    if (base_snprintf(name, sizeof(name), "%s_%s_idx", t->table, t->updated_col) < 0)
        snprintf(name, sizeof(name), "%.40s_%08" PRIx32 "_idx", t->table,
                 fnv1a(t->table, t->updated_col));
    sql_puts(q, "CREATE INDEX IF NOT EXISTS ");
    sql_ident(q, name);
    sql_puts(q, " ON ");
    sql_target(q, t->table);
    sql_puts(q, " (");
    sql_ident(q, t->updated_col);
    sql_puts(q, ")");
    return q->rc;
}

/* (<p>.c1, ..., <p>.data): the typed columns and data of row p, for a row comparison. */
static void sql_row_values(struct sql *q, const struct store_table *t, const char *p)
{
    const struct map_spec *m = t->map;

    sql_puts(q, "(");
    for (size_t i = 0; i < m->ncols; i++) {
        sql_puts(q, p);
        sql_ident(q, m->cols[i].name);
        sql_puts(q, ", ");
    }
    sql_puts(q, p);
    sql_ident(q, "data");
    sql_puts(q, ")");
}

/*
 * The page upsert: distinct ids from staging (per id the newest by the updated column, then
 * the last in the page), inserted or, when not older, written over the existing row. A row
 * the table already holds exactly so (every typed column and data, and not deleted) is not
 * written again: the conflict's own index lookup finds it and the DO UPDATE's WHERE leaves it
 * (no new row version, no index entries); its synced_at stays when it last changed, which is
 * what a child stream's pass wants of its parents. Not an anti-join against the table before
 * the INSERT: planned once for the prepared statement while the table was small, that became
 * a scan of the whole table per page (a first sync of 300,000 rows cost 8x the Postgres CPU).
 * Returns one row: inserted, updated.
 */
static int build_upsert(struct sql *q, const struct store_table *t, const char *stage)
{
    const struct map_spec *m = t->map;

    sql_puts(q, "WITH up AS (INSERT INTO ");
    sql_target(q, t->table);
    sql_puts(q, " AS cur (");
    sql_row_columns(q, t);
    sql_puts(q, ", synced_at) SELECT DISTINCT ON (");
    sql_key(q, t);
    sql_puts(q, ") ");
    sql_row_columns(q, t);
    sql_puts(q, ", now() FROM pg_temp.");
    sql_puts(q, stage);
    sql_puts(q, " ORDER BY ");
    sql_key(q, t);
    sql_puts(q, ", ");
    if (t->updated_col != NULL) {
        sql_ident(q, t->updated_col);
        sql_puts(q, " DESC NULLS LAST, ");
    }
    /* Staging is emptied at every commit, so ctid order is COPY order. */
    sql_puts(q, "ctid DESC ON CONFLICT (");
    sql_key(q, t);
    sql_puts(q, ") DO UPDATE SET ");
    for (size_t i = 0; i < m->ncols; i++) {
        sql_ident(q, m->cols[i].name);
        sql_puts(q, " = EXCLUDED.");
        sql_ident(q, m->cols[i].name);
        sql_puts(q, ", ");
    }
    /* A record listed again is not deleted (any more). */
    sql_puts(q, "data = EXCLUDED.data, synced_at = EXCLUDED.synced_at, deleted_at = NULL WHERE ");
    if (t->updated_col != NULL) {
        sql_puts(q, "(cur.");
        sql_ident(q, t->updated_col);
        sql_puts(q, " IS NULL OR EXCLUDED.");
        sql_ident(q, t->updated_col);
        sql_puts(q, " >= cur.");
        sql_ident(q, t->updated_col);
        sql_puts(q, ") AND ");
    }
    /* Unchanged (and not deleted): left alone, on the row the conflict already found. */
    sql_puts(q, "(cur.deleted_at IS NOT NULL OR ");
    sql_row_values(q, t, "cur.");
    sql_puts(q, " IS DISTINCT FROM ");
    sql_row_values(q, t, "EXCLUDED.");
    sql_puts(q, ")");
    sql_puts(q, " RETURNING (cur.xmax = 0) AS ins) "
                "SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins) FROM up");
    return q->rc;
}

/* Runs the text in q (no parameters, no rows), then empties q. */
static int sql_run(struct sql *q, struct base_err *err, const char *what)
{
    int rc;

    if (q->rc != BASE_OK)
        return sql_fail(q, err, what);
    rc = store_query(q->s, NULL, PGRES_COMMAND_OK, q->b.data, 0, NULL, err, "%s", what);
    base_buf_reset(&q->b);
    return rc;
}

/* Drops the staging table and prepared upsert of an old entry, ignoring errors (they die
 * with the session anyway). Must run outside a failed transaction. */
static void tcache_forget(struct store *s, struct store_tcache *old)
{
    char cmd[64];
    PGresult *res;

    if (old == NULL)
        return;
    snprintf(cmd, sizeof(cmd), "DEALLOCATE %s", old->stmt);
    res = PQexec(s->conn, cmd);
    PQclear(res);
    snprintf(cmd, sizeof(cmd), "DROP TABLE IF EXISTS pg_temp.ks_stage_%d", old->seq);
    res = PQexec(s->conn, cmd);
    PQclear(res);
    tcache_free(old);
}

void store_tcache_forget(struct store *s, const char *table)
{
    tcache_forget(s, tcache_take(s, table));
}

int store_ensure_table(struct store *s, const struct store_table *t, struct base_err *err)
{
    struct store_tcache *tc = NULL, *old = NULL;
    PGresult *res = NULL;
    char what[160], stage[32], qualified[2 * STORE_MAX_IDENT + 16];
    const char *params[1];
    struct sql q;
    int rc;

    sql_init(&q, s);
    rc = store_check_table(t, err);
    if (rc < 0)
        goto out;
    snprintf(what, sizeof(what), "could not prepare table \"%s\"", t->table);
    old = tcache_take(s, t->table);
    tcache_forget(s, old);
    old = NULL;

    tc = calloc(1, sizeof(*tc));
    if (tc == NULL || (tc->table = base_strdup(t->table)) == NULL ||
        (t->updated_col != NULL && (tc->updated_col = base_strdup(t->updated_col)) == NULL) ||
        (t->parent_col != NULL && (tc->parent_col = base_strdup(t->parent_col)) == NULL)) {
        rc = base_err_set(err, BASE_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    tc->map = t->map;
    tc->ncols = t->map->ncols;
    tc->seq = ++s->next_seq;
    snprintf(stage, sizeof(stage), "ks_stage_%d", tc->seq);
    snprintf(tc->stmt, sizeof(tc->stmt), "ks_upsert_%d", tc->seq);

    rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err, "%s", what);
    if (rc < 0)
        goto out;
    /* Two processes creating one table at once would race in the catalogs. */
    params[0] = t->table;
    rc = store_query(s, NULL, PGRES_TUPLES_OK,
                     "SELECT pg_advisory_xact_lock(" STORE_DDL_LOCK_CLASS ", hashtext($1))", 1,
                     params, err, "%s", what);
    if (rc < 0)
        goto out;
    rc = store_ensure_schema(s, err);
    if (rc == 0)
        rc = build_create(&q, t);
    if (rc == 0)
        rc = sql_run(&q, err, what);
    if (rc < 0)
        goto out;

    sql_target(&q, t->table);
    if (q.rc != BASE_OK || base_snprintf(qualified, sizeof(qualified), "%s", q.b.data) < 0) {
        rc = sql_fail(&q, err, what);
        goto out;
    }
    base_buf_reset(&q.b);
    params[0] = qualified;
    rc = store_query(s, &res, PGRES_TUPLES_OK,
                     "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass "
                     "AND attnum > 0 AND NOT attisdropped",
                     1, params, err, "%s", what);
    if (rc < 0)
        goto out;
    rc = build_alter(&q, t, res);
    if (rc == 0 && q.b.len > 0)
        rc = sql_run(&q, err, what);
    if (rc < 0)
        goto out;
    if (t->updated_col != NULL) {
        rc = build_index(&q, t);
        if (rc == 0)
            rc = sql_run(&q, err, what);
        if (rc < 0)
            goto out;
    }

    sql_puts(&q, "CREATE TEMP TABLE ");
    sql_puts(&q, stage);
    sql_puts(&q, " (LIKE ");
    sql_target(&q, t->table);
    sql_puts(&q, " INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
    rc = sql_run(&q, err, what);
    if (rc < 0)
        goto out;

    rc = store_commit(s, err, what);
    if (rc < 0)
        goto out;

    sql_puts(&q, "COPY pg_temp.");
    sql_puts(&q, stage);
    sql_puts(&q, " (");
    sql_row_columns(&q, t);
    sql_puts(&q, ") FROM STDIN");
    if (q.rc != BASE_OK) {
        rc = sql_fail(&q, err, what);
        goto out;
    }
    tc->copy_sql = base_strdup(q.b.data);
    if (tc->copy_sql == NULL) {
        rc = base_err_set(err, BASE_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    base_buf_reset(&q.b);

    rc = build_upsert(&q, t, stage);
    if (rc < 0) {
        rc = sql_fail(&q, err, what);
        goto out;
    }
    PQclear(res);
    res = PQprepare(s->conn, tc->stmt, q.b.data, 0, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = store_pg_error(s, res, err, "%s", what);
        goto out;
    }
    tc->next = s->tables;
    s->tables = tc;
    tc = NULL;
out:
    if (rc < 0)
        store_rollback(s);
    PQclear(res);
    base_buf_free(&q.b);
    tcache_free(tc);
    return rc;
}

/*
 * COPYs the page's rows into staging. *copied is what the server counted. On failure the
 * COPY is over (the transaction is aborted) and err is set.
 */
static int copy_rows(struct store *s, const struct store_tcache *tc, const struct store_page *p,
                     int64_t *copied, struct base_err *err, const char *what)
{
    PGresult *res, *extra;
    const char *abort_msg = NULL;
    int64_t n = 0;
    int rc = BASE_OK;

    res = PQexec(s->conn, tc->copy_sql);
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN) {
        rc = store_pg_error(s, res, err, "%s", what);
        PQclear(res);
        return rc;
    }
    PQclear(res);
    for (size_t off = 0; off < p->rows_len;) {
        size_t chunk = p->rows_len - off;

        if (chunk > SINK_COPY_CHUNK)
            chunk = SINK_COPY_CHUNK;
        if (PQputCopyData(s->conn, p->rows + off, (int)chunk) != 1) {
            rc = store_pg_error(s, NULL, err, "%s", what);
            abort_msg = "keapsync could not send the rows";
            break;
        }
        off += chunk;
    }
    if (PQputCopyEnd(s->conn, abort_msg) != 1 && rc == BASE_OK)
        rc = store_pg_error(s, NULL, err, "%s", what);
    /* Every result must be read, whatever happened, before the next command. */
    res = PQgetResult(s->conn);
    if (rc == BASE_OK) {
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = store_pg_error(s, res, err, "%s", what);
        else if (base_parse_int64(PQcmdTuples(res), &n) < 0)
            rc = base_err_set(err, BASE_EDB, "%s: unexpected COPY result", what);
    }
    PQclear(res);
    while (res != NULL && (extra = PQgetResult(s->conn)) != NULL)
        PQclear(extra);
    if (rc == BASE_OK)
        *copied = n;
    return rc;
}

/*
 * A child table's parent was listed in full by this page (and the earlier pages whose ids
 * are in page->sweep_keep): its rows that none of them listed are marked deleted.
 */
static int sweep_parent(struct store *s, const struct store_tcache *tc, const struct store_page *p,
                        int64_t *deleted, struct base_err *err, const char *what)
{
    const struct store_table *t = p->table;
    char parent[32], stage[32];
    const char *params[2];
    struct sql q;
    PGresult *res = NULL;
    int rc;

    snprintf(parent, sizeof(parent), "%" PRId64, p->sweep_parent);
    snprintf(stage, sizeof(stage), "ks_stage_%d", tc->seq);
    sql_init(&q, s);
    sql_puts(&q, "UPDATE ");
    sql_target(&q, t->table);
    sql_puts(&q, " AS cur SET deleted_at = now() WHERE cur.");
    sql_ident(&q, t->parent_col);
    sql_puts(&q, " = $1::bigint AND cur.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM pg_temp.");
    sql_puts(&q, stage);
    sql_puts(&q, " st WHERE st.");
    sql_ident(&q, t->parent_col);
    sql_puts(&q, " = cur.");
    sql_ident(&q, t->parent_col);
    sql_puts(&q, " AND st.id = cur.id) AND NOT (cur.id::text = ANY (COALESCE($2::text[], '{}')))");
    if (q.rc != BASE_OK) {
        rc = sql_fail(&q, err, what);
        goto out;
    }
    params[0] = parent;
    params[1] = p->sweep_keep;
    rc = store_query(s, &res, PGRES_COMMAND_OK, q.b.data, 2, params, err, "%s", what);
    if (rc == 0 && base_parse_int64(PQcmdTuples(res), deleted) < 0)
        rc = base_err_set(err, BASE_EDB, "%s: unexpected UPDATE result", what);
out:
    PQclear(res);
    base_buf_free(&q.b);
    return rc;
}

int store_commit_page(struct store *s, const struct store_page *page, struct store_page_result *res,
                      struct base_err *err)
{
    const struct store_table *t;
    struct store_tcache *tc;
    struct store_page_result r = {0, 0, 0, 0, 0};
    PGresult *pr = NULL;
    char what[160], day[16] = "";
    int64_t copied = 0;
    int rc;

    if (page == NULL || page->table == NULL || page->table->table == NULL)
        return base_err_set(err, BASE_EINVAL, "could not commit a page: no table");
    t = page->table;
    snprintf(what, sizeof(what), "could not commit page of \"%s\"", t->table);
    if (page->nrows < 0 || (page->rows_len > 0 && page->rows == NULL) ||
        (page->checkpoint != NULL && page->job == NULL) || page->requests < 0 ||
        (page->sweep && t->parent_col == NULL) ||
        (page->seen_key != NULL && (t->parent_col != NULL || page->seen_since == NULL)))
        return base_err_set(err, BASE_EINVAL, "%s: invalid page", what);
    if (page->tenant != NULL) {
        rc = store_day(page->day_wall, day, sizeof(day), err);
        if (rc < 0)
            return rc;
    }
    tc = tcache_find(s, t);
    if (tc == NULL) {
        rc = store_ensure_table(s, t, err);
        if (rc < 0)
            return rc;
        tc = tcache_find(s, t);
        if (tc == NULL)
            return base_err_set(err, BASE_EDB, "%s: table was not prepared", what);
    }

    rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err, "%s", what);
    if (rc < 0)
        goto out;
    if (page->lease != NULL && page->lease_ttl_ms > 0) {
        /* Idle longer than the lease lives, this transaction could no longer be trusted to
         * commit for its holder; idle for seconds at all, its process is stuck (stopped, a
         * paused VM) while it holds rows other processes need (the lease's, the ledger's).
         * The server ends it then, and its locks with it; a process that was only slow finds
         * its connection gone and commits the page again on a new one. */
        char idle[80];

        snprintf(idle, sizeof(idle), "SET LOCAL idle_in_transaction_session_timeout = %d",
                 page->lease_ttl_ms < STORE_PAGE_IDLE_MAX_MS ? page->lease_ttl_ms
                                                             : STORE_PAGE_IDLE_MAX_MS);
        rc = store_query(s, NULL, PGRES_COMMAND_OK, idle, 0, NULL, err, "%s", what);
        if (rc < 0)
            goto out;
    }
    if (page->rows_len > 0) {
        rc = copy_rows(s, tc, page, &copied, err, what);
        if (rc < 0)
            goto out;
    }
    if (copied != page->nrows) {
        /* A miscount means a row split or merged on its way here: refuse to guess. */
        rc = base_err_set(err, BASE_EPROTO,
                          "%s: the page holds %" PRId64 " rows but %" PRId64 " were announced",
                          what, copied, page->nrows);
        goto out;
    }
    if (page->lease != NULL) {
        /* The row lock holds off a taker until this commits, who then reads our checkpoint.
         * Taken after the COPY: a holder frozen mid-COPY (a backend waiting for COPY data is
         * not "idle in transaction", so no timeout ends it) then holds no lock a taker needs,
         * and from here on every wait is between statements, where the timeout above ends a
         * frozen holder's session. */
        const char *params[2] = {page->lease, page->lease_holder ? page->lease_holder : ""};

        rc = store_query(s, &pr, PGRES_TUPLES_OK,
                         "SELECT 1 FROM keapsync.leases WHERE name = $1 AND holder = $2 "
                         "FOR UPDATE",
                         2, params, err, "%s", what);
        if (rc < 0)
            goto out;
        if (PQntuples(pr) != 1) {
            rc = base_err_set(err, BASE_ECANCELED,
                              "%s: lease \"%s\" is no longer ours (another keapsync process "
                              "took it after it expired); stopping without committing",
                              what, page->lease);
            goto out;
        }
        PQclear(pr);
        pr = NULL;
    }
    if (copied > 0) {
        pr = PQexecPrepared(s->conn, tc->stmt, 0, NULL, NULL, NULL, 0);
        if (pr == NULL || PQresultStatus(pr) != PGRES_TUPLES_OK) {
            rc = store_pg_error(s, pr, err, "%s", what);
            goto out;
        }
        if (PQntuples(pr) != 1 || base_parse_int64(PQgetvalue(pr, 0, 0), &r.inserted) < 0 ||
            base_parse_int64(PQgetvalue(pr, 0, 1), &r.updated) < 0) {
            rc = base_err_set(err, BASE_EDB, "%s: unexpected upsert result", what);
            goto out;
        }
        r.skipped = copied - r.inserted - r.updated;
    }
    if (page->sweep) {
        rc = sweep_parent(s, tc, page, &r.deleted, err, what);
        if (rc < 0)
            goto out;
    }
    if (page->seen_key != NULL || page->gone_ids != NULL) {
        rc = store_sweep_apply(s, page, &r, err, what);
        if (rc < 0)
            goto out;
    }
    if (page->checkpoint != NULL) {
        const char *params[2] = {page->job, page->checkpoint};

        rc = store_query(s, NULL, PGRES_COMMAND_OK, STORE_SQL_CHECKPOINT_UPSERT, 2, params, err,
                         "%s", what);
        if (rc < 0)
            goto out;
    }
    if (page->tenant != NULL && page->requests > 0) {
        rc = store_ledger_spend(s, page->tenant, day, page->requests, err, what);
        if (rc < 0)
            goto out;
    }
    rc = store_commit(s, err, what);
    if (rc < 0)
        goto out;
    *res = r;
out:
    if (rc < 0)
        store_rollback(s);
    PQclear(pr);
    return rc;
}

/*
 * Does <schema>.<table> exist? Sets *exists on success. Errors are reported as what (a build
 * failure) or '<what> <prep> "<table>"' (a failed query).
 */
static int table_exists(struct store *s, const char *table, const char *what, const char *prep,
                        bool *exists, struct base_err *err)
{
    const char *params[1];
    struct sql q;
    PGresult *res = NULL;
    int rc;

    sql_init(&q, s);
    sql_target(&q, table);
    if (q.rc != BASE_OK) {
        rc = sql_fail(&q, err, what);
        goto out;
    }
    params[0] = q.b.data;
    rc = store_query(s, &res, PGRES_TUPLES_OK, "SELECT to_regclass($1) IS NOT NULL", 1, params, err,
                     "%s %s \"%s\"", what, prep, table);
    if (rc == BASE_OK)
        *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
out:
    PQclear(res);
    base_buf_free(&q.b);
    return rc;
}

int store_parent_ids(struct store *s, const char *table, bool have_after, int64_t after,
                     const char *since_mark, int max, int64_t *ids, int *n, struct base_err *err)
{
    char after_s[32], max_s[32];
    const char *params[3];
    struct sql q;
    PGresult *res = NULL;
    bool exists;
    int rc;

    *n = 0;
    sql_init(&q, s);
    rc = table_exists(s, table, "could not read parent ids", "from", &exists, err);
    if (rc < 0)
        goto out;
    if (!exists) {
        /* The parent job has never run: no parents yet. */
        base_log_warning("table %s.%s does not exist yet: no parents to read", s->schema, table);
        goto out;
    }
    sql_puts(&q, "SELECT id FROM ");
    sql_target(&q, table);
    sql_puts(&q, " WHERE ($1::bigint IS NULL OR id > $1::bigint) AND ($3::timestamptz IS NULL "
                 "OR synced_at > $3::timestamptz) ORDER BY id LIMIT $2::int");
    if (q.rc != BASE_OK) {
        rc = sql_fail(&q, err, "could not read parent ids");
        goto out;
    }
    snprintf(after_s, sizeof(after_s), "%" PRId64, after);
    snprintf(max_s, sizeof(max_s), "%d", max);
    params[0] = have_after ? after_s : NULL;
    params[1] = max_s;
    params[2] = since_mark;
    rc = store_query(s, &res, PGRES_TUPLES_OK, q.b.data, 3, params, err,
                     "could not read parent ids from \"%s\"", table);
    if (rc < 0)
        goto out;
    for (int i = 0; i < PQntuples(res) && i < max; i++) {
        rc = base_parse_int64(PQgetvalue(res, i, 0), &ids[i]);
        if (rc < 0) {
            rc = base_err_set(err, BASE_EDB, "parent table \"%s\" has a non-integer id", table);
            goto out;
        }
        *n = i + 1;
    }
out:
    PQclear(res);
    base_buf_free(&q.b);
    return rc;
}

int store_parent_mark(struct store *s, const char *table, int early_s, char *mark, size_t n,
                      struct base_err *err)
{
    char early[16];
    const char *params[1];
    struct sql q;
    PGresult *res = NULL;
    bool exists;
    int rc;

    sql_init(&q, s);
    /* No table yet, or no rows: every row to come is after the mark. */
    rc = table_exists(s, table, "could not read the parents' mark", "of", &exists, err);
    if (rc < 0)
        goto out;
    if (exists) {
        snprintf(early, sizeof(early), "%d", early_s);
        params[0] = early;
        sql_puts(&q, "SELECT COALESCE(max(synced_at) - make_interval(secs => $1::int), "
                     "'-infinity')::text FROM ");
        sql_target(&q, table);
        if (q.rc != BASE_OK) {
            rc = sql_fail(&q, err, "could not read the parents' mark");
            goto out;
        }
        rc = store_query(s, &res, PGRES_TUPLES_OK, q.b.data, 1, params, err,
                         "could not read the parents' mark of \"%s\"", table);
        if (rc < 0)
            goto out;
    }
    if (base_snprintf(mark, n, "%s",
                      res == NULL || PQgetisnull(res, 0, 0) ? "-infinity" : PQgetvalue(res, 0, 0)) <
            0 ||
        strpbrk(mark, "\"\\") != NULL)
        rc = base_err_set(err, BASE_EDB,
                          "could not read the parents' mark of \"%s\": unexpected value", table);
out:
    PQclear(res);
    base_buf_free(&q.b);
    return rc;
}
