/*
 * evolve.c: a job's table follows its job file (store_evolve_table, see store.h). The table
 * is evolved from its own data jsonb column, never from the API.
 *
 * Words used here (beyond store.h):
 *   shape     what a job's table is made of: table, id path and type, parent column and the
 *             columns (name, path, SQL type). The recorded shape is the one keapsync.jobs
 *             holds; the wanted shape is the job's definition now.
 *   actual    the table's columns as the catalog has them (name, format_type).
 *   change    one difference to apply: a column added, refilled, retyped, kept or dropped.
 *   fill      UPDATE ... SET col = <value over data>: what an added or refilled column gets.
 *   value     the SQL expression of a column's converted value over data
 *             (keapsync.map_<type>(<path>)); path the expression of the raw jsonb value.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values and ids quoted in a refusal are cut to this many bytes. */
#define EVOLVE_QUOTE_MAX 64
/* A recorded shape larger than this is refused (a job has at most a few hundred columns). */
#define EVOLVE_MAX_SHAPE (1u << 20)

/* format_type() of each column type, as the catalog reports what map_type_sql created. */
static const char *const catalog_type[] = {
    [MAP_TEXT] = "text",
    [MAP_BIGINT] = "bigint",
    [MAP_DOUBLE] = "double precision",
    [MAP_NUMERIC] = "numeric",
    [MAP_BOOLEAN] = "boolean",
    [MAP_TIMESTAMPTZ] = "timestamp with time zone",
    [MAP_DATE] = "date",
    [MAP_JSONB] = "jsonb",
};

/* The conversion function of each type (sql/0002_job_shapes.sql). */
static const char *const map_function[] = {
    [MAP_TEXT] = "keapsync.map_text",       [MAP_BIGINT] = "keapsync.map_bigint",
    [MAP_DOUBLE] = "keapsync.map_double",   [MAP_NUMERIC] = "keapsync.map_numeric",
    [MAP_BOOLEAN] = "keapsync.map_boolean", [MAP_TIMESTAMPTZ] = "keapsync.map_timestamptz",
    [MAP_DATE] = "keapsync.map_date",       [MAP_JSONB] = "keapsync.map_jsonb",
};

static bool valid_type(enum map_type t)
{
    return (int)t >= MAP_TEXT && (int)t <= MAP_JSONB;
}

/* ---- expressions ------------------------------------------------------------------------ */

/* Appends s as an SQL string literal, right whatever standard_conforming_strings says. */
static int put_literal(struct base_buf *out, const char *s)
{
    bool backslash = strchr(s, '\\') != NULL;
    int rc = base_buf_puts(out, backslash ? "E'" : "'");

    for (const char *p = s; *p != '\0' && rc == BASE_OK; p++) {
        if (*p == '\'')
            rc = base_buf_puts(out, "''");
        else if (*p == '\\')
            rc = base_buf_puts(out, "\\\\");
        else
            rc = base_buf_append(out, p, 1);
    }
    if (rc == BASE_OK)
        rc = base_buf_puts(out, "'");
    return rc;
}

/* The path of col up to (not including) part n: data -> 'a' -> 0 ... */
static int put_path(struct base_buf *out, const struct map_column *col, int n)
{
    const char *sel, *eq;
    char key[256], num[40];
    double d;
    int rc;

    if (n == 0)
        return base_buf_puts(out, "data");
    n--;
    if (col->index[n] == MAP_PART_MATCH) {
        /* keapsync.json_select(<path>, 'key', 'value', number or NULL), as element_matches:
         * the value as a number only when it reads as one. */
        sel = col->parts[n];
        eq = strchr(sel, '=');
        if (eq == NULL || (size_t)(eq - sel) >= sizeof(key))
            return BASE_EINVAL;
        memcpy(key, sel, (size_t)(eq - sel));
        key[eq - sel] = '\0';
        if (base_parse_double(eq + 1, &d) == BASE_OK)
            snprintf(num, sizeof(num), "'%.17g'::float8", d);
        else
            snprintf(num, sizeof(num), "NULL");
        rc = base_buf_puts(out, "keapsync.json_select(");
        if (rc == BASE_OK)
            rc = put_path(out, col, n);
        if (rc == BASE_OK)
            rc = base_buf_puts(out, ", ");
        if (rc == BASE_OK)
            rc = put_literal(out, key);
        if (rc == BASE_OK)
            rc = base_buf_puts(out, ", ");
        if (rc == BASE_OK)
            rc = put_literal(out, eq + 1);
        if (rc == BASE_OK)
            rc = base_buf_printf(out, ", %s)", num);
        return rc;
    }
    /* jsonb's -> is NULL for a key of a non-object and an index of a non-array, as in
     * map_lookup. */
    rc = put_path(out, col, n);
    if (rc == BASE_OK && col->index[n] >= 0)
        rc = base_buf_printf(out, " -> %d", col->index[n]);
    else if (rc == BASE_OK) {
        rc = base_buf_puts(out, " -> ");
        if (rc == BASE_OK)
            rc = put_literal(out, col->parts[n]);
    }
    return rc;
}

