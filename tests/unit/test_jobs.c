/*
 * Unit tests for jobs: the shipped jobs/ folder loads and says what its file says; every
 * validation error has its exact one-line message and leaves *out untouched; folder errors
 * (missing, empty, duplicate tables); jobs_select.
 *
 * The tests chdir to the source tree so that file names in messages are the short relative
 * ones a user would see. Test job files live in tests/unit/jobs/{bad,good,empty,dup_table}.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs.h"
#include "test_assert.h"

#define BAD    "tests/unit/jobs/bad/"
#define KEYS   "tests/unit/jobs/keys"
#define MODEL  "tests/unit/jobs/contacts_model.json" /* keapsim's GET /v1/contacts/model */
#define API_MD "docs/KEAP_API.md" /* the project's copy (tests run in the source tree) */

/* A byte pattern that no loader would write: *out must still hold it after an error. */
#define POISON 0xA5

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        fail_msg("could not open test input \"%s\": %s", path, strerror(errno));
    buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_identifier(void **state)
{
    char s[80];

    (void)state;
    assert_true(jobs_is_identifier("contacts"));
    assert_true(jobs_is_identifier("_x9"));
    assert_false(jobs_is_identifier(""));
    assert_false(jobs_is_identifier(NULL));
    assert_false(jobs_is_identifier("9x"));
    assert_false(jobs_is_identifier("Contacts"));
    assert_false(jobs_is_identifier("bad-name"));
    assert_false(jobs_is_identifier("a b"));
    /* hostile names: quoting games, statement breaks, escapes, non-ASCII, reserved-looking */
    assert_false(jobs_is_identifier("x\"; DROP TABLE y;--"));
    assert_false(jobs_is_identifier("x'; DROP TABLE y;--"));
    assert_false(jobs_is_identifier("quo\"te"));
    assert_false(jobs_is_identifier("back\\slash"));
    assert_false(jobs_is_identifier("t\xc3\xabst")); /* "tëst" */
    assert_false(jobs_is_identifier("\xe8\xa1\xa8"));
    assert_false(jobs_is_identifier("keap.y"));
    assert_false(jobs_is_identifier("a\tb"));
    assert_false(jobs_is_identifier("a\n"));
    assert_false(jobs_is_identifier("SELECT"));
    /* reserved words are identifiers here: the store quotes every name */
    assert_true(jobs_is_identifier("select"));
    assert_true(jobs_is_identifier("user"));
    /* 63 characters is the longest: Postgres truncates longer names silently. */
    memset(s, 'a', 63);
    s[63] = '\0';
    assert_true(jobs_is_identifier(s));
    s[63] = 'a';
    s[64] = '\0';
    assert_false(jobs_is_identifier(s));
}

/* The shipped jobs/contacts.json loads, and every loaded field is what the file says (or the
 * documented default). */
