/*
 * Unit tests for store's sink against a real, throwaway PostgreSQL (see test_store.c and
 * store_fixture.h): ensuring a job's table, committing pages (rows, checkpoint and ledger in
 * one transaction), newer-wins upserts, child tables, their sweeps and parent marks.
 */
#include "store_fixture.h"

#include <stdlib.h>
#include <string.h>
#include "test_assert.h"

static void test_ensure_table(void **state)
{
    struct store *s = open_store();
    struct base_buf rows;
    struct store_page_result r;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    ensure_ok(s, &contacts);
    ensure_ok(s, &contacts); /* twice is fine */
    assert_col_type("contacts", "id", spec_v1.id.type);
    for (size_t i = 0; i < spec_v1.ncols; i++)
        assert_col_type("contacts", spec_v1.cols[i].name, spec_v1.cols[i].type);
    assert_col_type("contacts", "data", MAP_JSONB);
    assert_int_equal(q_int("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                           "'keap.contacts'::regclass AND attnum > 0 AND NOT attisdropped"),
                     (int64_t)spec_v1.ncols + 4); /* id, data, synced_at, deleted_at */
    /* The primary key and the newer-wins index. */
    assert_int_equal(q_int("SELECT count(*) FROM pg_index WHERE indrelid = "
                           "'keap.contacts'::regclass AND indisprimary"),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM pg_indexes WHERE schemaname = 'keap' AND "
                           "tablename = 'contacts' AND indexdef LIKE '%%(updated)'"),
                     1);

    /* A row, then a wider spec: the column is added, the row kept. */
    base_buf_init(&rows, 1 << 16);
    row(&rows, "1", "a@example.com", "Ann", "2024-01-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    {
        const struct store_table wide = {"contacts", &spec_v2, "updated", NULL};

        ensure_ok(s, &wide);
        assert_col_type("contacts", "score", MAP_BIGINT);
        assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 1 AND "
                               "given_name = 'Ann' AND score IS NULL"),
                         1);
        /* The widened staging table takes the new column. */
        base_buf_reset(&rows);
        assert_int_equal(base_buf_puts(&rows, "2\tb@example.com\tBea\t2024-01-02T00:00:00Z\t42\t"
                                              "{\"id\": 2}\n"),
                         0);
        commit_ok(s, &wide, &rows, 1, NULL, &r);
        assert_int_equal(r.inserted, 1);
        assert_int_equal(q_int("SELECT score FROM keap.contacts WHERE id = 2"), 42);
        /* The narrower spec again: no column is dropped. */
        ensure_ok(s, &contacts);
        assert_col_type("contacts", "score", MAP_BIGINT);
    }

    /* Definitions that cannot be right. */
    {
        static char n_id[] = "id", n_data[] = "data";
        struct map_column clash[] = {{.name = n_data, .type = MAP_TEXT}};
        const struct map_spec bad_spec = {
            .id = {.name = n_id, .type = MAP_BIGINT}, .cols = clash, .ncols = 1};
        const struct store_table bad1 = {"bad", &bad_spec, NULL, NULL};
        const struct store_table bad2 = {"bad", &spec_v1, "nope", NULL};
        const struct store_table bad3 = {"", &spec_v1, NULL, NULL};

        assert_int_equal(store_ensure_table(s, &bad1, &err), BASE_EINVAL);
        assert_non_null(strstr(err.msg, "\"data\""));
        assert_int_equal(store_ensure_table(s, &bad2, &err), BASE_EINVAL);
        assert_non_null(strstr(err.msg, "\"nope\""));
        assert_int_equal(store_ensure_table(s, &bad3, &err), BASE_EINVAL);
        assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'keap' AND "
                               "tablename = 'bad'"),
                         0);
    }
    base_buf_free(&rows);
    store_close(s);
}

