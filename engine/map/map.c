/*
 * map.c: one JSON record -> one line of PostgreSQL COPY text format (see map.h).
 *
 * Words used here (beyond map.h):
 *   part      one step of a compiled path: an object key, an array index ("0") or a
 *             selector ("[id=18]": the array element whose member id equals 18).
 *   escaped   written with COPY text escapes: backslash, tab, newline and carriage return
 *             become \\, \t, \n and \r; a NULL column is \N.
 *   budget    how many mismatch warnings a column may still log in this process; when it
 *             runs out one "further mismatches ... are not logged" line is written.
 *
 * The converters below answer one question per column: does this JSON value fit the column
 * type, and if so what text goes into the line. They never fail on the data itself (that is a
 * mismatch); they fail only when the output buffer refuses (BASE_ETOOBIG, BASE_ENOMEM).
 */
#include "map.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value was written / did not fit the column type. Errors are negative. */
#define PUT_OK       0
#define PUT_MISMATCH 1

/* Warnings per column per process before the column falls silent. */
#define MISMATCH_LOG_BUDGET 5
/* Columns whose warnings are budgeted one by one; the rest share one budget. */
#define MISMATCH_LOG_SLOTS 128
/* Numeric strings longer than this are mismatches (numeric allows a lot, COPY must not fail). */
#define NUMERIC_TEXT_MAX 256
/* Enough for any int64 or %.17g double. */
#define NUMBUF 40

static const char *const type_sql[] = {
    [MAP_TEXT] = "text",       [MAP_BIGINT] = "bigint",   [MAP_DOUBLE] = "double precision",
    [MAP_NUMERIC] = "numeric", [MAP_BOOLEAN] = "boolean", [MAP_TIMESTAMPTZ] = "timestamptz",
    [MAP_DATE] = "date",       [MAP_JSONB] = "jsonb",
};

static const char *const type_names[] = {
    [MAP_TEXT] = "text",       [MAP_BIGINT] = "bigint",   [MAP_DOUBLE] = "double",
    [MAP_NUMERIC] = "numeric", [MAP_BOOLEAN] = "boolean", [MAP_TIMESTAMPTZ] = "timestamptz",
    [MAP_DATE] = "date",       [MAP_JSONB] = "jsonb",
};

const char *map_type_sql(enum map_type t)
{
    if ((int)t < MAP_TEXT || (int)t > MAP_JSONB)
        return NULL;
    return type_sql[t];
}

int map_type_from_name(const char *name, enum map_type *out)
{
    if (name == NULL)
        return BASE_EINVAL;
    for (int t = MAP_TEXT; t <= MAP_JSONB; t++) {
        if (strcmp(name, type_names[t]) == 0) {
            *out = (enum map_type)t;
            return BASE_OK;
        }
    }
    return BASE_EINVAL;
}

/* True if s[0..n) is one or more ASCII digits. */
static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/*
 * Classifies one path part s[0..n) and returns a copy of what parts[] keeps for it in *text
 * (caller frees) and its index[] value in *index.
 */
static int compile_part(const char *s, size_t n, char **text, int *index)
{
    const char *eq;
    int idx = -1;
    char *copy;

    if (n == 0)
        return BASE_EINVAL;
    if (s[0] == '[') {
        /* "[key=value]" with a non-empty key and value. */
        if (n < 5 || s[n - 1] != ']')
            return BASE_EINVAL;
        eq = memchr(s + 1, '=', n - 2);
        if (eq == NULL || eq == s + 1 || eq == s + n - 2)
            return BASE_EINVAL;
        s++;
        n -= 2;
        idx = MAP_PART_MATCH;
    } else if (all_digits(s, n)) {
        int64_t v = 0;

        for (size_t i = 0; i < n; i++) {
            v = v * 10 + (s[i] - '0');
            if (v > INT_MAX)
                return BASE_EINVAL;
        }
        idx = (int)v;
    }
    copy = malloc(n + 1);
    if (copy == NULL)
        return BASE_ENOMEM;
    memcpy(copy, s, n);
    copy[n] = '\0';
    *text = copy;
    *index = idx;
    return BASE_OK;
}

