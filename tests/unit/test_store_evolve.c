/*
 * Unit tests for store's evolve against a real, throwaway PostgreSQL (see test_store.c and
 * store_fixture.h): the SQL that reads a column out of data must give what map writes, and a
 * job's table follows its definition (columns added, refilled, retyped, kept or dropped; the
 * table renamed).
 */
#include "store_fixture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_assert.h"

/* ---- evolve: a job's table follows its definition ------------------------------------- */

/* A spec built from "name:path:type" strings, compiled, freed by espec_free. */
struct espec {
    struct map_spec spec;
    struct map_column cols[16];
};

static void espec_init(struct espec *e, const char *id_type, const char *const *defs, size_t n)
{
    memset(e, 0, sizeof(*e));
    ASSERT_LE(n, BASE_ARRAY_SIZE(e->cols));
    e->spec.id.name = base_strdup("id");
    e->spec.id.path = base_strdup("id");
    assert_int_equal(map_type_from_name(id_type, &e->spec.id.type), 0);
    assert_int_equal(map_column_compile(&e->spec.id), 0);
    for (size_t i = 0; i < n; i++) {
        const char *a = strchr(defs[i], ':'), *b = strrchr(defs[i], ':');

        assert_non_null(a);
        assert_true(b > a); /* pointers */
        e->cols[i].name = strndup(defs[i], (size_t)(a - defs[i]));
        e->cols[i].path = strndup(a + 1, (size_t)(b - a - 1));
        assert_non_null(e->cols[i].name);
        assert_non_null(e->cols[i].path);
        assert_int_equal(map_type_from_name(b + 1, &e->cols[i].type), 0);
        assert_int_equal(map_column_compile(&e->cols[i]), 0);
    }
    e->spec.cols = e->cols;
    e->spec.ncols = n;
}

static void espec_free(struct espec *e)
{
    map_column_free(&e->spec.id);
    for (size_t i = 0; i < e->spec.ncols; i++)
        map_column_free(&e->cols[i]);
}

