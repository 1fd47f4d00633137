/*
 * jobs.c: loading and validating one job file (see jobs.h for the keys). The custom field
 * labels of a job are resolved in labels.c, the jobs folder is loaded in dir.c.
 *
 * Words used here:
 *   job file  jobs/<name>.json: one JSON object defining one job.
 *   field     where in a job file a problem is, as errors name it: "name", "columns[2].type",
 *             "incremental.since_param".
 *   shown     a user string as it appears in an error: quoted, control characters replaced by
 *             '?', cut to fit its buffer (SHOWN_BUF for values, PATH_SHOWN for paths).
 *
 * Validation is strict and stops at the first problem: every error is one line
 * '"<file>": <field>: <what is wrong>' with code BASE_ECONFIG, and nothing is returned.
 */
#include "jobs_int.h"
#include "cron.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOB_FILE_MAX      (1024 * 1024) /* bytes of one job file */
#define COLUMNS_MAX       1000          /* columns of one job (Postgres allows 1600) */
#define PAGE_SIZE_DEFAULT 1000
#define PAGE_SIZE_MAX     1000
#define LAG_DEFAULT       60
#define LAG_MAX           86400
#define OVERLAP_DEFAULT   300
#define OVERLAP_MAX       (7 * 86400)

#define DESCRIPTION_MAX 300 /* bytes of a job's description */
#define QUERY_MAX       32  /* fixed query parameters of one job */
#define QUERY_VALUE_MAX 2000

#define TYPE_LIST "text, bigint, double, numeric, boolean, timestamptz, date or jsonb"
#define IDENT_RE  "[a-z_][a-z0-9_]{0,62}"

static const char *const job_keys[] = {
    "name",
    "endpoint",
    "array_key",
    "table",
    "page_size",
    "order",
    "optional_properties",
    "updated_field",
    "incremental",
    "id",
    "columns",
    "parent",
    "refresh_hours",
    "description",
    "query",
    "deletes",
    "schedule",
};
static const char *const deletes_keys[] = {"sweep_days"};
static const char *const parent_keys[] = {"job", "column"};
static const char *const incremental_keys[] = {
    "since_param", "until_param", "filter_since", "filter_until", "lag_seconds", "overlap_seconds",
};
static const char *const column_keys[] = {"name", "path", "custom_field", "type"};

/* Query parameters keapsync sets itself: a job's "query" may not name them. */
static const char *const owned_params[] = {
    "limit",
    "offset",
    "order",
    "order_direction",
    "since",
    "until",
    "since_sent_date",
    "until_sent_date",
    "page_size",
    "page_token",
    "filter",
    "order_by",
    "optional_properties",
};

/* Objects with a custom fields model, GET /v1/<object>/model (openapi-v1.json). */
static const char *const model_objects[] = {
    "contacts", "companies",     "opportunities", "orders",     "notes",
    "tasks",    "subscriptions", "appointments",  "affiliates",
};
static const char *const id_keys[] = {"path", "type"};