int map_column_compile(struct map_column *col)
{
    char *parts[MAP_MAX_PATH_PARTS];
    int index[MAP_MAX_PATH_PARTS];
    int nparts = 0;
    int result = BASE_OK;
    const char *p, *dot;

    if (col == NULL || col->path == NULL || col->path[0] == '\0')
        return BASE_EINVAL;
    p = col->path;
    for (;;) {
        size_t n;

        dot = strchr(p, '.');
        n = dot ? (size_t)(dot - p) : strlen(p);
        if (nparts == MAP_MAX_PATH_PARTS) {
            result = BASE_EINVAL;
            goto out;
        }
        result = compile_part(p, n, &parts[nparts], &index[nparts]);
        if (result < 0)
            goto out;
        nparts++;
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    /* Success: replace whatever an earlier compile left. */
    for (int i = 0; i < col->nparts && i < MAP_MAX_PATH_PARTS; i++)
        free(col->parts[i]);
    for (int i = 0; i < MAP_MAX_PATH_PARTS; i++) {
        col->parts[i] = i < nparts ? parts[i] : NULL;
        col->index[i] = i < nparts ? index[i] : -1;
    }
    col->nparts = nparts;
    return BASE_OK;
out:
    while (nparts > 0)
        free(parts[--nparts]);
    return result;
}

void map_column_free(struct map_column *col)
{
    if (col == NULL)
        return;
    for (int i = 0; i < col->nparts && i < MAP_MAX_PATH_PARTS; i++)
        free(col->parts[i]);
    free(col->name);
    free(col->path);
    memset(col, 0, sizeof(*col));
}

/* True if element (an array member) is an object whose member sel_key equals sel_value. */
static bool element_matches(const cJSON *element, const char *sel)
{
    const char *eq = strchr(sel, '=');
    const char *want = eq + 1;
    size_t klen = (size_t)(eq - sel);
    const cJSON *m;

    if (!cJSON_IsObject(element))
        return false;
    for (m = element->child; m != NULL; m = m->next) {
        if (m->string != NULL && strlen(m->string) == klen && memcmp(m->string, sel, klen) == 0)
            break;
    }
    if (m == NULL)
        return false;
    if (cJSON_IsString(m))
        return strcmp(m->valuestring, want) == 0;
    if (cJSON_IsNumber(m)) {
        double d;

        return base_parse_double(want, &d) == BASE_OK && d == m->valuedouble;
    }
    return false;
}

const cJSON *map_lookup(const cJSON *record, const struct map_column *col)
{
    const cJSON *v = record;

    if (record == NULL || col == NULL || col->nparts <= 0)
        return NULL;
    for (int i = 0; i < col->nparts && v != NULL; i++) {
        if (col->index[i] >= 0) {
            v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, col->index[i]) : NULL;
        } else if (col->index[i] == MAP_PART_MATCH) {
            const cJSON *e = NULL;

            if (cJSON_IsArray(v)) {
                for (e = v->child; e != NULL; e = e->next) {
                    if (element_matches(e, col->parts[i]))
                        break;
                }
            }
            v = e;
        } else {
            v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, col->parts[i]) : NULL;
        }
    }
    return v;
}

static const char *json_type_name(const cJSON *v)
{
    if (v == NULL)
        return "nothing";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    if (cJSON_IsRaw(v))
        return "JSON";
    return "invalid value";
}

/* The character after the backslash for a byte COPY text format escapes, else 0. */
static char copy_escape(char c)
{
    switch (c) {
    case '\\':
        return '\\';
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    default:
        return 0;
    }
}

/* Appends s[0..n) escaped for COPY text format; nothing is appended on failure. Runs between
 * escapes are copied whole (a record's text is mostly such a run). */
static int put_escaped(struct base_buf *out, const char *s, size_t n)
{
    size_t extra = 0;
    char *w;
    int rc;

    for (size_t i = 0; i < n; i++)
        extra += copy_escape(s[i]) != 0;
    if (extra > SIZE_MAX - n)
        return BASE_ETOOBIG;
    rc = base_buf_reserve(out, n + extra);
    if (rc < 0)
        return rc;
    w = out->data + out->len;
    if (extra == 0) {
        memcpy(w, s, n);
    } else {
        size_t run = 0;

        for (size_t i = 0; i < n; i++) {
            char e = copy_escape(s[i]);

            if (e == 0)
                continue;
            memcpy(w, s + run, i - run);
            w += i - run;
            *w++ = '\\';
            *w++ = e;
            run = i + 1;
        }
        memcpy(w, s + run, n - run);
    }
    out->len += n + extra;
    out->data[out->len] = '\0';
    return BASE_OK;
}

