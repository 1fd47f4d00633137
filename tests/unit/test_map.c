/*
 * Unit tests for map: the real v1 contacts page through the shipped jobs/contacts.json
 * columns, each field checked against the fixture; COPY escaping; type conversions and
 * mismatches (counted, logged at most 5 times per column, raw value kept in data); the
 * [key=value] selector on the real opportunities page; id errors; the buffer cap.
 *
 * Words: a "line" is one COPY text line; its "fields" are the tab-separated values after
 * un-escaping, NULL for \N.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "map.h"
#include "test_assert.h"

#define FIXTURES   KEAPSYNC_KEAP_DATA "/fixtures/"
#define MAX_FIELDS 64

static cJSON *parse_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    cJSON *v;

    if (f == NULL)
        fail_msg("could not open test input \"%s\": %s", path, strerror(errno));
    buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    v = cJSON_Parse(buf);
    assert_non_null(v);
    free(buf);
    return v;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    assert_non_null(p);
    return p;
}

/* Fills col from name/path/type and compiles it. */
static void column_init(struct map_column *col, const char *name, const char *path,
                        enum map_type type)
{
    memset(col, 0, sizeof(*col));
    col->name = xstrdup(name);
    col->path = xstrdup(path);
    col->type = type;
    assert_int_equal(map_column_compile(col), 0);
}

/* A spec from the "columns" of a job file, the way jobs builds it (v1: bigint id). */
static void spec_from_job_file(struct map_spec *spec, const char *path)
{
    cJSON *job = parse_file(path);
    const cJSON *cols = cJSON_GetObjectItem(job, "columns");
    size_t i = 0;

    assert_true(cJSON_IsArray(cols));
    spec->ncols = (size_t)cJSON_GetArraySize(cols);
    spec->cols = calloc(spec->ncols, sizeof(*spec->cols));
    assert_non_null(spec->cols);
    column_init(&spec->id, "id", "id", MAP_BIGINT);
    for (const cJSON *c = cols->child; c != NULL; c = c->next, i++) {
        enum map_type t;

        assert_int_equal(map_type_from_name(cJSON_GetObjectItem(c, "type")->valuestring, &t), 0);
        column_init(&spec->cols[i], cJSON_GetObjectItem(c, "name")->valuestring,
                    cJSON_GetObjectItem(c, "path")->valuestring, t);
    }
    cJSON_Delete(job);
}

/* A spec of given columns ("name:path:type" is too clever; pass arrays). */
static void spec_init(struct map_spec *spec, enum map_type id_type, size_t n,
                      const char *const *names, const char *const *paths,
                      const enum map_type *types)
{
    memset(spec, 0, sizeof(*spec));
    column_init(&spec->id, "id", "id", id_type);
    spec->ncols = n;
    spec->cols = calloc(n ? n : 1, sizeof(*spec->cols));
    assert_non_null(spec->cols);
    for (size_t i = 0; i < n; i++)
        column_init(&spec->cols[i], names[i], paths[i], types[i]);
}

static void spec_free(struct map_spec *spec)
{
    map_column_free(&spec->id);
    for (size_t i = 0; i < spec->ncols; i++)
        map_column_free(&spec->cols[i]);
    free(spec->cols);
    memset(spec, 0, sizeof(*spec));
}

/*
 * Splits one COPY line (which must end in its only raw newline) into un-escaped fields.
 * Returns the field count; fields[i] is NULL for \N. Fails the test on a malformed escape.
 */
static size_t split_line(const char *line, size_t len, char **fields)
{
    size_t n = 0;
    const char *p = line, *end = line + len;

    ASSERT_GT(len, 0);
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    assert_null(memchr(line, '\r', len));
    end--; /* drop the newline */
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *stop = tab ? tab : end;
        char *f, *w;

        ASSERT_LT(n, MAX_FIELDS);
        if (stop - p == 2 && p[0] == '\\' && p[1] == 'N') {
            fields[n++] = NULL;
        } else {
            f = malloc((size_t)(stop - p) + 1);
            assert_non_null(f);
            w = f;
            for (const char *q = p; q < stop; q++) {
                if (*q != '\\') {
                    *w++ = *q;
                    continue;
                }
                q++;
                assert_true(q < stop); /* pointers */
                switch (*q) {
                case '\\':
                    *w++ = '\\';
                    break;
                case 't':
                    *w++ = '\t';
                    break;
                case 'n':
                    *w++ = '\n';
                    break;
                case 'r':
                    *w++ = '\r';
                    break;
                default:
                    fail_msg("unexpected escape \\%c", *q);
                }
            }
            *w = '\0';
            fields[n++] = f;
        }
        if (tab == NULL)
            break;
        p = tab + 1;
    }
    return n;
}