static void test_commit_rows(void **state)
{
    struct store *s = open_store();
    struct store_page_result r = {-1, -1, -1, -1, -1};
    struct store_ledger_row lr;
    struct base_buf rows;
    struct base_err err;
    char *text;
    int64_t spent0;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts; DELETE FROM keapsync.checkpoints; "
          "DELETE FROM keapsync.quota_ledger");
    base_buf_init(&rows, 1 << 16);
    /* Tabs, backslashes and newlines inside values travel as COPY escapes. */
    row(&rows, "100", "a@example.com", "Ann", "2024-01-01T00:00:00Z");
    row(&rows, "101", "b@example.com", "Bo\\tb", "2024-01-01T00:00:00+0200");
    row(&rows, "102", "c@example.com", NULL, NULL);
    commit_ok(s, &contacts, &rows, 3, "{\"offset\": 3}", &r);
    assert_int_equal(r.inserted, 3);
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 3);
    text = q_text("SELECT given_name FROM keap.contacts WHERE id = 101");
    assert_string_equal(text, "Bo\tb");
    free(text);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 102 AND "
                           "given_name IS NULL AND updated IS NULL AND synced_at IS NOT NULL"),
                     1);
    assert_int_equal(q_int("SELECT extract(epoch FROM updated)::bigint * 1000 FROM "
                           "keap.contacts WHERE id = 101"),
                     wall("2024-01-01T00:00:00+0200"));
    text = q_text("SELECT data->>'email' FROM keap.contacts WHERE id = 100");
    assert_string_equal(text, "a@example.com");
    free(text);
    /* The checkpoint and the ledger went with the page. */
    assert_int_equal(store_checkpoint_load(s, "contacts", &text, &err), 0);
    assert_non_null(text);
    assert_int_equal(q_int("SELECT ('%s'::jsonb = '{\"offset\": 3}'::jsonb)::int", text), 1);
    free(text);
    assert_int_equal(store_ledger_get(s, "tenant-a", wall("2024-11-07T00:00:00Z"), &lr, &err), 0);
    assert_int_equal(lr.spent, 1);
    ASSERT_GE(lr.reserved, lr.spent);
    spent0 = lr.spent;

    /* The same page again: every row is left alone (no new row version, synced_at kept),
     * and the checkpoint and the ledger still go with the page. */
    q_run("UPDATE keap.contacts SET synced_at = '2001-01-01T00:00:00Z'");
    commit_ok(s, &contacts, &rows, 3, "{\"offset\": 6}", &r);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.skipped, 3);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 3);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE synced_at = "
                           "'2001-01-01T00:00:00Z'"),
                     3);
    /* ... unless the row was marked deleted: listed again, it is live again. */
    q_run("UPDATE keap.contacts SET deleted_at = now() WHERE id = 100");
    commit_ok(s, &contacts, &rows, 3, "{\"offset\": 6}", &r);
    assert_int_equal(r.updated, 1);
    assert_int_equal(r.skipped, 2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE deleted_at IS NULL AND "
                           "synced_at > '2001-01-01T00:00:00Z'"),
                     1);
    assert_int_equal(store_ledger_get(s, "tenant-a", wall("2024-11-07T23:59:59.999Z"), &lr, &err),
                     0);
    assert_int_equal(lr.spent, spent0 + 2); /* two pages, a request each */

    /* An empty page still moves the checkpoint and the ledger. */
    base_buf_reset(&rows);
    commit_ok(s, &contacts, &rows, 0, "{\"offset\": 9}", &r);
    assert_int_equal(r.inserted + r.updated + r.skipped, 0);
    assert_int_equal(q_int("SELECT (state->>'offset')::int FROM keapsync.checkpoints WHERE "
                           "job = 'contacts'"),
                     9);
    base_buf_free(&rows);
    store_close(s);
}

/* A child table: key (contact_id, id); the same id under two parents is two rows. */
static void test_child_table(void **state)
{
    const struct store_table tags = {"contact_tags", &spec_v1, "updated", "contact_id"};
    struct store *s = open_store();
    struct store_page_result r = {-1, -1, -1, -1, -1};
    struct base_buf rows;
    int64_t ids[4];
    int n = -1;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contact_tags; DROP TABLE IF EXISTS keap.contacts");
    ensure_ok(s, &tags);
    assert_int_equal(q_int("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON "
                           "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE "
                           "i.indrelid = 'keap.contact_tags'::regclass AND i.indisprimary"),
                     2);
    base_buf_init(&rows, 1 << 16);
    assert_int_equal(base_buf_puts(&rows, "7\t1\ta@x\tAnn\t2024-01-01T00:00:00Z\t{}\n"
                                          "8\t1\tb@x\tBo\t2024-01-01T00:00:00Z\t{}\n"),
                     0);
    commit_ok(s, &tags, &rows, 2, NULL, &r);
    assert_int_equal(r.inserted, 2);
    /* Again, one of them newer: an update of (8, 1), not a new row. */
    base_buf_reset(&rows);
    assert_int_equal(base_buf_puts(&rows, "8\t1\tb@y\tBo\t2024-02-01T00:00:00Z\t{}\n"), 0);
    commit_ok(s, &tags, &rows, 1, NULL, &r);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(r.updated, 1);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE id = 1"), 2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE contact_id = 8 AND "
                           "email = 'b@y'"),
                     1);

    /* Parent ids are read in order, after a given one, in batches; none before the table is. */
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, NULL, 4, ids, &n, &err), 0);
    assert_int_equal(n, 0);
    ensure_ok(s, &contacts);
    q_run("INSERT INTO keap.contacts (id, data) SELECT g, '{}' FROM generate_series(1, 9) g");
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, NULL, 4, ids, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[3], 4);
    assert_int_equal(store_parent_ids(s, "contacts", true, 7, NULL, 4, ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 8);
    assert_int_equal(ids[1], 9);
    base_buf_free(&rows);
    store_close(s);
}

