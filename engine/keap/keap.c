/*
 * keap.c: the Keap dialect (see keap.h for the vocabulary): credentials from the
 * environment, auth header lines, v1/v2 list URLs, classifying responses, reading the
 * x-keap-* headers and parsing a list page.
 *
 * Words used here besides those of keap.h:
 *   fault      the gateway's error body {"fault":{"faultstring","detail":{"errorcode"}}}.
 *   v2 error   {"code","message","status","details"}.
 *   wipe       overwrite a secret with zeros through a volatile pointer before freeing it, so
 *              the compiler cannot drop the stores.
 */
#include "keap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key file larger than this is not a key. */
#define KEAP_KEY_FILE_MAX 4096
/* How much of a server's error text goes into a verdict's reason. */
#define KEAP_REASON_TEXT_MAX 96

static void wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;

    while (n-- > 0)
        *q++ = 0;
}

static void secret_free(char *s)
{
    if (s == NULL)
        return;
    wipe(s, strlen(s));
    free(s);
}

/* ---------------------------------------------------------------- credentials */

/*
 * Trims surrounding whitespace of s[0..n) and checks that what is left can travel in a
 * header line (printable ASCII, no spaces). Returns a fresh copy in *out, or an error code
 * with err set; messages name src, never the key.
 */
static int key_accept(const char *s, size_t n, const char *src, char **out, struct base_err *err)
{
    size_t a = 0, b = n;
    char *key;

    while (a < b && isspace((unsigned char)s[a]))
        a++;
    while (b > a && isspace((unsigned char)s[b - 1]))
        b--;
    if (a == b) {
        base_err_set(err, BASE_ECONFIG, "%s is empty", src);
        base_err_hint(err, "it must hold a Personal Access Token or Service Account Key");
        return BASE_ECONFIG;
    }
    for (size_t i = a; i < b; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch >= 0x7f)
            return base_err_set(err, BASE_ECONFIG,
                                "%s holds characters a Keap API key cannot contain", src);
    }
    key = malloc(b - a + 1);
    if (key == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    memcpy(key, s + a, b - a);
    key[b - a] = '\0';
    *out = key;
    return BASE_OK;
}

/* Reads a key file that only its owner may read. */
static int key_from_file(const char *path, char **out, struct base_err *err)
{
    char buf[KEAP_KEY_FILE_MAX + 1];
    size_t len = 0;
    struct stat st;
    int fd, result;
    char src[400];

    /* O_NONBLOCK: a FIFO must not hang us before the regular-file check. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        base_err_set(err, BASE_ECONFIG, "could not read key file \"%s\": %s", path,
                     strerror(errno));
        base_err_hint(err, "KEAP_API_KEY_FILE must name a regular file of mode 0600 holding "
                           "the key");
        return BASE_ECONFIG;
    }
    if (fstat(fd, &st) != 0) {
        result = base_err_set(err, BASE_ECONFIG, "could not read key file \"%s\": %s", path,
                              strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        result = base_err_set(err, BASE_ECONFIG, "key file \"%s\" is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        result =
            base_err_set(err, BASE_ECONFIG, "key file \"%s\" is readable by other users", path);
        base_err_hint(err, "chmod 600 %s", path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            result = base_err_set(err, BASE_ECONFIG, "could not read key file \"%s\": %s", path,
                                  strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > KEAP_KEY_FILE_MAX) {
            result = base_err_set(err, BASE_ECONFIG, "key file \"%s\" is larger than %d bytes",
                                  path, KEAP_KEY_FILE_MAX);
            goto out;
        }
    }
    /* The path may be long: a truncated name in the message is fine. */
    (void)base_snprintf(src, sizeof(src), "key file \"%s\"", path);
    result = key_accept(buf, len, src, out, err);
out:
    if (result < 0 && err->hint[0] == '\0')
        base_err_hint(err, "KEAP_API_KEY_FILE must name a regular file of mode 0600 holding "
                           "the key");
    wipe(buf, sizeof(buf));
    close(fd);
    return result;
}

int keap_credential_from_env(struct keap_credential *cred, struct base_err *err)
{
    const char *key = getenv("KEAP_API_KEY");
    const char *file = getenv("KEAP_API_KEY_FILE");
    char *secret = NULL;
    int result;

    if (cred == NULL)
        return BASE_EINVAL;
    if (key != NULL && key[0] != '\0')
        result = key_accept(key, strlen(key), "KEAP_API_KEY", &secret, err);
    else if (file != NULL && file[0] != '\0')
        result = key_from_file(file, &secret, err);
    else if (key != NULL)
        result = key_accept("", 0, "KEAP_API_KEY", &secret, err);
    else {
        result = base_err_set(err, BASE_ECONFIG, "no Keap credentials: KEAP_API_KEY is not set");
        base_err_hint(err, "set KEAP_API_KEY to a Personal Access Token or Service Account Key, "
                           "or KEAP_API_KEY_FILE to a file holding one");
    }
    if (result < 0)
        return result;
    cred->api_key = secret;
    cred->access_token = NULL;
    return BASE_OK;
}

void keap_credential_clear(struct keap_credential *cred)
{
    if (cred == NULL)
        return;
    secret_free(cred->api_key);
    secret_free(cred->access_token);
    cred->api_key = NULL;
    cred->access_token = NULL;
}

