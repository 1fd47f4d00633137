/*
 * fuzz_jobs.c: libFuzzer target for loading a job file (jobs_load_buffer): any bytes give a
 * job or BASE_ECONFIG with a one-line message, never a crash or a leak.
 */
#include "jobs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The job's "name" must match its file name: take the file name from the name when the
 * input has one, so that the loader gets past that check. */
static void job_path(const char *data, size_t size, char *path, size_t n)
{
    cJSON *root = cJSON_ParseWithLength(data, size);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");

    if (cJSON_IsString(name) && jobs_is_identifier(name->valuestring))
        snprintf(path, n, "fuzz/%s.json", name->valuestring);
    else
        snprintf(path, n, "fuzz/job.json");
    cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jobs_job job;
    struct base_err err;
    char path[128];
    int rc;

    base_log_set_level(BASE_LOG_QUIET);
    base_err_clear(&err);
    memset(&job, 0, sizeof(job));
    job_path((const char *)data, size, path, sizeof(path));
    rc = jobs_load_buffer(path, (const char *)data, size, &job, &err);
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "rc %d: %s\n", rc, err.msg);
    if (rc == 0) {
        jobs_job_free(&job);
    } else {
        if (rc != BASE_ECONFIG && rc != BASE_ENOMEM)
            abort(); /* a bad job file is a configuration error, nothing else */
        if (strchr(err.msg, '\n') != NULL || strchr(err.hint, '\n') != NULL)
            abort(); /* errors are one line */
    }
    return 0;
}
