/*
 * bench_ingest: how fast store_commit_page lands pages in a warm table, against the ceiling of
 * a plain COPY of the same rows into an empty table, measured in the same run.
 *
 *   DATABASE_URL=... build/bench_ingest [--warm ROWS] [--pages N]
 *
 * Words used here:
 *   warm table   keap.bench_contacts already holding --warm rows (default 1,000,000), made
 *                with COPY before anything is timed.
 *   page         1000 contact records shaped like Keap's v1 contacts (~1 KB of JSON each),
 *                turned into COPY text by map exactly as a sync would.
 *   unchanged    pages of ids the table holds, each exactly as the table holds it (a re-sync
 *                of records that did not change: every row left alone).
 *   re-sync      pages of ids the table holds, each a newer version (every row updated).
 *   new rows     pages of ids the table does not hold yet (every row inserted).
 *   baseline     the same page texts COPYed, one transaction each, into an empty table with
 *                the same columns and indexes.
 * It uses its own database, keapsync_bench_ingest, on DATABASE_URL's server (dropped first
 * and at the end).
 * Pages are generated before the clock starts; the phases take turns page by page; the
 * figures are rows per second.
 */
#include "map.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_DB  "keapsync_bench_ingest"
#define PAGE_ROWS 1000
#define PAGE_CAP  (32u << 20)
/* issue 14's goals, upsert rows/s over plain COPY rows/s (re-sync of newer rows: none given) */
#define GOAL_UNCHANGED 0.85
#define GOAL_NEW       0.75
#define DAY_MS         86400000LL
#define BASE_WALL_MS   1731011713000LL /* 2024-11-07T20:35:13Z */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, why);
    exit(1);
}

/* ---- the records ------------------------------------------------------------------------ */

static const char *const given_names[] = {"Erica", "John",  "Maria", "Wei", "Aisha",
                                          "Lars",  "Sofia", "Kenji", "Olu", "Priya"};
static const char *const family_names[] = {"Lewis", "Doe",   "Garcia", "Chen",    "Khan",
                                           "Berg",  "Rossi", "Sato",   "Adeyemi", "Patel"};

/* A v1 contact as Keap sends it, with the nested lists that make real ones ~1 KB. */
static cJSON *make_contact(int64_t id, int64_t version)
{
    char buf[160], when[32];
    const char *given = given_names[id % 10], *family = family_names[(id / 10) % 10];
    cJSON *c = cJSON_CreateObject(), *arr, *o;

    if (c == NULL)
        die("cJSON", "out of memory");
    cJSON_AddItemToObject(c, "tag_ids", arr = cJSON_CreateArray());
    for (int i = 0; i < 4; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)(100 + (id + i) % 50)));
    cJSON_AddNumberToObject(c, "id", (double)id);
    cJSON_AddItemToObject(c, "company", o = cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "id", (double)(id % 997));
    snprintf(buf, sizeof(buf), "%s %s Holdings LLC", family, given);
    cJSON_AddStringToObject(o, "company_name", buf);
    cJSON_AddBoolToObject(c, "email_opted_in", id % 3 == 0);
    cJSON_AddStringToObject(c, "email_status", id % 3 == 0 ? "SingleOptIn" : "NonMarketable");
    base_time_format(BASE_WALL_MS - DAY_MS * 365 + id * 1000, when, sizeof(when));
    cJSON_AddStringToObject(c, "date_created", when);
    base_time_format(BASE_WALL_MS + version * 1000 + id % 1000, when, sizeof(when));
    cJSON_AddStringToObject(c, "last_updated", when);
    cJSON_AddNullToObject(c, "ScoreValue");
    cJSON_AddNumberToObject(c, "last_updated_utc_millis",
                            (double)(BASE_WALL_MS + version * 1000 + id % 1000));
    cJSON_AddItemToObject(c, "email_addresses", arr = cJSON_CreateArray());
    for (int i = 0; i < 2; i++) {
        cJSON_AddItemToArray(arr, o = cJSON_CreateObject());
        snprintf(buf, sizeof(buf), "%s.%s.%" PRId64 "@example%d.com", given, family, id, i);
        cJSON_AddStringToObject(o, "email", buf);
        cJSON_AddStringToObject(o, "field", i == 0 ? "EMAIL1" : "EMAIL2");
    }
    cJSON_AddItemToObject(c, "addresses", arr = cJSON_CreateArray());
    cJSON_AddItemToArray(arr, o = cJSON_CreateObject());
    snprintf(buf, sizeof(buf), "%" PRId64 " Market Street, Suite %d", id % 9000, (int)(id % 400));
    cJSON_AddStringToObject(o, "line1", buf);
    cJSON_AddStringToObject(o, "line2", "");
    cJSON_AddStringToObject(o, "locality", "San Francisco");
    cJSON_AddStringToObject(o, "region", "California");
    cJSON_AddStringToObject(o, "postal_code", "94103");
    cJSON_AddStringToObject(o, "country_code", "USA");
    cJSON_AddStringToObject(o, "field", "BILLING");
    cJSON_AddItemToObject(c, "phone_numbers", arr = cJSON_CreateArray());
    cJSON_AddItemToArray(arr, o = cJSON_CreateObject());
    snprintf(buf, sizeof(buf), "+1 415 555 %04d", (int)(id % 10000));
    cJSON_AddStringToObject(o, "number", buf);
    cJSON_AddStringToObject(o, "field", "PHONE1");
    cJSON_AddItemToObject(c, "custom_fields", arr = cJSON_CreateArray());
    for (int i = 0; i < 4; i++) {
        cJSON_AddItemToArray(arr, o = cJSON_CreateObject());
        cJSON_AddNumberToObject(o, "id", 10 + i);
        snprintf(buf, sizeof(buf), "custom value %d of contact %" PRId64 " (v%" PRId64 ")", i, id,
                 version);
        cJSON_AddStringToObject(o, "content", buf);
    }
    cJSON_AddStringToObject(c, "given_name", given);
    cJSON_AddStringToObject(c, "family_name", family);
    cJSON_AddNullToObject(c, "middle_name");
    cJSON_AddNumberToObject(c, "owner_id", (double)(1 + id % 7));
    cJSON_AddStringToObject(c, "source_type", "API");
    cJSON_AddStringToObject(c, "preferred_locale", "en_US");
    cJSON_AddStringToObject(c, "time_zone", "America/Los_Angeles");
    return c;
}

