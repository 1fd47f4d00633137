/*
 * dir.c: loading the jobs folder (every *.json of it, sorted by file name) into a jobs set,
 * checking what no single file can (unique names and tables, each child stream's parent), and
 * selecting jobs by name (run --only).
 */
#include "jobs_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_MAX 4096 /* job files in one folder */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names in dir (not hidden ones), sorted, into *names / *n (caller frees). */
static int list_job_files(const char *dir, char ***names, size_t *n, struct base_err *err)
{
    char buf[PATH_SHOWN];
    DIR *d;
    struct dirent *de;
    char **v = NULL;
    size_t count = 0;
    int result = BASE_OK;

    d = opendir(dir);
    if (d == NULL) {
        result = base_err_set(err, BASE_ECONFIG, "could not open jobs folder \"%s\": %s",
                              jobs_shown(dir, buf, sizeof(buf)), strerror(errno));
        base_err_hint(err, "set KEAPSYNC_JOBS or run from the project root");
        return result;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char **nv;

        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (count == JOBS_MAX) {
            result = base_err_set(err, BASE_ECONFIG, "more than %d job files in \"%s\"", JOBS_MAX,
                                  jobs_shown(dir, buf, sizeof(buf)));
            goto out;
        }
        nv = realloc(v, (count + 1) * sizeof(*v));
        if (nv == NULL) {
            result = base_err_set(err, BASE_ENOMEM, "could not list jobs folder: out of memory");
            goto out;
        }
        v = nv;
        v[count] = strdup(de->d_name);
        if (v[count] == NULL) {
            result = base_err_set(err, BASE_ENOMEM, "could not list jobs folder: out of memory");
            goto out;
        }
        count++;
    }
    if (errno != 0) {
        result = base_err_set(err, BASE_ECONFIG, "could not read jobs folder \"%s\": %s",
                              jobs_shown(dir, buf, sizeof(buf)), strerror(errno));
        goto out;
    }
    if (count == 0) {
        result = base_err_set(err, BASE_ECONFIG, "no job files in \"%s\"",
                              jobs_shown(dir, buf, sizeof(buf)));
        goto out;
    }
    qsort(v, count, sizeof(*v), cmp_names);
    *names = v;
    *n = count;
    v = NULL;
    count = 0;
out:
    while (count > 0)
        free(v[--count]);
    free(v);
    closedir(d);
    return result;
}

/* Reports a second job that reuses the name or table of an earlier one. */
static int check_unique(const struct jobs_set *set, struct base_err *err)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct jobs_job *b = &set->jobs[i];

        for (size_t j = 0; j < i; j++) {
            const struct jobs_job *a = &set->jobs[j];
            struct jobs_load_ctx c = {b->file, err};
            char buf[PATH_SHOWN];

            if (strcmp(a->name, b->name) == 0)
                return jobs_fail(&c, "name", "\"%s\" is already the name of the job in \"%s\"",
                                 b->name, jobs_shown(a->file, buf, sizeof(buf)));
            if (strcmp(a->table, b->table) == 0)
                return jobs_fail(&c, "table", "\"%s\" is already the table of the job in \"%s\"",
                                 b->table, jobs_shown(a->file, buf, sizeof(buf)));
        }
    }
    return BASE_OK;
}

