/*
 * store_fixture.h: what the store's unit test programs (test_store*.c) share: a database of
 * their own on DATABASE_URL's server, plain-SQL looks at it, and a contacts-like table.
 *
 * Each program runs its tests as one cmocka group with group_setup/group_teardown, which
 * create and drop keapsync_unit_store_<pid>; so the programs never touch another database's
 * schemas, and two of them (or two runs) can go at once.
 *
 * Words used here: "check" is the test's own libpq connection, used to look at what store
 * wrote with plain SQL; "T1" < "T2" < "T3" are the updated times of record versions.
 */
#ifndef KEAPSYNC_TEST_STORE_FIXTURE_H
#define KEAPSYNC_TEST_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "store.h"

extern char test_db[64];         /* keapsync_unit_store_<pid> */
extern char test_conninfo[2048]; /* the test database, for store_connect */
extern PGconn *check;            /* the test's own connection to it */

/* The cmocka group's setup and teardown: create and drop the test database. */
int group_setup(void **state);
int group_teardown(void **state);

/* Runs sql on check; fails the test unless it succeeds. The caller clears the result. */
PGresult *q_exec(const char *sql);
/* One bigint from a query that returns one row. */
int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One text value (malloc'd) or NULL for SQL NULL / no row. */
char *q_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void q_run(const char *sql);

/* A store connected to the test database (the test fails if it cannot be). */
struct store *open_store(void);
/* The wall clock milliseconds of an ISO-8601 time. */
int64_t wall(const char *iso);
void migrate(struct store *s);

/* A contacts-like table: id bigint, email, given_name, updated (timestamptz), and in the
 * widened version (spec_v2) also score (bigint). */
extern const struct map_spec spec_v1, spec_v2;
extern const struct store_table contacts;
/* The same shape without a newer-wins column. */
extern const struct store_table notes;

/* Appends one COPY line for the v1 shape; given_name NULL and updated NULL become \N. data
 * repeats id and email (plain text in the tests, so no JSON escaping is needed). */
void row(struct base_buf *b, const char *id, const char *email, const char *given,
         const char *updated);
/* Commits rows as one page of job t->table for tenant-a on 2024-11-07, one request. */
int commit(struct store *s, const struct store_table *t, struct base_buf *rows, int64_t nrows,
           const char *checkpoint, struct store_page_result *r, struct base_err *err);
void commit_ok(struct store *s, const struct store_table *t, struct base_buf *rows, int64_t nrows,
               const char *checkpoint, struct store_page_result *r);
void ensure_ok(struct store *s, const struct store_table *t);

/* Is keap.<table>.<col> of the SQL type map_type_sql(type)? */
void assert_col_type(const char *table, const char *col, enum map_type type);

#endif