int keap_credential_id(const struct keap_credential *cred, char *buf, size_t n)
{
    const char *secret = cred->api_key ? cred->api_key : cred->access_token;
    uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits */

    if (secret == NULL || secret[0] == '\0' || n < KEAP_CREDENTIAL_ID_LEN + 1)
        return BASE_EINVAL;
    for (const char *p = secret; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return base_snprintf(buf, n, "%08x", (unsigned)(uint32_t)((h >> 32) ^ h));
}

/* ---------------------------------------------------------------- auth headers */

static char *line_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

int keap_auth_headers(const struct keap_credential *cred, char ***out)
{
    char **h;

    if (cred == NULL || out == NULL)
        return BASE_EINVAL;
    if ((cred->api_key == NULL || cred->api_key[0] == '\0') &&
        (cred->access_token == NULL || cred->access_token[0] == '\0'))
        return BASE_EINVAL;
    h = calloc(3, sizeof(*h));
    if (h == NULL)
        return BASE_ENOMEM;
    if (cred->api_key != NULL && cred->api_key[0] != '\0')
        h[0] = line_join("X-Keap-API-Key: ", cred->api_key);
    else
        h[0] = line_join("Authorization: Bearer ", cred->access_token);
    h[1] = strdup("Accept: application/json");
    if (h[0] == NULL || h[1] == NULL) {
        keap_headers_free(h);
        return BASE_ENOMEM;
    }
    *out = h;
    return BASE_OK;
}

void keap_headers_free(char **headers)
{
    if (headers == NULL)
        return;
    for (char **h = headers; *h != NULL; h++)
        secret_free(*h);
    free(headers);
}

/* ---------------------------------------------------------------- URLs */

/* Appends s percent-encoded: everything but RFC 3986 unreserved characters becomes %XX. */
static int url_encode(struct base_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char enc[3];
        int rc;

        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = base_buf_append(out, s, 1);
        } else {
            enc[0] = '%';
            enc[1] = hex[ch >> 4];
            enc[2] = hex[ch & 15];
            rc = base_buf_append(out, enc, 3);
        }
        if (rc < 0)
            return rc;
    }
    return BASE_OK;
}

/* URL being built: the buffer and whether the query string has started. */
struct url_builder {
    struct base_buf *out;
    int has_query;
    int rc;
};

static void url_start(struct url_builder *u, struct base_buf *out, const char *base_url,
                      const char *endpoint)
{
    size_t blen = strlen(base_url);

    u->out = out;
    while (blen > 0 && base_url[blen - 1] == '/' && endpoint[0] == '/')
        blen--;
    u->rc = base_buf_append(out, base_url, blen);
    if (u->rc == BASE_OK && blen > 0 && base_url[blen - 1] != '/' && endpoint[0] != '/' &&
        endpoint[0] != '\0')
        u->rc = base_buf_puts(out, "/");
    if (u->rc == BASE_OK)
        u->rc = base_buf_puts(out, endpoint);
    u->has_query = strchr(endpoint, '?') != NULL;
}

static void url_param(struct url_builder *u, const char *name, const char *value)
{
    if (u->rc < 0)
        return;
    u->rc = base_buf_puts(u->out, u->has_query ? "&" : "?");
    u->has_query = 1;
    if (u->rc == BASE_OK)
        u->rc = url_encode(u->out, name);
    if (u->rc == BASE_OK)
        u->rc = base_buf_puts(u->out, "=");
    if (u->rc == BASE_OK)
        u->rc = url_encode(u->out, value);
}

static void url_param_int(struct url_builder *u, const char *name, int64_t v)
{
    char num[24];

    if (u->rc == BASE_OK)
        u->rc = base_snprintf(num, sizeof(num), "%lld", (long long)v);
    url_param(u, name, num);
}

static void url_param_time(struct url_builder *u, const char *name, int64_t wall_ms)
{
    char ts[32];

    if (u->rc == BASE_OK)
        u->rc = base_time_format(wall_ms, ts, sizeof(ts));
    url_param(u, name, ts);
}

static void url_params_extra(struct url_builder *u, const struct keap_param *p, size_t n)
{
    for (size_t i = 0; p != NULL && i < n; i++)
        if (p[i].name != NULL && p[i].value != NULL)
            url_param(u, p[i].name, p[i].value);
}

/* Ends a build: on failure the buffer is put back as it was. */
static int url_finish(struct url_builder *u, size_t old_len)
{
    if (u->rc < 0 && u->out->data != NULL) {
        u->out->len = old_len;
        u->out->data[old_len] = '\0';
    }
    return u->rc;
}

int keap_build_v1_url(struct base_buf *out, const char *base_url, const char *endpoint,
                      const struct keap_v1_query *q)
{
    struct url_builder u;
    size_t old_len;

    if (out == NULL || base_url == NULL || endpoint == NULL || q == NULL)
        return BASE_EINVAL;
    old_len = out->len;
    url_start(&u, out, base_url, endpoint);
    if (q->limit > 0)
        url_param_int(&u, "limit", q->limit);
    if (q->offset >= 0)
        url_param_int(&u, "offset", q->offset);
    if (q->order != NULL)
        url_param(&u, "order", q->order);
    if (q->order_direction != NULL)
        url_param(&u, "order_direction", q->order_direction);
    if (q->since_param != NULL && q->since_ms >= 0)
        url_param_time(&u, q->since_param, q->since_ms);
    if (q->until_param != NULL && q->until_ms >= 0)
        url_param_time(&u, q->until_param, q->until_ms);
    if (q->optional_properties != NULL)
        url_param(&u, "optional_properties", q->optional_properties);
    url_params_extra(&u, q->extra, q->nextra);
    return url_finish(&u, old_len);
}