static void fields_free(char **fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(fields[i]);
}

/* The test's own path walk (independent of map_lookup): keys, array indices, [k=v]. */
static const cJSON *walk(const cJSON *v, const char *path)
{
    char part[128];
    const char *p = path;

    while (v != NULL) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        ASSERT_GT(n, 0);
        ASSERT_LT(n, sizeof(part));
        memcpy(part, p, n);
        part[n] = '\0';
        if (part[0] == '[') {
            char *eq = strchr(part, '=');
            const cJSON *e;

            assert_non_null(eq);
            *eq = '\0';         /* part + 1: the key */
            part[n - 1] = '\0'; /* eq + 1: the value */
            for (e = cJSON_IsArray(v) ? v->child : NULL; e != NULL; e = e->next) {
                const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, part + 1);

                if (cJSON_IsNumber(k) && k->valuedouble == strtod(eq + 1, NULL))
                    break;
                if (cJSON_IsString(k) && strcmp(k->valuestring, eq + 1) == 0)
                    break;
            }
            v = e;
        } else if (part[0] >= '0' && part[0] <= '9') {
            v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, (int)strtol(part, NULL, 10)) : NULL;
        } else {
            v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, part) : NULL;
        }
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    return v;
}

/* Checks one field against the raw value the fixture holds at the column's path. */
static void check_field(const struct map_column *col, const cJSON *raw, const char *field)
{
    char want[64];
    int64_t ms;

    if (raw == NULL || cJSON_IsNull(raw)) {
        assert_null(field);
        return;
    }
    assert_non_null(field);
    switch (col->type) {
    case MAP_TEXT:
        assert_true(cJSON_IsString(raw));
        assert_string_equal(field, raw->valuestring);
        break;
    case MAP_BOOLEAN:
        assert_true(cJSON_IsBool(raw));
        assert_string_equal(field, cJSON_IsTrue(raw) ? "t" : "f");
        break;
    case MAP_BIGINT:
        assert_true(cJSON_IsNumber(raw));
        snprintf(want, sizeof(want), "%.0f", raw->valuedouble);
        assert_string_equal(field, want);
        break;
    case MAP_TIMESTAMPTZ:
        assert_true(cJSON_IsString(raw));
        assert_int_equal(base_time_parse(raw->valuestring, &ms), 0);
        assert_int_equal(base_time_format(ms, want, sizeof(want)), 0);
        assert_string_equal(field, want);
        /* Written in UTC, whatever offset Keap used. */
        assert_int_equal(field[strlen(field) - 1], 'Z');
        break;
    case MAP_JSONB: {
        cJSON *back = cJSON_Parse(field);

        assert_non_null(back);
        assert_true(cJSON_Compare(back, raw, 1));
        cJSON_Delete(back);
        break;
    }
    default:
        fail_msg("column %s: type %d not in the shipped contacts job", col->name, col->type);
    }
}

static void test_fixture_contacts(void **state)
{
    cJSON *page = parse_file(FIXTURES "v1-contacts-page.json");
    const cJSON *records = cJSON_GetObjectItem(page, "contacts");
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf out;
    struct base_err err;
    size_t start = 0, nrec = 0, nnull = 0;

    (void)state;
    spec_from_job_file(&spec, KEAPSYNC_SOURCE_DIR "/jobs/contacts.json");
    base_buf_init(&out, 1 << 20);
    ASSERT_GT(cJSON_GetArraySize(records), 0);
    for (const cJSON *r = records->child; r != NULL; r = r->next, nrec++) {
        char *fields[MAX_FIELDS];
        char idbuf[32], want_id[32];
        size_t nf;
        cJSON *data;

        assert_int_equal(map_record_to_copy(&spec, r, &out, &st, &err), 0);
        nf = split_line(out.data + start, out.len - start, fields);
        start = out.len;
        assert_int_equal(nf, spec.ncols + 2);

        snprintf(want_id, sizeof(want_id), "%.0f", cJSON_GetObjectItem(r, "id")->valuedouble);
        assert_string_equal(fields[0], want_id);
        assert_int_equal(map_record_id(&spec, r, idbuf, sizeof(idbuf)), 0);
        assert_string_equal(idbuf, want_id);

        for (size_t i = 0; i < spec.ncols; i++) {
            const cJSON *raw = walk(r, spec.cols[i].path);

            assert_ptr_equal(map_lookup(r, &spec.cols[i]), raw);
            check_field(&spec.cols[i], raw, fields[i + 1]);
            nnull += fields[i + 1] == NULL;
        }
        /* data: the whole record, exactly. */
        data = cJSON_Parse(fields[nf - 1]);
        assert_non_null(data);
        assert_true(cJSON_Compare(data, r, 1));
        cJSON_Delete(data);
        fields_free(fields, nf);
    }
    assert_int_equal(st.rows, (int64_t)nrec);
    assert_int_equal(st.mismatches, 0); /* real data fits the shipped types */
    ASSERT_GT(nnull, 0);                /* the fixture's nulls were exercised */
    base_buf_free(&out);
    spec_free(&spec);
    cJSON_Delete(page);
}

