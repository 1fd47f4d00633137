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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs.h"

#define BAD "tests/unit/jobs/bad/"

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
    assert_true(set.n >= 1);
    for (i = 0; i < set.n; i++) {
        if (strcmp(set.jobs[i].name, "contacts") == 0)
            job = &set.jobs[i];
        /* Every shipped job passes the identifier and file-name rules. */
        assert_true(jobs_is_identifier(set.jobs[i].table));
        if (i > 0)
            assert_true(strcmp(set.jobs[i - 1].file, set.jobs[i].file) < 0);
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
        assert_true(mc->nparts >= 1);
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
    {"reserved.json",
     "columns[0].name: \"data\" is reserved (id, data and synced_at are set by keapsync)"},
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
        cmocka_unit_test(test_select),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