/* Appends text that needs no escaping (digits, timestamps, t/f). */
static int put_plain(struct base_buf *out, const char *s)
{
    return out ? base_buf_puts(out, s) : BASE_OK;
}

/* Appends a value printed by cJSON, escaped. */
static int put_json(struct base_buf *out, const cJSON *v)
{
    char *s;
    int rc;

    if (out == NULL)
        return BASE_OK;
    /* A member the page parse kept as received (keap_page_parse_keep): its own text. */
    if (cJSON_IsRaw(v))
        return put_escaped(out, v->valuestring, strlen(v->valuestring));
    s = cJSON_PrintUnformatted(v);
    if (s == NULL)
        return BASE_ENOMEM;
    rc = put_escaped(out, s, strlen(s));
    cJSON_free(s);
    return rc;
}

/* The int64 a JSON number or digit string holds; false if it holds none. */
static bool json_int64(const cJSON *v, int64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;

        /* [-2^63, 2^63): both bounds are exact doubles. */
        if (!isfinite(d) || floor(d) != d || d < -9223372036854775808.0 ||
            d >= 9223372036854775808.0)
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        size_t n = strlen(s);
        size_t skip = (n > 0 && s[0] == '-');

        if (!all_digits(s + skip, n - skip) || n > 20)
            return false;
        return base_parse_int64(s, out) == BASE_OK;
    }
    return false;
}

/* Shortest of %.15g and %.17g that reads back as d; integers without an exponent. */
static void format_double(double d, char *buf, size_t n)
{
    double back;

    if (floor(d) == d && fabs(d) < 9007199254740992.0) {
        snprintf(buf, n, "%lld", (long long)d);
        return;
    }
    snprintf(buf, n, "%.15g", d);
    if (base_parse_double(buf, &back) != BASE_OK || back != d)
        snprintf(buf, n, "%.17g", d);
}

/* True if s is a decimal number: -?digits[.digits][(e|E)[+-]digits], some digit before the
 * exponent, finite as a double and not absurdly long. */
static bool numeric_text(const char *s)
{
    const char *p = s;
    size_t mant = 0;
    double d;

    if (strlen(s) > NUMERIC_TEXT_MAX)
        return false;
    if (*p == '-')
        p++;
    while (*p >= '0' && *p <= '9')
        p++, mant++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, mant++;
    }
    if (mant == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0' && base_parse_double(s, &d) == BASE_OK;
}

/* The wall ms of a "YYYY-MM-DD" string that names a real day. */
static bool date_text(const char *s, int64_t *ms)
{
    char full[32];

    if (strlen(s) != 10 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) ||
        s[7] != '-' || !all_digits(s + 8, 2))
        return false;
    if (base_snprintf(full, sizeof(full), "%sT00:00:00Z", s) < 0)
        return false;
    return base_time_parse(full, ms) == BASE_OK;
}

/*
 * Writes v (neither NULL nor JSON null) as type t. out NULL only classifies. Returns PUT_OK,
 * PUT_MISMATCH (nothing appended) or a negative error (nothing appended).
 */