/* A child page that ends its parent's list marks the parent's rows it did not list deleted,
 * keeping those earlier pages listed; a row listed again is live again. */
static void test_child_sweep(void **state)
{
    const struct store_table tags = {"contact_tags", &spec_v1, NULL, "contact_id"};
    struct store *s = open_store();
    struct store_page_result r = {-1, -1, -1, -1, -1};
    struct store_page p;
    struct base_buf rows;
    struct base_err err;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contact_tags");
    ensure_ok(s, &tags);
    base_buf_init(&rows, 1 << 16);
    /* parent 7 lists 1, 2, 3; parent 8 lists 1 */
    assert_int_equal(base_buf_puts(&rows, "7\t1\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"
                                          "7\t2\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"
                                          "7\t3\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"
                                          "8\t1\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"),
                     0);
    commit_ok(s, &tags, &rows, 4, NULL, &r);
    /* Parent 7 again over two pages: 3 on the first (kept), 4 on the last; 1 and 2 are gone. */
    base_buf_reset(&rows);
    assert_int_equal(base_buf_puts(&rows, "7\t4\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"), 0);
    memset(&p, 0, sizeof(p));
    p.table = &tags;
    p.rows = rows.data;
    p.rows_len = rows.len;
    p.nrows = 1;
    p.sweep = true;
    p.sweep_parent = 7;
    p.sweep_keep = "{\"3\"}";
    assert_int_equal(store_commit_page(s, &p, &r, &err), 0);
    assert_int_equal(r.deleted, 2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NOT NULL"),
                     2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE contact_id = 7 AND "
                           "deleted_at IS NOT NULL AND id IN (1, 2)"),
                     2);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE contact_id = 8 AND "
                           "deleted_at IS NULL"),
                     1);
    /* An empty last page (and no earlier ones) of parent 8: its one row is gone. */
    p.rows = "";
    p.rows_len = 0;
    p.nrows = 0;
    p.sweep_parent = 8;
    p.sweep_keep = NULL;
    assert_int_equal(store_commit_page(s, &p, &r, &err), 0);
    assert_int_equal(r.deleted, 1);
    /* Listed again: live again. */
    base_buf_reset(&rows);
    assert_int_equal(base_buf_puts(&rows, "7\t1\ta@x\tA\t2024-01-01T00:00:00Z\t{}\n"), 0);
    commit_ok(s, &tags, &rows, 1, NULL, &r);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contact_tags WHERE deleted_at IS NOT NULL"),
                     2);
    /* A table that is not a child table cannot be swept. */
    p.table = &notes;
    assert_int_equal(store_commit_page(s, &p, &r, &err), BASE_EINVAL);
    base_buf_free(&rows);
    store_close(s);
}

/* Marks: the latest write of a parent table; ids written after a mark are read after it. */
static void test_parent_marks(void **state)
{
    struct store *s = open_store();
    struct base_err err;
    char mark[48], early[48];
    int64_t ids[8];
    int n = -1;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    assert_int_equal(store_parent_mark(s, "contacts", 0, mark, sizeof(mark), &err), 0);
    assert_string_equal(mark, "-infinity");
    ensure_ok(s, &contacts);
    assert_int_equal(store_parent_mark(s, "contacts", 0, mark, sizeof(mark), &err), 0);
    assert_string_equal(mark, "-infinity");
    q_run("INSERT INTO keap.contacts (id, data, synced_at) SELECT g, '{}', "
          "'2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second' "
          "FROM generate_series(1, 5) g");
    assert_int_equal(store_parent_mark(s, "contacts", 0, mark, sizeof(mark), &err), 0);
    assert_int_equal(store_parent_mark(s, "contacts", 2, early, sizeof(early), &err), 0);
    /* Nothing after the exact mark, to the microsecond; ids 4 and 5 after the early one. */
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, mark, 8, ids, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, early, 8, ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 5);
    q_run("UPDATE keap.contacts SET synced_at = now() WHERE id = 2");
    assert_int_equal(store_parent_ids(s, "contacts", false, 0, mark, 8, ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 2);
    store_close(s);
}