const char *jobs_shown(const char *s, char *buf, size_t n)
{
    size_t i, len = strlen(s);

    for (i = 0; i < len && i + 4 < n; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (i < len && i + 4 <= n) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

int jobs_fail(const struct jobs_load_ctx *c, const char *field, const char *fmt, ...)
{
    char what[400], file[PATH_SHOWN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    jobs_shown(c->file, file, sizeof(file));
    if (field != NULL)
        return base_err_set(c->err, BASE_ECONFIG, "\"%s\": %s: %s", file, field, what);
    return base_err_set(c->err, BASE_ECONFIG, "\"%s\": %s", file, what);
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

bool jobs_is_identifier(const char *s)
{
    size_t n;

    if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (n = 1; s[n] != '\0'; n++) {
        char ch = s[n];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_') || n >= 63)
            return false;
    }
    return true;
}

/* Checks that obj has only the given keys, each once. prefix names obj in errors (NULL at the
 * top of the file). */
static int check_keys(const struct jobs_load_ctx *c, const cJSON *obj, const char *const *keys,
                      size_t nkeys, const char *prefix)
{
    char buf[SHOWN_BUF];

    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        size_t k;

        for (k = 0; k < nkeys; k++) {
            if (strcmp(m->string, keys[k]) == 0)
                break;
        }
        if (k == nkeys)
            return jobs_fail(c, prefix, "unknown key \"%s\"",
                             jobs_shown(m->string, buf, sizeof(buf)));
        for (const cJSON *e = obj->child; e != m; e = e->next) {
            if (strcmp(e->string, m->string) == 0)
                return jobs_fail(c, prefix, "duplicate key \"%s\"", m->string);
        }
    }
    return BASE_OK;
}

/*
 * Reads the string member key of obj into *out (borrowed; NULL when absent and not required).
 * field names it in errors. Empty strings are errors.
 */
static int get_string(const struct jobs_load_ctx *c, const cJSON *obj, const char *key,
                      const char *field, bool required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (v == NULL) {
        if (required)
            return jobs_fail(c, field, "missing");
        *out = NULL;
        return BASE_OK;
    }
    if (!cJSON_IsString(v))
        return jobs_fail(c, field, "expected a string, found %s", json_type_name(v));
    if (v->valuestring[0] == '\0')
        return jobs_fail(c, field, "must not be empty");
    *out = v->valuestring;
    return BASE_OK;
}

/* Reads the integer member key of obj, min..max, into *out (def when absent). */
static int get_int(const struct jobs_load_ctx *c, const cJSON *obj, const char *key,
                   const char *field, int min, int max, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    double d;

    if (v == NULL) {
        *out = def;
        return BASE_OK;
    }
    if (!cJSON_IsNumber(v))
        return jobs_fail(c, field, "expected an integer, found %s", json_type_name(v));
    d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d)
        return jobs_fail(c, field, "expected an integer, found %g", d);
    if (d < min || d > max)
        return jobs_fail(c, field, "%.0f is out of range (%d..%d)", d, min, max);
    *out = (int)d;
    return BASE_OK;
}

/* Copies s (which may be NULL) into *dst; BASE_ENOMEM reported in c. */
static int dup_into(const struct jobs_load_ctx *c, const char *s, char **dst)
{
    char *p;

    if (s == NULL) {
        *dst = NULL;
        return BASE_OK;
    }
    p = strdup(s);
    if (p == NULL)
        return base_err_set(c->err, BASE_ENOMEM, "could not load job file: out of memory");
    *dst = p;
    return BASE_OK;
}

/* Checks an identifier value and reports it as field. */
static int check_identifier(const struct jobs_load_ctx *c, const char *field, const char *s)
{
    char buf[SHOWN_BUF];

    if (!jobs_is_identifier(s))
        return jobs_fail(c, field, "\"%s\" is not a valid identifier (" IDENT_RE ")",
                         jobs_shown(s, buf, sizeof(buf)));
    return BASE_OK;
}

bool jobs_is_param_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

/*
 * Checks endpoint: "/v1/" or "/v2/" then one or more non-empty segments of [A-Za-z0-9_.-]
 * (not "." or ".."). Sets *api.
 */
static int check_endpoint(const struct jobs_load_ctx *c, const char *ep, enum keap_api *api)
{
    char buf[SHOWN_BUF];
    const char *p, *seg;

    if (strncmp(ep, "/v1/", 4) == 0)
        *api = KEAP_API_V1;
    else if (strncmp(ep, "/v2/", 4) == 0)
        *api = KEAP_API_V2;
    else
        return jobs_fail(c, "endpoint", "\"%s\" does not start with /v1/ or /v2/",
                         jobs_shown(ep, buf, sizeof(buf)));
    seg = ep + 4;
    for (p = seg;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);

            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                break;
            if (seg[0] == '{' && !(n == 11 && strncmp(seg, "{parent_id}", 11) == 0))
                break;
            if (*p == '\0')
                return BASE_OK;
            seg = p + 1;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.' || *p == '{' ||
                     *p == '}')) {
            break;
        }
    }
    return jobs_fail(c, "endpoint",
                     "\"%s\" is not a valid endpoint path (segments of letters, digits, _ . -)",
                     jobs_shown(ep, buf, sizeof(buf)));
}

/* The file name of path without directories and without ".json" into buf. */
static int file_stem(const char *path, char *buf, size_t n)
{
    const char *base = strrchr(path, '/');
    size_t len;

    base = base ? base + 1 : path;
    len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".json") == 0)
        len -= 5;
    if (len >= n)
        return BASE_ETOOBIG;
    memcpy(buf, base, len);
    buf[len] = '\0';
    return BASE_OK;
}