/* Finds each child stream's parent job and takes its table. */
static int resolve_parents(struct jobs_set *set, struct base_err *err)
{
    for (size_t i = 0; i < set->n; i++) {
        struct jobs_job *b = &set->jobs[i];
        struct jobs_load_ctx c = {b->file, err};
        const struct jobs_job *a = NULL;

        if (b->parent_job == NULL)
            continue;
        for (size_t j = 0; j < set->n; j++)
            if (strcmp(set->jobs[j].name, b->parent_job) == 0)
                a = &set->jobs[j];
        if (a == NULL)
            return jobs_fail(&c, "parent.job", "no job is named \"%s\"", b->parent_job);
        if (a->parent_job != NULL)
            return jobs_fail(&c, "parent.job", "\"%s\" is itself a child stream", a->name);
        if (a->map.id.type != MAP_BIGINT)
            return jobs_fail(&c, "parent.job", "\"%s\" has no integer ids", a->name);
        free(b->parent_table);
        b->parent_table = strdup(a->table);
        if (b->parent_table == NULL)
            return base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    return BASE_OK;
}

int jobs_load_dir(const char *dir, struct jobs_set *out, struct base_err *err)
{
    struct jobs_set set = {NULL, 0};
    struct base_buf path;
    char **names = NULL;
    size_t nnames = 0;
    int result;

    base_buf_init(&path, 4096);
    if (dir == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not load jobs: missing argument");
    result = list_job_files(dir, &names, &nnames, err);
    if (result < 0)
        goto out;
    set.jobs = calloc(nnames, sizeof(*set.jobs));
    if (set.jobs == NULL) {
        result = base_err_set(err, BASE_ENOMEM, "could not load jobs: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        size_t dlen = strlen(dir);

        base_buf_reset(&path);
        result = base_buf_printf(&path, "%s%s%s", dir, dlen && dir[dlen - 1] == '/' ? "" : "/",
                                 names[i]);
        if (result < 0) {
            base_err_set(err, BASE_ECONFIG, "could not load job file \"%s\": path too long",
                         names[i]);
            goto out;
        }
        result = jobs_load_file(path.data, &set.jobs[i], err);
        if (result < 0)
            goto out;
        set.n = i + 1;
    }
    result = check_unique(&set, err);
    if (result == BASE_OK)
        result = resolve_parents(&set, err);
    if (result < 0)
        goto out;
    *out = set;
    set.jobs = NULL;
    set.n = 0;
out:
    jobs_set_free(&set);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    base_buf_free(&path);
    return result;
}

/* Index of the job named name[0..len), or -1. */
static long find_job(const struct jobs_set *set, const char *name, size_t len)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strlen(set->jobs[i].name) == len && memcmp(set->jobs[i].name, name, len) == 0)
            return (long)i;
    }
    return -1;
}

int jobs_select(struct jobs_set *set, const char *only_csv, struct base_err *err)
{
    char buf[SHOWN_BUF], name[SHOWN_BUF];
    bool *keep = NULL;
    const char *p;
    size_t kept = 0;
    int result = BASE_OK;

    if (set == NULL)
        return base_err_set(err, BASE_EINVAL, "could not select jobs: missing argument");
    if (only_csv == NULL)
        return BASE_OK;
    keep = calloc(set->n ? set->n : 1, sizeof(*keep));
    if (keep == NULL)
        return base_err_set(err, BASE_ENOMEM, "could not select jobs: out of memory");
    p = only_csv;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *a = p, *b = comma ? comma : p + strlen(p);
        long idx;

        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        if (a == b) {
            result = base_err_set(err, BASE_ECONFIG, "empty job name in \"%s\"",
                                  jobs_shown(only_csv, buf, sizeof(buf)));
            goto out;
        }
        idx = find_job(set, a, (size_t)(b - a));
        if (idx < 0) {
            size_t len = (size_t)(b - a) < sizeof(buf) - 1 ? (size_t)(b - a) : sizeof(buf) - 1;

            memcpy(buf, a, len);
            buf[len] = '\0';
            result = base_err_set(err, BASE_ECONFIG, "unknown job \"%s\"",
                                  jobs_shown(buf, name, sizeof(name)));
            base_err_hint(err, "job names are the file names in the jobs folder, without .json");
            goto out;
        }
        keep[idx] = true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    /* Every name is known: drop the others, keeping file order. */
    for (size_t i = 0; i < set->n; i++) {
        if (keep[i])
            set->jobs[kept++] = set->jobs[i];
        else
            jobs_job_free(&set->jobs[i]);
    }
    set->n = kept;
out:
    free(keep);
    return result;
}

void jobs_set_free(struct jobs_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        jobs_job_free(&set->jobs[i]);
    free(set->jobs);
    set->jobs = NULL;
    set->n = 0;
}