int keap_build_v2_url(struct base_buf *out, const char *base_url, const char *endpoint,
                      const struct keap_v2_query *q)
{
    struct url_builder u;
    size_t old_len;
    char filter[256], ts[32];
    size_t flen = 0;

    if (out == NULL || base_url == NULL || endpoint == NULL || q == NULL)
        return BASE_EINVAL;
    old_len = out->len;
    url_start(&u, out, base_url, endpoint);
    if (q->page_size > 0)
        url_param_int(&u, "page_size", q->page_size);
    if (q->page_token != NULL && q->page_token[0] != '\0')
        url_param(&u, "page_token", q->page_token);
    /* filter=field==value;field==value, the whole value encoded. */
    filter[0] = '\0';
    if (u.rc == BASE_OK && q->filter_since_field != NULL && q->since_ms >= 0) {
        u.rc = base_time_format(q->since_ms, ts, sizeof(ts));
        if (u.rc == BASE_OK)
            u.rc = base_snprintf(filter, sizeof(filter), "%s==%s", q->filter_since_field, ts);
        flen = strlen(filter);
    }
    if (u.rc == BASE_OK && q->filter_until_field != NULL && q->until_ms >= 0) {
        u.rc = base_time_format(q->until_ms, ts, sizeof(ts));
        if (u.rc == BASE_OK)
            u.rc = base_snprintf(filter + flen, sizeof(filter) - flen, "%s%s==%s",
                                 flen > 0 ? ";" : "", q->filter_until_field, ts);
    }
    if (u.rc == BASE_OK && filter[0] != '\0')
        url_param(&u, "filter", filter);
    if (q->order_by != NULL)
        url_param(&u, "order_by", q->order_by);
    if (q->fields != NULL)
        url_param(&u, "fields", q->fields);
    url_params_extra(&u, q->extra, q->nextra);
    return url_finish(&u, old_len);
}

/* ---------------------------------------------------------------- classification */

/* Case-insensitive search for needle in hay[0..n). */
static const char *find_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    if (hay == NULL || m == 0 || m > n)
        return NULL;
    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/*
 * Copies server text into dst for a reason: printable ASCII only, at most
 * KEAP_REASON_TEXT_MAX bytes, and cut before "identifier" (the gateway's quota faultstring
 * ends with "Identifier : <who>", which may name the key's client id).
 */
static void safe_text(char *dst, size_t n, const char *src)
{
    size_t j = 0, lim = n - 1;
    const char *cut = find_ci(src, strlen(src), "identifier");

    if (lim > KEAP_REASON_TEXT_MAX)
        lim = KEAP_REASON_TEXT_MAX;
    for (const char *p = src; *p != '\0' && p != cut && j < lim; p++) {
        unsigned char ch = (unsigned char)*p;

        dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    while (j > 0 && (dst[j - 1] == ' ' || dst[j - 1] == '.' || dst[j - 1] == ':'))
        j--;
    dst[j] = '\0';
}

/* What an error body says, each field "" when absent. */
struct keap_error_body {
    char errorcode[128]; /* fault.detail.errorcode, or OAuth's "error" */
    char message[128];   /* fault.faultstring, v2 "message", OAuth's "error_description" */
    char code[16];       /* v2 "code" */
};

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(it) && it->valuestring != NULL ? it->valuestring : NULL;
}

static void error_body_read(const struct http_response *resp, struct keap_error_body *eb)
{
    cJSON *root;
    const cJSON *fault;
    const char *s;

    eb->errorcode[0] = eb->message[0] = eb->code[0] = '\0';
    if (resp->body.data == NULL || resp->body.len == 0)
        return;
    root = cJSON_ParseWithLength(resp->body.data, resp->body.len);
    if (!cJSON_IsObject(root))
        goto out;
    fault = cJSON_GetObjectItemCaseSensitive(root, "fault");
    if (cJSON_IsObject(fault)) {
        if ((s = json_str(fault, "faultstring")) != NULL)
            safe_text(eb->message, sizeof(eb->message), s);
        if ((s = json_str(cJSON_GetObjectItemCaseSensitive(fault, "detail"), "errorcode")) != NULL)
            safe_text(eb->errorcode, sizeof(eb->errorcode), s);
        goto out;
    }
    if ((s = json_str(root, "message")) != NULL)
        safe_text(eb->message, sizeof(eb->message), s);
    else if ((s = json_str(root, "error_description")) != NULL)
        safe_text(eb->message, sizeof(eb->message), s);
    if ((s = json_str(root, "error")) != NULL)
        safe_text(eb->errorcode, sizeof(eb->errorcode), s);
    if ((s = json_str(root, "code")) != NULL)
        safe_text(eb->code, sizeof(eb->code), s);
    else if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "code")))
        base_snprintf(eb->code, sizeof(eb->code), "%d",
                      cJSON_GetObjectItemCaseSensitive(root, "code")->valueint);
out:
    cJSON_Delete(root);
}

/* "HTTP 429 (errorcode): message", leaving out what is empty. */
static void reason_http(struct keap_verdict *v, long status, const struct keap_error_body *eb,
                        int with_message)
{
    const char *msg = with_message ? eb->message : "";

    if (eb->errorcode[0] != '\0' && msg[0] != '\0')
        base_snprintf(v->reason, sizeof(v->reason), "HTTP %ld (%s): %s", status, eb->errorcode,
                      msg);
    else if (eb->errorcode[0] != '\0')
        base_snprintf(v->reason, sizeof(v->reason), "HTTP %ld (%s)", status, eb->errorcode);
    else if (msg[0] != '\0')
        base_snprintf(v->reason, sizeof(v->reason), "HTTP %ld: %s", status, msg);
    else
        base_snprintf(v->reason, sizeof(v->reason), "HTTP %ld", status);
}

static int64_t header_int(const struct http_response *resp, const char *name)
{
    const char *v = http_response_header(resp, name);
    int64_t n;

    if (v == NULL || *v == '\0' || base_parse_int64(v, &n) < 0 || n < 0)
        return -1;
    return n;
}