bool jobs_is_label(const char *s)
{
    if (strlen(s) > LABEL_MAX)
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/*
 * Fills col (name, path, type, compiled) from one element of "columns". A column that names a
 * custom field by its label gets *label (owned) and no path yet: jobs_resolve_custom_fields
 * gives it one. object is the job's model object (NULL: its endpoint has none).
 */
static int load_column(const struct jobs_load_ctx *c, const cJSON *obj, size_t i,
                       const char *object, struct map_column *col, char **label)
{
    char field[64], buf[SHOWN_BUF];
    const char *name, *path, *type, *cf;
    int rc;

    snprintf(field, sizeof(field), "columns[%zu]", i);
    if (!cJSON_IsObject(obj))
        return jobs_fail(c, field, "expected an object, found %s", json_type_name(obj));
    rc = check_keys(c, obj, column_keys, BASE_ARRAY_SIZE(column_keys), field);
    if (rc < 0)
        return rc;
    snprintf(field, sizeof(field), "columns[%zu].name", i);
    rc = get_string(c, obj, "name", field, true, &name);
    if (rc < 0)
        return rc;
    rc = check_identifier(c, field, name);
    if (rc < 0)
        return rc;
    if (strcmp(name, "id") == 0 || strcmp(name, "data") == 0 || strcmp(name, "synced_at") == 0 ||
        strcmp(name, "deleted_at") == 0)
        return jobs_fail(
            c, field, "\"%s\" is reserved (id, data, synced_at and deleted_at are set by keapsync)",
            name);
    snprintf(field, sizeof(field), "columns[%zu].type", i);
    rc = get_string(c, obj, "type", field, true, &type);
    if (rc < 0)
        return rc;
    if (map_type_from_name(type, &col->type) < 0)
        return jobs_fail(c, field, "unknown type \"%s\" (expected " TYPE_LIST ")",
                         jobs_shown(type, buf, sizeof(buf)));
    rc = dup_into(c, name, &col->name);
    if (rc < 0)
        return rc;

    snprintf(field, sizeof(field), "columns[%zu].custom_field", i);
    rc = get_string(c, obj, "custom_field", field, false, &cf);
    if (rc < 0)
        return rc;
    if (cf != NULL) {
        if (cJSON_GetObjectItemCaseSensitive(obj, "path") != NULL)
            return jobs_fail(c, field, "a column has either a path or a custom_field, not both");
        if (!jobs_is_label(cf))
            return jobs_fail(
                c, field,
                "\"%s\" is not a custom field label (at most %d characters, no control "
                "characters)",
                jobs_shown(cf, buf, sizeof(buf)), LABEL_MAX);
        if (object == NULL)
            return jobs_fail(
                c, field,
                "this endpoint has no custom fields model (custom fields by label work "
                "for contacts, companies, opportunities, orders, notes, tasks, "
                "subscriptions and appointments)");
        return dup_into(c, cf, label);
    }

    snprintf(field, sizeof(field), "columns[%zu].path", i);
    if (cJSON_GetObjectItemCaseSensitive(obj, "path") == NULL)
        return jobs_fail(c, field, "missing (a column needs a path or a custom_field)");
    rc = get_string(c, obj, "path", field, true, &path);
    if (rc < 0)
        return rc;
    rc = dup_into(c, path, &col->path);
    if (rc < 0)
        return rc;
    rc = map_column_compile(col);
    if (rc == BASE_ENOMEM)
        return base_err_set(c->err, rc, "could not load job file: out of memory");
    if (rc < 0)
        return jobs_fail(c, field,
                         "\"%s\" is not a valid path (at most %d dot-separated keys, array "
                         "indices or [key=value] selectors)",
                         jobs_shown(path, buf, sizeof(buf)), MAP_MAX_PATH_PARTS);
    return BASE_OK;
}

static int load_columns(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "columns");
    struct map_spec *map = &job->map;
    size_t n, i = 0;
    char field[64];
    int rc;

    if (arr == NULL)
        return jobs_fail(c, "columns", "missing");
    if (!cJSON_IsArray(arr))
        return jobs_fail(c, "columns", "expected an array, found %s", json_type_name(arr));
    n = (size_t)cJSON_GetArraySize(arr);
    if (n > COLUMNS_MAX)
        return jobs_fail(c, "columns", "%zu columns (at most %d)", n, COLUMNS_MAX);
    map->cols = calloc(n ? n : 1, sizeof(*map->cols));
    job->custom_labels = calloc(n ? n : 1, sizeof(*job->custom_labels));
    if (map->cols == NULL || job->custom_labels == NULL)
        return base_err_set(c->err, BASE_ENOMEM, "could not load job file: out of memory");
    for (const cJSON *e = arr->child; e != NULL; e = e->next, i++) {
        /* ncols counts filled columns so that a failure frees exactly those. */
        map->ncols = i + 1;
        rc = load_column(c, e, i, job->model_object, &map->cols[i], &job->custom_labels[i]);
        if (rc < 0)
            return rc;
        if (job->custom_labels[i] != NULL)
            job->unresolved++;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(map->cols[j].name, map->cols[i].name) == 0) {
                snprintf(field, sizeof(field), "columns[%zu].name", i);
                return jobs_fail(c, field, "\"%s\" is already the name of columns[%zu]",
                                 map->cols[i].name, j);
            }
        }
    }
    map->ncols = n;
    return BASE_OK;
}

