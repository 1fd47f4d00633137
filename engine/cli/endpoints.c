/*
 * endpoints.c: does Keap have each job's list? One request per job, for its first page (one
 * record), before check says a job is valid (cli_probe_endpoints in cli_int.h). run needs no
 * probe: a job's table is made by its first committed page, so a 404 leaves none.
 *
 * Words used here:
 *   probe   the request for a job's first page, one record long (keap_probe_list).
 *   tenant  the ledger key: KEAPSYNC_TENANT, the tenant Keap named for this API root before
 *           (keapsync.settings), or the API root itself, as sched charges it (labels.c too).
 */
#include "cli_int.h"
#include "auth_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_until(uint64_t due_mono_ms)
{
    uint64_t now = base_clock_mono_ms(base_clock_system());
    struct timespec ts;

    if (now >= due_mono_ms)
        return;
    ts.tv_sec = (time_t)((due_mono_ms - now) / 1000);
    ts.tv_nsec = (long)((due_mono_ms - now) % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The ledger key, as sched charges it (*tenant malloc'd). */
static int ledger_tenant(struct store *s, const char *base_url, const char *tenant_env,
                         char **tenant, struct base_err *err)
{
    struct base_buf key;
    int rc = 0;

    base_buf_init(&key, 4096);
    if (tenant_env != NULL)
        *tenant = strdup(tenant_env);
    else if ((rc = base_buf_printf(&key, "tenant:%s", base_url)) == 0 &&
             (rc = store_setting_get(s, key.data, tenant, err)) == 0 && *tenant == NULL)
        *tenant = strdup(base_url);
    base_buf_free(&key);
    if (rc == 0 && *tenant == NULL)
        rc = base_err_set(err, BASE_ENOMEM, "out of memory");
    return rc;
}

/* One request reserved in the day's ledger: BASE_EQUOTA when the day is spent. */
static int ledger_reserve(struct store *s, const char *tenant, const struct pace_config *limits,
                          struct base_err *err)
{
    int64_t day = base_clock_wall_ms(base_clock_system()), granted = 0, total = 0;
    int64_t budget = limits->per_day > 0
                         ? (int64_t)((double)limits->per_day * (1.0 - limits->reserve_fraction))
                         : INT64_MAX / 4;
    int rc = store_ledger_reserve(s, tenant, day, budget, 1, &granted, &total, err);

    if (rc == 0 && granted < 1)
        rc = base_err_set(err, BASE_EQUOTA,
                          "the day's request budget is spent (%" PRId64
                          " reserved); run again after 00:00 UTC",
                          total);
    return rc;
}

/* The job's first page, one record long, as sched would ask for it. */
static int first_page_url(struct base_buf *url, const char *base_url, const struct jobs_job *job)
{
    if (job->api == KEAP_API_V1) {
        struct keap_v1_query q = {
            .limit = 1,
            .offset = 0,
            .order = job->order,
            .order_direction = job->order ? "ASCENDING" : NULL,
            .since_ms = -1,
            .until_ms = -1,
            .optional_properties = job->optional_properties,
            .extra = job->query,
            .nextra = job->nquery,
        };
        return keap_build_v1_url(url, base_url, job->endpoint, &q);
    } else {
        struct keap_v2_query q = {
            .page_size = 1,
            .order_by = job->order,
            .since_ms = -1,
            .until_ms = -1,
            .extra = job->query,
            .nextra = job->nquery,
        };
        return keap_build_v2_url(url, base_url, job->endpoint, &q);
    }
}

int cli_probe_endpoints(const struct jobs_set *set, struct store *s,
                        const struct pace_config *limits, const char *base_url,
                        const char *tenant_env, bool *checked, struct base_err *err)
{
    struct keap_credential cred = {0};
    char **headers = NULL, *tenant = NULL;
    uint64_t next_mono = 0;
    int rc = 0;

    *checked = true;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const struct jobs_job *job = &set->jobs[i];
        struct keap_probe_result r;
        struct base_buf url;

        if (job->parent_job != NULL)
            continue; /* a child stream's list needs a parent's id: its parent is probed */
        if (headers == NULL) {
            rc = cli_credential(s, &cred, err);
            if (rc == 0 && (rc = keap_auth_headers(&cred, &headers)) < 0)
                base_err_set(err, rc, "could not build request headers: %s", base_strerror(rc));
            keap_credential_clear(&cred);
            if (rc < 0)
                goto unchecked;
        }
        if (s != NULL) {
            if (tenant == NULL)
                rc = ledger_tenant(s, base_url, tenant_env, &tenant, err);
            /* Counted in the ledger before it is sent, as every request is. */
            if (rc == 0)
                rc = ledger_reserve(s, tenant, limits, err);
            if (rc < 0)
                goto unchecked;
        }
        sleep_until(next_mono);
        next_mono = base_clock_mono_ms(base_clock_system()) + pace_probe_interval_ms(limits);
        base_buf_init(&url, 64 * 1024);
        rc = first_page_url(&url, base_url, job);
        if (rc < 0) {
            base_buf_free(&url);
            base_err_set(err, rc, "job \"%s\": could not build the URL of its first page",
                         job->name);
            break;
        }
        rc = keap_probe_list(url.data, (const char *const *)headers, job->array_key, &r, err);
        base_buf_free(&url);
        if (rc == BASE_ENOTFOUND) {
            char why[sizeof(err->msg)];

            snprintf(why, sizeof(why), "%s", err->msg);
            base_err_set(err, BASE_ECONFIG,
                         "job \"%s\": endpoint %s does not exist at KEAP_BASE_URL (%s)", job->name,
                         job->endpoint, why);
            base_err_hint(err,
                          "fix \"endpoint\" in %s (docs/jobs.md lists the lists Keap has), or "
                          "remove the job file",
                          job->file);
            break;
        }
        if (rc == BASE_EPROTO || rc == 0) {
            rc = 0; /* the list exists; a missing array is the run's to report */
            continue;
        }
        goto unchecked;
    }
    keap_headers_free(headers);
    free(tenant);
    return rc;
unchecked:
    /* Keap unreachable or refusing, or the day's budget spent: a warning, check passes. */
    fprintf(stderr,
            "keapsync: warning: job endpoints not checked: %s (hint: they are checked when "
            "KEAP_API_KEY and KEAP_BASE_URL reach Keap)\n",
            err->msg);
    base_err_clear(err);
    *checked = false;
    keap_headers_free(headers);
    free(tenant);
    return 0;
}