static void test_shipped_contacts(void **state)
{
    struct jobs_set set;
    struct base_err err;
    const struct jobs_job *job = NULL;
    cJSON *file, *cols, *inc;
    char *text;
    size_t i;

    (void)state;
    base_err_clear(&err);
    assert_int_equal(jobs_load_dir("jobs", &set, &err), 0);
    ASSERT_GE(set.n, 1);
    for (i = 0; i < set.n; i++) {
        if (strcmp(set.jobs[i].name, "contacts") == 0)
            job = &set.jobs[i];
        /* Every shipped job passes the identifier and file-name rules. */
        assert_true(jobs_is_identifier(set.jobs[i].table));
        if (i > 0)
            ASSERT_LT(strcmp(set.jobs[i - 1].file, set.jobs[i].file), 0);
    }
    assert_non_null(job);
    assert_string_equal(job->file, "jobs/contacts.json");

    text = read_text("jobs/contacts.json");
    file = cJSON_Parse(text);
    assert_non_null(file);
    assert_string_equal(job->endpoint, cJSON_GetObjectItem(file, "endpoint")->valuestring);
    assert_int_equal(job->api, KEAP_API_V1);
    /* Default array key: the endpoint's last segment. */
    assert_string_equal(job->array_key, strrchr(job->endpoint, '/') + 1);
    assert_string_equal(job->table, job->name);
    assert_int_equal(job->page_size, cJSON_GetObjectItem(file, "page_size")->valueint);
    assert_string_equal(job->order, cJSON_GetObjectItem(file, "order")->valuestring);
    assert_string_equal(job->optional_properties,
                        cJSON_GetObjectItem(file, "optional_properties")->valuestring);
    assert_string_equal(job->updated_field,
                        cJSON_GetObjectItem(file, "updated_field")->valuestring);
    inc = cJSON_GetObjectItem(file, "incremental");
    assert_true(job->incremental);
    assert_string_equal(job->since_param, cJSON_GetObjectItem(inc, "since_param")->valuestring);
    assert_string_equal(job->until_param, cJSON_GetObjectItem(inc, "until_param")->valuestring);
    assert_null(job->filter_since);
    assert_null(job->filter_until);
    assert_int_equal(job->lag_s, cJSON_GetObjectItem(inc, "lag_seconds")->valueint);
    assert_int_equal(job->overlap_s, cJSON_GetObjectItem(inc, "overlap_seconds")->valueint);
    /* v1 default id: path "id", bigint. */
    assert_string_equal(job->map.id.name, "id");
    assert_string_equal(job->map.id.path, "id");
    assert_int_equal(job->map.id.type, MAP_BIGINT);
    assert_int_equal(job->map.id.nparts, 1);

    cols = cJSON_GetObjectItem(file, "columns");
    assert_int_equal(job->map.ncols, (size_t)cJSON_GetArraySize(cols));
    for (i = 0; i < job->map.ncols; i++) {
        const cJSON *c = cJSON_GetArrayItem(cols, (int)i);
        const struct map_column *mc = &job->map.cols[i];
        enum map_type t;

        assert_string_equal(mc->name, cJSON_GetObjectItem(c, "name")->valuestring);
        assert_string_equal(mc->path, cJSON_GetObjectItem(c, "path")->valuestring);
        assert_int_equal(map_type_from_name(cJSON_GetObjectItem(c, "type")->valuestring, &t), 0);
        assert_int_equal(mc->type, t);
        ASSERT_GE(mc->nparts, 1);
    }
    cJSON_Delete(file);
    free(text);
    jobs_set_free(&set);
    assert_int_equal(set.n, 0);
    jobs_set_free(&set); /* twice is fine */
}

/* v2 defaults and explicit keys (tests/unit/jobs/good). */
static void test_good_dir(void **state)
{
    struct jobs_set set;
    struct base_err err;
    const struct jobs_job *notes, *opp, *tags;

    (void)state;
    assert_int_equal(jobs_load_dir("tests/unit/jobs/good", &set, &err), 0);
    assert_int_equal(set.n, 3);
    /* Sorted by file name. */
    notes = &set.jobs[0];
    opp = &set.jobs[1];
    tags = &set.jobs[2];
    assert_string_equal(notes->name, "notes");
    assert_string_equal(opp->name, "opportunities");
    assert_string_equal(tags->name, "tags");

    assert_int_equal(tags->api, KEAP_API_V2);
    assert_string_equal(tags->array_key, "tags");
    assert_int_equal(tags->map.id.type, MAP_TEXT); /* v2 ids are strings */
    assert_int_equal(tags->page_size, 1000);
    assert_true(tags->incremental);
    assert_string_equal(tags->filter_since, "since_update_time");
    assert_string_equal(tags->filter_until, "until_update_time");
    assert_null(tags->since_param);
    assert_int_equal(tags->lag_s, 60);
    assert_int_equal(tags->overlap_s, 300);
    assert_null(tags->updated_field);
    assert_null(tags->optional_properties);

    assert_string_equal(notes->table, "contact_notes");
    assert_int_equal(notes->page_size, 200);
    assert_false(notes->incremental);
    assert_int_equal(notes->lag_s, 60);
    assert_int_equal(notes->map.id.type, MAP_BIGINT);
    assert_null(notes->order);

    /* The selector path compiles into a match part. */
    assert_int_equal(opp->map.cols[1].nparts, 3);
    assert_int_equal(opp->map.cols[1].index[1], MAP_PART_MATCH);
    assert_string_equal(opp->map.cols[1].parts[1], "id=18");
    jobs_set_free(&set);
}

