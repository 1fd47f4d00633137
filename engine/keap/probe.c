/*
 * probe.c: one blocking list request for the quota planner (keap_probe_list): how many
 * records a page holds, its "count" member, and the x-keap-* headers. Modelled on
 * keap_fetch_model: a loop and a client of its own, one connection, a time limit.
 *
 * Words used here:
 *   probe   a request that reads a list's page only to learn its length (keapsync plan).
 */
#include "keap.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#define KEAP_PROBE_MAX_BODY (64u * 1024 * 1024)
#define KEAP_PROBE_TIMEOUT  60000 /* ms for the whole call */

struct probe_call {
    bool done;
    long status; /* HTTP status, 0 when the transport failed */
    struct keap_verdict verdict;
    struct pace_observation obs;
    char tenant[128];
    struct base_buf body; /* taken from the response */
};

static void probe_done_cb(struct http_response *resp, void *data)
{
    struct probe_call *call = data;

    keap_classify_api(resp, KEAP_API_V1, 0, &call->verdict);
    call->status = resp->status;
    pace_observation_init(&call->obs);
    keap_read_headers(resp, &call->obs);
    if (call->obs.tenant_id != NULL)
        snprintf(call->tenant, sizeof(call->tenant), "%s", call->obs.tenant_id);
    call->obs.tenant_id = NULL; /* borrowed from resp, which goes away */
    call->body = resp->body;
    resp->body.data = NULL;
    call->done = true;
}

/* The path of url after the host, for messages: "/crm/rest/v1/contacts". */
static void url_path(const char *url, char *buf, size_t n)
{
    const char *p = strstr(url, "://");
    size_t len;

    p = p ? strchr(p + 3, '/') : NULL;
    p = p ? p : url;
    len = strcspn(p, "?");
    snprintf(buf, n, "%.*s", (int)len, p);
}

int keap_probe_list(const char *url, const char *const *headers, const char *array_key,
                    struct keap_probe_result *out, struct base_err *err)
{
    struct http_options hopt = {0};
    struct http_request req = {0};
    struct http_client *hc = NULL;
    struct probe_call call;
    char path[256];
    uv_loop_t loop;
    cJSON *root, *arr, *count;
    int rc, result;

    if (url == NULL || array_key == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not probe a list: missing argument");
    url_path(url, path, sizeof(path));
    memset(&call, 0, sizeof(call));
    rc = uv_loop_init(&loop);
    if (rc < 0)
        return base_err_set(err, BASE_EIO, "could not start an event loop: %s", uv_strerror(rc));
    hopt.max_body = KEAP_PROBE_MAX_BODY;
    hopt.max_connections = 1;
    hopt.timeout_ms = KEAP_PROBE_TIMEOUT;
    rc = http_client_new(&hc, &loop, &hopt);
    if (rc == BASE_OK) {
        req.method = "GET";
        req.url = url;
        req.headers = headers;
        rc = http_send(hc, &req, probe_done_cb, &call);
    }
    while (rc == BASE_OK && !call.done && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    http_client_close(hc);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc < 0) {
        base_buf_free(&call.body);
        return base_err_set(err, rc, "could not probe %s: %s", path, base_strerror(rc));
    }
    switch (call.verdict.outcome) {
    case KEAP_OUTCOME_OK:
        result = BASE_OK;
        break;
    case KEAP_OUTCOME_AUTH:
        result = base_err_set(err, BASE_EAUTH, "could not probe %s: %s", path, call.verdict.reason);
        break;
    case KEAP_OUTCOME_RATE_LIMITED:
        result = base_err_set(err, call.verdict.limit == PACE_LIMIT_DAY ? BASE_EQUOTA : BASE_EIO,
                              "could not probe %s: %s", path, call.verdict.reason);
        break;
    default:
        /* A 404 is a list Keap does not have (a wrong endpoint), not a passing fault. */
        result = base_err_set(err, call.status == 404 ? BASE_ENOTFOUND : BASE_EIO,
                              "could not probe %s: %s", path, call.verdict.reason);
        break;
    }
    if (result < 0) {
        base_buf_free(&call.body);
        return result;
    }
    root = call.body.data ? cJSON_ParseWithLength(call.body.data, call.body.len) : NULL;
    base_buf_free(&call.body);
    arr = cJSON_GetObjectItemCaseSensitive(root, array_key);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(root);
        return base_err_set(err, BASE_EPROTO, "could not read %s: no array \"%s\"", path,
                            array_key);
    }
    out->n = cJSON_GetArraySize(arr);
    count = cJSON_GetObjectItemCaseSensitive(root, "count");
    out->count =
        cJSON_IsNumber(count) && count->valuedouble >= 0 ? (int64_t)count->valuedouble : -1;
    out->obs = call.obs;
    snprintf(out->tenant, sizeof(out->tenant), "%s", call.tenant);
    cJSON_Delete(root);
    return BASE_OK;
}