/* Unescapes field n (0-based) of a COPY text line into a malloc'd string; NULL for \N. */
static char *copy_field(const char *line, int n)
{
    const char *p = line, *end;
    char *out, *w;

    for (int i = 0; i < n; i++) {
        p = strchr(p, '\t');
        assert_non_null(p);
        p++;
    }
    end = p + strcspn(p, "\t\n");
    if (end - p == 2 && strncmp(p, "\\N", 2) == 0)
        return NULL;
    out = malloc((size_t)(end - p) + 1);
    assert_non_null(out);
    for (w = out; p < end; p++) {
        if (*p == '\\' && p + 1 < end) {
            p++;
            *w++ = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

static void test_evolve_sql_path(void **state)
{
    static const char *const defs[] = {
        "a:given_name:text",
        "b:email_addresses.0.email:text",
        "c:custom_fields.[id=18].content:text",
        "d:o'k.a\\b:text",
        "e:list.[name=x y].v.2:jsonb",
    };
    struct espec e;
    struct base_buf b;
    struct base_err err;
    char want[256], num[40];

    (void)state;
    espec_init(&e, "bigint", defs, BASE_ARRAY_SIZE(defs));
    base_buf_init(&b, 4096);
    assert_int_equal(store_evolve_sql_path(&e.cols[0], &b, &err), 0);
    assert_string_equal(b.data, "(data -> 'given_name')");
    base_buf_reset(&b);
    assert_int_equal(store_evolve_sql_path(&e.cols[1], &b, &err), 0);
    assert_string_equal(b.data, "(data -> 'email_addresses' -> 0 -> 'email')");
    base_buf_reset(&b);
    assert_int_equal(store_evolve_sql_path(&e.cols[2], &b, &err), 0);
    snprintf(num, sizeof(num), "%.17g", 18.0);
    snprintf(want, sizeof(want),
             "(keapsync.json_select(data -> 'custom_fields', 'id', '18', '%s'::float8) -> "
             "'content')",
             num);
    assert_string_equal(b.data, want);
    base_buf_reset(&b);
    /* Quotes doubled; a backslash makes an E'' literal with it doubled. */
    assert_int_equal(store_evolve_sql_path(&e.cols[3], &b, &err), 0);
    assert_string_equal(b.data, "(data -> 'o''k' -> E'a\\\\b')");
    base_buf_reset(&b);
    /* A selector value that is no number compares as a string only. */
    assert_int_equal(store_evolve_sql_path(&e.cols[4], &b, &err), 0);
    assert_string_equal(b.data,
                        "(keapsync.json_select(data -> 'list', 'name', 'x y', NULL) -> 'v' -> 2)");
    base_buf_reset(&b);
    assert_int_equal(store_evolve_sql_value(&e.cols[1], &b, &err), 0);
    assert_string_equal(b.data, "keapsync.map_text((data -> 'email_addresses' -> 0 -> 'email'))");
    /* A full buffer is an error and leaves it as it was. */
    {
        struct base_buf tiny;

        base_buf_init(&tiny, 16);
        assert_int_equal(base_buf_puts(&tiny, "x"), 0);
        assert_int_equal(store_evolve_sql_value(&e.cols[2], &tiny, &err), BASE_ETOOBIG);
        assert_string_equal(tiny.data, "x");
        base_buf_free(&tiny);
    }
    base_buf_free(&b);
    espec_free(&e);
}

/*
 * The SQL of every type over data gives what map writes, value by value: each record below
 * is mapped by map_record_to_copy_raw and the same value is read by the column's expression
 * from the record as jsonb.
 */
static void test_evolve_sql_matches_map(void **state)
{
    static const char *const records[] = {
        "{\"id\": 1, \"v\": \"hello\", \"o\": {\"k\": [1, {\"x\": \"deep\"}]}}",
        "{\"id\": 2, \"v\": 42}",
        "{\"id\": 3, \"v\": -17.25}",
        "{\"id\": 4, \"v\": 0.1}",
        "{\"id\": 5, \"v\": 0.1234567890123456}",
        "{\"id\": 6, \"v\": 1e20}",
        "{\"id\": 7, \"v\": 1e400}",
        "{\"id\": 8, \"v\": 9223372036854775807}",
        "{\"id\": 9, \"v\": \"9223372036854775807\"}",
        "{\"id\": 10, \"v\": \"9223372036854775808\"}",
        "{\"id\": 11, \"v\": \"-0042\"}",
        "{\"id\": 12, \"v\": true}",
        "{\"id\": 13, \"v\": false}",
        "{\"id\": 14, \"v\": 1}",
        "{\"id\": 15, \"v\": 0}",
        "{\"id\": 16, \"v\": null}",
        "{\"id\": 17, \"v\": [1, 2]}",
        "{\"id\": 18, \"v\": {\"a\": 1}}",
        "{\"id\": 19, \"v\": \"2024-11-07T20:35:13.000+0000\"}",
        "{\"id\": 20, \"v\": \"2024-11-07 20:35:13.123456-05:30\"}",
        "{\"id\": 21, \"v\": \"2024-02-29\"}",
        "{\"id\": 22, \"v\": \"2023-02-29\"}",
        "{\"id\": 23, \"v\": \"2024-11-07T23:59:60Z\"}",
        "{\"id\": 24, \"v\": \"2024-11-07T20:35:13+05\"}",
        "{\"id\": 25, \"v\": \"2024-11-07T20:35:13+053\"}",
        "{\"id\": 26, \"v\": \"1.50\"}",
        "{\"id\": 27, \"v\": \".5e3\"}",
        "{\"id\": 28, \"v\": \"1e999\"}",
        "{\"id\": 29, \"v\": \"12abc\"}",
        "{\"id\": 30, \"v\": \"tab\\there \\\\ \\\"q\\\" \\u00e9\"}",
        "{\"id\": 31, \"v\": 123456789.123456789}",
        "{\"id\": 32, \"v\": 5e-324}",
        "{\"id\": 33, \"v\": 2.5e-7}",
        "{\"id\": 34, \"v\": -0.0}",
        "{\"id\": 35, \"v\": \"\"}",
        "{\"id\": 36, \"v\": 1.0000000000000002}",
        "{\"id\": 37}",
        "{\"id\": 38, \"cf\": [{\"id\": 2, \"content\": \"two\"}, {\"id\": \"6\", \"content\": "
        "6}]}",
        "{\"id\": 39, \"cf\": [{\"id\": 2.0, \"content\": \"first\"}, {\"id\": 2, \"content\": "
        "0}]}",
        "{\"id\": 40, \"cf\": [{\"id\": \"2\", \"content\": \"str\"}, {\"x\": 2}, 7]}",
        "{\"id\": 41, \"cf\": {\"id\": 2, \"content\": \"not an array\"}}",
        "{\"id\": 42, \"v\": [\"a\", \"b\"], \"cf\": [{\"id\": 6, \"content\": \"2024-01-01\"}]}",
    };
    static const char *const paths[] = {
        "v",
        "v.1",
        "o.k.1.x",
        "o.k.0",
        "cf.[id=2].content",
        "cf.[id=6].content",
        "cf.[id=02].content",
        "cf.[id=two].content",
        "cf.1.content",
    };
    static const char *const types[] = {"text",    "bigint",      "double", "numeric",
                                        "boolean", "timestamptz", "date",   "jsonb"};
    struct store *s = open_store();
    struct base_buf line, sql;
    struct base_err err;
    int64_t values = 0, nulls = 0, checked = 0;

    (void)state;
    migrate(s);
    base_log_set_level(BASE_LOG_ERROR); /* map warns about every mismatch */
    base_buf_init(&line, 1 << 16);
    base_buf_init(&sql, 1 << 16);
    for (size_t p = 0; p < BASE_ARRAY_SIZE(paths); p++) {
        for (size_t t = 0; t < BASE_ARRAY_SIZE(types); t++) {
            char def[128];
            const char *defs[1] = {def};
            struct espec e;

            snprintf(def, sizeof(def), "c:%s:%s", paths[p], types[t]);
            espec_init(&e, "bigint", defs, 1);
            base_buf_reset(&sql);
            /* text compares as text; the other types as values of the type. */
            assert_int_equal(base_buf_printf(&sql, "SELECT ($1::%s IS NOT DISTINCT FROM ",
                                             map_type_sql(e.cols[0].type)),
                             0);
            assert_int_equal(store_evolve_sql_value(&e.cols[0], &sql, &err), 0);
            assert_int_equal(base_buf_puts(&sql, ")::text, ("), 0);
            assert_int_equal(store_evolve_sql_value(&e.cols[0], &sql, &err), 0);
            assert_int_equal(base_buf_puts(&sql, ")::text FROM (SELECT $2::jsonb AS data) AS r"),
                             0);
            for (size_t r = 0; r < BASE_ARRAY_SIZE(records); r++) {
                cJSON *rec = cJSON_Parse(records[r]);
                const char *params[2];
                PGresult *res;
                char *want;

                assert_non_null(rec);
                base_buf_reset(&line);
                assert_int_equal(map_record_to_copy_raw(&e.spec, rec, records[r],
                                                        strlen(records[r]), &line, NULL, &err),
                                 0);
                want = copy_field(line.data, 1);
                params[0] = want;
                params[1] = records[r];
                res = PQexecParams(check, sql.data, 2, NULL, params, NULL, NULL, 0);
                if (PQresultStatus(res) != PGRES_TUPLES_OK)
                    fail_msg("%s: %s", sql.data, PQerrorMessage(check));
                if (strcmp(PQgetvalue(res, 0, 0), "true") != 0)
                    fail_msg("path \"%s\" as %s of %s: map wrote %s%s%s, SQL gives %s%s%s",
                             paths[p], types[t], records[r], want ? "\"" : "", want ? want : "NULL",
                             want ? "\"" : "", PQgetisnull(res, 0, 1) ? "" : "\"",
                             PQgetisnull(res, 0, 1) ? "NULL" : PQgetvalue(res, 0, 1),
                             PQgetisnull(res, 0, 1) ? "" : "\"");
                /* text must match byte for byte, not only as a value. */
                if (e.cols[0].type == MAP_TEXT && want != NULL)
                    assert_string_equal(PQgetvalue(res, 0, 1), want);
                values += want != NULL;
                nulls += want == NULL;
                checked++;
                PQclear(res);
                free(want);
                cJSON_Delete(rec);
            }
            espec_free(&e);
        }
    }
    base_log_set_level(BASE_LOG_INFO);
    /* Both outcomes were exercised, in quantity. */
    assert_int_equal(checked, (int64_t)(BASE_ARRAY_SIZE(paths) * BASE_ARRAY_SIZE(types) *
                                        BASE_ARRAY_SIZE(records)));
    ASSERT_GT(values, 150);
    ASSERT_GT(nulls, 150);
    base_buf_free(&line);
    base_buf_free(&sql);
    store_close(s);
}

/* ---- evolve: tables --------------------------------------------------------------------- */

#define EVO_N 12

/* Record i of the evolve tests (1-based), as JSON text into buf. */
static void evo_record(int i, char *buf, size_t n)
{
    char code[16], score[16], flag[16], emails[128];

    snprintf(code, sizeof(code), i == 7 ? "x%d" : "%d00", i);
    if (i == 3)
        snprintf(score, sizeof(score), "2.5");
    else if (i == 4)
        snprintf(score, sizeof(score), "\"42\"");
    else
        snprintf(score, sizeof(score), "%d", i * 10);
    snprintf(flag, sizeof(flag), "%s", i % 3 == 0 ? "true" : i % 3 == 1 ? "0" : "\"yes\"");
    if (i % 2 == 0)
        snprintf(emails, sizeof(emails), "[{\"address\": \"a%d@x\"}, {\"address\": \"b%d@x\"}]", i,
                 i);
    else
        snprintf(emails, sizeof(emails), "[{\"address\": \"a%d@x\"}]", i);
    assert_int_equal(base_snprintf(buf, n,
                                   "{\"id\": %d, \"given\": \"G%d\", \"code\": \"%s\", "
                                   "\"score\": %s, \"emails\": %s, \"flag\": %s, "
                                   "\"cf\": [{\"id\": 2, \"content\": \"c%d\"}, "
                                   "{\"id\": \"6\", \"content\": %d}], "
                                   "\"updated\": \"2024-11-07T10:00:%02d.000+0000\"}",
                                   i, i, code, score, emails, flag, i, i, i),
                     0);
}

/* Syncs the EVO_N records into t (child tables: parent ids 100 and 101 alternately), with a
 * checkpoint for job. */
static void evo_sync(struct store *s, const struct store_table *t, const char *job)
{
    struct base_buf rows;
    struct store_page_result r;
    struct store_page p = {0};
    struct base_err err;
    char text[1024];

    ensure_ok(s, t);
    base_buf_init(&rows, 1 << 20);
    for (int i = 1; i <= EVO_N; i++) {
        cJSON *rec;

        evo_record(i, text, sizeof(text));
        rec = cJSON_Parse(text);
        assert_non_null(rec);
        if (t->parent_col != NULL)
            assert_int_equal(base_buf_printf(&rows, "%d\t", 100 + i % 2), 0);
        assert_int_equal(map_record_to_copy_raw(t->map, rec, text, strlen(text), &rows, NULL, &err),
                         0);
        cJSON_Delete(rec);
    }
    p.table = t;
    p.rows = rows.data;
    p.rows_len = rows.len;
    p.nrows = EVO_N;
    p.job = job;
    p.checkpoint = "{\"done\": true}";
    base_err_clear(&err);
    if (store_commit_page(s, &p, &r, &err) != 0)
        fail_msg("store_commit_page: %s", err.msg);
    base_buf_free(&rows);
}

/* Every column of t equals what a fresh sync of the same records with t's spec writes. */
static void evo_assert_fresh(struct store *s, const struct store_table *t)
{
    const struct store_table fresh = {"evo_fresh", t->map, NULL, t->parent_col};
    char key[80];

    q_run("DROP TABLE IF EXISTS keap.evo_fresh");
    snprintf(key, sizeof(key), "%s%sid", t->parent_col ? t->parent_col : "",
             t->parent_col ? ", " : "");
    evo_sync(s, &fresh, "evo_fresh");
    assert_int_equal(q_int("SELECT count(*) FROM keap.%s", t->table), EVO_N);
    for (size_t i = 0; i < t->map->ncols; i++) {
        const char *c = t->map->cols[i].name;
        int64_t bad = q_int("SELECT count(*) FROM keap.%s a FULL JOIN keap.evo_fresh b USING "
                            "(%s) WHERE a.%s IS DISTINCT FROM b.%s OR a.id IS NULL OR "
                            "b.id IS NULL",
                            t->table, key, c, c);

        if (bad != 0)
            fail_msg("column \"%s\" of keap.%s: %" PRId64 " rows differ from a fresh sync", c,
                     t->table, bad);
        assert_col_type(t->table, c, t->map->cols[i].type);
    }
    q_run("DROP TABLE keap.evo_fresh");
}

static void evolve_ok(struct store *s, const char *job, const struct store_table *t, bool drop,
                      struct store_evolve_result *r)
{
    const struct store_evolve_options o = {.drop_columns = drop};
    struct base_err err;

    base_err_clear(&err);
    memset(r, 0xff, sizeof(*r));
    if (store_evolve_table(s, job, t, &o, r, &err) != 0)
        fail_msg("store_evolve_table: %s (%s)", err.msg, err.hint);
}

static int evo_changes(const struct store_evolve_result *r)
{
    return r->renamed + r->added + r->refilled + r->retyped + r->kept + r->dropped;
}

static void test_evolve_table(void **state)
{
    static const char *const v0[] = {
        "given:given:text",
        "code:code:text",
        "score:score:bigint",
        "email:emails.0.address:text",
        "updated:updated:timestamptz",
        "flag:flag:text",
    };
    /* Added: the second email, a custom field by selector, flag as a boolean next to it. */
    static const char *const v1[] = {
        "given:given:text",
        "code:code:text",
        "score:score:bigint",
        "email:emails.0.address:text",
        "updated:updated:timestamptz",
        "flag:flag:text",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
    };
    /* score bigint -> text, email now reads the second address, flag gone. */
    static const char *const v2[] = {
        "given:given:text",
        "code:code:text",
        "score:score:text",
        "email:emails.1.address:text",
        "updated:updated:timestamptz",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
    };
    /* code text -> bigint: record 7 holds "x7". */
    static const char *const v3[] = {
        "given:given:text",
        "code:code:bigint",
        "score:score:text",
        "email:emails.1.address:text",
        "updated:updated:timestamptz",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
    };
    /* v2 and flag as a boolean (true, 0 or "yes": the last is a mismatch). */
    static const char *const v4[] = {
        "given:given:text",
        "code:code:text",
        "score:score:text",
        "email:emails.1.address:text",
        "updated:updated:timestamptz",
        "email2:emails.1.address:text",
        "cf2:cf.[id=2].content:text",
        "cf6:cf.[id=6].content:numeric",
        "flag:flag:boolean",
    };
    struct espec e0, e1, e2, e3, e4, eid;
    struct store *s = open_store();
    struct store_evolve_result r;
    struct base_err err;
    char *shape, *after;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.evo; DROP TABLE IF EXISTS keap.evo2; "
          "DROP TABLE IF EXISTS keap.evo3; DELETE FROM keapsync.jobs; "
          "DELETE FROM keapsync.checkpoints");
    espec_init(&e0, "bigint", v0, BASE_ARRAY_SIZE(v0));
    espec_init(&e1, "bigint", v1, BASE_ARRAY_SIZE(v1));
    espec_init(&e2, "bigint", v2, BASE_ARRAY_SIZE(v2));
    espec_init(&e3, "bigint", v3, BASE_ARRAY_SIZE(v3));
    espec_init(&e4, "bigint", v4, BASE_ARRAY_SIZE(v4));
    espec_init(&eid, "text", v2, BASE_ARRAY_SIZE(v2));
    {
        const struct store_table t0 = {"evo", &e0.spec, "updated", NULL};
        const struct store_table t1 = {"evo", &e1.spec, "updated", NULL};
        const struct store_table t2 = {"evo", &e2.spec, "updated", NULL};
        const struct store_table t3 = {"evo", &e3.spec, "updated", NULL};
        const struct store_table moved = {"evo2", &e2.spec, "updated", NULL};
        const struct store_table clash = {"evo3", &e2.spec, "updated", NULL};
        const struct store_table id_text = {"evo2", &eid.spec, "updated", NULL};
        const struct store_evolve_options check_only = {.check_only = true};

        /* A job without a table: only its shape is recorded. */
        evolve_ok(s, "evo_job", &t0, false, &r);
        assert_int_equal(evo_changes(&r), 0);
        assert_int_equal(q_int("SELECT count(*) FROM keapsync.jobs WHERE job = 'evo_job' AND "
                               "shape->>'table' = 'evo' AND jsonb_array_length(shape->'columns') "
                               "= %zu",
                               BASE_ARRAY_SIZE(v0)),
                         1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND "
                               "tablename = 'evo'"),
                         0);
        evo_sync(s, &t0, "evo_job");
        evo_assert_fresh(s, &t0);

        /* Unchanged: nothing done, not even the shape's row rewritten. */
        shape = q_text("SELECT updated_at::text FROM keapsync.jobs WHERE job = 'evo_job'");
        evolve_ok(s, "evo_job", &t0, false, &r);
        assert_int_equal(evo_changes(&r), 0);
        after = q_text("SELECT updated_at::text FROM keapsync.jobs WHERE job = 'evo_job'");
        assert_string_equal(shape, after);
        free(shape);
        free(after);

        /* A check finds the added columns and changes nothing. */
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &t1, &check_only, &r, &err), 0);
        assert_int_equal(r.added, 3);
        assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                               "'keap.evo'::regclass AND attname = 'email2'"),
                         0);

        /* Added columns are filled from data as map writes them. */
        evolve_ok(s, "evo_job", &t1, false, &r);
        assert_int_equal(r.added, 3);
        assert_int_equal(evo_changes(&r), 3);
        evo_assert_fresh(s, &t1);
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE email2 IS NOT NULL"),
                         EVO_N / 2);
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE cf2 = 'c' || id"), EVO_N);
        assert_int_equal(q_int("SELECT sum(cf6) FROM keap.evo"), EVO_N * (EVO_N + 1) / 2);
        evolve_ok(s, "evo_job", &t1, false, &r);
        assert_int_equal(evo_changes(&r), 0);

        /* A type change, a path change and a dropped column (kept), at once. */
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(r.retyped, 1);
        assert_int_equal(r.refilled, 1);
        assert_int_equal(r.kept, 1);
        assert_int_equal(evo_changes(&r), 3);
        evo_assert_fresh(s, &t2);
        /* score 2.5 was NULL as a bigint and is its text now; "42" stays 42. */
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE score = '2.5' AND id = 3"), 1);
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo WHERE flag IS NOT NULL"), EVO_N);
        /* Kept once, then silent. */
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(evo_changes(&r), 0);

        /* A type change some value cannot take: refused, nothing changed. */
        shape = q_text("SELECT shape::text FROM keapsync.jobs WHERE job = 'evo_job'");
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &t3, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "cannot change column \"code\" of job \"evo_job\" to "
                                        "bigint: value \"x7\" of record 7 does not convert"));
        assert_true(err.hint[0] != '\0');
        assert_col_type("evo", "code", MAP_TEXT);
        after = q_text("SELECT shape::text FROM keapsync.jobs WHERE job = 'evo_job'");
        assert_string_equal(shape, after);
        free(after);
        free(shape);
        /* A value is quoted on one line, and cut when long. */
        q_run("UPDATE keap.evo SET data = jsonb_set(data, '{code}', to_jsonb('line1' || chr(10) "
              "|| 'line2 ' || repeat('y', 200))) WHERE id = 7");
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &t3, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "value \"line1 line2 yyy"));
        assert_non_null(strstr(err.msg, "yyy...\" of record 7 does not convert"));
        assert_null(strchr(err.msg, '\n'));
        ASSERT_LT(strlen(err.msg), 200);
        /* Once the value converts, the change goes through. */
        q_run("UPDATE keap.evo SET data = jsonb_set(data, '{code}', '\"700\"') WHERE id = 7");
        evolve_ok(s, "evo_job", &t3, false, &r);
        assert_int_equal(r.retyped, 1);
        assert_int_equal(q_int("SELECT sum(code) FROM keap.evo"), 100 * EVO_N * (EVO_N + 1) / 2);
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(r.retyped, 1);
        q_run("UPDATE keap.evo SET code = 'x7', data = jsonb_set(data, '{code}', '\"x7\"') "
              "WHERE id = 7");
        evolve_ok(s, "evo_job", &t2, false, &r);
        assert_int_equal(evo_changes(&r), 0);

        /* --drop-columns drops the kept column. */
        evolve_ok(s, "evo_job", &t2, true, &r);
        assert_int_equal(r.dropped, 1);
        assert_int_equal(evo_changes(&r), 1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                               "'keap.evo'::regclass AND attname = 'flag' AND NOT attisdropped"),
                         0);

        /* A renamed table is moved, with its indexes. */
        evolve_ok(s, "evo_job", &moved, false, &r);
        assert_int_equal(r.renamed, 1);
        assert_int_equal(evo_changes(&r), 1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND "
                               "tablename IN ('evo', 'evo2')"),
                         1);
        assert_int_equal(q_int("SELECT count(*) FROM pg_indexes WHERE schemaname = 'keap' AND "
                               "tablename = 'evo2' AND indexname LIKE 'evo2\\_%%'"),
                         2);
        evo_assert_fresh(s, &moved);
        /* Onto a table that exists: refused. */
        q_run("CREATE TABLE keap.evo3 (id bigint PRIMARY KEY, data jsonb NOT NULL)");
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_job", &clash, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "\"evo3\""));
        assert_true(err.hint[0] != '\0');
        assert_int_equal(q_int("SELECT count(*) FROM keap.evo2"), EVO_N);
        /* From a table that is gone while the checkpoint says it was synced: refused. */
        q_run("DROP TABLE keap.evo3");
        q_run("ALTER TABLE keap.evo2 RENAME TO evo_away");
        assert_int_equal(store_evolve_table(s, "evo_job", &clash, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "does not exist"));
        assert_non_null(strstr(err.hint, "checkpoint"));
        q_run("ALTER TABLE keap.evo_away RENAME TO evo2");
        /* The id's type cannot change under the rows. */
        assert_int_equal(store_evolve_table(s, "evo_job", &id_text, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "id type"));
        assert_col_type("evo2", "id", MAP_BIGINT);

        /* A job seen the first time adopts an existing table: missing columns from data. */
        q_run("DELETE FROM keapsync.jobs WHERE job = 'evo_job'");
        q_run("ALTER TABLE keap.evo2 DROP COLUMN cf2");
        {
            const struct store_table wide = {"evo2", &e4.spec, "updated", NULL};

            /* cf2 and flag (a boolean now) are missing: added; the rest is taken as it is. */
            evolve_ok(s, "evo_job", &wide, false, &r);
            assert_int_equal(r.added, 2);
            assert_int_equal(evo_changes(&r), 2);
            evo_assert_fresh(s, &wide);
            assert_int_equal(q_int("SELECT count(*) FROM keap.evo2 WHERE flag IS NOT NULL"),
                             EVO_N * 2 / 3);
        }
    }
    q_run("DROP TABLE IF EXISTS keap.evo2; DELETE FROM keapsync.jobs; "
          "DELETE FROM keapsync.checkpoints");
    espec_free(&e0);
    espec_free(&e1);
    espec_free(&e2);
    espec_free(&e3);
    espec_free(&e4);
    espec_free(&eid);
    store_close(s);
}