struct bad_case {
    const char *file;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    {"badtype.json", "columns[2].type: unknown type \"strng\" (expected text, bigint, double, "
                     "numeric, boolean, timestamptz, date or jsonb)"},
    {"pagesize.json", "unknown key \"pagesize\""},
    {"increfresh.json", "refresh_hours: only for jobs that read everything each pass (an "
                        "incremental job reads only what changed)"},
    {"bigrefresh.json", "refresh_hours: 9000 is out of range (0..8760)"},
    {"noname.json", "name: missing"},
    {"strname.json", "name: expected a string, found a number"},
    {"badtable.json", "table: \"Bad-Name\" is not a valid identifier ([a-z_][a-z0-9_]{0,62})"},
    {"badendpoint.json", "endpoint: \"/v3/contacts\" does not start with /v1/ or /v2/"},
    {"dotendpoint.json", "endpoint: \"/v1/../admin\" is not a valid endpoint path (segments of "
                         "letters, digits, _ . -)"},
    {"notupdated.json", "updated_field: \"last_updated\" is not one of the columns"},
    {"updatedtype.json",
     "updated_field: column \"last_updated\" has type text, expected timestamptz"},
    {"v1filter.json", "incremental.filter_since: not allowed for /v1/ endpoints (use "
                      "since_param and until_param)"},
    {"v2since.json", "incremental.since_param: not allowed for /v2/ endpoints (use "
                     "filter_since and filter_until)"},
    {"v1nosince.json", "incremental.since_param: missing (required for /v1/ endpoints)"},
    {"v2nofilter.json", "incremental.filter_since: missing (required for /v2/ endpoints)"},
    {"pagesize0.json", "page_size: 0 is out of range (1..1000)"},
    {"pagesizefrac.json", "page_size: expected an integer, found 2.5"},
    {"reserved.json", "columns[0].name: \"data\" is reserved (id, data, synced_at and deleted_at "
                      "are set by keapsync)"},
    {"dupcol.json", "columns[2].name: \"email\" is already the name of columns[0]"},
    {"badpath.json", "columns[0].path: \"company..id\" is not a valid path (at most 8 "
                     "dot-separated keys, array indices or [key=value] selectors)"},
    {"colkey.json", "columns[0]: unknown key \"nullable\""},
    {"wrongname.json", "name: \"contacts\" does not match the file name (expected \"wrongname\")"},
    {"syntax.json", "invalid JSON near line 3, column 31"},
    {"v2optprops.json", "optional_properties: only for /v1/ endpoints (v2 uses fields)"},
    {"dupkey.json", "duplicate key \"endpoint\""},
    {"nocolumns.json", "columns: missing"},
};

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad_cases); i++) {
        struct jobs_job job, poison;
        struct base_err err;
        char path[256], want[600];

        snprintf(path, sizeof(path), BAD "%s", bad_cases[i].file);
        snprintf(want, sizeof(want), "\"%s\": %s", path, bad_cases[i].msg);
        memset(&job, POISON, sizeof(job));
        memcpy(&poison, &job, sizeof(job));
        base_err_clear(&err);
        assert_int_equal(jobs_load_file(path, &job, &err), BASE_ECONFIG);
        assert_int_equal(err.code, BASE_ECONFIG);
        assert_string_equal(err.msg, want);
        assert_memory_equal(&job, &poison, sizeof(job));
    }
}