/* Maps one record with spec into a fresh buffer and splits it. */
static size_t map_one(const struct map_spec *spec, const cJSON *rec, char **fields,
                      struct map_stats *st, struct base_buf *raw)
{
    struct base_err err;
    size_t n;

    base_buf_init(raw, 1 << 16);
    assert_int_equal(map_record_to_copy(spec, rec, raw, st, &err), 0);
    n = split_line(raw->data, raw->len, fields);
    assert_int_equal(n, spec->ncols + 2);
    return n;
}

static void test_escaping(void **state)
{
    static const char *const names[] = {"note", "extra"};
    static const char *const paths[] = {"note", "extra"};
    static const enum map_type types[] = {MAP_TEXT, MAP_JSONB};
    const char *note = "tab\there\nnew line\\back slash\rcr\x01"
                       "end";
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf raw;
    char *fields[MAX_FIELDS];
    cJSON *rec, *data;
    size_t n, tabs = 0;

    (void)state;
    spec_init(&spec, MAP_BIGINT, 2, names, paths, types);
    rec = cJSON_CreateObject();
    cJSON_AddNumberToObject(rec, "id", 7);
    cJSON_AddStringToObject(rec, "note", note);
    cJSON_AddItemToObject(rec, "extra", cJSON_Parse("{\"k\":\"a\\tb\\\\c\"}"));
    n = map_one(&spec, rec, fields, &st, &raw);

    /* The escapes themselves, as COPY reads them. */
    assert_non_null(strstr(raw.data, "\ttab\\there\\nnew line\\\\back slash\\rcr\x01"
                                     "end\t"));
    for (size_t i = 0; i < raw.len; i++)
        tabs += raw.data[i] == '\t';
    assert_int_equal(tabs, spec.ncols + 1);
    /* And they read back. */
    assert_string_equal(fields[1], note);
    data = cJSON_Parse(fields[2]);
    assert_true(cJSON_Compare(data, cJSON_GetObjectItem(rec, "extra"), 1));
    cJSON_Delete(data);
    data = cJSON_Parse(fields[n - 1]);
    assert_true(cJSON_Compare(data, rec, 1));
    cJSON_Delete(data);
    fields_free(fields, n);
    base_buf_free(&raw);
    cJSON_Delete(rec);
    spec_free(&spec);
}

/* One value through one column: the field written, or NULL; *mismatch set if counted. */
static char *convert(enum map_type type, const char *json_value, int *mismatch)
{
    static const char *const names[] = {"v"};
    static const char *const paths[] = {"v"};
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf raw;
    char *fields[MAX_FIELDS], *result;
    char text[512];
    cJSON *rec;
    size_t n;

    spec_init(&spec, MAP_BIGINT, 1, names, paths, &type);
    snprintf(text, sizeof(text), "{\"id\": 1, \"v\": %s}", json_value);
    rec = cJSON_Parse(text);
    assert_non_null(rec);
    n = map_one(&spec, rec, fields, &st, &raw);
    result = fields[1];
    fields[1] = NULL;
    *mismatch = (int)st.mismatches;
    assert_int_equal(st.rows, 1);
    fields_free(fields, n);
    base_buf_free(&raw);
    cJSON_Delete(rec);
    spec_free(&spec);
    return result;
}