static int load_id(const struct jobs_load_ctx *c, const cJSON *root, enum keap_api api,
                   struct map_column *id)
{
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "id");
    const char *path = "id", *type = NULL;
    char buf[SHOWN_BUF];
    int rc;

    id->type = api == KEAP_API_V1 ? MAP_BIGINT : MAP_TEXT;
    if (obj != NULL) {
        if (!cJSON_IsObject(obj))
            return jobs_fail(c, "id", "expected an object, found %s", json_type_name(obj));
        rc = check_keys(c, obj, id_keys, BASE_ARRAY_SIZE(id_keys), "id");
        if (rc < 0)
            return rc;
        rc = get_string(c, obj, "path", "id.path", false, &path);
        if (rc < 0)
            return rc;
        if (path == NULL)
            path = "id";
        rc = get_string(c, obj, "type", "id.type", false, &type);
        if (rc < 0)
            return rc;
        if (type != NULL && strcmp(type, "bigint") == 0)
            id->type = MAP_BIGINT;
        else if (type != NULL && strcmp(type, "text") == 0)
            id->type = MAP_TEXT;
        else if (type != NULL)
            return jobs_fail(c, "id.type", "\"%s\" is not bigint or text",
                             jobs_shown(type, buf, sizeof(buf)));
    }
    rc = dup_into(c, "id", &id->name);
    if (rc == BASE_OK)
        rc = dup_into(c, path, &id->path);
    if (rc < 0)
        return rc;
    rc = map_column_compile(id);
    if (rc == BASE_ENOMEM)
        return base_err_set(c->err, rc, "could not load job file: out of memory");
    if (rc < 0)
        return jobs_fail(c, "id.path", "\"%s\" is not a valid path",
                         jobs_shown(path, buf, sizeof(buf)));
    return BASE_OK;
}

/* Reads one incremental parameter name: required/allowed depending on the API. */
static int load_param(const struct jobs_load_ctx *c, const cJSON *inc, const char *key,
                      bool allowed, bool required, char **dst)
{
    char field[64], buf[SHOWN_BUF];
    const char *s;
    int rc;

    snprintf(field, sizeof(field), "incremental.%s", key);
    if (!allowed) {
        if (cJSON_GetObjectItemCaseSensitive(inc, key) != NULL)
            return jobs_fail(
                c, field, "not allowed for %s endpoints (use %s)", key[0] == 'f' ? "/v1/" : "/v2/",
                key[0] == 'f' ? "since_param and until_param" : "filter_since and filter_until");
        return BASE_OK;
    }
    if (required && cJSON_GetObjectItemCaseSensitive(inc, key) == NULL)
        return jobs_fail(c, field, "missing (required for %s endpoints)",
                         key[0] == 'f' ? "/v2/" : "/v1/");
    rc = get_string(c, inc, key, field, false, &s);
    if (rc < 0)
        return rc;
    if (s != NULL && !jobs_is_param_name(s))
        return jobs_fail(c, field, "\"%s\" is not a valid parameter name ([A-Za-z0-9_]+)",
                         jobs_shown(s, buf, sizeof(buf)));
    return dup_into(c, s, dst);
}

static int load_incremental(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(root, "incremental");
    bool v1 = job->api == KEAP_API_V1;
    int rc;

    job->lag_s = LAG_DEFAULT;
    job->overlap_s = OVERLAP_DEFAULT;
    if (inc == NULL)
        return BASE_OK;
    if (!cJSON_IsObject(inc))
        return jobs_fail(c, "incremental", "expected an object, found %s", json_type_name(inc));
    rc = check_keys(c, inc, incremental_keys, BASE_ARRAY_SIZE(incremental_keys), "incremental");
    if (rc == BASE_OK)
        rc = load_param(c, inc, "since_param", v1, true, &job->since_param);
    if (rc == BASE_OK)
        rc = load_param(c, inc, "until_param", v1, false, &job->until_param);
    if (rc == BASE_OK)
        rc = load_param(c, inc, "filter_since", !v1, true, &job->filter_since);
    if (rc == BASE_OK)
        rc = load_param(c, inc, "filter_until", !v1, false, &job->filter_until);
    if (rc == BASE_OK)
        rc = get_int(c, inc, "lag_seconds", "incremental.lag_seconds", 0, LAG_MAX, LAG_DEFAULT,
                     &job->lag_s);
    if (rc == BASE_OK)
        rc = get_int(c, inc, "overlap_seconds", "incremental.overlap_seconds", 0, OVERLAP_MAX,
                     OVERLAP_DEFAULT, &job->overlap_s);
    if (rc < 0)
        return rc;
    job->incremental = true;
    return BASE_OK;
}