static int expr_fail(struct base_err *err, int rc, const struct map_column *col)
{
    return base_err_set(err, rc, "could not write the SQL expression of column \"%s\": %s",
                        col && col->name ? col->name : "?", base_strerror(rc));
}

int store_evolve_sql_path(const struct map_column *col, struct base_buf *out, struct base_err *err)
{
    size_t len0;
    int rc;

    if (col == NULL || out == NULL || col->nparts <= 0 || col->nparts > MAP_MAX_PATH_PARTS)
        return expr_fail(err, BASE_EINVAL, col);
    len0 = out->len;
    rc = base_buf_puts(out, "(");
    if (rc == BASE_OK)
        rc = put_path(out, col, col->nparts);
    if (rc == BASE_OK)
        rc = base_buf_puts(out, ")");
    if (rc < 0) {
        out->len = len0;
        if (out->data != NULL)
            out->data[len0] = '\0';
        return expr_fail(err, rc, col);
    }
    return BASE_OK;
}

int store_evolve_sql_value(const struct map_column *col, struct base_buf *out, struct base_err *err)
{
    size_t len0 = out != NULL ? out->len : 0;
    int rc;

    if (col == NULL || out == NULL || !valid_type(col->type))
        return expr_fail(err, BASE_EINVAL, col);
    rc = base_buf_printf(out, "%s(", map_function[col->type]);
    if (rc < 0)
        return expr_fail(err, rc, col);
    rc = store_evolve_sql_path(col, out, err);
    if (rc == BASE_OK)
        rc = base_buf_puts(out, ")");
    if (rc < 0) {
        out->len = len0;
        if (out->data != NULL)
            out->data[len0] = '\0';
        return expr_fail(err, rc, col);
    }
    return BASE_OK;
}

/* ---- shapes ----------------------------------------------------------------------------- */

struct shape_col {
    char *name;
    char *path;
    enum map_type type;
};

struct shape {
    char *table;
    char *id_path;
    enum map_type id_type;
    char *parent_col; /* NULL unless a child table */
    struct shape_col *cols;
    size_t ncols;
};

static void shape_free(struct shape *sh)
{
    if (sh == NULL)
        return;
    for (size_t i = 0; i < sh->ncols; i++) {
        free(sh->cols[i].name);
        free(sh->cols[i].path);
    }
    free(sh->cols);
    free(sh->table);
    free(sh->id_path);
    free(sh->parent_col);
    free(sh);
}

static int type_from_sql(const char *name, enum map_type *out)
{
    for (int t = MAP_TEXT; t <= MAP_JSONB; t++) {
        if (name != NULL && strcmp(name, map_type_sql((enum map_type)t)) == 0) {
            *out = (enum map_type)t;
            return BASE_OK;
        }
    }
    return BASE_EINVAL;
}

/* A string member of o, copied; *out NULL when it is JSON null and null_ok. */
static int dup_member(const cJSON *o, const char *key, bool null_ok, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (null_ok && (v == NULL || cJSON_IsNull(v))) {
        *out = NULL;
        return BASE_OK;
    }
    if (!cJSON_IsString(v))
        return BASE_EINVAL;
    *out = base_strdup(v->valuestring);
    return *out != NULL ? BASE_OK : BASE_ENOMEM;
}

/* Parses a recorded shape (JSON text). BASE_EINVAL when it is not one. */
static int shape_parse(const char *text, struct shape **out)
{
    struct shape *sh;
    cJSON *root, *id, *cols, *c;
    char *type = NULL;
    size_t n = 0;
    int rc;

    root = cJSON_Parse(text);
    if (root == NULL)
        return BASE_EINVAL;
    sh = calloc(1, sizeof(*sh));
    if (sh == NULL) {
        rc = BASE_ENOMEM;
        goto out;
    }
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    cols = cJSON_GetObjectItemCaseSensitive(root, "columns");
    rc = dup_member(root, "table", false, &sh->table);
    if (rc == BASE_OK)
        rc = dup_member(root, "parent_col", true, &sh->parent_col);
    if (rc == BASE_OK)
        rc = dup_member(id, "path", false, &sh->id_path);
    if (rc == BASE_OK)
        rc = dup_member(id, "type", false, &type);
    if (rc == BASE_OK)
        rc = type_from_sql(type, &sh->id_type);
    free(type);
    type = NULL;
    if (rc == BASE_OK && !cJSON_IsArray(cols))
        rc = BASE_EINVAL;
    if (rc < 0)
        goto out;
    n = (size_t)cJSON_GetArraySize(cols);
    sh->cols = calloc(n > 0 ? n : 1, sizeof(*sh->cols));
    if (sh->cols == NULL) {
        rc = BASE_ENOMEM;
        goto out;
    }
    cJSON_ArrayForEach(c, cols)
    {
        struct shape_col *sc = &sh->cols[sh->ncols++];

        rc = dup_member(c, "name", false, &sc->name);
        if (rc == BASE_OK)
            rc = dup_member(c, "path", false, &sc->path);
        if (rc == BASE_OK)
            rc = dup_member(c, "type", false, &type);
        if (rc == BASE_OK)
            rc = type_from_sql(type, &sc->type);
        free(type);
        type = NULL;
        if (rc < 0)
            goto out;
    }
    *out = sh;
    sh = NULL;
out:
    shape_free(sh);
    cJSON_Delete(root);
    return rc;
}

