/*
 * labels.c: custom fields by label for the command line (see labels.h). Fetches each object's
 * model once (keap_fetch_model), charging run's requests to the quota ledger first, and hands
 * it to jobs_resolve_custom_fields.
 *
 * Words used here:
 *   model   GET /v1/<object>/model: an object's custom fields, each with its id and label.
 *   tenant  the ledger key: KEAPSYNC_TENANT, the tenant Keap named for this API root before
 *           (keapsync.settings), or the API root itself, as sched charges it.
 */
#include "labels.h"
#include "auth_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_resolve_labels(struct jobs_set *set, struct store *s, const struct pace_config *limits,
                       const char *base_url, const char *tenant_env, bool *checked,
                       struct base_err *err)
{
    struct keap_credential cred = {0};
    char **headers = NULL, *tenant = NULL;
    int rc = 0;

    *checked = true;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        struct jobs_job *job = &set->jobs[i];
        cJSON *model = NULL;

        if (job->unresolved == 0)
            continue;
        if (headers == NULL) {
            rc = cli_credential(s, &cred, err);
            if (rc == 0 && (rc = keap_auth_headers(&cred, &headers)) < 0)
                base_err_set(err, rc, "could not build request headers: %s", base_strerror(rc));
            keap_credential_clear(&cred);
            if (rc < 0 && s == NULL)
                goto unreachable;
            if (rc < 0)
                break;
        }
        if (s != NULL) {
            int64_t day = base_clock_wall_ms(base_clock_system()), granted = 0, total = 0;
            int64_t budget =
                limits->per_day > 0
                    ? (int64_t)((double)limits->per_day * (1.0 - limits->reserve_fraction))
                    : INT64_MAX / 4;

            if (tenant == NULL) {
                struct base_buf key;

                base_buf_init(&key, 4096);
                if (tenant_env != NULL)
                    tenant = strdup(tenant_env);
                else if ((rc = base_buf_printf(&key, "tenant:%s", base_url)) == 0 &&
                         (rc = store_setting_get(s, key.data, &tenant, err)) == 0 && tenant == NULL)
                    tenant = strdup(base_url); /* as sched charges an unknown tenant */
                base_buf_free(&key);
                if (rc == 0 && tenant == NULL)
                    rc = base_err_set(err, BASE_ENOMEM, "out of memory");
                if (rc < 0)
                    break;
            }
            rc = store_ledger_reserve(s, tenant, day, budget, 1, &granted, &total, err);
            if (rc == 0 && granted < 1)
                rc = base_err_set(err, BASE_EQUOTA,
                                  "the day's request budget is spent (%" PRId64
                                  " reserved); run again after 00:00 UTC",
                                  total);
            if (rc < 0)
                break;
        }
        /* One fetch per object: later jobs of the same object reuse it. */
        rc = keap_fetch_model(base_url, job->model_object, (const char *const *)headers, &model,
                              err);
        if (rc < 0 && s == NULL && rc != BASE_ENOTFOUND)
            goto unreachable;
        for (size_t j = i; rc == 0 && j < set->n; j++)
            if (set->jobs[j].unresolved > 0 &&
                strcmp(set->jobs[j].model_object, job->model_object) == 0)
                rc = jobs_resolve_custom_fields(&set->jobs[j], model, err);
        cJSON_Delete(model);
    }
    keap_headers_free(headers);
    free(tenant);
    return rc;
unreachable:
    fprintf(stderr,
            "keapsync: warning: custom field labels not checked: %s (hint: check resolves them "
            "when KEAP_API_KEY and KEAP_BASE_URL reach Keap)\n",
            err->msg);
    base_err_clear(err);
    *checked = false;
    keap_headers_free(headers);
    free(tenant);
    return 0;
}