static int put_value(struct base_buf *out, enum map_type t, const cJSON *v)
{
    char buf[NUMBUF];
    int64_t i64;
    int rc;

    switch (t) {
    case MAP_TEXT:
        if (cJSON_IsString(v))
            return out ? put_escaped(out, v->valuestring, strlen(v->valuestring)) : PUT_OK;
        if (cJSON_IsBool(v))
            return put_plain(out, cJSON_IsTrue(v) ? "true" : "false");
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            format_double(v->valuedouble, buf, sizeof(buf));
            return put_plain(out, buf);
        }
        return PUT_MISMATCH;
    case MAP_BIGINT:
        if (!json_int64(v, &i64))
            return PUT_MISMATCH;
        snprintf(buf, sizeof(buf), "%lld", (long long)i64);
        return put_plain(out, buf);
    case MAP_DOUBLE:
    case MAP_NUMERIC:
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            format_double(v->valuedouble, buf, sizeof(buf));
            return put_plain(out, buf);
        }
        if (cJSON_IsString(v) && numeric_text(v->valuestring))
            return put_plain(out, v->valuestring);
        return PUT_MISMATCH;
    case MAP_BOOLEAN:
        if (cJSON_IsBool(v))
            return put_plain(out, cJSON_IsTrue(v) ? "t" : "f");
        if (cJSON_IsNumber(v) && (v->valuedouble == 0.0 || v->valuedouble == 1.0))
            return put_plain(out, v->valuedouble == 1.0 ? "t" : "f");
        return PUT_MISMATCH;
    case MAP_TIMESTAMPTZ:
        if (!cJSON_IsString(v) || base_time_parse(v->valuestring, &i64) < 0)
            return PUT_MISMATCH;
        rc = base_time_format(i64, buf, sizeof(buf));
        if (rc < 0)
            return PUT_MISMATCH; /* a year base_time_format cannot write */
        return put_plain(out, buf);
    case MAP_DATE:
        if (!cJSON_IsString(v))
            return PUT_MISMATCH;
        if (date_text(v->valuestring, &i64))
            return put_plain(out, v->valuestring);
        if (base_time_parse(v->valuestring, &i64) < 0 ||
            base_time_format_day(i64, buf, sizeof(buf)) < 0)
            return PUT_MISMATCH;
        return put_plain(out, buf);
    case MAP_JSONB:
        return put_json(out, v);
    }
    return PUT_MISMATCH;
}

/* Writes the id of record as text into buf (n bytes), or says in err why it cannot. */
static int record_id_text(const struct map_spec *spec, const cJSON *record, char *buf, size_t n,
                          struct base_err *err)
{
    const cJSON *v;
    int64_t i64;

    if (spec->id.type != MAP_TEXT && spec->id.type != MAP_BIGINT)
        return base_err_set(err, BASE_EINVAL, "id column must be bigint or text");
    if (!cJSON_IsObject(record))
        return base_err_set(err, BASE_EPROTO, "record is not a JSON object (found %s)",
                            json_type_name(record));
    v = map_lookup(record, &spec->id);
    if (v == NULL || cJSON_IsNull(v))
        return base_err_set(err, BASE_EPROTO, "record has no id (path \"%s\")",
                            spec->id.path ? spec->id.path : "");
    if (spec->id.type == MAP_TEXT && cJSON_IsString(v) && v->valuestring[0] != '\0') {
        if (base_snprintf(buf, n, "%s", v->valuestring) < 0)
            return base_err_set(err, BASE_ETOOBIG, "record id is longer than %zu bytes",
                                n ? n - 1 : 0);
        return BASE_OK;
    }
    if ((spec->id.type == MAP_TEXT || spec->id.type == MAP_BIGINT) && json_int64(v, &i64) &&
        (cJSON_IsNumber(v) || spec->id.type == MAP_BIGINT)) {
        if (base_snprintf(buf, n, "%lld", (long long)i64) < 0)
            return base_err_set(err, BASE_ETOOBIG, "record id is longer than %zu bytes",
                                n ? n - 1 : 0);
        return BASE_OK;
    }
    return base_err_set(err, BASE_EPROTO, "record id (path \"%s\") is not a usable %s: found %s",
                        spec->id.path ? spec->id.path : "", type_names[spec->id.type],
                        json_type_name(v));
}

int map_record_id(const struct map_spec *spec, const cJSON *record, char *buf, size_t n)
{
    char tmp[256];
    int rc;

    if (spec == NULL || buf == NULL || n == 0)
        return BASE_EINVAL;
    rc = record_id_text(spec, record, tmp, sizeof(tmp) < n ? sizeof(tmp) : n, NULL);
    if (rc < 0)
        return rc;
    memcpy(buf, tmp, strlen(tmp) + 1);
    return BASE_OK;
}

struct log_slot {
    char name[64];
    int left;
};

static struct log_slot log_slots[MISMATCH_LOG_SLOTS];
static int log_nslots;
static int log_shared_left = MISMATCH_LOG_BUDGET;