/* The wanted shape of t as JSON text (malloc'd with cJSON_malloc: free with cJSON_free). */
static int shape_print(const struct store_table *t, char **out)
{
    const struct map_spec *m = t->map;
    cJSON *root = cJSON_CreateObject(), *id, *cols, *c;
    int rc = BASE_ENOMEM;

    if (root == NULL || cJSON_AddStringToObject(root, "table", t->table) == NULL ||
        (id = cJSON_AddObjectToObject(root, "id")) == NULL ||
        cJSON_AddStringToObject(id, "path", m->id.path ? m->id.path : "id") == NULL ||
        cJSON_AddStringToObject(id, "type", map_type_sql(m->id.type)) == NULL ||
        (t->parent_col != NULL ? cJSON_AddStringToObject(root, "parent_col", t->parent_col)
                               : cJSON_AddNullToObject(root, "parent_col")) == NULL ||
        (cols = cJSON_AddArrayToObject(root, "columns")) == NULL)
        goto out;
    for (size_t i = 0; i < m->ncols; i++) {
        c = cJSON_CreateObject();
        if (c == NULL)
            goto out;
        if (!cJSON_AddItemToArray(cols, c)) {
            cJSON_Delete(c);
            goto out;
        }
        if (cJSON_AddStringToObject(c, "name", m->cols[i].name) == NULL ||
            cJSON_AddStringToObject(c, "path", m->cols[i].path) == NULL ||
            cJSON_AddStringToObject(c, "type", map_type_sql(m->cols[i].type)) == NULL)
            goto out;
    }
    *out = cJSON_PrintUnformatted(root);
    rc = *out != NULL ? BASE_OK : BASE_ENOMEM;
out:
    cJSON_Delete(root);
    return rc;
}

static const struct shape_col *shape_find(const struct shape *sh, const char *name)
{
    for (size_t i = 0; sh != NULL && i < sh->ncols; i++)
        if (strcmp(sh->cols[i].name, name) == 0)
            return &sh->cols[i];
    return NULL;
}

/* ---- changes ---------------------------------------------------------------------------- */

enum change_kind {
    CHANGE_ADD,    /* not in the table: added, filled from data */
    CHANGE_BACK,   /* in the table but not in the recorded shape: refilled from data */
    CHANGE_PATH,   /* reads another path: refilled from data */
    CHANGE_TYPE,   /* the table's type is not the job's: rewritten from data */
    CHANGE_KEEP,   /* no longer in the job: kept */
    CHANGE_DROP,   /* no longer in the job: dropped */
    CHANGE_SILENT, /* no longer in the job, kept, and already reported: nothing to say */
};

struct change {
    enum change_kind kind;
    const char *name;             /* the column */
    const struct map_column *col; /* the job's column; NULL for KEEP, DROP and SILENT */
    const char *old_path;         /* PATH and TYPE: the recorded path, or NULL */
    const char *old_type;         /* TYPE: the table's type (format_type) */
};

/* What one call works on; freed by evolve_free. */
struct evolve {
    struct store *s;
    const char *job;
    const struct store_table *t;
    struct shape *rec; /* recorded shape, or NULL */
    PGresult *actual;  /* attname, format_type of <schema>.<table>, or NULL (no table) */
    struct change *changes;
    size_t nchanges;
    bool renamed;
    struct base_buf q;
    char what[192];
};

static void evolve_free(struct evolve *ev)
{
    shape_free(ev->rec);
    PQclear(ev->actual);
    free(ev->changes);
    base_buf_free(&ev->q);
}

/* Appends name as a quoted identifier. */
static int put_ident(struct evolve *ev, const char *name)
{
    char *quoted = PQescapeIdentifier(ev->s->conn, name, strlen(name));
    int rc;

    if (quoted == NULL)
        return BASE_ENOMEM;
    rc = base_buf_puts(&ev->q, quoted);
    PQfreemem(quoted);
    return rc;
}

/* <schema>."<table>" (keap."<table>" by default) */
static int put_target(struct evolve *ev, const char *table)
{
    int rc = base_buf_printf(&ev->q, "%s.", ev->s->schema);

    return rc == BASE_OK ? put_ident(ev, table) : rc;
}

static int build_fail(struct evolve *ev, int rc, struct base_err *err)
{
    base_buf_reset(&ev->q);
    return base_err_set(err, rc, "%s: could not build a statement: %s", ev->what,
                        base_strerror(rc));
}

/* Runs the statement in ev->q (no rows), then empties it. */
static int run_q(struct evolve *ev, PGresult **res, ExecStatusType want, struct base_err *err)
{
    int rc = store_query(ev->s, res, want, ev->q.data, 0, NULL, err, "%s", ev->what);

    base_buf_reset(&ev->q);
    return rc;
}