/* Expects json_value to be written as want (NULL: \N) with no mismatch. */
static void want_value(enum map_type type, const char *json_value, const char *want)
{
    int mismatch;
    char *got = convert(type, json_value, &mismatch);

    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
    assert_int_equal(mismatch, 0);
    free(got);
}

static void want_mismatch(enum map_type type, const char *json_value)
{
    int mismatch;
    char *got = convert(type, json_value, &mismatch);

    assert_null(got);
    assert_int_equal(mismatch, 1);
}

static void test_types(void **state)
{
    char want[64];
    int64_t ms;
    double d;
    int mismatch;
    char *got;
    static const char *const doubles[] = {"0.1", "-2.5e-7", "1e300", "123456789.123456789",
                                          "3",   "-0.0"};

    (void)state;
    /* text: strings as is, numbers and booleans as JSON text. */
    want_value(MAP_TEXT, "\"x\"", "x");
    want_value(MAP_TEXT, "\"\"", "");
    want_value(MAP_TEXT, "42", "42");
    want_value(MAP_TEXT, "true", "true");
    want_mismatch(MAP_TEXT, "{\"a\":1}");
    want_mismatch(MAP_TEXT, "[1]");
    want_value(MAP_TEXT, "null", NULL);

    /* bigint: integral numbers in range, digit strings (v2 ids). */
    want_value(MAP_BIGINT, "-17", "-17");
    want_value(MAP_BIGINT, "\"9223372036854775807\"", "9223372036854775807");
    want_value(MAP_BIGINT, "1e3", "1000");
    want_mismatch(MAP_BIGINT, "1.5");
    want_mismatch(MAP_BIGINT, "1e19");
    want_mismatch(MAP_BIGINT, "\"9223372036854775808\"");
    want_mismatch(MAP_BIGINT, "\" 12\"");
    want_mismatch(MAP_BIGINT, "\"+12\"");
    want_mismatch(MAP_BIGINT, "\"\"");
    want_mismatch(MAP_BIGINT, "true");

    /* double and numeric: what is written reads back as the same double. */
    for (size_t i = 0; i < BASE_ARRAY_SIZE(doubles); i++) {
        for (int t = MAP_DOUBLE; t <= MAP_NUMERIC; t++) {
            got = convert((enum map_type)t, doubles[i], &mismatch);
            assert_non_null(got);
            assert_int_equal(mismatch, 0);
            assert_int_equal(base_parse_double(got, &d), 0);
            assert_true(d == strtod(doubles[i], NULL));
            free(got);
        }
    }
    want_value(MAP_NUMERIC, "\"12.50\"", "12.50"); /* numeric strings kept exactly */
    want_value(MAP_DOUBLE, "\"-1E+5\"", "-1E+5");
    want_mismatch(MAP_NUMERIC, "\"12,50\"");
    want_mismatch(MAP_NUMERIC, "\"inf\"");
    want_mismatch(MAP_NUMERIC, "\"NaN\"");
    want_mismatch(MAP_DOUBLE, "\"1e999\"");
    want_mismatch(MAP_DOUBLE, "\".\"");
    want_mismatch(MAP_NUMERIC, "false");

    /* boolean: true/false and Keap's 0/1. */
    want_value(MAP_BOOLEAN, "true", "t");
    want_value(MAP_BOOLEAN, "false", "f");
    want_value(MAP_BOOLEAN, "1", "t");
    want_value(MAP_BOOLEAN, "0", "f");
    want_mismatch(MAP_BOOLEAN, "2");
    want_mismatch(MAP_BOOLEAN, "\"true\"");

    /* timestamptz: every Keap form, written in UTC with ms. */
    static const char *const stamps[] = {"2024-11-07T20:35:13.000+0000",
                                         "2024-11-07T22:35:13.217+02:00",
                                         "2017-01-01T22:17:59.039Z", "2024-11-07 15:35:13-05"};
    for (size_t i = 0; i < BASE_ARRAY_SIZE(stamps); i++) {
        char json[64];

        assert_int_equal(base_time_parse(stamps[i], &ms), 0);
        assert_int_equal(base_time_format(ms, want, sizeof(want)), 0);
        snprintf(json, sizeof(json), "\"%s\"", stamps[i]);
        want_value(MAP_TIMESTAMPTZ, json, want);
    }
    want_mismatch(MAP_TIMESTAMPTZ, "\"yesterday\"");
    want_mismatch(MAP_TIMESTAMPTZ, "\"2024-11-07\"");
    want_mismatch(MAP_TIMESTAMPTZ, "1731011713217");

    /* date: a date as is, a timestamp's UTC day. */
    want_value(MAP_DATE, "\"2024-02-29\"", "2024-02-29");
    assert_int_equal(base_time_parse("2024-11-07T23:30:00.000-0500", &ms), 0);
    assert_int_equal(base_time_format_day(ms, want, sizeof(want)), 0);
    assert_string_not_equal(want, "2024-11-07"); /* the UTC day is the next one */
    want_value(MAP_DATE, "\"2024-11-07T23:30:00.000-0500\"", want);
    want_mismatch(MAP_DATE, "\"2024-02-30\"");
    want_mismatch(MAP_DATE, "\"07/11/2024\"");
    want_mismatch(MAP_DATE, "20241107");

    /* jsonb: anything, compact. */
    want_value(MAP_JSONB, "[1, {\"a\": \"b\"}]", "[1,{\"a\":\"b\"}]");
    want_value(MAP_JSONB, "\"s\"", "\"s\"");
    want_value(MAP_JSONB, "null", NULL);
}