/* The budget of a column's warnings in this process. Not thread-safe: the engine maps in its
 * database worker, which runs one operation at a time, so never on two threads at once. */
static int *log_budget(const char *name)
{
    for (int i = 0; i < log_nslots; i++) {
        if (strcmp(log_slots[i].name, name) == 0)
            return &log_slots[i].left;
    }
    if (log_nslots == MISMATCH_LOG_SLOTS || strlen(name) >= sizeof(log_slots[0].name))
        return &log_shared_left;
    memcpy(log_slots[log_nslots].name, name, strlen(name) + 1);
    log_slots[log_nslots].left = MISMATCH_LOG_BUDGET;
    return &log_slots[log_nslots++].left;
}

static void log_mismatch(const struct map_column *col, const char *id, const cJSON *v)
{
    const char *name = col->name ? col->name : "?";
    int *left = log_budget(name);

    if (*left < 0)
        return;
    if (*left == 0) {
        base_log_warning("further mismatches of column \"%s\" are not logged", name);
        *left = -1;
        return;
    }
    (*left)--;
    base_log_warning("column \"%s\" of record %.64s: found %s, expected %s; stored NULL", name, id,
                     json_type_name(v), type_names[col->type]);
}

/* Appends the tab and value (or \N) of one column; *mismatch set when it did not fit. */
static int put_column(struct base_buf *out, const struct map_column *col, const cJSON *record,
                      bool *mismatch)
{
    const cJSON *v = map_lookup(record, col);
    int rc;

    *mismatch = false;
    rc = base_buf_append(out, "\t", 1);
    if (rc < 0)
        return rc;
    if (v != NULL && !cJSON_IsNull(v)) {
        rc = put_value(out, col->type, v);
        if (rc != PUT_MISMATCH)
            return rc;
        *mismatch = true;
    }
    return base_buf_append(out, "\\N", 2);
}

int map_record_to_copy(const struct map_spec *spec, const cJSON *record, struct base_buf *out,
                       struct map_stats *st, struct base_err *err)
{
    return map_record_to_copy_raw(spec, record, NULL, 0, out, st, err);
}

int map_record_to_copy_raw(const struct map_spec *spec, const cJSON *record, const char *raw,
                           size_t raw_len, struct base_buf *out, struct map_stats *st,
                           struct base_err *err)
{
    size_t len0;
    char id[256];
    int64_t mismatches = 0;
    bool bad;
    int result;

    if (spec == NULL || record == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not map record: missing argument");
    len0 = out->len;
    result = record_id_text(spec, record, id, sizeof(id), err);
    if (result < 0)
        goto out;
    if (spec->id.type == MAP_TEXT)
        result = put_escaped(out, id, strlen(id));
    else
        result = base_buf_puts(out, id);
    for (size_t i = 0; i < spec->ncols && result == BASE_OK; i++) {
        result = put_column(out, &spec->cols[i], record, &bad);
        mismatches += bad;
    }
    if (result == BASE_OK)
        result = base_buf_append(out, "\t", 1);
    if (result == BASE_OK)
        result = raw != NULL ? put_escaped(out, raw, raw_len) : put_json(out, record);
    if (result == BASE_OK)
        result = base_buf_append(out, "\n", 1);
    if (result == BASE_ETOOBIG)
        base_err_set(err, result, "could not map record %.64s: the COPY buffer is full (%zu bytes)",
                     id, out->max);
    else if (result == BASE_ENOMEM)
        base_err_set(err, result, "could not map record %.64s: out of memory", id);
    if (result < 0)
        goto out;
    /* The line is complete: only now count and log, so a retried record is counted once. */
    for (size_t i = 0; i < spec->ncols && mismatches > 0; i++) {
        const cJSON *v = map_lookup(record, &spec->cols[i]);

        if (v != NULL && !cJSON_IsNull(v) && put_value(NULL, spec->cols[i].type, v) == PUT_MISMATCH)
            log_mismatch(&spec->cols[i], id, v);
    }
    if (st != NULL) {
        st->rows++;
        st->mismatches += mismatches;
    }
    return BASE_OK;
out:
    out->len = len0;
    if (out->data != NULL)
        out->data[len0] = '\0';
    return result;
}