/* "deletes": {"sweep_days": N}, only on incremental jobs (others see every id each pass). */
static int load_deletes(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "deletes");
    int rc;

    job->sweep_days = 0;
    if (d == NULL)
        return BASE_OK;
    if (!cJSON_IsObject(d))
        return jobs_fail(c, "deletes", "expected an object, found %s", json_type_name(d));
    rc = check_keys(c, d, deletes_keys, BASE_ARRAY_SIZE(deletes_keys), "deletes");
    if (rc < 0)
        return rc;
    if (cJSON_GetObjectItemCaseSensitive(d, "sweep_days") == NULL)
        return jobs_fail(c, "deletes.sweep_days",
                         "missing (how many days between two sweeps, 1..365)");
    rc = get_int(c, d, "sweep_days", "deletes.sweep_days", 1, 365, 0, &job->sweep_days);
    if (rc < 0)
        return rc;
    if (job->parent_job != NULL)
        return jobs_fail(c, "deletes",
                         "a child stream marks the rows a parent no longer lists on "
                         "each pass (remove \"deletes\")");
    if (!job->incremental)
        return jobs_fail(c, "deletes",
                         "only for incremental jobs: a job that reads everything marks "
                         "the rows it did not see on each complete pass (remove "
                         "\"deletes\")");
    return BASE_OK;
}

static int load_updated_field(const struct jobs_load_ctx *c, const cJSON *root,
                              struct jobs_job *job)
{
    const char *s;
    char buf[SHOWN_BUF];
    int rc = get_string(c, root, "updated_field", "updated_field", false, &s);

    if (rc < 0 || s == NULL)
        return rc;
    for (size_t i = 0; i < job->map.ncols; i++) {
        const struct map_column *col = &job->map.cols[i];

        if (strcmp(col->name, s) != 0)
            continue;
        if (col->type != MAP_TIMESTAMPTZ)
            return jobs_fail(c, "updated_field", "column \"%s\" has type %s, expected timestamptz",
                             s, map_type_sql(col->type));
        return dup_into(c, s, &job->updated_field);
    }
    return jobs_fail(c, "updated_field", "\"%s\" is not one of the columns",
                     jobs_shown(s, buf, sizeof(buf)));
}

/* The "parent" object of a child stream, checked against the endpoint's {parent_id}. */
static int load_parent(const struct jobs_load_ctx *c, const cJSON *root, const char *endpoint,
                       struct jobs_job *job)
{
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "parent");
    bool templated = strstr(endpoint, "{parent_id}") != NULL;
    const char *pjob = NULL, *pcol = NULL;
    int rc;

    if (obj == NULL) {
        if (templated)
            return jobs_fail(c, "endpoint",
                             "{parent_id} needs a \"parent\" object naming the parent job");
        return BASE_OK;
    }
    if (!cJSON_IsObject(obj))
        return jobs_fail(c, "parent", "expected an object, found %s", json_type_name(obj));
    rc = check_keys(c, obj, parent_keys, BASE_ARRAY_SIZE(parent_keys), "parent");
    if (rc == BASE_OK)
        rc = get_string(c, obj, "job", "parent.job", true, &pjob);
    if (rc == BASE_OK)
        rc = check_identifier(c, "parent.job", pjob);
    if (rc == BASE_OK)
        rc = get_string(c, obj, "column", "parent.column", false, &pcol);
    if (rc == BASE_OK && pcol != NULL)
        rc = check_identifier(c, "parent.column", pcol);
    if (rc < 0)
        return rc;
    if (pcol != NULL && (strcmp(pcol, "id") == 0 || strcmp(pcol, "data") == 0 ||
                         strcmp(pcol, "synced_at") == 0 || strcmp(pcol, "deleted_at") == 0))
        return jobs_fail(c, "parent.column", "\"%s\" is reserved by keapsync", pcol);
    if (!templated)
        return jobs_fail(c, "endpoint", "a child stream's endpoint needs a {parent_id} segment");
    if (strcmp(pjob, job->name) == 0)
        return jobs_fail(c, "parent.job", "a job cannot be its own parent");
    if (cJSON_GetObjectItemCaseSensitive(root, "incremental") != NULL)
        return jobs_fail(c, "incremental",
                         "a child stream (with \"parent\") cannot be incremental");
    rc = dup_into(c, pjob, &job->parent_job);
    if (rc == BASE_OK)
        rc = dup_into(c, pcol ? pcol : "parent_id", &job->parent_col);
    return rc;
}

/* "schedule": a 5-field cron expression in UTC (cron.h), when `keapsync daemon` runs the job. */
static int load_schedule(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const char *s;
    int rc = get_string(c, root, "schedule", "schedule", false, &s);
    char msg[256];

    if (rc < 0 || s == NULL)
        return rc;
    rc = jobs_check_schedule(s, msg, sizeof(msg));
    if (rc < 0)
        return jobs_fail(c, "schedule", "%s", msg);
    return dup_into(c, s, &job->schedule);
}

