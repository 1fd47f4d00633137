/*
 * fuzz_page.c: libFuzzer target for a list page as the engine reads it: keap_page_parse, then
 * every record through the map of a shipped job (map_record_id, map_record_to_copy_raw with
 * the record's span). The first input byte picks the job (jobs/ of the source tree, loaded
 * once); the rest is the body. Any body gives a page or BASE_EPROTO; any record a COPY line,
 * BASE_EPROTO (no usable id) or BASE_ETOOBIG (the line cap).
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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct base_err err;

    base_log_set_level(BASE_LOG_QUIET);
    if (jobs_load_dir(KEAPSYNC_JOBS_DIR, &jobs, &err) < 0 || jobs.n == 0) {
        fprintf(stderr, "fuzz_page: %s\n", err.msg);
        exit(1);
    }
    return 0;
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
    if (keap_page_parse(body, size - 1, job->array_key, &page, &err) != 0) {
        if (strchr(err.msg, '\n') != NULL)
            abort();
        free(body);
        return 0;
    }
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