/* Does <schema>.<table> exist? */
static int table_exists(struct evolve *ev, const char *table, bool *exists, struct base_err *err)
{
    PGresult *res = NULL;
    const char *params[1];
    int rc = put_target(ev, table);

    if (rc < 0)
        return build_fail(ev, rc, err);
    params[0] = ev->q.data;
    rc = store_query(ev->s, &res, PGRES_TUPLES_OK, "SELECT to_regclass($1) IS NOT NULL", 1, params,
                     err, "%s", ev->what);
    base_buf_reset(&ev->q);
    if (rc < 0)
        return rc;
    *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return BASE_OK;
}

static int lock(struct evolve *ev, const char *cls, const char *name, struct base_err *err)
{
    const char *params[1] = {name};
    char sql[96];

    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%s, hashtext($1))", cls);
    return store_query(ev->s, NULL, PGRES_TUPLES_OK, sql, 1, params, err, "%s", ev->what);
}

static int load_recorded(struct evolve *ev, struct base_err *err)
{
    const char *params[1] = {ev->job};
    PGresult *res = NULL;
    int rc;

    rc = store_query(ev->s, &res, PGRES_TUPLES_OK,
                     "SELECT shape::text FROM keapsync.jobs WHERE job = $1", 1, params, err, "%s",
                     ev->what);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1) {
        if ((size_t)PQgetlength(res, 0, 0) > EVOLVE_MAX_SHAPE)
            rc = BASE_ETOOBIG;
        else
            rc = shape_parse(PQgetvalue(res, 0, 0), &ev->rec);
        if (rc == BASE_ENOMEM) {
            base_err_set(err, rc, "%s: out of memory", ev->what);
        } else if (rc < 0) {
            rc = base_err_set(err, BASE_EDB, "%s: the recorded shape of the job is unreadable",
                              ev->what);
            base_err_hint(err,
                          "delete it (DELETE FROM keapsync.jobs WHERE job = '%s') to adopt the "
                          "table as it is",
                          ev->job);
        }
    }
    PQclear(res);
    return rc;
}

static int has_checkpoint(struct evolve *ev, bool *has, struct base_err *err)
{
    const char *params[1] = {ev->job};
    PGresult *res = NULL;
    int rc;

    rc = store_query(ev->s, &res, PGRES_TUPLES_OK,
                     "SELECT 1 FROM keapsync.checkpoints WHERE job = $1", 1, params, err, "%s",
                     ev->what);
    if (rc < 0)
        return rc;
    *has = PQntuples(res) > 0;
    PQclear(res);
    return BASE_OK;
}

/*
 * Indexes of the renamed table named after the old table ("<old>_pkey", "<old>_<col>_idx")
 * are renamed after the new one, so a later table of the old name does not meet them.
 */
static int rename_indexes(struct evolve *ev, const char *from, const char *to, struct base_err *err)
{
    PGresult *res = NULL;
    const char *params[2];
    size_t flen = strlen(from);
    int rc;

    rc = put_target(ev, to);
    if (rc < 0)
        return build_fail(ev, rc, err);
    params[0] = ev->q.data;
    rc = store_query(ev->s, &res, PGRES_TUPLES_OK,
                     "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                     "WHERE i.indrelid = $1::regclass ORDER BY 1",
                     1, params, err, "%s", ev->what);
    base_buf_reset(&ev->q);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(res) && rc == BASE_OK; i++) {
        const char *name = PQgetvalue(res, i, 0);
        char renamed[STORE_MAX_IDENT + 1];
        bool taken = false;

        if (strncmp(name, from, flen) != 0 || name[flen] != '_' ||
            base_snprintf(renamed, sizeof(renamed), "%s%s", to, name + flen) < 0)
            continue;
        rc = table_exists(ev, renamed, &taken, err);
        if (rc < 0 || taken)
            continue;
        rc = base_buf_puts(&ev->q, "ALTER INDEX ");
        if (rc == BASE_OK)
            rc = put_target(ev, name);
        if (rc == BASE_OK)
            rc = base_buf_puts(&ev->q, " RENAME TO ");
        if (rc == BASE_OK)
            rc = put_ident(ev, renamed);
        rc = rc < 0 ? build_fail(ev, rc, err) : run_q(ev, NULL, PGRES_COMMAND_OK, err);
    }
    PQclear(res);
    return rc;
}