static void test_missing_file(void **state)
{
    struct jobs_job job;
    struct base_err err;

    (void)state;
    memset(&job, POISON, sizeof(job));
    assert_int_equal(jobs_load_file(BAD "absent.json", &job, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "could not open job file \"" BAD
                                 "absent.json\": No such file or directory");
    assert_int_equal(((unsigned char *)&job)[0], POISON);
}

static void test_dir_errors(void **state)
{
    struct jobs_set set, poison;
    struct base_err err;

    (void)state;
    memset(&set, POISON, sizeof(set));
    memcpy(&poison, &set, sizeof(set));

    assert_int_equal(jobs_load_dir("tests/unit/jobs/nope", &set, &err), BASE_ECONFIG);
    assert_string_equal(err.msg,
                        "could not open jobs folder \"tests/unit/jobs/nope\": No such file or "
                        "directory");
    assert_string_equal(err.hint, "set KEAPSYNC_JOBS or run from the project root");
    assert_memory_equal(&set, &poison, sizeof(set));

    assert_int_equal(jobs_load_dir("tests/unit/jobs/empty", &set, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "no job files in \"tests/unit/jobs/empty\"");
    assert_memory_equal(&set, &poison, sizeof(set));

    assert_int_equal(jobs_load_dir("tests/unit/jobs/dup_table/", &set, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "\"tests/unit/jobs/dup_table/b.json\": table: \"people\" is "
                                 "already the table of the job in "
                                 "\"tests/unit/jobs/dup_table/a.json\"");
    assert_memory_equal(&set, &poison, sizeof(set));

    /* A folder with a bad file fails with that file's error: the first one in name order. */
    assert_int_equal(jobs_load_dir("tests/unit/jobs/bad", &set, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "\"tests/unit/jobs/bad/badendpoint.json\": endpoint: "
                                 "\"/v3/contacts\" does not start with /v1/ or /v2/");
    assert_memory_equal(&set, &poison, sizeof(set));
}

static void test_select(void **state)
{
    struct jobs_set set;
    struct base_err err;

    (void)state;
    assert_int_equal(jobs_load_dir("tests/unit/jobs/good", &set, &err), 0);
    assert_int_equal(set.n, 3);

    /* Unknown names and empty items change nothing. */
    assert_int_equal(jobs_select(&set, "tags,nope", &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "unknown job \"nope\"");
    assert_int_equal(set.n, 3);
    assert_int_equal(jobs_select(&set, "tags,,notes", &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "empty job name in \"tags,,notes\"");
    assert_int_equal(jobs_select(&set, "", &err), BASE_ECONFIG);
    assert_int_equal(set.n, 3);

    /* NULL keeps everything. */
    assert_int_equal(jobs_select(&set, NULL, &err), 0);
    assert_int_equal(set.n, 3);

    /* Order is the folder's, not the list's; spaces around names are fine. */
    assert_int_equal(jobs_select(&set, " tags , notes,tags", &err), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.jobs[0].name, "notes");
    assert_string_equal(set.jobs[1].name, "tags");

    /* A job selected away is gone. */
    assert_int_equal(jobs_select(&set, "opportunities", &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "unknown job \"opportunities\"");
    assert_int_equal(jobs_select(&set, "tags", &err), 0);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.jobs[0].name, "tags");
    jobs_set_free(&set);
}

/* ---- the shipped folder: every resource of KEAP_API.md's endpoint table ---------------- */

struct api_row {
    char name[64];
    char v1[128], v2[128];
};

/* The text between the first pair of backticks of cell[0..n) into out (or ""). */
static void cell_code(const char *cell, size_t n, char *out, size_t outn)
{
    const char *a = memchr(cell, '`', n), *b;

    out[0] = '\0';
    if (a == NULL)
        return;
    b = memchr(a + 1, '`', n - (size_t)(a + 1 - cell));
    if (b == NULL || (size_t)(b - a - 1) >= outn)
        return;
    memcpy(out, a + 1, (size_t)(b - a - 1));
    out[b - a - 1] = '\0';
}

/* Reads the rows of "## List endpoints" in KEAP_API.md: | resource | `v1` | `v2` | ... */
static size_t read_endpoint_table(const char *md, struct api_row *rows, size_t max)
{
    const char *p = strstr(md, "## List endpoints");
    size_t n = 0;

    assert_non_null(p);
    p = strstr(p, "|---");
    assert_non_null(p);
    p = strchr(p, '\n');
    while (p != NULL && p[1] == '|' && n < max) {
        const char *line = p + 1, *end = strchr(line, '\n');
        const char *cells[5];
        size_t k = 0;

        for (const char *q = line; q < end && k < 5; q++)
            if (*q == '|')
                cells[k++] = q + 1;
        ASSERT_GE(k, 4);
        {
            const char *a = cells[0], *b = cells[1] - 1;

            while (a < b && *a == ' ')
                a++;
            while (b > a && b[-1] == ' ')
                b--;
            ASSERT_LT((size_t)(b - a), sizeof(rows[n].name));
            memcpy(rows[n].name, a, (size_t)(b - a));
            rows[n].name[b - a] = '\0';
        }
        cell_code(cells[1], (size_t)(cells[2] - cells[1]), rows[n].v1, sizeof(rows[n].v1));
        cell_code(cells[2], (size_t)(cells[3] - cells[2]), rows[n].v2, sizeof(rows[n].v2));
        n++;
        p = end;
    }
    return n;
}

static const struct jobs_job *find_job_named(const struct jobs_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->jobs[i].name, name) == 0)
            return &set->jobs[i];
    return NULL;
}

static bool has_column(const struct jobs_job *job, const char *name)
{
    for (size_t i = 0; i < job->map.ncols; i++)
        if (strcmp(job->map.cols[i].name, name) == 0)
            return true;
    return false;
}

/* Counts the *.json files of dir. */
static size_t count_json(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        n += de->d_name[0] != '.' && len > 5 && strcmp(de->d_name + len - 5, ".json") == 0;
    }
    closedir(d);
    return n;
}

static void test_shipped_all(void **state)
{
    struct api_row rows[32];
    struct jobs_set set;
    struct base_err err;
    char *md = read_text(API_MD), needle[80];
    size_t nrows, i;
    const struct jobs_job *tags, *emails;
    DIR *d;
    struct dirent *de;

    (void)state;
    nrows = read_endpoint_table(md, rows, BASE_ARRAY_SIZE(rows));
    ASSERT_GE(nrows, 13);
    base_err_clear(&err);
    assert_int_equal(jobs_load_dir("jobs", &set, &err), 0);
    /* Every file of the folder is a job, and every job runs (none is switched off). */
    assert_int_equal(set.n, count_json("jobs"));
    assert_int_equal(set.n, nrows + 1); /* the resources and contact_tags */

    for (i = 0; i < nrows; i++) {
        const struct jobs_job *job = find_job_named(&set, rows[i].name);

        print_message("resource %s: %s | %s\n", rows[i].name, rows[i].v1, rows[i].v2);
        assert_non_null(job);
        assert_true(strcmp(job->endpoint, rows[i].v1) == 0 ||
                    strcmp(job->endpoint, rows[i].v2) == 0);
        assert_int_equal(job->api,
                         strcmp(job->endpoint, rows[i].v1) == 0 ? KEAP_API_V1 : KEAP_API_V2);
        assert_null(job->parent_job);
    }
    for (i = 0; i < set.n; i++) {
        const struct jobs_job *job = &set.jobs[i];
        const char *param = job->api == KEAP_API_V1 ? job->since_param : job->filter_since;

        /* A description that starts with the version it explains. */
        assert_non_null(job->description);
        ASSERT_GT(strlen(job->description), 20);
        assert_int_equal(strncmp(job->description, job->api == KEAP_API_V1 ? "v1" : "v2", 2), 0);
        /* A list without a changed-since filter is read in full on its own cadence (a child
         * stream reads the parents that changed). */
        if (job->parent_job != NULL) {
            assert_int_equal(job->refresh_hours, 0);
        } else if (!job->incremental) {
            ASSERT_GT(job->refresh_hours, 0);
        } else {
            /* The filter it names is one KEAP_API.md documents. */
            snprintf(needle, sizeof(needle), "`%s`", param);
            assert_non_null(strstr(md, needle));
            assert_int_equal(job->refresh_hours, 0);
        }
        /* No shipped column depends on a label only some accounts have. */
        assert_int_equal(job->unresolved, 0);
        ASSERT_GE(job->map.ncols, 3);
    }

    /* Each contact's tags, with the date applied, per parent. */
    tags = find_job_named(&set, "contact_tags");
    assert_non_null(tags);
    assert_string_equal(tags->parent_job, "contacts");
    assert_string_equal(tags->endpoint, "/v1/contacts/{parent_id}/tags");
    assert_true(has_column(tags, "date_applied"));
    /* Sent emails come from the account-wide list, which carries contact_id. */
    emails = find_job_named(&set, "emails");
    assert_non_null(emails);
    assert_string_equal(emails->endpoint, "/v1/emails");
    assert_true(has_column(emails, "contact_id"));
    assert_non_null(strstr(emails->description, "one request per 1,000"));
    /* v2 companies must ask for update_time to have it. */
    {
        const struct jobs_job *co = find_job_named(&set, "companies");

        assert_non_null(co);
        if (co->api == KEAP_API_V2 && co->updated_field != NULL) {
            bool asked = false;

            for (size_t q = 0; q < co->nquery; q++)
                asked |= strcmp(co->query[q].name, "fields") == 0 &&
                         strstr(co->query[q].value, co->updated_field) != NULL;
            assert_true(asked);
        }
    }
    jobs_set_free(&set);

    /* The examples load one by one (their parent is in jobs/) and describe themselves too. */
    d = opendir("jobs/examples");
    assert_non_null(d);
    i = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        struct jobs_job job;
        char path[300];

        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "jobs/examples/%s", de->d_name);
        assert_int_equal(jobs_load_file(path, &job, &err), 0);
        assert_non_null(job.description);
        jobs_job_free(&job);
        i++;
    }
    closedir(d);
    assert_int_equal(i, count_json("jobs/examples"));
    free(md);
}

/* ---- the new keys: description, query, custom fields by label --------------------------- */

static void test_new_keys(void **state)
{
    struct jobs_set set;
    struct base_err err;
    struct jobs_job *co, *pr;
    cJSON *file, *q, *model, *rec;
    char *text, want[128];
    const cJSON *m;
    size_t i = 0;

    (void)state;
    assert_int_equal(jobs_load_dir(KEYS, &set, &err), 0);
    assert_int_equal(set.n, 2);
    co = &set.jobs[0];
    pr = &set.jobs[1];
    text = read_text(KEYS "/companies.json");
    file = cJSON_Parse(text);
    assert_non_null(file);

    assert_string_equal(co->description, cJSON_GetObjectItem(file, "description")->valuestring);
    q = cJSON_GetObjectItem(file, "query");
    assert_int_equal(co->nquery, (size_t)cJSON_GetArraySize(q));
    cJSON_ArrayForEach(m, q)
    {
        assert_string_equal(co->query[i].name, m->string);
        assert_string_equal(co->query[i].value, m->valuestring);
        i++;
    }
    assert_string_equal(co->model_object, "companies");
    assert_string_equal(co->schedule, cJSON_GetObjectItem(file, "schedule")->valuestring);
    assert_null(pr->schedule); /* none: the daemon's default (KEAPSYNC_SCHEDULE) applies */
    assert_int_equal(co->unresolved, 2);
    for (i = 0; i < co->map.ncols; i++) {
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(file, "columns"), (int)i);
        const cJSON *cf = cJSON_GetObjectItem(c, "custom_field");

        if (cf != NULL) {
            assert_string_equal(co->custom_labels[i], cf->valuestring);
            assert_null(co->map.cols[i].path);
        } else {
            assert_null(co->custom_labels[i]);
            assert_string_equal(co->map.cols[i].path, cJSON_GetObjectItem(c, "path")->valuestring);
        }
    }
    assert_null(pr->description);
    assert_int_equal(pr->nquery, 0);
    assert_null(pr->model_object); /* products have no custom fields model */
    assert_int_equal(pr->unresolved, 0);

    /* The fixed parameters go out with every page, after keapsync's own, encoded. */
    {
        struct keap_v2_query vq = {.page_size = 10, .since_ms = -1, .until_ms = -1};
        struct base_buf url;

        vq.extra = co->query;
        vq.nextra = co->nquery;
        base_buf_init(&url, 4096);
        assert_int_equal(keap_build_v2_url(&url, "http://h", co->endpoint, &vq), 0);
        assert_string_equal(url.data, "http://h/v2/companies?page_size=10"
                                      "&fields=id%2Ccompany_name%2Cupdate_time&x_extra=a%20b%26c");
        base_buf_free(&url);
    }

    /* A model without custom_fields is the server's fault; nothing changes. */
    model = cJSON_Parse("{\"optional_properties\":[]}");
    assert_int_equal(jobs_resolve_custom_fields(co, model, &err), BASE_EPROTO);
    assert_int_equal(co->unresolved, 2);
    cJSON_Delete(model);
    /* Two fields of one label are ambiguous. */
    model = cJSON_Parse("{\"custom_fields\":[{\"id\":12,\"label\":\"Industry\"},"
                        "{\"id\":13,\"label\":\"Industry\"}]}");
    assert_int_equal(jobs_resolve_custom_fields(co, model, &err), BASE_ECONFIG);
    assert_string_equal(err.msg, "\"" KEYS "/companies.json\": columns[1].custom_field: column "
                                 "\"industry\": two custom fields of companies are labelled "
                                 "\"Industry\" (use a path with the field's id)");
    cJSON_Delete(model);

    /* Resolved: each label reads custom_fields.[id=N].content with the model's id. */
    model = cJSON_Parse("{\"custom_fields\":[{\"id\":14,\"label\":\"Employees\"},"
                        "{\"id\":12,\"label\":\"Industry\",\"field_type\":\"Text\"}]}");
    assert_int_equal(jobs_resolve_custom_fields(co, model, &err), 0);
    assert_int_equal(co->unresolved, 0);
    for (i = 0; i < co->map.ncols; i++) {
        const cJSON *f;

        if (co->custom_labels[i] == NULL)
            continue;
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(model, "custom_fields"))
        {
            if (strcmp(cJSON_GetObjectItem(f, "label")->valuestring, co->custom_labels[i]) != 0)
                continue;
            snprintf(want, sizeof(want), "custom_fields.[id=%d].content",
                     cJSON_GetObjectItem(f, "id")->valueint);
            assert_string_equal(co->map.cols[i].path, want);
            assert_int_equal(co->map.cols[i].nparts, 3);
            assert_int_equal(co->map.cols[i].index[1], MAP_PART_MATCH);
        }
    }
    /* Again: nothing left to do. */
    assert_int_equal(jobs_resolve_custom_fields(co, model, &err), 0);
    cJSON_Delete(model);

    /* A record reads the right field whatever the order (v2 ids are strings). */
    rec = cJSON_Parse("{\"id\":\"3\",\"custom_fields\":[{\"content\":250,\"id\":\"14\"},"
                      "{\"content\":\"Retail\",\"id\":\"12\"}]}");
    assert_string_equal(map_lookup(rec, &co->map.cols[1])->valuestring, "Retail");
    assert_int_equal(map_lookup(rec, &co->map.cols[3])->valueint, 250);
    cJSON_Delete(rec);

    cJSON_Delete(file);
    free(text);
    jobs_set_free(&set);
}