/* A mismatch: NULL in its column, counted, raw value still in data; other columns fine. */
static void test_mismatch_keeps_data(void **state)
{
    static const char *const names[] = {"owner_id", "given_name", "missing"};
    static const char *const paths[] = {"owner_id", "given_name", "no.such.path"};
    static const enum map_type types[] = {MAP_BIGINT, MAP_TEXT, MAP_BIGINT};
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf raw;
    char *fields[MAX_FIELDS];
    cJSON *rec, *data;
    size_t n;

    (void)state;
    spec_init(&spec, MAP_BIGINT, 3, names, paths, types);
    rec = cJSON_Parse("{\"id\": 3, \"owner_id\": \"not a number\", \"given_name\": \"Ann\"}");
    n = map_one(&spec, rec, fields, &st, &raw);
    assert_null(fields[1]);
    assert_string_equal(fields[2], "Ann");
    assert_null(fields[3]); /* missing: NULL, not a mismatch */
    assert_int_equal(st.mismatches, 1);
    assert_int_equal(st.rows, 1);
    data = cJSON_Parse(fields[n - 1]);
    assert_string_equal(cJSON_GetObjectItem(data, "owner_id")->valuestring,
                        cJSON_GetObjectItem(rec, "owner_id")->valuestring);
    assert_true(cJSON_Compare(data, rec, 1));
    cJSON_Delete(data);
    fields_free(fields, n);
    base_buf_free(&raw);
    cJSON_Delete(rec);
    spec_free(&spec);
}

/* Warnings: at most 5 per column, then one "not logged" line, then silence. */
static void test_mismatch_log(void **state)
{
    static const char *const names[] = {"log_probe", "log_other"};
    static const char *const paths[] = {"n", "m"};
    static const enum map_type types[] = {MAP_BIGINT, MAP_BOOLEAN};
    const int records = 9;
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf out;
    struct base_err err;
    char line[512];
    FILE *cap = tmpfile();
    int saved, probe = 0, other = 0, further = 0;

    (void)state;
    assert_non_null(cap);
    spec_init(&spec, MAP_BIGINT, 2, names, paths, types);
    base_buf_init(&out, 1 << 16);
    base_log_set_level(BASE_LOG_WARNING);
    fflush(stderr);
    saved = dup(2);
    ASSERT_GE(saved, 0);
    ASSERT_GE(dup2(fileno(cap), 2), 0);
    for (int i = 0; i < records; i++) {
        char text[128];
        cJSON *rec;

        /* log_other mismatches only once, in the first record. */
        snprintf(text, sizeof(text), "{\"id\": %d, \"n\": [\"x\"], \"m\": %s}", 100 + i,
                 i == 0 ? "\"yes\"" : "true");
        rec = cJSON_Parse(text);
        assert_int_equal(map_record_to_copy(&spec, rec, &out, &st, &err), 0);
        cJSON_Delete(rec);
    }
    fflush(stderr);
    ASSERT_GE(dup2(saved, 2), 0);
    close(saved);
    base_log_set_level(BASE_LOG_ERROR);
    assert_int_equal(st.mismatches, records + 1);
    rewind(cap);
    while (fgets(line, sizeof(line), cap) != NULL) {
        if (strstr(line, "further mismatches of column \"log_probe\" are not logged")) {
            further++;
            assert_int_equal(probe, 5);
        } else if (strstr(line, "column \"log_probe\" of record ")) {
            char want[64];

            /* Names the record (in order), the JSON type found and the column type. */
            snprintf(want, sizeof(want), "of record %d: found array, expected bigint", 100 + probe);
            assert_non_null(strstr(line, want));
            assert_non_null(strstr(line, "WARNING"));
            probe++;
        } else if (strstr(line, "column \"log_other\" of record 100: found string, expected "
                                "boolean")) {
            other++;
        } else {
            fail_msg("unexpected log line: %s", line);
        }
    }
    assert_int_equal(probe, 5);
    assert_int_equal(further, 1);
    assert_int_equal(other, 1);
    fclose(cap);
    base_buf_free(&out);
    spec_free(&spec);
}

