/*
 * labels.c: resolving the columns of a job that name a custom field by its label ("custom_field"
 * in a job file) against the object's model, GET /v1/<object>/model.
 *
 * Words used here:
 *   model   the parsed body of GET /v1/<object>/model; its custom_fields array holds each
 *           field's id and label.
 *   close   labels near the one a column names (small edit distance, or one contains the
 *           other), listed in the error when no label matches exactly.
 */
#include "jobs_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Edit distance of a and b (case-insensitive), or LABEL_MAX + 1 when either is longer. */
static size_t label_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[LABEL_MAX + 2];

    if (la > LABEL_MAX || lb > LABEL_MAX)
        return LABEL_MAX + 1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* True if needle occurs in hay, ignoring case. */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

/* Appends up to 3 labels of fields close to want ("Shoe Size", ...) to buf[0..n). */
static void close_labels(const cJSON *fields, const char *want, char *buf, size_t n)
{
    size_t used = 0, found = 0;
    const cJSON *f;

    buf[0] = '\0';
    cJSON_ArrayForEach(f, fields)
    {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(f, "label");
        size_t d, limit = strlen(want) / 3 + 1;
        int w;

        if (!cJSON_IsString(l) || !jobs_is_label(l->valuestring))
            continue;
        d = label_distance(l->valuestring, want);
        if (d > limit && !contains_ci(l->valuestring, want) && !contains_ci(want, l->valuestring))
            continue;
        w = snprintf(buf + used, n - used, "%s\"%.60s\"", found ? ", " : "", l->valuestring);
        if (w < 0 || (size_t)w >= n - used) {
            buf[used] = '\0';
            return;
        }
        used += (size_t)w;
        if (++found == 3)
            return;
    }
}

int jobs_resolve_custom_fields(struct jobs_job *job, const cJSON *model, struct base_err *err)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(model, "custom_fields");
    struct jobs_load_ctx c = {job ? job->file : NULL, err};

    if (job == NULL || model == NULL)
        return base_err_set(err, BASE_EINVAL, "could not resolve custom fields: missing argument");
    if (!cJSON_IsArray(fields))
        return base_err_set(err, BASE_EPROTO,
                            "could not read the custom fields of \"%s\": the model has no "
                            "custom_fields array",
                            job->model_object ? job->model_object : "?");
    for (size_t i = 0; i < job->map.ncols; i++) {
        struct map_column *col = &job->map.cols[i];
        const char *label = job->custom_labels ? job->custom_labels[i] : NULL;
        const cJSON *hit = NULL, *f;
        char field[64], buf[SHOWN_BUF], close[240], path[128];
        int rc;

        if (label == NULL || col->path != NULL)
            continue;
        snprintf(field, sizeof(field), "columns[%zu].custom_field", i);
        cJSON_ArrayForEach(f, fields)
        {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(f, "label");

            if (!cJSON_IsString(l) || strcmp(l->valuestring, label) != 0)
                continue;
            if (hit != NULL)
                return jobs_fail(&c, field,
                                 "column \"%s\": two custom fields of %s are labelled \"%s\" (use "
                                 "a path with the field's id)",
                                 col->name, job->model_object, jobs_shown(label, buf, sizeof(buf)));
            hit = f;
        }
        if (hit == NULL) {
            close_labels(fields, label, close, sizeof(close));
            if (close[0] != '\0')
                return jobs_fail(&c, field,
                                 "column \"%s\": no custom field of %s is labelled \"%s\" "
                                 "(close: %s)",
                                 col->name, job->model_object, jobs_shown(label, buf, sizeof(buf)),
                                 close);
            return jobs_fail(&c, field, "column \"%s\": no custom field of %s is labelled \"%s\"",
                             col->name, job->model_object, jobs_shown(label, buf, sizeof(buf)));
        }
        f = cJSON_GetObjectItemCaseSensitive(hit, "id");
        if (cJSON_IsNumber(f) && isfinite(f->valuedouble) &&
            floor(f->valuedouble) == f->valuedouble)
            rc = base_snprintf(path, sizeof(path), "custom_fields.[id=%.0f].content",
                               f->valuedouble);
        else if (cJSON_IsString(f) && jobs_is_param_name(f->valuestring) &&
                 strlen(f->valuestring) < 64)
            rc = base_snprintf(path, sizeof(path), "custom_fields.[id=%s].content", f->valuestring);
        else
            return base_err_set(err, BASE_EPROTO,
                                "could not read the custom fields of \"%s\": the field labelled "
                                "\"%s\" has no usable id",
                                job->model_object, jobs_shown(label, buf, sizeof(buf)));
        if (rc == BASE_OK && (col->path = strdup(path)) == NULL)
            rc = BASE_ENOMEM;
        if (rc == BASE_OK)
            rc = map_column_compile(col);
        if (rc < 0) {
            free(col->path);
            col->path = NULL;
            return base_err_set(err, BASE_ENOMEM, "could not resolve custom fields: out of memory");
        }
        job->unresolved--;
    }
    return BASE_OK;
}
