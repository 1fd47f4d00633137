/*
 * map: one JSON record -> one row of a job's table, as a line of PostgreSQL COPY text
 * format. Pure: no I/O.
 *
 * Words used here:
 *   column   a typed target column: its SQL name, the JSON path it reads, its type.
 *   path     dot-separated keys and array indices into the record: "given_name",
 *            "email_addresses.0.email", "company.id". A missing key reads as NULL.
 *   row      id, then each column in order, then data (the whole record as jsonb text).
 *            synced_at is not part of the row; the database sets it.
 *   mismatch a value whose JSON type contradicts the column type (a string where a number
 *            is declared, an unparseable timestamp). The column becomes NULL, the raw value
 *            stays in data, and the mismatch is counted.
 */
#ifndef KEAPSYNC_MAP_H
#define KEAPSYNC_MAP_H

#include "base.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum map_type {
    MAP_TEXT = 1,    /* strings; numbers and booleans are written as their JSON text */
    MAP_BIGINT,      /* integral JSON numbers, or strings holding one (v2 ids) */
    MAP_DOUBLE,      /* double precision */
    MAP_NUMERIC,     /* numeric, written from the JSON number's text */
    MAP_BOOLEAN,     /* true/false */
    MAP_TIMESTAMPTZ, /* ISO-8601 strings in any of Keap's forms; written in UTC */
    MAP_DATE,        /* "YYYY-MM-DD" or a timestamp's date */
    MAP_JSONB,       /* any JSON value, written compact */
};

/* "text", "bigint", "double precision", ... */
const char *map_type_sql(enum map_type t);
/* Accepts the names used in job files: text, bigint, double, numeric, boolean, timestamptz,
 * date, jsonb. */
int map_type_from_name(const char *name, enum map_type *out);

#define MAP_MAX_PATH_PARTS 8

struct map_column {
    char *name; /* SQL identifier, already validated */
    char *path; /* as written in the job file */
    enum map_type type;
    /* parsed path; filled by map_column_compile */
    int nparts;
    char *parts[MAP_MAX_PATH_PARTS];
    int index[MAP_MAX_PATH_PARTS]; /* >= 0: array index; -1: object key */
};

/*
 * Addition: index[] value of a selector part. A path part written "[key=value]" selects the
 * element of an array that is an object whose member key equals value (a JSON number is
 * compared numerically, a string exactly): "custom_fields.[id=18].content". parts[] then
 * holds "key=value".
 */
#define MAP_PART_MATCH (-2)

/* Parses column->path into parts. BASE_EINVAL on an empty or too deep path. */
int map_column_compile(struct map_column *col);
void map_column_free(struct map_column *col);

struct map_spec {
    struct map_column id;    /* name "id"; type MAP_BIGINT (v1) or MAP_TEXT (v2) */
    struct map_column *cols; /* typed columns, in table order */
    size_t ncols;
};

struct map_stats {
    int64_t rows;
    int64_t mismatches; /* columns set NULL because of a type mismatch */
};

/* Reads a value at a compiled path; NULL when any step is missing. */
const cJSON *map_lookup(const cJSON *record, const struct map_column *col);

/*
 * Appends one COPY text line for record to out: id, columns, data, tab-separated, "\n"
 * ended, with COPY's escapes (backslash, tab, newline, carriage return) and \N for NULL.
 * A record without a usable id is an error (BASE_EPROTO, err names it); nothing is appended
 * then. Mismatches are not errors: they are counted in st and logged at most once per
 * column per call site (see map_stats). BASE_ETOOBIG when out's cap is hit.
 */
int map_record_to_copy(const struct map_spec *spec, const cJSON *record, struct base_buf *out,
                       struct map_stats *st, struct base_err *err);

/*
 * The same, with data taken from raw (raw_len bytes: the record's JSON text exactly as
 * received) instead of printing record again; raw NULL means print.
 */
int map_record_to_copy_raw(const struct map_spec *spec, const cJSON *record, const char *raw,
                           size_t raw_len, struct base_buf *out, struct map_stats *st,
                           struct base_err *err);

/* The id of a record as text (for checkpoints and overlap checks); 0 on success. */
int map_record_id(const struct map_spec *spec, const cJSON *record, char *buf, size_t n);

#endif