/* "[id=18]" on the real opportunities page, and on string ids. */
static void test_selector(void **state)
{
    static const char *const names[] = {"colour", "nothing", "first"};
    static const char *const paths[] = {"custom_fields.[id=18].content",
                                        "custom_fields.[id=999].content", "custom_fields.0.id"};
    static const enum map_type types[] = {MAP_TEXT, MAP_TEXT, MAP_BIGINT};
    cJSON *page = parse_file(FIXTURES "v1-opportunities-page.json");
    const cJSON *rec = cJSON_GetArrayItem(cJSON_GetObjectItem(page, "opportunities"), 0);
    const cJSON *cf, *want = NULL;
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf raw;
    char *fields[MAX_FIELDS], idtext[32];
    struct map_column col;
    cJSON *v2;
    size_t n;

    (void)state;
    cf = cJSON_GetObjectItem(rec, "custom_fields");
    for (const cJSON *e = cf->child; e != NULL; e = e->next) {
        if (cJSON_GetObjectItem(e, "id")->valuedouble == 18)
            want = cJSON_GetObjectItem(e, "content");
    }
    assert_non_null(want);
    spec_init(&spec, MAP_BIGINT, 3, names, paths, types);
    assert_int_equal(spec.cols[0].index[1], MAP_PART_MATCH);
    assert_ptr_equal(map_lookup(rec, &spec.cols[0]), want);
    n = map_one(&spec, rec, fields, &st, &raw);
    assert_string_equal(fields[1], want->valuestring);
    assert_null(fields[2]);
    snprintf(idtext, sizeof(idtext), "%.0f",
             cJSON_GetObjectItem(cJSON_GetArrayItem(cf, 0), "id")->valuedouble);
    assert_string_equal(fields[3], idtext);
    fields_free(fields, n);
    base_buf_free(&raw);

    /* String members compare exactly; non-object elements are skipped. */
    v2 = cJSON_Parse("{\"f\": [3, {\"id\": \"18x\", \"c\": 1}, {\"id\": \"18\", \"c\": 2}]}");
    column_init(&col, "c", "f.[id=18].c", MAP_BIGINT);
    assert_ptr_equal(map_lookup(v2, &col), walk(v2, "f.2.c"));
    map_column_free(&col);
    cJSON_Delete(v2);
    spec_free(&spec);
    cJSON_Delete(page);
}

static void test_compile(void **state)
{
    static const char *const bad[] = {"",      "a..b", ".a",    "a.",       "1.2.3.4.5.6.7.8.9",
                                      "[id=]", "[=1]", "[id1]", "a.[id=18", "99999999999"};
    struct map_column col;

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        memset(&col, 0, sizeof(col));
        col.path = xstrdup(bad[i]);
        assert_int_equal(map_column_compile(&col), BASE_EINVAL);
        assert_int_equal(col.nparts, 0); /* untouched */
        map_column_free(&col);
    }
    memset(&col, 0, sizeof(col));
    col.path = xstrdup("a.0.[k=v].b");
    assert_int_equal(map_column_compile(&col), 0);
    assert_int_equal(col.nparts, 4);
    assert_string_equal(col.parts[0], "a");
    assert_int_equal(col.index[0], -1);
    assert_int_equal(col.index[1], 0);
    assert_string_equal(col.parts[2], "k=v");
    assert_int_equal(col.index[2], MAP_PART_MATCH);
    assert_int_equal(col.index[3], -1);
    /* Compiling again replaces the parts (no leak under ASan). */
    free(col.path);
    col.path = xstrdup("1.2.3.4.5.6.7.8");
    assert_int_equal(map_column_compile(&col), 0);
    assert_int_equal(col.nparts, MAP_MAX_PATH_PARTS);
    assert_int_equal(col.index[7], 8);
    map_column_free(&col);
    map_column_free(&col);
    map_column_free(NULL);
}