static struct map_column bench_cols[8];
static struct map_spec bench_spec;

static void spec_init(void)
{
    static const struct {
        const char *name, *path;
        enum map_type type;
    } defs[] = {
        {"email", "email_addresses.0.email", MAP_TEXT},
        {"given_name", "given_name", MAP_TEXT},
        {"family_name", "family_name", MAP_TEXT},
        {"email_status", "email_status", MAP_TEXT},
        {"owner_id", "owner_id", MAP_BIGINT},
        {"company_id", "company.id", MAP_BIGINT},
        {"date_created", "date_created", MAP_TIMESTAMPTZ},
        {"last_updated", "last_updated", MAP_TIMESTAMPTZ},
    };

    bench_spec.id.name = base_strdup("id");
    bench_spec.id.path = base_strdup("id");
    bench_spec.id.type = MAP_BIGINT;
    if (bench_spec.id.name == NULL || bench_spec.id.path == NULL ||
        map_column_compile(&bench_spec.id) < 0)
        die("map", "could not compile the id column");
    for (size_t i = 0; i < BASE_ARRAY_SIZE(defs); i++) {
        bench_cols[i].name = base_strdup(defs[i].name);
        bench_cols[i].path = base_strdup(defs[i].path);
        bench_cols[i].type = defs[i].type;
        if (bench_cols[i].name == NULL || bench_cols[i].path == NULL ||
            map_column_compile(&bench_cols[i]) < 0)
            die("map", "could not compile a column");
    }
    bench_spec.cols = bench_cols;
    bench_spec.ncols = BASE_ARRAY_SIZE(defs);
}

static void spec_free(void)
{
    map_column_free(&bench_spec.id);
    for (size_t i = 0; i < bench_spec.ncols; i++)
        map_column_free(&bench_cols[i]);
}

/* COPY text for n contacts with ids first.., each at version. */
static void make_page(struct base_buf *out, int64_t first, int n, int64_t version)
{
    struct map_stats st = {0, 0};
    struct base_err err;

    base_buf_init(out, PAGE_CAP);
    for (int i = 0; i < n; i++) {
        cJSON *rec = make_contact(first + i, version);

        if (map_record_to_copy(&bench_spec, rec, out, &st, &err) < 0)
            die("map_record_to_copy", err.msg);
        cJSON_Delete(rec);
    }
}