int jobs_check_schedule(const char *expr, char *msg, size_t n)
{
    struct base_cron cron;
    int64_t next;

    if (base_cron_parse(expr, &cron, msg, n) < 0)
        return BASE_EINVAL;
    /* "0 0 30 2 *" parses but never fires: a job that would never run is a mistake. */
    if (base_cron_next(&cron, 0, &next) < 0) {
        snprintf(msg, n, "\"%s\" never fires (no such day)", expr);
        return BASE_EINVAL;
    }
    return BASE_OK;
}

/* The job's description: one line of at most DESCRIPTION_MAX bytes. */
static int load_description(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const char *s;
    int rc = get_string(c, root, "description", "description", false, &s);

    if (rc < 0 || s == NULL)
        return rc;
    if (strlen(s) > DESCRIPTION_MAX)
        return jobs_fail(c, "description", "%zu bytes long (at most %d: one sentence)", strlen(s),
                         DESCRIPTION_MAX);
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return jobs_fail(c, "description", "must be one line without control characters");
    return dup_into(c, s, &job->description);
}

/* True if name is a parameter keapsync sets itself for job. */
static bool param_is_owned(const struct jobs_job *job, const char *name)
{
    for (size_t i = 0; i < BASE_ARRAY_SIZE(owned_params); i++)
        if (strcmp(owned_params[i], name) == 0)
            return true;
    return (job->since_param && strcmp(job->since_param, name) == 0) ||
           (job->until_param && strcmp(job->until_param, name) == 0);
}

/* "query": an object of fixed parameters, each a string, added to every request. */
static int load_query(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "query");
    char field[SHOWN_BUF + 16], buf[SHOWN_BUF];
    size_t n = 0;
    int rc;

    if (obj == NULL)
        return BASE_OK;
    if (!cJSON_IsObject(obj))
        return jobs_fail(c, "query", "expected an object, found %s", json_type_name(obj));
    for (const cJSON *m = obj->child; m != NULL; m = m->next)
        n++;
    if (n > QUERY_MAX)
        return jobs_fail(c, "query", "%zu parameters (at most %d)", n, QUERY_MAX);
    job->query = calloc(n ? n : 1, sizeof(*job->query));
    if (job->query == NULL)
        return base_err_set(c->err, BASE_ENOMEM, "could not load job file: out of memory");
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        snprintf(field, sizeof(field), "query.%s", jobs_shown(m->string, buf, sizeof(buf)));
        if (!jobs_is_param_name(m->string))
            return jobs_fail(c, "query", "\"%s\" is not a valid parameter name ([A-Za-z0-9_]+)",
                             jobs_shown(m->string, buf, sizeof(buf)));
        for (const cJSON *e = obj->child; e != m; e = e->next)
            if (strcmp(e->string, m->string) == 0)
                return jobs_fail(c, "query", "duplicate key \"%s\"", m->string);
        if (param_is_owned(job, m->string))
            return jobs_fail(c, field,
                             "keapsync sets this parameter itself (use the job's own keys: "
                             "page_size, order, optional_properties, incremental)");
        if (!cJSON_IsString(m))
            return jobs_fail(c, field, "expected a string, found %s", json_type_name(m));
        if (m->valuestring[0] == '\0')
            return jobs_fail(c, field, "must not be empty");
        if (strlen(m->valuestring) > QUERY_VALUE_MAX)
            return jobs_fail(c, field, "%zu bytes long (at most %d)", strlen(m->valuestring),
                             QUERY_VALUE_MAX);
        rc = dup_into(c, m->string, &job->query[job->nquery].name);
        if (rc == BASE_OK)
            rc = dup_into(c, m->valuestring, &job->query[job->nquery].value);
        job->nquery++; /* counted before a failure so that free sees it */
        if (rc < 0)
            return rc;
    }
    return BASE_OK;
}

/* The job's model object: its endpoint's last segment when that has a custom fields model. */
static int find_model_object(const struct jobs_load_ctx *c, struct jobs_job *job)
{
    const char *last = strrchr(job->endpoint, '/') + 1;

    for (size_t i = 0; i < BASE_ARRAY_SIZE(model_objects); i++)
        if (strcmp(model_objects[i], last) == 0)
            return dup_into(c, last, &job->model_object);
    return BASE_OK;
}

