/*
 * fuzz_page.c: libFuzzer target for a list page as the engine reads it: keap_page_parse, then
 * every record through the map of a shipped job (map_record_id, map_record_to_copy_raw with
 * the record's span). The first input byte picks the job (jobs/ of the source tree, loaded
 * once); the rest is the body. Any body gives a page or BASE_EPROTO; any record a COPY line,
 * BASE_EPROTO (no usable id) or BASE_ETOOBIG (the line cap). The same body through
 * keap_page_parse_keep, keeping the members the job's id and columns read, must give the same
 * result, message, records, spans and, record by record, the same COPY line.
 */
#include "http.h" /* before keap.h: see cli_int.h */
#include "jobs.h"
#include "keap.h"
#include "map.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KEAPSYNC_JOBS_DIR
#error "KEAPSYNC_JOBS_DIR must name the shipped jobs directory"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jobs_set jobs;
/* per job: the first key of its id path and of every column path (keap_keep.full) */
static const char **keep_names[64];
static struct keap_keep keeps[64];

static void keep_init(size_t j)
{
    const struct map_spec *m = &jobs.jobs[j].map;
    const char **names = calloc(m->ncols + 1, sizeof(*names));
    size_t n = 0;

    if (names == NULL)
        exit(1);
    if (m->id.nparts > 0 && m->id.index[0] == -1)
        names[n++] = m->id.parts[0];
    for (size_t i = 0; i < m->ncols; i++)
        if (m->cols[i].nparts > 0 && m->cols[i].index[0] == -1)
            names[n++] = m->cols[i].parts[0];
    keep_names[j] = names;
    keeps[j].full = names;
    keeps[j].nfull = n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct base_err err;

    base_log_set_level(BASE_LOG_QUIET);
    if (jobs_load_dir(KEAPSYNC_JOBS_DIR, &jobs, &err) < 0 || jobs.n == 0) {
        fprintf(stderr, "fuzz_page: %s\n", err.msg);
        exit(1);
    }
    for (size_t j = 0; j < jobs.n && j < 64; j++)
        keep_init(j);
    return 0;
}

/* The pruned parse of the same body agrees with the whole one (page, rc, err from it). */
static void check_pruned(const struct jobs_job *job, size_t j, const uint8_t *data, size_t size,
                         const struct keap_page *page, int rc, const struct base_err *err,
                         const char *body)
{
    struct keap_page pruned;
    struct base_err perr;
    struct base_buf a, b;
    struct map_stats st = {0};
    char *copy;
    int prc;

    if (j >= 64)
        return;
    copy = malloc(size);
    if (copy == NULL)
        return;
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    memset(&pruned, 0, sizeof(pruned));
    base_err_clear(&perr);
    prc = keap_page_parse_keep(copy, size - 1, job->array_key, &keeps[j], &pruned, &perr);
    if (prc != rc || (rc != 0 && strcmp(perr.msg, err->msg) != 0))
        abort();
    if (rc != 0) {
        free(copy);
        return;
    }
    if (pruned.nrecords != page->nrecords || (page->spans == NULL) != (pruned.spans == NULL) ||
        (page->spans != NULL &&
         memcmp(page->spans, pruned.spans, (size_t)page->nrecords * sizeof(*page->spans)) != 0))
        abort();
    base_buf_init(&a, 1u << 20);
    base_buf_init(&b, 1u << 20);
    for (const cJSON *ra = page->records->child, *rb = pruned.records->child; ra && rb;
         ra = ra->next, rb = rb->next) {
        int ia, ib;

        base_buf_reset(&a);
        base_buf_reset(&b);
        ia = map_record_to_copy_raw(&job->map, ra, "{}", 2, &a, &st, &perr);
        ib = map_record_to_copy_raw(&job->map, rb, "{}", 2, &b, &st, &perr);
        if (ia != ib || (ia == 0 && (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)))
            abort(); /* the kept members map exactly as the whole record does */
    }
    base_buf_free(&a);
    base_buf_free(&b);
    keap_page_free(&pruned);
    free(copy);
    (void)body;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct jobs_job *job;
    struct keap_page page;
    struct base_err err;
    struct base_buf line;
    struct map_stats st = {0};
    char *body, id[128];

    if (size < 1)
        return 0;
    job = &jobs.jobs[data[0] % jobs.n];
    body = malloc(size); /* keap_page_parse edits the body in place */
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    memset(&page, 0, sizeof(page));
    base_err_clear(&err);
    if (keap_page_parse(body, size - 1, job->array_key, &page, &err) != 0) {
        if (strchr(err.msg, '\n') != NULL)
            abort();
        check_pruned(job, (size_t)(data[0] % jobs.n), data, size, &page, BASE_EPROTO, &err, body);
        free(body);
        return 0;
    }
    check_pruned(job, (size_t)(data[0] % jobs.n), data, size, &page, 0, &err, body);
    base_buf_init(&line, 1u << 20);
    for (int i = 0; i < page.nrecords; i++) {
        const cJSON *rec = cJSON_GetArrayItem(page.records, i);
        const char *raw = page.spans ? body + page.spans[i].off : NULL;
        size_t raw_len = page.spans ? page.spans[i].len : 0;
        int rc;

        if (rec == NULL)
            abort(); /* nrecords must match the array */
        if (page.spans != NULL && page.spans[i].off + raw_len > size - 1)
            abort(); /* a span must lie inside the body */
        (void)map_record_id(&job->map, rec, id, sizeof(id));
        base_buf_reset(&line);
        rc = map_record_to_copy_raw(&job->map, rec, raw, raw_len, &line, &st, &err);
        if (rc != 0 && rc != BASE_EPROTO && rc != BASE_ETOOBIG)
            abort();
        if (rc == 0 && (line.len == 0 || line.data[line.len - 1] != '\n' ||
                        memchr(line.data, '\n', line.len) != line.data + line.len - 1))
            abort(); /* exactly one COPY line */
    }
    base_buf_free(&line);
    keap_page_free(&page);
    free(body);
    return 0;
}