/* The recorded table differs from t's: moves it, accepts, or refuses (BASE_ECONFIG). */
static int evolve_rename(struct evolve *ev, struct base_err *err)
{
    const char *from = ev->rec->table, *to = ev->t->table;
    bool from_exists = false, to_exists = false, ckpt = false;
    int rc;

    rc = table_exists(ev, from, &from_exists, err);
    if (rc == BASE_OK)
        rc = table_exists(ev, to, &to_exists, err);
    if (rc < 0)
        return rc;
    if (from_exists && !to_exists) {
        rc = base_buf_puts(&ev->q, "ALTER TABLE ");
        if (rc == BASE_OK)
            rc = put_target(ev, from);
        if (rc == BASE_OK)
            rc = base_buf_puts(&ev->q, " RENAME TO ");
        if (rc == BASE_OK)
            rc = put_ident(ev, to);
        rc = rc < 0 ? build_fail(ev, rc, err) : run_q(ev, NULL, PGRES_COMMAND_OK, err);
        if (rc == BASE_OK)
            rc = rename_indexes(ev, from, to, err);
        if (rc == BASE_OK)
            ev->renamed = true;
        return rc;
    }
    if (from_exists) {
        base_err_set(err, BASE_ECONFIG,
                     "cannot move table \"%s\" of job \"%s\" to \"%s\": table %s.%s already "
                     "exists",
                     from, ev->job, to, ev->s->schema, to);
        base_err_hint(err,
                      "drop or rename %s.%s and run again, or set the job's \"table\" back to "
                      "\"%s\"",
                      ev->s->schema, to, from);
        return BASE_ECONFIG;
    }
    /* Nothing to move: harmless unless the checkpoint would skip what the old table held. */
    rc = has_checkpoint(ev, &ckpt, err);
    if (rc < 0 || !ckpt)
        return rc;
    base_err_set(err, BASE_ECONFIG,
                 "cannot move table \"%s\" of job \"%s\" to \"%s\": table %s.%s does not exist",
                 from, ev->job, to, ev->s->schema, from);
    base_err_hint(err,
                  "to sync %s.%s afresh, reset the job's checkpoint (DELETE FROM "
                  "keapsync.checkpoints WHERE job = '%s') and run again",
                  ev->s->schema, to, ev->job);
    return BASE_ECONFIG;
}

/* The catalog type of column name in the actual table, or NULL. */
static const char *actual_type(const struct evolve *ev, const char *name)
{
    for (int i = 0; ev->actual != NULL && i < PQntuples(ev->actual); i++)
        if (strcmp(PQgetvalue(ev->actual, i, 0), name) == 0)
            return PQgetvalue(ev->actual, i, 1);
    return NULL;
}

static int load_actual(struct evolve *ev, struct base_err *err)
{
    const char *params[1];
    int rc = put_target(ev, ev->t->table);

    if (rc < 0)
        return build_fail(ev, rc, err);
    params[0] = ev->q.data;
    rc = store_query(ev->s, &ev->actual, PGRES_TUPLES_OK,
                     "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                     "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped "
                     "ORDER BY attnum",
                     1, params, err, "%s", ev->what);
    base_buf_reset(&ev->q);
    return rc;
}

/* The id and the parent column cannot change under a table's rows: refused. */
static int check_key(struct evolve *ev, struct base_err *err)
{
    const struct store_table *t = ev->t;
    const struct map_spec *m = t->map;
    const char *id_type = actual_type(ev, "id");
    const char *id_path = m->id.path ? m->id.path : "id";
    const char *why = NULL;

    if (ev->rec != NULL && strcmp(ev->rec->id_path, id_path) != 0)
        why = "the id path";
    else if ((ev->rec != NULL && ev->rec->id_type != m->id.type) ||
             (id_type != NULL && strcmp(id_type, catalog_type[m->id.type]) != 0))
        why = "the id type";
    else if (ev->rec != NULL &&
             ((ev->rec->parent_col == NULL) != (t->parent_col == NULL) ||
              (t->parent_col != NULL && strcmp(ev->rec->parent_col, t->parent_col) != 0)))
        why = "the parent column";
    else if (t->parent_col != NULL && actual_type(ev, t->parent_col) == NULL)
        why = "the parent column";
    if (why == NULL)
        return BASE_OK;
    base_err_set(err, BASE_ECONFIG, "cannot change %s of job \"%s\": %s.%s is keyed by it", why,
                 ev->job, ev->s->schema, t->table);
    base_err_hint(err,
                  "set it back, or move %s.%s away and reset the job's checkpoint (DELETE FROM "
                  "keapsync.checkpoints WHERE job = '%s') to sync it afresh",
                  ev->s->schema, t->table, ev->job);
    return BASE_ECONFIG;
}

static bool reserved(const struct store_table *t, const char *name)
{
    return strcmp(name, "id") == 0 || strcmp(name, "data") == 0 || strcmp(name, "synced_at") == 0 ||
           strcmp(name, "deleted_at") == 0 ||
           (t->parent_col != NULL && strcmp(name, t->parent_col) == 0);
}

static bool in_job(const struct map_spec *m, const char *name)
{
    for (size_t i = 0; i < m->ncols; i++)
        if (strcmp(m->cols[i].name, name) == 0)
            return true;
    return false;
}