void keap_read_headers(const struct http_response *resp, struct pace_observation *obs)
{
    const char *tenant;

    if (obs == NULL)
        return;
    obs->admitted_mono = 0; /* not a header: the caller knows it */
    obs->quota_limit = header_int(resp, "x-keap-product-quota-limit");
    obs->quota_available = header_int(resp, "x-keap-product-quota-available");
    obs->quota_used = header_int(resp, "x-keap-product-quota-used");
    obs->quota_expiry_ms = header_int(resp, "x-keap-product-quota-expiry-time");
    obs->throttle_limit = header_int(resp, "x-keap-product-throttle-limit");
    obs->throttle_available = header_int(resp, "x-keap-product-throttle-available");
    obs->throttle_used = header_int(resp, "x-keap-product-throttle-used");
    obs->tenant_throttle_limit = header_int(resp, "x-keap-tenant-throttle-limit");
    obs->tenant_throttle_available = header_int(resp, "x-keap-tenant-throttle-available");
    tenant = http_response_header(resp, "x-keap-tenant-id");
    obs->tenant_id = tenant != NULL && tenant[0] != '\0' ? tenant : NULL;
}

/* Which window a 429 hit: the body names a spike; otherwise the headers say which ran dry. */
static enum pace_limit_kind limit_kind(const struct http_response *resp,
                                       const struct keap_error_body *eb)
{
    struct pace_observation obs;

    if (find_ci(eb->errorcode, strlen(eb->errorcode), "SpikeArrest") != NULL ||
        find_ci(resp->body.data, resp->body.data ? resp->body.len : 0, "spike arrest") != NULL)
        return PACE_LIMIT_SPIKE;
    keap_read_headers(resp, &obs);
    if (obs.quota_available == 0)
        return PACE_LIMIT_DAY;
    if (obs.throttle_available == 0 || obs.tenant_throttle_available == 0)
        return PACE_LIMIT_MINUTE;
    return PACE_LIMIT_UNKNOWN;
}

static int body_is_json(const struct http_response *resp)
{
    const char *p = resp->body.data;
    size_t n = p != NULL ? resp->body.len : 0, i = 0;

    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i < n && (p[i] == '{' || p[i] == '[');
}

/*
 * A 400 that means "your page token is no good". Conservative: the body must mention a page
 * token, or, on a v2 request, a token that is neither an access token nor an OAuth grant.
 */
static int is_bad_token(const struct http_response *resp, const struct keap_error_body *eb,
                        enum keap_api api)
{
    const char *b = resp->body.data;
    size_t n = b != NULL ? resp->body.len : 0;

    if (api == KEAP_API_V1)
        return 0;
    if (eb->errorcode[0] != '\0' && strcmp(eb->errorcode, "invalid_grant") == 0)
        return 0;
    if (find_ci(b, n, "page_token") || find_ci(b, n, "page token") || find_ci(b, n, "pagetoken"))
        return 1;
    return api == KEAP_API_V2 && find_ci(eb->message, strlen(eb->message), "token") != NULL &&
           find_ci(eb->message, strlen(eb->message), "access token") == NULL;
}

void keap_classify_api(const struct http_response *resp, enum keap_api api, int64_t now_wall,
                       struct keap_verdict *out)
{
    struct keap_error_body eb;
    long status;
    const char *ra;
    int64_t delay;

    if (out == NULL)
        return;
    out->outcome = KEAP_OUTCOME_RETRY;
    out->limit = PACE_LIMIT_UNKNOWN;
    out->retry_after_ms = -1;
    out->reason[0] = '\0';
    if (resp == NULL) {
        base_snprintf(out->reason, sizeof(out->reason), "no response");
        return;
    }
    status = resp->status;
    if (resp->body_too_big) {
        /* The same page would be as large again: retrying it only spends requests. */
        out->outcome = KEAP_OUTCOME_FATAL;
        base_snprintf(out->reason, sizeof(out->reason),
                      "response larger than the %zu MiB cap on a page", resp->body.max >> 20);
        return;
    }
    if (resp->transport_error != 0 || status == 0) {
        char text[160];

        safe_text(text, sizeof(text), resp->error);
        base_snprintf(out->reason, sizeof(out->reason), "transport error %d: %s",
                      resp->transport_error, text);
        /* The same certificate would fail the same way: retrying only spends requests. */
        if (http_error_is_tls_verify(resp->transport_error))
            out->outcome = KEAP_OUTCOME_FATAL;
        return;
    }
    if (status >= 200 && status < 300) {
        if (body_is_json(resp)) {
            out->outcome = KEAP_OUTCOME_OK;
            base_snprintf(out->reason, sizeof(out->reason), "HTTP %ld", status);
        } else {
            base_snprintf(out->reason, sizeof(out->reason), "HTTP %ld with a non-JSON body",
                          status);
        }
        return;
    }
    error_body_read(resp, &eb);
    if (status >= 500) {
        if (body_is_json(resp))
            reason_http(out, status, &eb, 1);
        else
            base_snprintf(out->reason, sizeof(out->reason), "HTTP %ld with a non-JSON body",
                          status);
        return;
    }
    if (status == 429) {
        out->outcome = KEAP_OUTCOME_RATE_LIMITED;
        out->limit = limit_kind(resp, &eb);
        ra = http_response_header(resp, "retry-after");
        if (ra != NULL && pace_parse_retry_after(ra, now_wall, &delay) == BASE_OK)
            out->retry_after_ms = delay;
        /* The gateway's faultstring may name the key's identifier: errorcode only. */
        reason_http(out, status, &eb, eb.errorcode[0] == '\0');
        return;
    }
    if (status == 408) {
        /* Request Timeout: the server gave up waiting on us; transient like a 5xx. */
        reason_http(out, status, &eb, 1);
        return;
    }
    if (status == 401 || status == 403) {
        out->outcome = KEAP_OUTCOME_AUTH;
        reason_http(out, status, &eb, 1);
        return;
    }
    if (status == 400 && eb.errorcode[0] != '\0' && strcmp(eb.errorcode, "invalid_grant") == 0) {
        /* The OAuth token endpoint refused a refresh token: credentials, not a bug. */
        out->outcome = KEAP_OUTCOME_AUTH;
        reason_http(out, status, &eb, 1);
        return;
    }
    if (status == 400 && is_bad_token(resp, &eb, api)) {
        out->outcome = KEAP_OUTCOME_BAD_TOKEN;
        reason_http(out, status, &eb, 1);
        return;
    }
    if (status >= 400) {
        out->outcome = KEAP_OUTCOME_FATAL;
        reason_http(out, status, &eb, 1);
        return;
    }
    /* 1xx/3xx as a final answer: we never follow redirects, so this is a bad base URL. */
    out->outcome = KEAP_OUTCOME_FATAL;
    base_snprintf(out->reason, sizeof(out->reason), "HTTP %ld: unexpected status", status);
}