/* ---- the database ----------------------------------------------------------------------- */

static PGconn *pg_open(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);

    if (PQstatus(c) != CONNECTION_OK)
        die("could not connect", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static void pg_run(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(c));
    PQclear(res);
}

/* COPY text into table in one transaction. */
static void pg_copy(PGconn *c, const char *copy_sql, const struct base_buf *rows)
{
    PGresult *res;

    pg_run(c, "BEGIN");
    res = PQexec(c, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die(copy_sql, PQerrorMessage(c));
    PQclear(res);
    if (PQputCopyData(c, rows->data, (int)rows->len) != 1 || PQputCopyEnd(c, NULL) != 1)
        die("COPY", PQerrorMessage(c));
    res = PQgetResult(c);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("COPY", PQerrorMessage(c));
    PQclear(res);
    while ((res = PQgetResult(c)) != NULL)
        PQclear(res);
    pg_run(c, "COMMIT");
}

/* The superuser that creates, checkpoints and drops the database: KEAPSYNC_ADMIN_URL
 * (deploy/lib/pg.sh sets it), else DATABASE_URL itself. */
static const char *admin_url(const char *url)
{
    const char *a = getenv("KEAPSYNC_ADMIN_URL");

    return a != NULL && a[0] != '\0' ? a : url;
}

/* Our own database on DATABASE_URL's server, created by the admin and granted to
 * DATABASE_URL's role as deploy/lib/pg_role.sql does; returns the role's conninfo of it
 * (static). */
static const char *bench_database(const char *url)
{
    static char conninfo[2048];
    PGconn *role = pg_open(url), *admin = pg_open(admin_url(url));
    PQconninfoOption *opts = PQconninfo(role);
    char *ident = PQescapeIdentifier(role, PQuser(role), strlen(PQuser(role)));
    char grant[256];
    size_t len = 0;

    if (ident == NULL)
        die("DATABASE_URL's role", PQerrorMessage(role));
    pg_run(admin, "DROP DATABASE IF EXISTS " BENCH_DB " WITH (FORCE)");
    pg_run(admin, "CREATE DATABASE " BENCH_DB);
    snprintf(grant, sizeof(grant),
             "GRANT CONNECT, TEMPORARY, CREATE ON DATABASE " BENCH_DB " TO %s", ident);
    pg_run(admin, grant);
    PQfreemem(ident);
    conninfo[0] = '\0';
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        const char *v = o->val;

        if (v == NULL || v[0] == '\0' || strcmp(o->keyword, "dbname") == 0)
            continue;
        if (base_snprintf(conninfo + len, sizeof(conninfo) - len, " %s='", o->keyword) < 0)
            die("conninfo", "too long");
        len = strlen(conninfo);
        for (; *v; v++) {
            if (len + 4 >= sizeof(conninfo))
                die("conninfo", "too long");
            if (*v == '\'' || *v == '\\')
                conninfo[len++] = '\\';
            conninfo[len++] = *v;
        }
        conninfo[len++] = '\'';
        conninfo[len] = '\0';
    }
    if (base_snprintf(conninfo + len, sizeof(conninfo) - len, " dbname=" BENCH_DB) < 0)
        die("conninfo", "too long");
    PQconninfoFree(opts);
    PQfinish(admin);
    PQfinish(role);
    return conninfo;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_ingest [--warm ROWS] [--pages N]   (DATABASE_URL required)\n");
    exit(2);
}

enum expect { EXPECT_UPDATES, EXPECT_INSERTS, EXPECT_SKIPS };

/*
 * Commits page i through store_commit_page; returns seconds. Checks that every row landed
 * as expected (unchanged rows: left alone, or, by an engine that rewrites them, updated).
 */