/* Compares the wanted, recorded and actual shapes into ev->changes. */
static int plan(struct evolve *ev, const struct store_evolve_options *opt, struct base_err *err)
{
    const struct map_spec *m = ev->t->map;
    size_t cap = m->ncols + (size_t)PQntuples(ev->actual);

    ev->changes = calloc(cap > 0 ? cap : 1, sizeof(*ev->changes));
    if (ev->changes == NULL)
        return base_err_set(err, BASE_ENOMEM, "%s: out of memory", ev->what);
    for (size_t i = 0; i < m->ncols; i++) {
        const struct map_column *c = &m->cols[i];
        const char *have = actual_type(ev, c->name);
        const struct shape_col *r = shape_find(ev->rec, c->name);
        struct change ch = {.name = c->name, .col = c};

        if (have == NULL) {
            ch.kind = CHANGE_ADD;
        } else if (strcmp(have, catalog_type[c->type]) != 0) {
            ch.kind = CHANGE_TYPE;
            ch.old_type = have;
            ch.old_path = r != NULL && strcmp(r->path, c->path) != 0 ? r->path : NULL;
        } else if (ev->rec != NULL && r == NULL) {
            ch.kind = CHANGE_BACK;
        } else if (r != NULL && strcmp(r->path, c->path) != 0) {
            ch.kind = CHANGE_PATH;
            ch.old_path = r->path;
        } else {
            continue;
        }
        ev->changes[ev->nchanges++] = ch;
    }
    for (int i = 0; i < PQntuples(ev->actual); i++) {
        const char *name = PQgetvalue(ev->actual, i, 0);
        struct change ch = {.name = name};

        if (reserved(ev->t, name) || in_job(m, name))
            continue;
        if (opt->drop_columns)
            ch.kind = CHANGE_DROP;
        else if (ev->rec == NULL || shape_find(ev->rec, name) != NULL)
            ch.kind = CHANGE_KEEP;
        else
            ch.kind = CHANGE_SILENT;
        ev->changes[ev->nchanges++] = ch;
    }
    return BASE_OK;
}

/*
 * Copies s into out (EVOLVE_QUOTE_MAX + 4 bytes) for a one-line message: control characters
 * become spaces, and a longer s is cut at a character boundary and ends in "...".
 */