static void test_type_names(void **state)
{
    static const char *const names[] = {"text",    "bigint",      "double", "numeric",
                                        "boolean", "timestamptz", "date",   "jsonb"};
    enum map_type t = MAP_TEXT;

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(names); i++) {
        assert_int_equal(map_type_from_name(names[i], &t), 0);
        assert_non_null(map_type_sql(t));
    }
    assert_string_equal(map_type_sql(MAP_DOUBLE), "double precision");
    assert_string_equal(map_type_sql(MAP_TIMESTAMPTZ), "timestamptz");
    t = MAP_JSONB;
    assert_int_equal(map_type_from_name("strng", &t), BASE_EINVAL);
    assert_int_equal(t, MAP_JSONB);
}

/* data from the raw text: kept byte for byte (COPY-escaped), not reprinted by cJSON. */
static void test_raw_data(void **state)
{
    static const char *const names[] = {"n"};
    static const char *const paths[] = {"n"};
    static const enum map_type types[] = {MAP_NUMERIC};
    const char raw[] = "{\"id\": 5,\t\"n\": 1.50, \"big\": 12345678901234567890}";
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf out;
    struct base_err err;
    cJSON *rec = cJSON_Parse(raw);

    (void)state;
    spec_init(&spec, MAP_BIGINT, 1, names, paths, types);
    base_buf_init(&out, 1 << 16);
    assert_int_equal(map_record_to_copy_raw(&spec, rec, raw, strlen(raw), &out, &st, &err), 0);
    assert_string_equal(out.data,
                        "5\t1.5\t{\"id\": 5,\\t\"n\": 1.50, \"big\": 12345678901234567890}\n");
    base_buf_reset(&out);
    /* Without raw text the record is printed: the digits a double cannot hold are lost. */
    assert_int_equal(map_record_to_copy(&spec, rec, &out, &st, &err), 0);
    assert_null(strstr(out.data, "12345678901234567890"));
    assert_int_equal(st.rows, 2);
    cJSON_Delete(rec);
    base_buf_free(&out);
    spec_free(&spec);
}

/* A jsonb column whose value the page parse kept raw (cJSON_Raw): its text, COPY-escaped. */
static void test_raw_jsonb_column(void **state)
{
    static const char *const names[] = {"cf"};
    static const char *const paths[] = {"cf"};
    static const enum map_type types[] = {MAP_JSONB};
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf out;
    struct base_err err;
    cJSON *rec = cJSON_CreateObject(), *cf = cJSON_CreateRaw("[{\"v\":\t12345678901234567890}]");

    (void)state;
    cJSON_AddNumberToObject(rec, "id", 7);
    cJSON_AddItemToObject(rec, "cf", cf);
    spec_init(&spec, MAP_BIGINT, 1, names, paths, types);
    base_buf_init(&out, 1 << 16);
    assert_int_equal(map_record_to_copy_raw(&spec, rec, "{}", 2, &out, &st, &err), 0);
    assert_string_equal(out.data, "7\t[{\"v\":\\t12345678901234567890}]\t{}\n");
    assert_int_equal(st.mismatches, 0);
    cJSON_Delete(rec);
    base_buf_free(&out);
    spec_free(&spec);
}