static double run_upsert(struct store *s, const struct store_table *t, const struct base_buf *page,
                         int i, enum expect expect, int64_t *skipped)
{
    struct store_page_result r;
    struct base_err err;
    char cp[64];
    struct store_page p = {
        .table = t,
        .rows = page->data,
        .rows_len = page->len,
        .nrows = PAGE_ROWS,
        .job = "bench_contacts",
        .checkpoint = cp,
        .tenant = "bench",
        .day_wall = BASE_WALL_MS,
        .requests = 1,
    };
    double t0 = now_s();
    bool ok;

    snprintf(cp, sizeof(cp), "{\"page\": %d}", i);
    if (store_commit_page(s, &p, &r, &err) < 0)
        die("store_commit_page", err.msg);
    t0 = now_s() - t0;
    if (expect == EXPECT_INSERTS)
        ok = r.inserted == PAGE_ROWS;
    else if (expect == EXPECT_UPDATES)
        ok = r.updated == PAGE_ROWS;
    else
        ok = r.inserted == 0 && r.updated + r.skipped == PAGE_ROWS;
    if (!ok)
        die("store_commit_page", "a page did not land as expected");
    *skipped += r.skipped;
    return t0;
}

int main(int argc, char **argv)
{
    const char *url = getenv("DATABASE_URL");
    int64_t warm = 1000000;
    int64_t npages = 50;
    const char *conninfo;
    const struct store_table table = {"bench_contacts", &bench_spec, "last_updated", NULL};
    struct base_buf *same, *resync, *fresh, chunk;
    struct store *s = NULL;
    struct base_err err;
    PGconn *pg;
    char copy_sql[512];
    double t_copy, t_same, t_resync, t_new, avg_row;
    int64_t same_skipped = 0, other_skipped = 0;
    size_t total_bytes = 0;
    int applied;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--warm") == 0 && i + 1 < argc) {
            if (base_parse_int64(argv[++i], &warm) < 0 || warm < PAGE_ROWS)
                usage();
        } else if (strcmp(argv[i], "--pages") == 0 && i + 1 < argc) {
            if (base_parse_int64(argv[++i], &npages) < 0 || npages < 1 ||
                npages > warm / PAGE_ROWS || npages > 1000)
                usage();
        } else {
            usage();
        }
    }
    if (url == NULL || url[0] == '\0')
        die("DATABASE_URL", "not set (. deploy/lib/pg.sh; pg_throwaway_start /tmp/bench-pg)");
    base_log_set_level(BASE_LOG_WARNING);
    spec_init();
    conninfo = bench_database(url);
    if (store_connect(&s, conninfo, &err) < 0 || store_migrate(s, &applied, &err) < 0 ||
        store_ensure_table(s, &table, &err) < 0)
        die("store", err.msg);
    pg = pg_open(conninfo);

    /* The warm table, filled by COPY in chunks (not timed). */
    fprintf(stderr, "bench_ingest: filling keap.bench_contacts with %" PRId64 " rows...\n", warm);
    snprintf(copy_sql, sizeof(copy_sql),
             "COPY keap.bench_contacts (id, email, given_name, family_name, email_status, "
             "owner_id, company_id, date_created, last_updated, data) FROM STDIN");
    for (int64_t id = 1; id <= warm; id += 10 * PAGE_ROWS) {
        int n = (int)(warm - id + 1 < 10 * PAGE_ROWS ? warm - id + 1 : 10 * PAGE_ROWS);

        make_page(&chunk, id, n, 1);
        pg_copy(pg, copy_sql, &chunk);
        base_buf_free(&chunk);
    }
    pg_run(pg, "VACUUM ANALYZE keap.bench_contacts");
    PQfinish(pg);
    pg = pg_open(admin_url(url)); /* CHECKPOINT is the superuser's (or pg_checkpoint's) */
    pg_run(pg, "CHECKPOINT");
    PQfinish(pg);
    pg = pg_open(conninfo);
    pg_run(pg, "CREATE TABLE keap.bench_copy (LIKE keap.bench_contacts INCLUDING ALL)");

    /* The pages: re-sync pages take distinct id blocks spread over the warm table; new
     * rows come after it. */
    same = calloc((size_t)npages, sizeof(*same));
    resync = calloc((size_t)npages, sizeof(*resync));
    fresh = calloc((size_t)npages, sizeof(*fresh));
    if (same == NULL || resync == NULL || fresh == NULL)
        die("pages", "out of memory");
    for (int64_t i = 0; i < npages; i++) {
        int64_t blocks = warm / PAGE_ROWS, block = (i * 7919) % blocks;

        make_page(&same[i], 1 + block * PAGE_ROWS, PAGE_ROWS, 1);
        make_page(&resync[i], 1 + block * PAGE_ROWS, PAGE_ROWS, 2);
        make_page(&fresh[i], warm + 1 + i * PAGE_ROWS, PAGE_ROWS, 1);
        total_bytes += resync[i].len;
    }
    avg_row = (double)total_bytes / (double)(npages * PAGE_ROWS);

    /*
     * Page by page, the four in turn, so that load from elsewhere on the machine falls on
     * all of them alike: the baseline (the re-sync page text COPYed into an empty table),
     * the unchanged page (the same block as the warm table holds it), the newer page (that
     * block again, one version on) and a page of new rows.
     */
    snprintf(copy_sql, sizeof(copy_sql),
             "COPY keap.bench_copy (id, email, given_name, family_name, email_status, "
             "owner_id, company_id, date_created, last_updated, data) FROM STDIN");
    t_copy = t_same = t_resync = t_new = 0;
    for (int64_t i = 0; i < npages; i++) {
        double t0 = now_s();

        pg_copy(pg, copy_sql, &resync[i]);
        t_copy += now_s() - t0;
        t_same += run_upsert(s, &table, &same[i], (int)i, EXPECT_SKIPS, &same_skipped);
        t_resync += run_upsert(s, &table, &resync[i], (int)i, EXPECT_UPDATES, &other_skipped);
        t_new += run_upsert(s, &table, &fresh[i], (int)i, EXPECT_INSERTS, &other_skipped);
    }
    /* Every row landed: the warm rows and the new ones, and the re-synced blocks (their
     * last_updated one second later, see make_contact) at version 2. */
    {
        char want[128], q[256];
        PGresult *res;

        snprintf(want, sizeof(want), "%" PRId64 " %" PRId64, warm + npages * PAGE_ROWS,
                 npages * PAGE_ROWS);
        snprintf(q, sizeof(q),
                 "SELECT count(*) || ' ' || count(*) FILTER (WHERE last_updated >= "
                 "to_timestamp(%lld / 1000.0)) FROM keap.bench_contacts",
                 (long long)(BASE_WALL_MS + 2000));
        res = PQexec(pg, q);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            die("count", PQerrorMessage(pg));
        if (strcmp(PQgetvalue(res, 0, 0), want) != 0) {
            fprintf(stderr, "bench_ingest: rows and version-2 rows: %s, expected %s\n",
                    PQgetvalue(res, 0, 0), want);
            die("count", "not every row landed");
        }
        PQclear(res);
    }

    {
        double rows = (double)(npages * PAGE_ROWS);
        double copy_rps = rows / t_copy, same_rps = rows / t_same, resync_rps = rows / t_resync;
        double new_rps = rows / t_new;

        printf("bench_ingest: warm table %" PRId64 " rows; %" PRId64
               " pages of %d rows per phase; rows ~%.0f bytes of COPY text\n",
               warm, npages, PAGE_ROWS, avg_row);
        printf("  plain COPY into an empty table   %10.0f rows/s   (baseline)\n", copy_rps);
        printf("  store_commit_page, unchanged     %10.0f rows/s   ratio %.2f (goal >= %.2f: %s)\n",
               same_rps, same_rps / copy_rps, GOAL_UNCHANGED,
               same_rps / copy_rps >= GOAL_UNCHANGED ? "met" : "MISSED");
        printf("  store_commit_page, new rows      %10.0f rows/s   ratio %.2f (goal >= %.2f: %s)\n",
               new_rps, new_rps / copy_rps, GOAL_NEW,
               new_rps / copy_rps >= GOAL_NEW ? "met" : "MISSED");
        printf("  store_commit_page, newer rows    %10.0f rows/s   ratio %.2f (no goal: every row "
               "rewritten)\n",
               resync_rps, resync_rps / copy_rps);
        printf("  every row landed: %" PRId64 " rows, %" PRId64
               " of them re-synced newer; unchanged rows left alone: %" PRId64 " of %" PRId64 "\n",
               warm + npages * PAGE_ROWS, npages * PAGE_ROWS, same_skipped, npages * PAGE_ROWS);
    }
    for (int64_t i = 0; i < npages; i++) {
        base_buf_free(&same[i]);
        base_buf_free(&resync[i]);
        base_buf_free(&fresh[i]);
    }
    free(same);
    free(resync);
    free(fresh);
    PQfinish(pg);
    store_close(s);
    spec_free();
    pg = pg_open(admin_url(url));
    pg_run(pg, "DROP DATABASE IF EXISTS " BENCH_DB " WITH (FORCE)");
    PQfinish(pg);
    return 0;
}