static void quote_cut(const char *s, char *out)
{
    size_t n = strlen(s), i;

    if (n > EVOLVE_QUOTE_MAX) {
        n = EVOLVE_QUOTE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* s[n] continues a UTF-8 sequence: cut before its lead byte */
    }
    for (i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    if (s[n] != '\0') {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* Refuses a type change when a value in data does not convert to the new type. */
static int check_convert(struct evolve *ev, const struct change *ch, struct base_err *err)
{
    const struct map_column *c = ch->col;
    PGresult *res = NULL;
    int rc;

    rc = base_buf_puts(&ev->q, "SELECT id::text, CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> "
                               "'{}' ELSE v::text END FROM (SELECT id, ");
    if (rc == BASE_OK)
        rc = store_evolve_sql_path(c, &ev->q, err);
    if (rc == BASE_OK)
        rc = base_buf_puts(&ev->q, " AS v FROM ");
    if (rc == BASE_OK)
        rc = put_target(ev, ev->t->table);
    if (rc == BASE_OK)
        rc = base_buf_printf(&ev->q,
                             ") AS r WHERE jsonb_typeof(v) <> 'null' AND %s(v) IS NULL "
                             "ORDER BY r.id LIMIT 1",
                             map_function[c->type]);
    if (rc < 0)
        return build_fail(ev, rc, err);
    rc = run_q(ev, &res, PGRES_TUPLES_OK, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) > 0) {
        char value[EVOLVE_QUOTE_MAX + 4], id[EVOLVE_QUOTE_MAX + 4];

        quote_cut(PQgetvalue(res, 0, 1), value);
        quote_cut(PQgetvalue(res, 0, 0), id);
        base_err_set(err, BASE_ECONFIG,
                     "cannot change column \"%s\" of job \"%s\" to %s: value \"%s\" of record %s "
                     "does not convert",
                     c->name, ev->job, map_type_sql(c->type), value, id);
        base_err_hint(err,
                      "keep the column %s in the job, or choose a type that every stored value "
                      "of \"%s\" converts to",
                      ch->old_type, c->path);
        rc = BASE_ECONFIG;
    }
    PQclear(res);
    return rc;
}

/* One ALTER TABLE for every added, retyped and dropped column; nothing when there is none. */
static int alter(struct evolve *ev, struct base_err *err)
{
    int n = 0, rc = BASE_OK;

    for (size_t i = 0; i < ev->nchanges && rc == BASE_OK; i++) {
        const struct change *ch = &ev->changes[i];

        if (ch->kind != CHANGE_ADD && ch->kind != CHANGE_TYPE && ch->kind != CHANGE_DROP)
            continue;
        rc = base_buf_puts(&ev->q, n++ == 0 ? "ALTER TABLE " : ", ");
        if (rc == BASE_OK && n == 1)
            rc = put_target(ev, ev->t->table);
        if (rc < 0)
            break;
        switch (ch->kind) {
        case CHANGE_ADD:
            rc = base_buf_puts(&ev->q, " ADD COLUMN ");
            if (rc == BASE_OK)
                rc = put_ident(ev, ch->name);
            if (rc == BASE_OK)
                rc = base_buf_printf(&ev->q, " %s", map_type_sql(ch->col->type));
            break;
        case CHANGE_TYPE:
            rc = base_buf_puts(&ev->q, " ALTER COLUMN ");
            if (rc == BASE_OK)
                rc = put_ident(ev, ch->name);
            if (rc == BASE_OK)
                rc = base_buf_printf(&ev->q, " TYPE %s USING ", map_type_sql(ch->col->type));
            if (rc == BASE_OK)
                rc = store_evolve_sql_value(ch->col, &ev->q, err);
            break;
        default:
            rc = base_buf_puts(&ev->q, " DROP COLUMN ");
            if (rc == BASE_OK)
                rc = put_ident(ev, ch->name);
            break;
        }
    }
    if (rc < 0)
        return build_fail(ev, rc, err);
    return n > 0 ? run_q(ev, NULL, PGRES_COMMAND_OK, err) : BASE_OK;
}

static bool is_fill(const struct change *ch)
{
    return ch->kind == CHANGE_ADD || ch->kind == CHANGE_BACK || ch->kind == CHANGE_PATH;
}

/* One UPDATE for every added or refilled column, writing only the rows that change. */
static int fill(struct evolve *ev, struct base_err *err)
{
    int n = 0, rc = BASE_OK;

    for (size_t i = 0; i < ev->nchanges && rc == BASE_OK; i++) {
        const struct change *ch = &ev->changes[i];

        if (!is_fill(ch))
            continue;
        rc = base_buf_puts(&ev->q, n++ == 0 ? "UPDATE " : ", ");
        if (rc == BASE_OK && n == 1)
            rc = put_target(ev, ev->t->table);
        if (rc == BASE_OK && n == 1)
            rc = base_buf_puts(&ev->q, " SET ");
        if (rc == BASE_OK)
            rc = put_ident(ev, ch->name);
        if (rc == BASE_OK)
            rc = base_buf_puts(&ev->q, " = ");
        if (rc == BASE_OK)
            rc = store_evolve_sql_value(ch->col, &ev->q, err);
    }
    if (rc < 0)
        return build_fail(ev, rc, err);
    if (n == 0)
        return BASE_OK;
    n = 0;
    for (size_t i = 0; i < ev->nchanges && rc == BASE_OK; i++) {
        const struct change *ch = &ev->changes[i];

        if (!is_fill(ch))
            continue;
        rc = base_buf_puts(&ev->q, n++ == 0 ? " WHERE " : " OR ");
        if (rc == BASE_OK)
            rc = put_ident(ev, ch->name);
        if (rc == BASE_OK)
            rc = base_buf_puts(&ev->q, " IS DISTINCT FROM ");
        if (rc == BASE_OK)
            rc = store_evolve_sql_value(ch->col, &ev->q, err);
    }
    if (rc < 0)
        return build_fail(ev, rc, err);
    return run_q(ev, NULL, PGRES_COMMAND_OK, err);
}

static int record_shape(struct evolve *ev, struct base_err *err)
{
    const char *params[2];
    char *text = NULL;
    int rc;

    rc = shape_print(ev->t, &text);
    if (rc < 0)
        return base_err_set(err, rc, "%s: out of memory", ev->what);
    params[0] = ev->job;
    params[1] = text;
    rc = store_query(ev->s, NULL, PGRES_COMMAND_OK,
                     "INSERT INTO keapsync.jobs (job, shape) VALUES ($1, $2::jsonb) "
                     "ON CONFLICT (job) DO UPDATE SET shape = EXCLUDED.shape, updated_at = now() "
                     "WHERE keapsync.jobs.shape IS DISTINCT FROM EXCLUDED.shape",
                     2, params, err, "%s", ev->what);
    cJSON_free(text);
    return rc;
}

/* One info line per applied change. */
static void log_changes(const struct evolve *ev)
{
    const char *job = ev->job, *sch = ev->s->schema;
    char table[160];

    snprintf(table, sizeof(table), "%s.%s", sch, ev->t->table);
    if (ev->renamed)
        base_log_info("job \"%s\": table %s.%s renamed to %s", job, sch, ev->rec->table, table);
    for (size_t i = 0; i < ev->nchanges; i++) {
        const struct change *ch = &ev->changes[i];
        const char *type = ch->col != NULL ? map_type_sql(ch->col->type) : NULL;

        switch (ch->kind) {
        case CHANGE_ADD:
            base_log_info("job \"%s\": column \"%s\" (%s, path \"%s\") added to %s and "
                          "filled from data",
                          job, ch->name, type, ch->col->path, table);
            break;
        case CHANGE_BACK:
            base_log_info("job \"%s\": column \"%s\" of %s is in the job again (path "
                          "\"%s\"); refilled from data",
                          job, ch->name, table, ch->col->path);
            break;
        case CHANGE_PATH:
            base_log_info("job \"%s\": column \"%s\" of %s now reads \"%s\" (was \"%s\"); "
                          "refilled from data",
                          job, ch->name, table, ch->col->path, ch->old_path);
            break;
        case CHANGE_TYPE:
            if (ch->old_path != NULL)
                base_log_info("job \"%s\": column \"%s\" of %s changed from %s to %s and "
                              "now reads \"%s\" (was \"%s\"); rewritten from data",
                              job, ch->name, table, ch->old_type, type, ch->col->path,
                              ch->old_path);
            else
                base_log_info("job \"%s\": column \"%s\" of %s changed from %s to %s; "
                              "rewritten from data",
                              job, ch->name, table, ch->old_type, type);
            break;
        case CHANGE_KEEP:
            base_log_info("job \"%s\": column \"%s\" of %s is no longer in the job; kept "
                          "(run with --drop-columns to drop it)",
                          job, ch->name, table);
            break;
        case CHANGE_DROP:
            base_log_info("job \"%s\": column \"%s\" of %s is no longer in the job; "
                          "dropped",
                          job, ch->name, table);
            break;
        case CHANGE_SILENT:
            break;
        }
    }
}

static void count_changes(const struct evolve *ev, struct store_evolve_result *r)
{
    memset(r, 0, sizeof(*r));
    r->renamed = ev->renamed;
    for (size_t i = 0; i < ev->nchanges; i++) {
        switch (ev->changes[i].kind) {
        case CHANGE_ADD:
        case CHANGE_BACK:
            r->added++;
            break;
        case CHANGE_PATH:
            r->refilled++;
            break;
        case CHANGE_TYPE:
            r->retyped++;
            break;
        case CHANGE_KEEP:
            r->kept++;
            break;
        case CHANGE_DROP:
            r->dropped++;
            break;
        case CHANGE_SILENT:
            break;
        }
    }
}

int store_evolve_table(struct store *s, const char *job, const struct store_table *t,
                       const struct store_evolve_options *opt, struct store_evolve_result *res,
                       struct base_err *err)
{
    static const struct store_evolve_options defaults = {false, false};
    struct evolve ev = {.s = s, .job = job, .t = t};
    bool exists = false;
    int rc;

    base_buf_init(&ev.q, STORE_MAX_SQL);
    if (opt == NULL)
        opt = &defaults;
    if (s == NULL || job == NULL || job[0] == '\0')
        return base_err_set(err, BASE_EINVAL, "could not evolve a table: no store or job");
    rc = store_check_table(t, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < t->map->ncols; i++)
        if (t->map->cols[i].nparts <= 0 || t->map->cols[i].path == NULL)
            return base_err_set(err, BASE_EINVAL,
                                "could not evolve the table of job \"%s\": column \"%s\" has no "
                                "compiled path",
                                job, t->map->cols[i].name);
    snprintf(ev.what, sizeof(ev.what), "could not evolve table %s.%s of job \"%s\"", s->schema,
             t->table, job);

    rc = store_query(s, NULL, PGRES_COMMAND_OK, "BEGIN", 0, NULL, err, "%s", ev.what);
    if (rc == BASE_OK)
        rc = lock(&ev, STORE_JOB_LOCK_CLASS, job, err);
    if (rc == BASE_OK)
        rc = load_recorded(&ev, err);
    if (rc < 0)
        goto out;
    /* Table locks in name order, as store_ensure_table takes one of them. */
    if (ev.rec != NULL && strcmp(ev.rec->table, t->table) != 0) {
        bool first = strcmp(ev.rec->table, t->table) < 0;

        rc = lock(&ev, STORE_DDL_LOCK_CLASS, first ? ev.rec->table : t->table, err);
        if (rc == BASE_OK)
            rc = lock(&ev, STORE_DDL_LOCK_CLASS, first ? t->table : ev.rec->table, err);
        if (rc == BASE_OK)
            rc = evolve_rename(&ev, err);
    } else {
        rc = lock(&ev, STORE_DDL_LOCK_CLASS, t->table, err);
    }
    if (rc == BASE_OK)
        rc = table_exists(&ev, t->table, &exists, err);
    if (rc < 0)
        goto out;
    /* Without a table there is nothing to change: store_ensure_table creates it as the job
     * wants, and only the shape is recorded. A check stops before the first write. */
    if (exists) {
        rc = load_actual(&ev, err);
        if (rc == BASE_OK)
            rc = check_key(&ev, err);
        if (rc == BASE_OK)
            rc = plan(&ev, opt, err);
        for (size_t i = 0; i < ev.nchanges && rc == BASE_OK; i++)
            if (ev.changes[i].kind == CHANGE_TYPE)
                rc = check_convert(&ev, &ev.changes[i], err);
        if (rc == BASE_OK && !opt->check_only)
            rc = alter(&ev, err);
        if (rc == BASE_OK && !opt->check_only)
            rc = fill(&ev, err);
        if (rc < 0)
            goto out;
    }
    rc = record_shape(&ev, err);
    if (rc < 0)
        goto out;
    if (opt->check_only) {
        store_rollback(s);
    } else {
        rc = store_commit(s, err, ev.what);
        if (rc < 0)
            goto out;
        if (ev.renamed)
            store_tcache_forget(s, ev.rec->table);
        store_tcache_forget(s, t->table);
        log_changes(&ev);
    }
    if (res != NULL)
        count_changes(&ev, res);
out:
    if (rc < 0)
        store_rollback(s);
    evolve_free(&ev);
    return rc;
}