/* Child tables, keyed (parent, id), evolve the same way. */
static void test_evolve_child(void **state)
{
    static const char *const v0[] = {"given:given:text", "score:score:bigint"};
    static const char *const v1[] = {"given:given:text", "score:score:text",
                                     "email2:emails.1.address:text"};
    struct espec e0, e1;
    struct store *s = open_store();
    struct store_evolve_result r;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.evo_kids; DELETE FROM keapsync.jobs");
    espec_init(&e0, "bigint", v0, BASE_ARRAY_SIZE(v0));
    espec_init(&e1, "bigint", v1, BASE_ARRAY_SIZE(v1));
    {
        const struct store_table t0 = {"evo_kids", &e0.spec, NULL, "parent_id"};
        const struct store_table t1 = {"evo_kids", &e1.spec, NULL, "parent_id"};
        const struct store_table orphan = {"evo_kids", &e1.spec, NULL, "owner_id"};

        evo_sync(s, &t0, "evo_kids");
        evolve_ok(s, "evo_kids", &t0, false, &r);
        assert_int_equal(evo_changes(&r), 0);
        evolve_ok(s, "evo_kids", &t1, false, &r);
        assert_int_equal(r.added, 1);
        assert_int_equal(r.retyped, 1);
        evo_assert_fresh(s, &t1);
        base_err_clear(&err);
        assert_int_equal(store_evolve_table(s, "evo_kids", &orphan, NULL, &r, &err), BASE_ECONFIG);
        assert_non_null(strstr(err.msg, "parent column"));
    }
    q_run("DROP TABLE IF EXISTS keap.evo_kids; DELETE FROM keapsync.jobs");
    espec_free(&e0);
    espec_free(&e1);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evolve_sql_path),
        cmocka_unit_test(test_evolve_sql_matches_map),
        cmocka_unit_test(test_evolve_table),
        cmocka_unit_test(test_evolve_child),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