/* Validates the parsed root into job (zeroed by the caller, freed by it on error). */
static int load_job(const struct jobs_load_ctx *c, const cJSON *root, struct jobs_job *job)
{
    const char *name, *endpoint, *s;
    char stem[256], buf[SHOWN_BUF];
    int rc;

    if (!cJSON_IsObject(root))
        return jobs_fail(c, NULL, "expected a JSON object, found %s", json_type_name(root));
    rc = check_keys(c, root, job_keys, BASE_ARRAY_SIZE(job_keys), NULL);
    if (rc < 0)
        return rc;

    rc = get_string(c, root, "name", "name", true, &name);
    if (rc == BASE_OK)
        rc = check_identifier(c, "name", name);
    if (rc < 0)
        return rc;
    if (file_stem(c->file, stem, sizeof(stem)) < 0 || strcmp(stem, name) != 0)
        return jobs_fail(c, "name", "\"%s\" does not match the file name (expected \"%s\")", name,
                         jobs_shown(stem, buf, sizeof(buf)));
    rc = dup_into(c, name, &job->name);
    if (rc == BASE_OK)
        rc = dup_into(c, c->file, &job->file);
    if (rc < 0)
        return rc;

    rc = get_string(c, root, "endpoint", "endpoint", true, &endpoint);
    if (rc == BASE_OK)
        rc = check_endpoint(c, endpoint, &job->api);
    if (rc == BASE_OK)
        rc = dup_into(c, endpoint, &job->endpoint);
    if (rc < 0)
        return rc;

    rc = load_parent(c, root, endpoint, job);
    if (rc < 0)
        return rc;

    rc = get_string(c, root, "array_key", "array_key", false, &s);
    if (rc < 0)
        return rc;
    rc = dup_into(c, s ? s : strrchr(endpoint, '/') + 1, &job->array_key);
    if (rc < 0)
        return rc;

    rc = get_string(c, root, "table", "table", false, &s);
    if (rc == BASE_OK && s != NULL)
        rc = check_identifier(c, "table", s);
    if (rc == BASE_OK)
        rc = dup_into(c, s ? s : name, &job->table);
    if (rc < 0)
        return rc;

    rc = get_int(c, root, "page_size", "page_size", 1, PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT,
                 &job->page_size);
    if (rc < 0)
        return rc;

    rc = get_string(c, root, "order", "order", false, &s);
    if (rc == BASE_OK)
        rc = dup_into(c, s, &job->order);
    if (rc < 0)
        return rc;

    rc = get_string(c, root, "optional_properties", "optional_properties", false, &s);
    if (rc == BASE_OK && s != NULL && job->api != KEAP_API_V1)
        rc = jobs_fail(c, "optional_properties", "only for /v1/ endpoints (v2 uses fields)");
    if (rc == BASE_OK)
        rc = dup_into(c, s, &job->optional_properties);
    if (rc < 0)
        return rc;

    rc = load_description(c, root, job);
    if (rc == BASE_OK)
        rc = find_model_object(c, job);
    if (rc == BASE_OK)
        rc = load_id(c, root, job->api, &job->map.id);
    if (rc == BASE_OK)
        rc = load_columns(c, root, job);
    if (rc == BASE_OK)
        rc = load_updated_field(c, root, job);
    if (rc == BASE_OK)
        rc = load_incremental(c, root, job);
    if (rc == BASE_OK)
        rc = get_int(c, root, "refresh_hours", "refresh_hours", 0, 8760, 0, &job->refresh_hours);
    if (rc == BASE_OK && job->refresh_hours > 0 && job->incremental)
        rc =
            jobs_fail(c, "refresh_hours",
                      "only for jobs that read everything each pass (an incremental job reads only "
                      "what changed)");
    if (rc == BASE_OK)
        rc = load_query(c, root, job);
    if (rc == BASE_OK)
        rc = load_deletes(c, root, job);
    if (rc == BASE_OK)
        rc = load_schedule(c, root, job);
    for (size_t i = 0; rc == BASE_OK && job->parent_col && i < job->map.ncols; i++)
        if (strcmp(job->map.cols[i].name, job->parent_col) == 0)
            rc = jobs_fail(c, "parent.column", "\"%s\" is also the name of a column",
                           job->parent_col);
    return rc;
}

/* Reads the whole file at path (capped) into a NUL-terminated *out. */
static int read_file(const struct jobs_load_ctx *c, char **out, size_t *outlen)
{
    char buf[PATH_SHOWN];
    FILE *f;
    char *data = NULL;
    size_t len = 0, n;
    int result = BASE_OK;

    f = fopen(c->file, "rb");
    if (f == NULL)
        return base_err_set(c->err, BASE_ECONFIG, "could not open job file \"%s\": %s",
                            jobs_shown(c->file, buf, sizeof(buf)), strerror(errno));
    data = malloc(JOB_FILE_MAX + 1);
    if (data == NULL) {
        result = base_err_set(c->err, BASE_ENOMEM, "could not load job file: out of memory");
        goto out;
    }
    while ((n = fread(data + len, 1, JOB_FILE_MAX + 1 - len, f)) > 0) {
        len += n;
        if (len > JOB_FILE_MAX) {
            result = jobs_fail(c, NULL, "file is larger than %d bytes", JOB_FILE_MAX);
            goto out;
        }
    }
    if (ferror(f)) {
        result = base_err_set(c->err, BASE_ECONFIG, "could not read job file \"%s\": %s",
                              jobs_shown(c->file, buf, sizeof(buf)), strerror(errno));
        goto out;
    }
    data[len] = '\0';
    *out = data;
    *outlen = len;
    data = NULL;
out:
    free(data);
    fclose(f);
    return result;
}