void keap_classify(const struct http_response *resp, int64_t now_wall, struct keap_verdict *out)
{
    keap_classify_api(resp, 0, now_wall, out);
}

/* ---------------------------------------------------------------- pages */

/*
 * Replaces each JSON escape \u0000 by \uFFFD (same length) in body[0..len). A backslash
 * escapes the next character, so in \\u0000 the "u0000" is plain text and stays.
 */
static int64_t nul_escapes_replace(char *body, size_t len)
{
    int64_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (body[i] != '\\')
            continue;
        if (i + 5 < len && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0) {
            memcpy(body + i + 2, "FFFD", 4);
            n++;
            i += 5;
        } else {
            i++; /* skip the escaped character, whatever it is */
        }
    }
    return n;
}

/* Lists the top-level keys of root into dst, for an error message. */
static void keys_list(const cJSON *root, char *dst, size_t n)
{
    size_t used = 0;
    int count = 0;

    dst[0] = '\0';
    for (const cJSON *it = root->child; it != NULL && it->string != NULL; it = it->next) {
        char name[48];

        safe_text(name, sizeof(name), it->string);
        if (base_snprintf(dst + used, n - used, "%s\"%s\"", count > 0 ? ", " : "", name) < 0) {
            if (n - used > 4)
                base_snprintf(dst + used, n - used, ", ...");
            return;
        }
        used += strlen(dst + used);
        count++;
    }
    if (count == 0)
        base_snprintf(dst, n, "none");
}

/*
 * A small JSON scanner for record spans. It trusts that cJSON already accepted the text, so
 * it only has to find where values begin and end: strings (with escapes) and nesting.
 */
static size_t scan_ws(const char *b, size_t i, size_t len)
{
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    return i;
}

/* Index just past the string starting at b[i] == '"', or len on error. */
static size_t scan_string(const char *b, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (b[i] == '\\')
            i++;
        else if (b[i] == '"')
            return i + 1;
    }
    return len;
}