/* The email stored for id in keap.<table>. */
static char *email_of(const char *table, int id)
{
    return q_text("SELECT email FROM keap.%s WHERE id = %d", table, id);
}

static void test_newer_wins(void **state)
{
    struct store *s = open_store();
    struct store_page_result r;
    struct base_buf rows;
    char *e;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    base_buf_init(&rows, 1 << 16);
    row(&rows, "10", "t2@example.com", "Ten", "2024-05-02T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.inserted, 1);

    /* Older: left alone. */
    base_buf_reset(&rows);
    row(&rows, "10", "t1@example.com", "Ten", "2024-05-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(r.updated + r.inserted, 0);
    e = email_of("contacts", 10);
    assert_string_equal(e, "t2@example.com");
    free(e);

    /* No updated value at all: cannot prove it is newer, so left alone. */
    base_buf_reset(&rows);
    row(&rows, "10", "null@example.com", "Ten", NULL);
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.skipped, 1);

    /* Newer: replaces. The same instant in another zone form is equal: the same row is left
     * alone, a different one at the same instant rewrites. */
    base_buf_reset(&rows);
    row(&rows, "10", "t3@example.com", "Ten", "2024-05-03T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    base_buf_reset(&rows);
    row(&rows, "10", "t3@example.com", "Ten", "2024-05-03T02:00:00+02:00");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.skipped, 1);
    base_buf_reset(&rows);
    row(&rows, "10", "t4@example.com", "Ten", "2024-05-03T02:00:00+02:00");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    assert_int_equal(r.skipped, 0);
    e = email_of("contacts", 10);
    assert_string_equal(e, "t4@example.com");
    free(e);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts"), 1);

    /* A stored row without an updated value is overwritten by any version. */
    base_buf_reset(&rows);
    row(&rows, "11", "first@example.com", "Eleven", NULL);
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    base_buf_reset(&rows);
    row(&rows, "11", "second@example.com", "Eleven", "2000-01-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    e = email_of("contacts", 11);
    assert_string_equal(e, "second@example.com");
    free(e);

    /* A page mixing all three against stored T2 rows counts each kind. */
    q_run("UPDATE keap.contacts SET updated = '2024-05-02T00:00:00Z'");
    base_buf_reset(&rows);
    row(&rows, "10", "old@example.com", "Ten", "2024-05-01T00:00:00Z");
    row(&rows, "11", "new@example.com", "Eleven", "2024-05-03T00:00:00Z");
    row(&rows, "12", "ins@example.com", "Twelve", "2024-05-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 3, NULL, &r);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(r.updated, 1);
    assert_int_equal(r.skipped, 1);
    base_buf_free(&rows);
    store_close(s);
}

static void test_duplicates_in_page(void **state)
{
    struct store *s = open_store();
    struct store_page_result r;
    struct base_buf rows;
    char *e;

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts; DROP TABLE IF EXISTS keap.notes");
    base_buf_init(&rows, 1 << 16);
    /* Newer-wins inside one page: the newest version, wherever it sits. */
    row(&rows, "20", "t1@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "20", "t3@example.com", "x", "2024-05-03T00:00:00Z");
    row(&rows, "21", "only@example.com", "y", "2024-05-01T00:00:00Z");
    row(&rows, "20", "t2@example.com", "x", "2024-05-02T00:00:00Z");
    commit_ok(s, &contacts, &rows, 4, NULL, &r);
    assert_int_equal(r.inserted, 2);
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.skipped, 2);
    e = email_of("contacts", 20);
    assert_string_equal(e, "t3@example.com");
    free(e);

    /* Without an updated column the last version in the page wins. */
    base_buf_reset(&rows);
    row(&rows, "30", "first@example.com", "x", NULL);
    row(&rows, "30", "second@example.com", "x", NULL);
    row(&rows, "30", "last@example.com", "x", NULL);
    commit_ok(s, &notes, &rows, 3, NULL, &r);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(r.skipped, 2);
    e = email_of("notes", 30);
    assert_string_equal(e, "last@example.com");
    free(e);
    /* ...and an older-looking version still overwrites: there is nothing to compare. */
    base_buf_reset(&rows);
    row(&rows, "30", "again@example.com", "x", "1999-01-01T00:00:00Z");
    commit_ok(s, &notes, &rows, 1, NULL, &r);
    assert_int_equal(r.updated, 1);
    e = email_of("notes", 30);
    assert_string_equal(e, "again@example.com");
    free(e);
    base_buf_free(&rows);
    store_close(s);
}

static void test_page_is_atomic(void **state)
{
    struct store *s = open_store();
    struct store_page_result r = {-7, -7, -7, -7, -7};
    struct store_ledger_row before, after;
    struct base_buf rows;
    struct base_err err;
    char *cp;
    const int64_t day = wall("2024-11-07T12:00:00Z");

    (void)state;
    migrate(s);
    q_run("DROP TABLE IF EXISTS keap.contacts");
    base_buf_init(&rows, 1 << 16);
    row(&rows, "40", "ok@example.com", "x", "2024-05-01T00:00:00Z");
    commit_ok(s, &contacts, &rows, 1, "{\"page\": 1}", &r);
    assert_int_equal(store_ledger_get(s, "tenant-a", day, &before, &err), 0);

    /* Row 2 of 3 is bad (id is not a bigint): nothing of the page may remain. */
    base_buf_reset(&rows);
    row(&rows, "41", "a@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "x42", "b@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "43", "c@example.com", "x", "2024-05-01T00:00:00Z");
    r.inserted = -7;
    assert_int_equal(commit(s, &contacts, &rows, 3, "{\"page\": 2}", &r, &err), BASE_EDB);
    assert_int_equal(r.inserted, -7); /* untouched on failure */
    assert_non_null(strstr(err.msg, "could not commit page of \"contacts\": "));
    assert_non_null(strstr(err.msg, "line 2"));
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id IN (41, 43)"), 0);
    assert_int_equal(store_checkpoint_load(s, "contacts", &cp, &err), 0);
    assert_int_equal(q_int("SELECT ('%s'::jsonb = '{\"page\": 1}'::jsonb)::int", cp), 1);
    free(cp);
    assert_int_equal(store_ledger_get(s, "tenant-a", day, &after, &err), 0);
    assert_int_equal(after.spent, before.spent);

    /* Bad JSON in data: the report still names the row. */
    base_buf_reset(&rows);
    row(&rows, "41", "a@example.com", "x", "2024-05-01T00:00:00Z");
    row(&rows, "42", "b@example.com", "x", "2024-05-01T00:00:00Z");
    assert_int_equal(base_buf_puts(&rows, "43\tc@example.com\tx\t\\N\t{\"broken\": \n"), 0);
    assert_int_equal(commit(s, &contacts, &rows, 3, "{\"page\": 2}", &r, &err), BASE_EDB);
    assert_non_null(strstr(err.msg, "line 3, column data"));
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id IN (41, 42, 43)"), 0);

    /* A bad checkpoint (not JSON) fails the page after its rows were upserted. */
    base_buf_reset(&rows);
    row(&rows, "44", "d@example.com", "x", "2024-05-01T00:00:00Z");
    assert_int_equal(commit(s, &contacts, &rows, 1, "{not json", &r, &err), BASE_EDB);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 44"), 0);

    /* A row count that does not match the rows is refused (a row split or merged). */
    assert_int_equal(commit(s, &contacts, &rows, 2, "{\"page\": 3}", &r, &err), BASE_EPROTO);
    assert_int_equal(q_int("SELECT count(*) FROM keap.contacts WHERE id = 44"), 0);
    assert_int_equal(store_ledger_get(s, "tenant-a", day, &after, &err), 0);
    assert_int_equal(after.spent, before.spent);

    /* The connection is still good for the next page. */
    commit_ok(s, &contacts, &rows, 1, "{\"page\": 3}", &r);
    assert_int_equal(r.inserted, 1);
    assert_int_equal(q_int("SELECT (state->>'page')::int FROM keapsync.checkpoints WHERE "
                           "job = 'contacts'"),
                     3);
    base_buf_free(&rows);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ensure_table),       cmocka_unit_test(test_commit_rows),
        cmocka_unit_test(test_child_table),        cmocka_unit_test(test_child_sweep),
        cmocka_unit_test(test_parent_marks),       cmocka_unit_test(test_newer_wins),
        cmocka_unit_test(test_duplicates_in_page), cmocka_unit_test(test_page_is_atomic),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