int jobs_load_file(const char *path, struct jobs_job *out, struct base_err *err)
{
    struct jobs_load_ctx c = {path, err};
    char *text = NULL;
    size_t len = 0;
    int result;

    if (path == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not load job file: missing argument");
    result = read_file(&c, &text, &len);
    if (result < 0)
        return result;
    result = jobs_load_buffer(path, text, len, out, err);
    free(text);
    return result;
}

/*
 * The line of the first \u0000 escape inside a JSON string of text, or 0. cJSON reads one as
 * the end of its string, so "a\u0000; DROP TABLE y" would load as the name "a": such a
 * file is refused instead of read as something it does not say.
 */
static int escaped_nul_line(const char *text, size_t len)
{
    int line = 1;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            line++;
        if (!in_string) {
            in_string = text[i] == '"';
            continue;
        }
        if (text[i] == '"') {
            in_string = false;
        } else if (text[i] == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
                return line;
            i++; /* the escaped character */
        }
    }
    return 0;
}

int jobs_load_buffer(const char *path, const char *text, size_t len, struct jobs_job *out,
                     struct base_err *err)
{
    struct jobs_load_ctx c = {path, err};
    struct jobs_job job;
    const char *end = NULL;
    cJSON *root = NULL;
    int result;

    memset(&job, 0, sizeof(job));
    if (path == NULL || text == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not load job file: missing argument");
    if (len > JOB_FILE_MAX)
        return jobs_fail(&c, NULL, "file is larger than %d bytes", JOB_FILE_MAX);
    if (memchr(text, '\0', len) != NULL) {
        result = jobs_fail(&c, NULL, "file contains a NUL byte");
        goto out;
    }
    if ((result = escaped_nul_line(text, len)) > 0) {
        result = jobs_fail(&c, NULL,
                           "line %d: a string holds \\u0000 (NUL), which no name, path or "
                           "value may",
                           result);
        goto out;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root != NULL) {
        /* Only white space may follow the object. */
        while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end < text + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (root == NULL) {
        int line = 1, col = 1, depth = 0;
        bool in_string = false;

        for (const char *p = text; end != NULL && p < end && p < text + len; p++) {
            col++;
            if (*p == '\n')
                line++, col = 1;
            if (in_string && *p == '\\' && p + 1 < end)
                p++, col++;
            else if (*p == '"')
                in_string = !in_string;
            else if (!in_string && (*p == '[' || *p == '{'))
                depth++;
            else if (!in_string && (*p == ']' || *p == '}'))
                depth--;
        }
        if (depth >= CJSON_NESTING_LIMIT)
            result = jobs_fail(&c, NULL,
                               "invalid JSON near line %d, column %d: nested deeper "
                               "than %d levels",
                               line, col, CJSON_NESTING_LIMIT);
        else
            result = jobs_fail(&c, NULL, "invalid JSON near line %d, column %d", line, col);
        goto out;
    }
    result = load_job(&c, root, &job);
    if (result < 0)
        goto out;
    *out = job;
    memset(&job, 0, sizeof(job));
out:
    jobs_job_free(&job);
    cJSON_Delete(root);
    return result;
}

void jobs_job_free(struct jobs_job *job)
{
    if (job == NULL)
        return;
    free(job->name);
    free(job->file);
    free(job->endpoint);
    free(job->array_key);
    free(job->table);
    free(job->order);
    free(job->optional_properties);
    free(job->updated_field);
    free(job->since_param);
    free(job->until_param);
    free(job->filter_since);
    free(job->filter_until);
    free(job->parent_job);
    free(job->parent_col);
    free(job->parent_table);
    free(job->description);
    free(job->schedule);
    free(job->model_object);
    for (size_t i = 0; i < job->nquery; i++) {
        free(job->query[i].name);
        free(job->query[i].value);
    }
    free(job->query);
    map_column_free(&job->map.id);
    for (size_t i = 0; i < job->map.ncols; i++) {
        map_column_free(&job->map.cols[i]);
        if (job->custom_labels != NULL)
            free(job->custom_labels[i]);
    }
    free(job->custom_labels);
    free(job->map.cols);
    memset(job, 0, sizeof(*job));
}