static void test_id_errors(void **state)
{
    static const char *const names[] = {"x"};
    static const char *const paths[] = {"x"};
    static const enum map_type types[] = {MAP_TEXT};
    static const char *const bad[] = {"{\"x\": 1}",    "{\"id\": null}", "{\"id\": \"abc\"}",
                                      "{\"id\": 1.5}", "{\"id\": {}}",   "[1]"};
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf out;
    struct base_err err;
    char idbuf[8] = "keep";
    cJSON *page, *rec;

    (void)state;
    spec_init(&spec, MAP_BIGINT, 1, names, paths, types);
    base_buf_init(&out, 1 << 16);
    assert_int_equal(base_buf_puts(&out, "before\n"), 0);
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
        rec = cJSON_Parse(bad[i]);
        base_err_clear(&err);
        assert_int_equal(map_record_to_copy(&spec, rec, &out, &st, &err), BASE_EPROTO);
        assert_int_equal(err.code, BASE_EPROTO);
        assert_true(strstr(err.msg, "id") != NULL || strstr(err.msg, "object") != NULL);
        assert_string_equal(out.data, "before\n");
        assert_int_equal(map_record_id(&spec, rec, idbuf, sizeof(idbuf)), BASE_EPROTO);
        assert_string_equal(idbuf, "keep");
        cJSON_Delete(rec);
    }
    rec = cJSON_Parse("{\"x\": 1}");
    assert_int_equal(map_record_to_copy(&spec, rec, &out, &st, &err), BASE_EPROTO);
    assert_string_equal(err.msg, "record has no id (path \"id\")");
    cJSON_Delete(rec);
    assert_int_equal(st.rows, 0);
    spec_free(&spec);

    /* v2: string ids, text id column (the real tags page). */
    spec_init(&spec, MAP_TEXT, 1, names, paths, types);
    page = parse_file(FIXTURES "v2-tags-page.json");
    rec = cJSON_GetArrayItem(cJSON_GetObjectItem(page, "tags"), 0);
    assert_int_equal(map_record_id(&spec, rec, idbuf, sizeof(idbuf)), 0);
    assert_string_equal(idbuf, cJSON_GetObjectItem(rec, "id")->valuestring);
    /* Too small a buffer: BASE_ETOOBIG, buf untouched. */
    memcpy(idbuf, "keep", 5);
    ASSERT_GE(strlen(cJSON_GetObjectItem(rec, "id")->valuestring), 2);
    assert_int_equal(map_record_id(&spec, rec, idbuf, 2), BASE_ETOOBIG);
    assert_string_equal(idbuf, "keep");
    cJSON_Delete(page);
    base_buf_free(&out);
    spec_free(&spec);
}

/* Hitting out's cap: BASE_ETOOBIG, nothing appended, nothing counted; one byte more fits. */
static void test_cap(void **state)
{
    static const char *const names[] = {"a", "b"};
    static const char *const paths[] = {"a", "b"};
    static const enum map_type types[] = {MAP_TEXT, MAP_BIGINT};
    const char *prefix = "earlier line\n";
    struct map_spec spec;
    struct map_stats st = {0, 0};
    struct base_buf full, out;
    struct base_err err;
    cJSON *rec;
    size_t linelen;

    (void)state;
    spec_init(&spec, MAP_BIGINT, 2, names, paths, types);
    rec = cJSON_Parse("{\"id\": 12, \"a\": \"some\\ttext\", \"b\": \"oops\"}");
    base_buf_init(&full, 1 << 16);
    assert_int_equal(map_record_to_copy(&spec, rec, &full, &st, &err), 0);
    linelen = full.len;
    assert_int_equal(st.mismatches, 1);

    /* Every cap short of the line fails cleanly (covers each step of the line). */
    for (size_t room = 0; room < linelen; room++) {
        base_buf_init(&out, strlen(prefix) + room);
        assert_int_equal(base_buf_puts(&out, prefix), 0);
        base_err_clear(&err);
        assert_int_equal(map_record_to_copy(&spec, rec, &out, &st, &err), BASE_ETOOBIG);
        assert_int_equal(err.code, BASE_ETOOBIG);
        assert_int_equal(out.len, strlen(prefix));
        assert_string_equal(out.data, prefix);
        base_buf_free(&out);
    }
    assert_int_equal(st.rows, 1);
    assert_int_equal(st.mismatches, 1);
    base_buf_init(&out, strlen(prefix) + linelen);
    assert_int_equal(base_buf_puts(&out, prefix), 0);
    assert_int_equal(map_record_to_copy(&spec, rec, &out, &st, &err), 0);
    assert_string_equal(out.data + strlen(prefix), full.data);
    assert_int_equal(st.rows, 2);
    base_buf_free(&out);
    base_buf_free(&full);
    cJSON_Delete(rec);
    spec_free(&spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_contacts),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_mismatch_keeps_data),
        cmocka_unit_test(test_mismatch_log),
        cmocka_unit_test(test_selector),
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_id_errors),
        cmocka_unit_test(test_raw_data),
        cmocka_unit_test(test_raw_jsonb_column),
        cmocka_unit_test(test_cap),
    };
    /* Mismatch warnings of the other tests would clutter the output: test_mismatch_log
     * turns them on and captures them. */
    base_log_set_level(BASE_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