/* Index just past the value starting at b[i], or len on error. */
static size_t scan_value(const char *b, size_t i, size_t len)
{
    int depth = 0;

    if (i >= len)
        return len;
    if (b[i] == '"')
        return scan_string(b, i, len);
    if (b[i] != '{' && b[i] != '[') {
        while (i < len && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' &&
               b[i] != '\t' && b[i] != '\n' && b[i] != '\r')
            i++;
        return i;
    }
    for (; i < len; i++) {
        if (b[i] == '"') {
            i = scan_string(b, i, len) - 1;
        } else if (b[i] == '{' || b[i] == '[') {
            depth++;
        } else if (b[i] == '}' || b[i] == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return len;
}

/* The spans of the n elements of the top-level array under key; NULL if not found. */
static struct keap_span *scan_record_spans(const char *b, size_t len, const char *key, int n)
{
    size_t klen = strlen(key), i = scan_ws(b, 0, len);
    struct keap_span *spans;

    if (i >= len || b[i] != '{')
        return NULL;
    i++;
    for (;;) {
        size_t kstart, kend;

        i = scan_ws(b, i, len);
        if (i >= len || b[i] != '"')
            return NULL;
        kstart = i + 1;
        kend = scan_string(b, i, len);
        if (kend >= len)
            return NULL;
        i = scan_ws(b, kend, len);
        if (i >= len || b[i] != ':')
            return NULL;
        i = scan_ws(b, i + 1, len);
        if (kend - 1 - kstart == klen && memcmp(b + kstart, key, klen) == 0 && b[i] == '[')
            break;
        i = scan_ws(b, scan_value(b, i, len), len);
        if (i >= len || b[i] != ',')
            return NULL;
        i++;
    }
    spans = calloc(n > 0 ? (size_t)n : 1, sizeof(*spans));
    if (spans == NULL)
        return NULL;
    i++; /* past '[' */
    for (int k = 0; k < n; k++) {
        size_t end;

        i = scan_ws(b, i, len);
        end = scan_value(b, i, len);
        if (end >= len) {
            free(spans);
            return NULL;
        }
        spans[k].off = i;
        spans[k].len = end - i;
        i = scan_ws(b, end, len);
        if (i >= len || (b[i] != ',' && !(b[i] == ']' && k == n - 1))) {
            free(spans);
            return NULL;
        }
        i++;
    }
    return spans;
}

/* How many arrays and objects are open at end (strings skipped): why cJSON stopped there. */
static int nesting_at(const char *b, const char *end)
{
    bool in_string = false;
    int depth = 0;

    for (const char *p = b; p < end; p++) {
        if (in_string && *p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            in_string = !in_string;
        else if (!in_string && (*p == '[' || *p == '{'))
            depth++;
        else if (!in_string && (*p == ']' || *p == '}'))
            depth--;
    }
    return depth;
}

/* ------------------------------------------------------------ strict check, pruned build */

/*
 * A strict JSON checker (RFC 8259) that builds nothing: the pruned parse below relies on it
 * so that it can skip members without parsing them. Strings: no raw control characters, valid
 * escapes, \u surrogates in pairs (as cJSON and Postgres want). Nesting is limited as cJSON's.
 */
struct jcheck {
    const char *b;
    size_t len, i;
    int depth;
};

static void jc_ws(struct jcheck *c)
{
    while (c->i < c->len &&
           (c->b[c->i] == ' ' || c->b[c->i] == '\t' || c->b[c->i] == '\n' || c->b[c->i] == '\r'))
        c->i++;
}

static bool jc_hex4(const struct jcheck *c, size_t at, unsigned *out)
{
    unsigned v = 0;

    if (at + 4 > c->len)
        return false;
    for (size_t k = at; k < at + 4; k++) {
        char h = c->b[k];

        v <<= 4;
        if (h >= '0' && h <= '9')
            v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            v |= (unsigned)(h - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

/* At '"': past the closing quote. */
static bool jc_string(struct jcheck *c)
{
    const char *b = c->b;
    size_t i = c->i + 1, len = c->len;

    while (i < len) {
        unsigned char ch = (unsigned char)b[i];
        unsigned u, lo;

        if (ch == '"') {
            c->i = i + 1;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch != '\\') {
            i++;
            continue;
        }
        if (++i >= len)
            return false;
        switch (b[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i++;
            break;
        case 'u':
            if (!jc_hex4(c, i + 1, &u) || (u >= 0xDC00 && u <= 0xDFFF))
                return false;
            i += 5;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (i + 6 > len || b[i] != '\\' || b[i + 1] != 'u' || !jc_hex4(c, i + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                i += 6;
            }
            break;
        default:
            return false;
        }
    }
    return false;
}

static bool jc_digits(struct jcheck *c)
{
    size_t i0 = c->i;

    while (c->i < c->len && c->b[c->i] >= '0' && c->b[c->i] <= '9')
        c->i++;
    return c->i > i0;
}

static bool jc_number(struct jcheck *c)
{
    if (c->b[c->i] == '-')
        c->i++;
    if (c->i < c->len && c->b[c->i] == '0')
        c->i++;
    else if (!jc_digits(c))
        return false;
    if (c->i < c->len && c->b[c->i] == '.') {
        c->i++;
        if (!jc_digits(c))
            return false;
    }
    if (c->i < c->len && (c->b[c->i] == 'e' || c->b[c->i] == 'E')) {
        c->i++;
        if (c->i < c->len && (c->b[c->i] == '+' || c->b[c->i] == '-'))
            c->i++;
        if (!jc_digits(c))
            return false;
    }
    return true;
}

static bool jc_word(struct jcheck *c, const char *w, size_t n)
{
    if (c->i + n > c->len || memcmp(c->b + c->i, w, n) != 0)
        return false;
    c->i += n;
    return true;
}

static bool jc_value(struct jcheck *c)
{
    char open, close;

    if (c->i >= c->len)
        return false;
    switch (c->b[c->i]) {
    case '"':
        return jc_string(c);
    case 't':
        return jc_word(c, "true", 4);
    case 'f':
        return jc_word(c, "false", 5);
    case 'n':
        return jc_word(c, "null", 4);
    case '{':
    case '[':
        break;
    default:
        return (c->b[c->i] == '-' || (c->b[c->i] >= '0' && c->b[c->i] <= '9')) && jc_number(c);
    }
    open = c->b[c->i];
    close = open == '{' ? '}' : ']';
    if (c->depth >= CJSON_NESTING_LIMIT)
        return false;
    c->depth++;
    c->i++;
    jc_ws(c);
    if (c->i < c->len && c->b[c->i] == close) {
        c->i++;
        c->depth--;
        return true;
    }
    for (;;) {
        if (open == '{') {
            if (c->i >= c->len || c->b[c->i] != '"' || !jc_string(c))
                return false;
            jc_ws(c);
            if (c->i >= c->len || c->b[c->i] != ':')
                return false;
            c->i++;
            jc_ws(c);
        }
        if (!jc_value(c))
            return false;
        jc_ws(c);
        if (c->i >= c->len)
            return false;
        if (c->b[c->i] == close) {
            c->i++;
            c->depth--;
            return true;
        }
        if (c->b[c->i] != ',')
            return false;
        c->i++;
        jc_ws(c);
    }
}

/* True if b[0..len) is one JSON value, with only whitespace around it. */
static bool json_strict(const char *b, size_t len)
{
    struct jcheck c = {b, len, 0, 0};

    jc_ws(&c);
    if (!jc_value(&c))
        return false;
    jc_ws(&c);
    return c.i == len;
}

/* The keep name equal to b[0..n), or NULL. */
static const char *keep_find(const char *const *names, size_t count, const char *b, size_t n)
{
    for (size_t k = 0; k < count; k++)
        if (names[k][0] == b[0] && strncmp(names[k], b, n) == 0 && names[k][n] == '\0')
            return names[k];
    return NULL;
}

/* One value b[0..n) of checked JSON, parsed; NULL on failure. */
static cJSON *parse_span(const char *b, size_t n)
{
    return cJSON_ParseWithLength(b, n);
}

/* A cJSON_Raw node holding b[0..n), or a cJSON null for the text null; NULL on failure. */
static cJSON *raw_span(const char *b, size_t n)
{
    cJSON *item;
    char *text;

    if (n == 4 && memcmp(b, "null", 4) == 0)
        return cJSON_CreateNull();
    item = cJSON_CreateNull();
    text = item != NULL ? cJSON_malloc(n + 1) : NULL;
    if (text == NULL) {
        cJSON_Delete(item);
        return NULL;
    }
    memcpy(text, b, n);
    text[n] = '\0';
    item->type = cJSON_Raw;
    item->valuestring = text;
    return item;
}

/*
 * A record object at b[i] (checked JSON) with only the kept members. Returns NULL when it
 * cannot (a key with escapes, out of memory); *end is past the object.
 */
static cJSON *build_record(const char *b, size_t i, size_t len, const struct keap_keep *keep,
                           size_t *end)
{
    cJSON *obj = cJSON_CreateObject();

    if (obj == NULL)
        return NULL;
    i = scan_ws(b, i + 1, len);
    if (b[i] == '}') {
        *end = i + 1;
        return obj;
    }
    for (;;) {
        size_t kstart = i + 1, kend = scan_string(b, i, len), vstart, vend;
        size_t klen = kend - 1 - kstart;
        const char *name;
        cJSON *item = NULL;

        if (memchr(b + kstart, '\\', klen) != NULL)
            goto fail;
        vstart = scan_ws(b, scan_ws(b, kend, len) + 1, len);
        vend = scan_value(b, vstart, len);
        if ((name = keep_find(keep->full, keep->nfull, b + kstart, klen)) != NULL)
            item = parse_span(b + vstart, vend - vstart);
        else if ((name = keep_find(keep->raw, keep->nraw, b + kstart, klen)) != NULL)
            item = raw_span(b + vstart, vend - vstart);
        if (name != NULL) {
            if (item == NULL)
                goto fail;
            cJSON_AddItemToObjectCS(obj, name, item);
        }
        i = scan_ws(b, vend, len);
        if (b[i] == '}') {
            *end = i + 1;
            return obj;
        }
        i = scan_ws(b, i + 1, len); /* past ',' */
    }
fail:
    cJSON_Delete(obj);
    return NULL;
}

/*
 * The pruned build of a checked body: the root object with every member parsed, except the
 * first array under array_key, whose record objects keep only what keep names. Fills page
 * (root, records, nrecords, spans); false if it cannot (then page is untouched).
 */
static bool build_pruned(const char *b, size_t len, const char *array_key,
                         const struct keap_keep *keep, struct keap_page *page)
{
    size_t akey = strlen(array_key), i = scan_ws(b, 0, len), cap = 0;
    struct keap_span *spans = NULL;
    cJSON *root, *records = NULL;
    int n = 0;

    if (b[i] != '{')
        return false;
    root = cJSON_CreateObject();
    if (root == NULL)
        return false;
    i = scan_ws(b, i + 1, len);
    while (b[i] != '}') {
        size_t kstart = i + 1, kend = scan_string(b, i, len), vstart, vend;
        size_t klen = kend - 1 - kstart;
        char key[256];
        cJSON *item;

        if (klen >= sizeof(key) || memchr(b + kstart, '\\', klen) != NULL)
            goto fail;
        memcpy(key, b + kstart, klen);
        key[klen] = '\0';
        vstart = scan_ws(b, scan_ws(b, kend, len) + 1, len);
        if (records == NULL && klen == akey && memcmp(key, array_key, klen) == 0) {
            size_t j = scan_ws(b, vstart + 1, len);

            /* cJSON would take this first one: not an array is keap_page_parse's error. */
            if (b[vstart] != '[')
                goto fail;
            records = item = cJSON_CreateArray();
            if (item == NULL)
                goto fail;
            while (b[j] != ']') {
                size_t rend;
                cJSON *rec;

                if (b[j] == '{') {
                    rec = build_record(b, j, len, keep, &rend);
                } else {
                    rend = scan_value(b, j, len);
                    rec = parse_span(b + j, rend - j);
                }
                if (rec == NULL) {
                    cJSON_Delete(item);
                    goto fail;
                }
                cJSON_AddItemToArray(item, rec);
                if ((size_t)n == cap) {
                    size_t ncap = cap ? 2 * cap : 1024;
                    struct keap_span *bigger = realloc(spans, ncap * sizeof(*spans));

                    if (bigger == NULL) {
                        cJSON_Delete(item);
                        goto fail;
                    }
                    spans = bigger;
                    cap = ncap;
                }
                spans[n].off = j;
                spans[n].len = rend - j;
                n++;
                j = scan_ws(b, rend, len);
                if (b[j] == ',')
                    j = scan_ws(b, j + 1, len);
            }
            vend = j + 1;
        } else {
            vend = scan_value(b, vstart, len);
            item = parse_span(b + vstart, vend - vstart);
            if (item == NULL)
                goto fail;
        }
        if (!cJSON_AddItemToObject(root, key, item)) {
            cJSON_Delete(item);
            goto fail;
        }
        i = scan_ws(b, vend, len);
        if (b[i] == ',')
            i = scan_ws(b, i + 1, len);
    }
    if (records == NULL) {
        /* No array: keap_page_parse says what the response holds instead. */
        cJSON_Delete(root);
        free(spans);
        return false;
    }
    if (spans == NULL && (spans = calloc(1, sizeof(*spans))) == NULL)
        goto fail;
    page->root = root;
    page->records = records;
    page->nrecords = n;
    page->spans = spans;
    return true;
fail:
    cJSON_Delete(root);
    free(spans);
    return false;
}

int keap_page_parse(char *body, size_t len, const char *array_key, struct keap_page *out,
                    struct base_err *err)
{
    return keap_page_parse_keep(body, len, array_key, NULL, out, err);
}

int keap_page_parse_keep(char *body, size_t len, const char *array_key,
                         const struct keap_keep *keep, struct keap_page *out, struct base_err *err)
{
    struct keap_page page = {0};
    const cJSON *tok;
    const char *end;
    char keys[256];
    int result;

    if (body == NULL || array_key == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not parse page: missing argument");
    if (len == 0)
        return base_err_set(err, BASE_EPROTO, "response body is empty");
    end = memchr(body, '\0', len);
    if (end != NULL)
        return base_err_set(err, BASE_EPROTO, "response holds a NUL byte at offset %zu",
                            (size_t)(end - body));
    page.nul_replaced = nul_escapes_replace(body, len);
    if (keep != NULL && json_strict(body, len) && build_pruned(body, len, array_key, keep, &page))
        goto tokens;
    page.root = cJSON_ParseWithLength(body, len);
    if (page.root == NULL) {
        const char *at = cJSON_GetErrorPtr();

        if (at != NULL && at >= body && at <= body + len &&
            nesting_at(body, at) >= CJSON_NESTING_LIMIT)
            result = base_err_set(err, BASE_EPROTO,
                                  "response is nested deeper than %d levels (at byte %zu)",
                                  CJSON_NESTING_LIMIT, (size_t)(at - body));
        else if (at != NULL && at >= body && at <= body + len)
            result = base_err_set(err, BASE_EPROTO, "response is not valid JSON (at byte %zu)",
                                  (size_t)(at - body));
        else
            result = base_err_set(err, BASE_EPROTO, "response is not valid JSON");
        goto fail;
    }
    if (!cJSON_IsObject(page.root)) {
        result = base_err_set(err, BASE_EPROTO, "response has no \"%s\" array: not an object",
                              array_key);
        goto fail;
    }
    page.records = cJSON_GetObjectItemCaseSensitive(page.root, array_key);
    if (!cJSON_IsArray(page.records)) {
        keys_list(page.root, keys, sizeof(keys));
        result = base_err_set(err, BASE_EPROTO, "response has no \"%s\" array (keys: %s)",
                              array_key, keys);
        goto fail;
    }
    page.nrecords = cJSON_GetArraySize(page.records);
    /* Duplicate keys: cJSON takes the first, so does the scanner. */
    page.spans = scan_record_spans(body, len, array_key, page.nrecords);
tokens:
    tok = cJSON_GetObjectItemCaseSensitive(page.root, "next_page_token");
    if (cJSON_IsString(tok) && tok->valuestring != NULL && tok->valuestring[0] != '\0') {
        page.next_page_token = strdup(tok->valuestring);
        if (page.next_page_token == NULL) {
            result = base_err_set(err, BASE_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = page;
    return BASE_OK;

fail:
    cJSON_Delete(page.root);
    free(page.spans);
    return result;
}

void keap_page_free(struct keap_page *page)
{
    if (page == NULL)
        return;
    cJSON_Delete(page->root);
    free(page->spans);
    page->spans = NULL;
    free(page->next_page_token);
    page->root = NULL;
    page->records = NULL;
    page->nrecords = 0;
    page->next_page_token = NULL;
    page->nul_replaced = 0;
}

/* ---------------------------------------------------------------- object models */

#define KEAP_MODEL_MAX_BODY (4 * 1024 * 1024)
#define KEAP_MODEL_TIMEOUT  30000 /* ms for the whole call */

/* One model fetch: what the done callback keeps of the response. */
struct model_call {
    bool done;
    struct keap_verdict verdict;
    long status;
    struct base_buf body; /* taken from the response */
};

static void model_done_cb(struct http_response *resp, void *data)
{
    struct model_call *call = data;

    keap_classify_api(resp, KEAP_API_V1, 0, &call->verdict);
    call->status = resp->status;
    call->body = resp->body;
    resp->body.data = NULL;
    call->done = true;
}

int keap_fetch_model(const char *base_url, const char *object, const char *const *headers,
                     cJSON **out, struct base_err *err)
{
    struct http_options hopt = {0};
    struct http_request req = {0};
    struct http_client *hc = NULL;
    struct model_call call;
    struct base_buf url;
    uv_loop_t loop;
    cJSON *root;
    size_t blen;
    int rc, result;

    if (base_url == NULL || object == NULL || out == NULL)
        return base_err_set(err, BASE_EINVAL, "could not fetch a model: missing argument");
    memset(&call, 0, sizeof(call));
    base_buf_init(&url, 16 * 1024);
    blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/')
        blen--;
    rc = base_buf_printf(&url, "%.*s/v1/%s/model", (int)blen, base_url, object);
    if (rc < 0) {
        base_buf_free(&url);
        return base_err_set(err, rc, "could not fetch the model of \"%s\": %s", object,
                            base_strerror(rc));
    }
    rc = uv_loop_init(&loop);
    if (rc < 0) {
        base_buf_free(&url);
        return base_err_set(err, BASE_EIO, "could not start an event loop: %s", uv_strerror(rc));
    }
    hopt.max_body = KEAP_MODEL_MAX_BODY;
    hopt.max_connections = 1;
    hopt.timeout_ms = KEAP_MODEL_TIMEOUT;
    rc = http_client_new(&hc, &loop, &hopt);
    if (rc == BASE_OK) {
        req.method = "GET";
        req.url = url.data;
        req.headers = headers;
        rc = http_send(hc, &req, model_done_cb, &call);
    }
    while (rc == BASE_OK && !call.done && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    http_client_close(hc);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    base_buf_free(&url);
    if (rc < 0) {
        base_buf_free(&call.body);
        return base_err_set(err, rc, "could not fetch the model of \"%s\": %s", object,
                            base_strerror(rc));
    }
    switch (call.verdict.outcome) {
    case KEAP_OUTCOME_OK:
        result = BASE_OK;
        break;
    case KEAP_OUTCOME_AUTH:
        result = base_err_set(err, BASE_EAUTH, "could not fetch /v1/%s/model: %s", object,
                              call.verdict.reason);
        break;
    case KEAP_OUTCOME_RETRY:
    case KEAP_OUTCOME_RATE_LIMITED:
        result = base_err_set(err, BASE_EIO, "could not fetch /v1/%s/model: %s", object,
                              call.verdict.reason);
        break;
    default:
        result = base_err_set(err, call.status == 404 ? BASE_ENOTFOUND : BASE_EPROTO,
                              "could not fetch /v1/%s/model: %s", object, call.verdict.reason);
        break;
    }
    if (result < 0) {
        base_buf_free(&call.body);
        return result;
    }
    root = call.body.data ? cJSON_ParseWithLength(call.body.data, call.body.len) : NULL;
    base_buf_free(&call.body);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return base_err_set(err, BASE_EPROTO, "could not read /v1/%s/model: not a JSON object",
                            object);
    }
    *out = root;
    return BASE_OK;
}