/*
 * The corpus of broken files for the new keys: each BAD<case>.json beside BAD<case>.expect,
 * which holds the message after '"<file>": ' (field first). A case that loads needs the model:
 * it is resolved with keapsim's contacts model. tests/integration/bad_jobs.sh runs the same
 * corpus through `keapsync check`.
 */
static void test_bad_corpus(void **state)
{
    DIR *d = opendir(BAD);
    struct dirent *de;
    size_t n = 0, with_model = 0;
    char *mtext = read_text(MODEL);
    cJSON *model = cJSON_Parse(mtext);

    (void)state;
    assert_non_null(d);
    assert_non_null(model);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char path[300], want[800], *frag;
        struct jobs_job job, poison;
        struct base_err err;
        int rc;

        if (len <= 7 || strcmp(de->d_name + len - 7, ".expect") != 0)
            continue;
        snprintf(path, sizeof(path), BAD "%s", de->d_name);
        frag = read_text(path);
        frag[strcspn(frag, "\n")] = '\0';
        snprintf(path, sizeof(path), BAD "%.*s.json", (int)(len - 7), de->d_name);
        snprintf(want, sizeof(want), "\"%s\": %s", path, frag);
        print_message("%s\n", path);
        memset(&job, POISON, sizeof(job));
        memcpy(&poison, &job, sizeof(job));
        base_err_clear(&err);
        rc = jobs_load_file(path, &job, &err);
        if (rc < 0) {
            assert_int_equal(rc, BASE_ECONFIG);
            assert_string_equal(err.msg, want);
            assert_memory_equal(&job, &poison, sizeof(job));
        } else {
            ASSERT_GT(job.unresolved, 0);
            assert_int_equal(jobs_resolve_custom_fields(&job, model, &err), BASE_ECONFIG);
            assert_string_equal(err.msg, want);
            jobs_job_free(&job);
            with_model++;
        }
        free(frag);
        n++;
    }
    closedir(d);
    ASSERT_GE(n, 20);
    ASSERT_GE(with_model, 2);
    cJSON_Delete(model);
    free(mtext);
}

static int setup(void **state)
{
    (void)state;
    return chdir(KEAPSYNC_SOURCE_DIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identifier),   cmocka_unit_test(test_shipped_contacts),
        cmocka_unit_test(test_good_dir),     cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_missing_file), cmocka_unit_test(test_dir_errors),
        cmocka_unit_test(test_select),       cmocka_unit_test(test_shipped_all),
        cmocka_unit_test(test_new_keys),     cmocka_unit_test(test_bad_corpus),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
