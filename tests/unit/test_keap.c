/*
 * Unit tests for keap: credentials from the environment (and that no message ever holds the
 * key), the credential's identifier, auth header lines, v1/v2 URLs, classifying the real
 * error bodies of KEAP_API.md with and without quota headers, reading x-keap-* headers, and
 * parsing the real list pages of tests/data/keap/fixtures plus the \u0000 rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keap.h"
#include "test_assert.h"

#define SECRET "fake-sak-s3cr3t-DO-NOT-LOG"

/* ------------------------------------------------------------------ helpers */

static char tmpdir[64];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_keap.XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    char path[128];

    (void)state;
    snprintf(path, sizeof(path), "%s/key", tmpdir);
    unlink(path);
    return rmdir(tmpdir) == 0 ? 0 : -1;
}

static void write_key_file(const char *path, const char *content, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The report must not hold the key, whole or in part. */
static void assert_no_secret(const struct base_err *err)
{
    assert_null(strstr(err->msg, SECRET));
    assert_null(strstr(err->hint, SECRET));
    assert_null(strstr(err->msg, "s3cr3t"));
    assert_null(strstr(err->hint, "s3cr3t"));
}

/* A credential struct with sentinel values, to check it is untouched on failure. */
static void cred_sentinel(struct keap_credential *cred)
{
    static char a[] = "sentinel-a", b[] = "sentinel-b";

    cred->api_key = a;
    cred->access_token = b;
}

static void expect_cred_error(const char *want_msg, const char *want_hint)
{
    struct keap_credential cred;
    struct base_err err;

    cred_sentinel(&cred);
    base_err_clear(&err);
    assert_int_equal(keap_credential_from_env(&cred, &err), BASE_ECONFIG);
    assert_int_equal(err.code, BASE_ECONFIG);
    if (want_msg != NULL)
        assert_string_equal(err.msg, want_msg);
    if (want_hint != NULL)
        assert_string_equal(err.hint, want_hint);
    assert_no_secret(&err);
    assert_string_equal(cred.api_key, "sentinel-a");
    assert_string_equal(cred.access_token, "sentinel-b");
}

/* ------------------------------------------------------------------ credentials */

static void test_credential_env_key(void **state)
{
    struct keap_credential cred = {0};
    struct base_err err;

    (void)state;
    unsetenv("KEAP_API_KEY_FILE");
    setenv("KEAP_API_KEY", "  " SECRET "\n", 1);
    base_err_clear(&err);
    assert_int_equal(keap_credential_from_env(&cred, &err), 0);
    assert_string_equal(cred.api_key, SECRET);
    assert_null(cred.access_token);
    keap_credential_clear(&cred);
    assert_null(cred.api_key);
    keap_credential_clear(NULL);

    /* Blank, or characters that could break a header line: refused, key never echoed. */
    setenv("KEAP_API_KEY", " \t ", 1);
    expect_cred_error("KEAP_API_KEY is empty", NULL);
    setenv("KEAP_API_KEY", SECRET "\r\nX-Evil: 1", 1);
    expect_cred_error("KEAP_API_KEY holds characters a Keap API key cannot contain", NULL);
    unsetenv("KEAP_API_KEY");
}

static void test_credential_env_unset(void **state)
{
    (void)state;
    unsetenv("KEAP_API_KEY");
    unsetenv("KEAP_API_KEY_FILE");
    expect_cred_error("no Keap credentials: KEAP_API_KEY is not set",
                      "set KEAP_API_KEY to a Personal Access Token or Service Account Key, or "
                      "KEAP_API_KEY_FILE to a file holding one");
    /* Set but empty, with no file: a clear "empty" rather than "not set". */
    setenv("KEAP_API_KEY", "", 1);
    expect_cred_error("KEAP_API_KEY is empty", NULL);
    unsetenv("KEAP_API_KEY");
}

static void test_credential_key_file(void **state)
{
    struct keap_credential cred = {0};
    struct base_err err;
    char path[128], msg[512], hint[512];

    (void)state;
    snprintf(path, sizeof(path), "%s/key", tmpdir);
    unsetenv("KEAP_API_KEY");
    setenv("KEAP_API_KEY_FILE", path, 1);

    /* 0600: accepted, trimmed. */
    write_key_file(path, SECRET "\n", 0600);
    base_err_clear(&err);
    assert_int_equal(keap_credential_from_env(&cred, &err), 0);
    assert_string_equal(cred.api_key, SECRET);
    keap_credential_clear(&cred);

    /* KEAP_API_KEY="" does not hide the file. */
    setenv("KEAP_API_KEY", "", 1);
    assert_int_equal(keap_credential_from_env(&cred, &err), 0);
    assert_string_equal(cred.api_key, SECRET);
    keap_credential_clear(&cred);
    unsetenv("KEAP_API_KEY");

    /* 0644 and 0640: refused with the chmod hint. */
    snprintf(msg, sizeof(msg), "key file \"%s\" is readable by other users", path);
    snprintf(hint, sizeof(hint), "chmod 600 %s", path);
    write_key_file(path, SECRET "\n", 0644);
    expect_cred_error(msg, hint);
    write_key_file(path, SECRET "\n", 0640);
    expect_cred_error(msg, hint);

    /* Empty file. */
    write_key_file(path, "\n", 0600);
    snprintf(msg, sizeof(msg), "key file \"%s\" is empty", path);
    expect_cred_error(msg, NULL);

    /* Missing file. */
    unlink(path);
    snprintf(msg, sizeof(msg), "could not read key file \"%s\": %s", path, strerror(ENOENT));
    expect_cred_error(msg, NULL);
    unsetenv("KEAP_API_KEY_FILE");
}

static void test_auth_headers(void **state)
{
    char key[] = SECRET, token[] = "tok-123";
    struct keap_credential pat = {.api_key = key};
    struct keap_credential oauth = {.access_token = token};
    struct keap_credential none = {0};
    char **h = NULL;

    (void)state;
    assert_int_equal(keap_auth_headers(&pat, &h), 0);
    assert_string_equal(h[0], "X-Keap-API-Key: " SECRET);
    assert_string_equal(h[1], "Accept: application/json");
    assert_null(h[2]);
    keap_headers_free(h);

    assert_int_equal(keap_auth_headers(&oauth, &h), 0);
    assert_string_equal(h[0], "Authorization: Bearer tok-123");
    assert_string_equal(h[1], "Accept: application/json");
    assert_null(h[2]);
    keap_headers_free(h);

    h = NULL;
    assert_int_equal(keap_auth_headers(&none, &h), BASE_EINVAL);
    assert_null(h);
    keap_headers_free(NULL);
}

/* The credential's identifier: stable, one per secret, never the secret itself. */
static void test_credential_id(void **state)
{
    char key[] = SECRET, other[] = SECRET "x", token[] = "tok-123", a[] = "a";
    struct keap_credential pat = {.api_key = key};
    struct keap_credential pat2 = {.api_key = other};
    struct keap_credential oauth = {.access_token = token};
    struct keap_credential both = {.api_key = key, .access_token = token};
    struct keap_credential one = {.api_key = a};
    struct keap_credential none = {0};
    char id[KEAP_CREDENTIAL_ID_LEN + 1], id2[KEAP_CREDENTIAL_ID_LEN + 1], small[8];

    (void)state;
    /* FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; its halves xor-ed: 0x296230c0. */
    assert_int_equal(keap_credential_id(&one, id, sizeof(id)), 0);
    assert_string_equal(id, "296230c0");

    assert_int_equal(keap_credential_id(&pat, id, sizeof(id)), 0);
    assert_string_equal(id, "a1763e32");
    assert_int_equal(strspn(id, "0123456789abcdef"), KEAP_CREDENTIAL_ID_LEN);
    assert_null(strstr(SECRET, id));
    assert_int_equal(keap_credential_id(&pat, id2, sizeof(id2)), 0);
    assert_string_equal(id, id2);
    assert_int_equal(keap_credential_id(&pat2, id2, sizeof(id2)), 0);
    assert_string_not_equal(id, id2);

    /* The API key wins over an access token; a token alone is identified too. */
    assert_int_equal(keap_credential_id(&both, id2, sizeof(id2)), 0);
    assert_string_equal(id, id2);
    assert_int_equal(keap_credential_id(&oauth, id2, sizeof(id2)), 0);
    assert_string_not_equal(id, id2);

    /* No secret, or no room: refused, the buffer untouched. */
    memset(small, 'z', sizeof(small));
    assert_int_equal(keap_credential_id(&pat, small, sizeof(small)), BASE_EINVAL);
    assert_int_equal(small[0], 'z');
    snprintf(id2, sizeof(id2), "unset");
    assert_int_equal(keap_credential_id(&none, id2, sizeof(id2)), BASE_EINVAL);
    assert_string_equal(id2, "unset");
}

/* ------------------------------------------------------------------ URLs */

static void test_v1_url(void **state)
{
    struct base_buf b;
    struct keap_v1_query q = {.limit = 1000,
                              .offset = 2000,
                              .order = "id",
                              .order_direction = "ASCENDING",
                              .since_param = "since",
                              .until_param = "until",
                              .until_ms = -1,
                              .optional_properties = "custom_fields"};
    struct keap_v1_query bare = {.limit = -1, .offset = -1, .since_ms = -1, .until_ms = -1};

    (void)state;
    assert_int_equal(base_time_parse("2017-01-01T22:17:59.039Z", &q.since_ms), 0);
    base_buf_init(&b, 4096);
    assert_int_equal(keap_build_v1_url(&b, KEAP_DEFAULT_BASE_URL, "/v1/contacts", &q), 0);
    assert_string_equal(b.data, "https://api.infusionsoft.com/crm/rest/v1/contacts?limit=1000"
                                "&offset=2000&order=id&order_direction=ASCENDING"
                                "&since=2017-01-01T22%3A17%3A59.039Z"
                                "&optional_properties=custom_fields");

    /* since and until for emails; a base URL with a trailing slash. */
    base_buf_reset(&b);
    q.since_param = "since_sent_date";
    q.until_param = "until_sent_date";
    q.until_ms = q.since_ms + 86400000;
    q.order = q.order_direction = q.optional_properties = NULL;
    q.offset = 0;
    assert_int_equal(keap_build_v1_url(&b, "http://127.0.0.1:8080/crm/rest/", "/v1/emails", &q), 0);
    assert_string_equal(b.data, "http://127.0.0.1:8080/crm/rest/v1/emails?limit=1000&offset=0"
                                "&since_sent_date=2017-01-01T22%3A17%3A59.039Z"
                                "&until_sent_date=2017-01-02T22%3A17%3A59.039Z");

    /* Nothing to add: no "?"; a path that already has a query gets "&". */
    base_buf_reset(&b);
    assert_int_equal(keap_build_v1_url(&b, KEAP_DEFAULT_BASE_URL, "/v1/tags", &bare), 0);
    assert_string_equal(b.data, "https://api.infusionsoft.com/crm/rest/v1/tags");
    base_buf_reset(&b);
    bare.limit = 10;
    assert_int_equal(keap_build_v1_url(&b, "", "/v1/tags?x=1", &bare), 0);
    assert_string_equal(b.data, "/v1/tags?x=1&limit=10");
    /* A relative endpoint still gets its slash. */
    base_buf_reset(&b);
    bare.limit = -1;
    assert_int_equal(keap_build_v1_url(&b, "http://127.0.0.1:8080/crm/rest", "v1/tags", &bare), 0);
    assert_string_equal(b.data, "http://127.0.0.1:8080/crm/rest/v1/tags");
    base_buf_free(&b);
}

static void test_v2_url(void **state)
{
    struct base_buf b;
    struct keap_v2_query q = {.page_size = 1000,
                              .order_by = "update_time asc",
                              .filter_since_field = "start_update_time",
                              .filter_until_field = "end_update_time"};
    struct keap_v2_query next = {.page_size = 1,
                                 .page_token = "https://api.infusionsoft.com/crm/rest/v2/tags/"
                                               "?page_size=1&page_token=91",
                                 .since_ms = -1,
                                 .until_ms = -1};
    const char *prefix = "pre|";
    size_t keep;

    (void)state;
    assert_int_equal(base_time_parse("2026-01-01T00:00:00.000Z", &q.since_ms), 0);
    assert_int_equal(base_time_parse("2026-01-02T00:00:00.000Z", &q.until_ms), 0);
    base_buf_init(&b, 4096);
    /* Appends to what the buffer holds. */
    assert_int_equal(base_buf_puts(&b, prefix), 0);
    assert_int_equal(keap_build_v2_url(&b, KEAP_DEFAULT_BASE_URL, "/v2/contacts", &q), 0);
    assert_string_equal(b.data, "pre|https://api.infusionsoft.com/crm/rest/v2/contacts"
                                "?page_size=1000"
                                "&filter=start_update_time%3D%3D2026-01-01T00%3A00%3A00.000Z"
                                "%3Bend_update_time%3D%3D2026-01-02T00%3A00%3A00.000Z"
                                "&order_by=update_time%20asc");

    /* Only one bound: no ';'. The opaque token is encoded whole. */
    base_buf_reset(&b);
    q.until_ms = -1;
    q.order_by = NULL;
    q.fields = "id,name";
    assert_int_equal(keap_build_v2_url(&b, KEAP_DEFAULT_BASE_URL, "/v2/contacts", &q), 0);
    assert_string_equal(b.data, "https://api.infusionsoft.com/crm/rest/v2/contacts"
                                "?page_size=1000"
                                "&filter=start_update_time%3D%3D2026-01-01T00%3A00%3A00.000Z"
                                "&fields=id%2Cname");
    base_buf_reset(&b);
    assert_int_equal(keap_build_v2_url(&b, KEAP_DEFAULT_BASE_URL, "/v2/tags", &next), 0);
    assert_string_equal(b.data, "https://api.infusionsoft.com/crm/rest/v2/tags?page_size=1"
                                "&page_token=https%3A%2F%2Fapi.infusionsoft.com%2Fcrm%2Frest"
                                "%2Fv2%2Ftags%2F%3Fpage_size%3D1%26page_token%3D91");
    base_buf_free(&b);

    /* Over the buffer's cap: an error, and the buffer is as it was. */
    base_buf_init(&b, 40);
    assert_int_equal(base_buf_puts(&b, prefix), 0);
    keep = b.len;
    assert_int_equal(keap_build_v2_url(&b, KEAP_DEFAULT_BASE_URL, "/v2/tags", &next), BASE_ETOOBIG);
    assert_int_equal(b.len, keep);
    assert_string_equal(b.data, prefix);
    base_buf_free(&b);
}

/* A job's fixed parameters come last, each part encoded; nextra bounds the array. */
static void test_extra_params(void **state)
{
    struct keap_param extra[] = {
        {"fields", "id,company_name,update_time"},
        {"tag name", "a b&c=d/\xc3\xa9"},
        {"never", "sent"},
    };
    struct keap_v1_query q1 = {.limit = 1000, .offset = 0, .since_ms = -1, .until_ms = -1};
    struct keap_v2_query q2 = {.page_size = 50, .since_ms = -1, .until_ms = -1};
    struct base_buf b, want;

    (void)state;
    base_buf_init(&b, 4096);
    base_buf_init(&want, 4096);

    /* Without extras nothing changes; with them, they follow keapsync's own parameters. */
    assert_int_equal(keap_build_v1_url(&b, "http://h/crm/rest", "/v1/orders", &q1), 0);
    assert_int_equal(base_buf_printf(&want,
                                     "%s&fields=id%%2Ccompany_name%%2Cupdate_time"
                                     "&tag%%20name=a%%20b%%26c%%3Dd%%2F%%C3%%A9",
                                     b.data),
                     0);
    q1.extra = extra;
    q1.nextra = 2;
    base_buf_reset(&b);
    assert_int_equal(keap_build_v1_url(&b, "http://h/crm/rest", "/v1/orders", &q1), 0);
    assert_string_equal(b.data, want.data);
    assert_null(strstr(b.data, "never"));

    base_buf_reset(&b);
    base_buf_reset(&want);
    q2.page_token = "tok";
    assert_int_equal(keap_build_v2_url(&b, "http://h/crm/rest", "/v2/companies", &q2), 0);
    assert_int_equal(base_buf_printf(&want, "%s&fields=id%%2Ccompany_name%%2Cupdate_time", b.data),
                     0);
    q2.extra = extra;
    q2.nextra = 1;
    base_buf_reset(&b);
    assert_int_equal(keap_build_v2_url(&b, "http://h/crm/rest", "/v2/companies", &q2), 0);
    assert_string_equal(b.data, want.data);
    /* The token is still there: every page repeats the fixed parameters with it. */
    assert_non_null(strstr(b.data, "&page_token=tok&"));

    /* A bare endpoint starts the query string with the first extra. */
    base_buf_reset(&b);
    q1.limit = -1;
    q1.offset = -1;
    q1.nextra = 1;
    assert_int_equal(keap_build_v1_url(&b, "", "/v1/products", &q1), 0);
    assert_string_equal(b.data, "/v1/products?fields=id%2Ccompany_name%2Cupdate_time");
    base_buf_free(&b);
    base_buf_free(&want);
}

/* ------------------------------------------------------------------ classification */

/* A canned response; headers as name/value pairs ending with NULL. */
struct canned {
    struct http_response resp;
    struct http_header h[16];
    char body[1024];
};

static void canned_make(struct canned *c, long status, const char *body, const char *const *headers)
{
    memset(c, 0, sizeof(*c));
    c->resp.status = status;
    snprintf(c->body, sizeof(c->body), "%s", body ? body : "");
    c->resp.body.data = c->body;
    c->resp.body.len = strlen(c->body);
    c->resp.body.cap = sizeof(c->body);
    c->resp.body.max = sizeof(c->body) - 1;
    for (size_t i = 0; headers != NULL && headers[2 * i] != NULL; i++) {
        c->h[i].name = (char *)headers[2 * i];
        c->h[i].value = (char *)headers[2 * i + 1];
        c->resp.nheaders = i + 1;
    }
    c->resp.headers = c->h;
}

static struct keap_verdict classify(long status, const char *body, const char *const *headers)
{
    struct canned c;
    struct keap_verdict v;

    canned_make(&c, status, body, headers);
    memset(&v, 0x5a, sizeof(v));
    keap_classify(&c.resp, 1700000000000LL, &v);
    return v;
}

/* Bodies as KEAP_API.md gives them. */
static const char gateway_429[] =
    "{\"fault\":{\"faultstring\":\"Rate limit quota violation. Quota limit exceeded. "
    "Identifier : " SECRET "\",\"detail\":{\"errorcode\":\"policies.ratelimit.QuotaViolation\"}}}";
static const char code_429[] =
    "{\"code\":\"429\",\"message\":\"Quota Exceeded\",\"status\":\"Request Throttled\","
    "\"details\":null}";
static const char spike_429[] =
    "{\"fault\":{\"faultstring\":\"Spike arrest violation. Allowed rate : "
    "MessageRate{messagesPerPeriod=10, periodInMicroseconds=1000000}\",\"detail\":{\"errorcode\":"
    "\"policies.ratelimit.SpikeArrestViolation\"}}}";
static const char invalid_401[] =
    "{\"fault\":{\"faultstring\":\"Invalid Access Token\",\"detail\":{\"errorcode\":"
    "\"keymanagement.service.invalid_access_token\"}}}";
static const char html_502[] =
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
    "Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

static void test_classify_429(void **state)
{
    static const char *const day_spent[] = {"x-keap-product-quota-available", "0",
                                            "x-keap-product-throttle-available", "200", NULL};
    static const char *const minute_spent[] = {"x-keap-product-quota-available", "1234",
                                               "x-keap-product-throttle-available", "0", NULL};
    static const char *const tenant_spent[] = {"x-keap-tenant-throttle-available", "0", NULL};
    static const char *const blank[] = {"x-keap-product-quota-available", "",
                                        "x-keap-product-throttle-available", " ", NULL};
    struct keap_verdict v;

    (void)state;
    /* Gateway body: no headers, no window known; the identifier never reaches the reason. */
    v = classify(429, gateway_429, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RATE_LIMITED);
    assert_int_equal(v.limit, PACE_LIMIT_UNKNOWN);
    assert_int_equal(v.retry_after_ms, -1);
    assert_string_equal(v.reason, "HTTP 429 (policies.ratelimit.QuotaViolation)");
    assert_null(strstr(v.reason, "s3cr3t"));
    v = classify(429, gateway_429, day_spent);
    assert_int_equal(v.limit, PACE_LIMIT_DAY);
    v = classify(429, gateway_429, minute_spent);
    assert_int_equal(v.limit, PACE_LIMIT_MINUTE);
    v = classify(429, gateway_429, tenant_spent);
    assert_int_equal(v.limit, PACE_LIMIT_MINUTE);
    v = classify(429, gateway_429, blank);
    assert_int_equal(v.limit, PACE_LIMIT_UNKNOWN);

    /* The v2-style body reads the headers the same way. */
    v = classify(429, code_429, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RATE_LIMITED);
    assert_int_equal(v.limit, PACE_LIMIT_UNKNOWN);
    assert_string_equal(v.reason, "HTTP 429: Quota Exceeded");
    v = classify(429, code_429, day_spent);
    assert_int_equal(v.limit, PACE_LIMIT_DAY);
    v = classify(429, code_429, minute_spent);
    assert_int_equal(v.limit, PACE_LIMIT_MINUTE);

    /* Spike arrest wins over the headers, by errorcode or by text. */
    v = classify(429, spike_429, day_spent);
    assert_int_equal(v.limit, PACE_LIMIT_SPIKE);
    assert_string_equal(v.reason, "HTTP 429 (policies.ratelimit.SpikeArrestViolation)");
    v = classify(429, "Spike arrest violation", NULL);
    assert_int_equal(v.limit, PACE_LIMIT_SPIKE);
    /* A 429 with an empty body. */
    v = classify(429, "", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RATE_LIMITED);
    assert_string_equal(v.reason, "HTTP 429");
}

static void test_classify_retry_after(void **state)
{
    const int64_t now = 1700000000000LL; /* classify()'s wall clock */
    char date[64];
    int64_t at;
    struct keap_verdict v;
    const char *h[] = {"retry-after", NULL, NULL};

    (void)state;
    h[1] = "3";
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, 3000);
    h[1] = "0";
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, 0);
    h[1] = "soon";
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, -1);
    h[1] = "-5";
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, -1);

    /* An HTTP date 90 s after now, and one in the past. */
    assert_int_equal(base_time_parse("2023-11-14T22:15:00Z", &at), 0);
    ASSERT_GT(at, now);
    snprintf(date, sizeof(date), "Tue, 14 Nov 2023 22:15:00 GMT");
    h[1] = date;
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, at - now);
    snprintf(date, sizeof(date), "Wed, 21 Oct 2015 07:28:00 GMT");
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, 0);
    snprintf(date, sizeof(date), "Wed, 21 Foo 2015 07:28:00 GMT");
    v = classify(429, code_429, h);
    assert_int_equal(v.retry_after_ms, -1);
}

static void test_classify_other(void **state)
{
    static const char v2_400_token[] =
        "{\"code\":\"400\",\"message\":\"Invalid page token\",\"status\":\"Bad Request\","
        "\"details\":[]}";
    static const char v2_400_expired[] =
        "{\"code\":\"400\",\"message\":\"Token has expired\",\"status\":\"Bad Request\","
        "\"details\":[]}";
    static const char v2_400_filter[] =
        "{\"code\":\"400\",\"message\":\"Invalid filter field: start_update_tim\",\"status\":"
        "\"Bad Request\",\"details\":[]}";
    static const char grant_400[] =
        "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid refresh token\"}";
    struct canned c;
    struct keap_verdict v;

    (void)state;
    v = classify(200, "{\"contacts\":[]}", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_OK);
    v = classify(200, " \r\n\t[1]", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_OK);
    v = classify(200, html_502, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);
    v = classify(200, "", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);

    v = classify(401, invalid_401, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_AUTH);
    assert_string_equal(
        v.reason, "HTTP 401 (keymanagement.service.invalid_access_token): Invalid Access Token");
    v = classify(403, "", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_AUTH);

    v = classify(502, html_502, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);
    assert_non_null(strstr(v.reason, "502"));
    v = classify(503, "{\"code\":\"503\",\"message\":\"Service Unavailable\"}", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);
    v = classify(500, "oops", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);
    v = classify(408, "", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);

    /* v2 400s: a page token is BAD_TOKEN; anything else is FATAL. */
    v = classify(400, v2_400_token, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_BAD_TOKEN);
    assert_string_equal(v.reason, "HTTP 400: Invalid page token");
    v = classify(400, v2_400_filter, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_FATAL);
    v = classify(404, "{\"message\":\"Not Found\"}", NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_FATAL);
    /* "token" alone counts only when the request is known to be v2, never on v1. */
    v = classify(400, v2_400_expired, NULL);
    assert_int_equal(v.outcome, KEAP_OUTCOME_FATAL);
    canned_make(&c, 400, v2_400_expired, NULL);
    keap_classify_api(&c.resp, KEAP_API_V2, 0, &v);
    assert_int_equal(v.outcome, KEAP_OUTCOME_BAD_TOKEN);
    canned_make(&c, 400, v2_400_token, NULL);
    keap_classify_api(&c.resp, KEAP_API_V1, 0, &v);
    assert_int_equal(v.outcome, KEAP_OUTCOME_FATAL);
    /* A dead refresh token is an auth failure, not a page token. */
    canned_make(&c, 400, grant_400, NULL);
    keap_classify_api(&c.resp, KEAP_API_V2, 0, &v);
    assert_int_equal(v.outcome, KEAP_OUTCOME_AUTH);
    assert_string_equal(v.reason, "HTTP 400 (invalid_grant): Invalid refresh token");

    /* Transport failure. */
    canned_make(&c, 0, "", NULL);
    c.resp.transport_error = 28;
    snprintf(c.resp.error, sizeof(c.resp.error), "Operation timed out after 200 milliseconds");
    keap_classify(&c.resp, 0, &v);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);
    assert_int_equal(v.retry_after_ms, -1);
    assert_string_equal(v.reason, "transport error 28: Operation timed out after 200 milliseconds");

    /* A NULL body (an empty response whose buffer never grew) is fine. */
    canned_make(&c, 200, "", NULL);
    c.resp.body.data = NULL;
    keap_classify(&c.resp, 0, &v);
    assert_int_equal(v.outcome, KEAP_OUTCOME_RETRY);

    /* A body over the cap: fetching it again would spend a request on the same failure. */
    canned_make(&c, 200, "{\"contacts\": [", NULL);
    c.resp.transport_error = 23;
    c.resp.body_too_big = 1;
    c.resp.body.max = 64u << 20;
    keap_classify(&c.resp, 0, &v);
    assert_int_equal(v.outcome, KEAP_OUTCOME_FATAL);
    assert_string_equal(v.reason, "response larger than the 64 MiB cap on a page");
}

/* ------------------------------------------------------------------ headers */

static void test_read_headers(void **state)
{
    static const char *const all[] = {"x-keap-product-quota-limit",
                                      "30000",
                                      "x-keap-product-quota-time-unit",
                                      "day",
                                      "x-keap-product-quota-available",
                                      "29841",
                                      "x-keap-product-quota-used",
                                      "159",
                                      "x-keap-product-quota-expiry-time",
                                      "1723680000000",
                                      "x-keap-product-throttle-limit",
                                      "240",
                                      "x-keap-product-throttle-available",
                                      "233",
                                      "x-keap-product-throttle-used",
                                      "7",
                                      "x-keap-tenant-id",
                                      "ps359.infusionsoft.com",
                                      "x-keap-tenant-throttle-limit",
                                      "5000",
                                      "x-keap-tenant-throttle-available",
                                      "4990",
                                      "x-keap-product-spike-limit",
                                      "10ps",
                                      NULL};
    static const char *const bad[] = {"x-keap-product-quota-limit",
                                      "",
                                      "x-keap-product-quota-available",
                                      "12x",
                                      "x-keap-product-quota-used",
                                      "-3",
                                      "x-keap-product-throttle-limit",
                                      "99999999999999999999999",
                                      "x-keap-tenant-id",
                                      "",
                                      NULL};
    struct canned c;
    struct pace_observation o;

    (void)state;
    canned_make(&c, 200, "{}", all);
    memset(&o, 0x5a, sizeof(o));
    keap_read_headers(&c.resp, &o);
    assert_int_equal(o.quota_limit, 30000);
    assert_int_equal(o.quota_available, 29841);
    assert_int_equal(o.quota_used, 159);
    assert_int_equal(o.quota_expiry_ms, 1723680000000LL);
    assert_int_equal(o.throttle_limit, 240);
    assert_int_equal(o.throttle_available, 233);
    assert_int_equal(o.throttle_used, 7);
    assert_int_equal(o.tenant_throttle_limit, 5000);
    assert_int_equal(o.tenant_throttle_available, 4990);
    assert_string_equal(o.tenant_id, "ps359.infusionsoft.com");

    /* Blank, malformed, negative, out of range and missing all read as -1 / NULL. */
    canned_make(&c, 200, "{}", bad);
    memset(&o, 0x5a, sizeof(o));
    keap_read_headers(&c.resp, &o);
    assert_int_equal(o.quota_limit, -1);
    assert_int_equal(o.quota_available, -1);
    assert_int_equal(o.quota_used, -1);
    assert_int_equal(o.throttle_limit, -1);
    assert_int_equal(o.quota_expiry_ms, -1);
    assert_int_equal(o.throttle_available, -1);
    assert_int_equal(o.throttle_used, -1);
    assert_int_equal(o.tenant_throttle_limit, -1);
    assert_int_equal(o.tenant_throttle_available, -1);
    assert_null(o.tenant_id);
}

/* ------------------------------------------------------------------ pages */

static char *read_fixture(const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/fixtures/%s", KEAPSYNC_KEAP_DATA, name);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("could not open test input \"%s\": %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ASSERT_GT(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The fixture's own "count" (the v1 page size in these captures), read independently. */
static int fixture_count(const char *body)
{
    cJSON *root = cJSON_Parse(body);
    int n;

    assert_non_null(root);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(root, "count")));
    n = cJSON_GetObjectItem(root, "count")->valueint;
    cJSON_Delete(root);
    return n;
}

static void test_page_fixtures(void **state)
{
    struct keap_page page = {0};
    struct base_err err;
    size_t len;
    char *body;
    int want;

    (void)state;
    body = read_fixture("v1-contacts-page.json", &len);
    want = fixture_count(body);
    assert_int_equal(keap_page_parse(body, len, "contacts", &page, &err), 0);
    assert_int_equal(page.nrecords, want);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(page.records, 0), "id")->valueint, 22);
    assert_null(page.next_page_token); /* v1: its "next" link is not a page token */
    assert_int_equal(page.nul_replaced, 0);
    keap_page_free(&page);
    free(body);

    body = read_fixture("v1-opportunities-page.json", &len);
    want = fixture_count(body);
    assert_int_equal(keap_page_parse(body, len, "opportunities", &page, &err), 0);
    assert_int_equal(page.nrecords, want);
    keap_page_free(&page);
    free(body);

    body = read_fixture("v2-tags-page.json", &len);
    assert_int_equal(keap_page_parse(body, len, "tags", &page, &err), 0);
    assert_int_equal(page.nrecords, 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(page.records, 0), "id")->valuestring,
                        "91");
    assert_string_equal(page.next_page_token,
                        "https://api.infusionsoft.com/crm/rest/v2/tags/?page_size=1&page_token=91");
    keap_page_free(&page);
    free(body);
    keap_page_free(&page); /* twice: a zeroed page is fine */
}

/* The text of member name of the object at span sp of body, as the body holds it. */
static char *member_text(const char *body, const struct keap_span *sp, const char *name)
{
    char *rec = malloc(sp->len + 1), *out;
    cJSON *o, *m;

    memcpy(rec, body + sp->off, sp->len);
    rec[sp->len] = '\0';
    o = cJSON_Parse(rec);
    m = cJSON_GetObjectItemCaseSensitive(o, name);
    out = m != NULL ? cJSON_PrintUnformatted(m) : NULL;
    cJSON_Delete(o);
    free(rec);
    return out;
}

static void test_page_keep(void **state)
{
    static const char *const full[] = {"id", "company", "email_addresses"};
    static const char *const raw[] = {"tag_ids", "addresses", "middle_name"};
    const struct keap_keep keep = {full, 3, raw, 3};
    struct keap_page all = {0}, some = {0};
    struct base_err err;
    size_t len;
    char *body, *copy;

    (void)state;
    body = read_fixture("v1-contacts-page.json", &len);
    copy = malloc(len);
    memcpy(copy, body, len);
    assert_int_equal(keap_page_parse(body, len, "contacts", &all, &err), 0);
    assert_int_equal(keap_page_parse_keep(copy, len, "contacts", &keep, &some, &err), 0);
    assert_true(all.nrecords >= 2);
    assert_int_equal(some.nrecords, all.nrecords);
    assert_non_null(some.spans);
    assert_memory_equal(some.spans, all.spans, (size_t)all.nrecords * sizeof(*all.spans));
    assert_int_equal(cJSON_GetArraySize(some.records), some.nrecords);
    for (int i = 0; i < all.nrecords; i++) {
        const cJSON *a = cJSON_GetArrayItem(all.records, i),
                    *p = cJSON_GetArrayItem(some.records, i);
        const cJSON *m;
        char *pa, *pp;
        int kept = 0;

        /* Parsed members are as a whole parse gives them; the rest are not there. */
        for (size_t k = 0; k < BASE_ARRAY_SIZE(full); k++) {
            pa = cJSON_PrintUnformatted(cJSON_GetObjectItem(a, full[k]));
            pp = cJSON_PrintUnformatted(cJSON_GetObjectItem(p, full[k]));
            assert_non_null(pa);
            assert_string_equal(pp, pa);
            cJSON_free(pa);
            cJSON_free(pp);
        }
        assert_null(cJSON_GetObjectItem(p, "given_name"));
        assert_non_null(cJSON_GetObjectItem(a, "given_name"));
        /* Raw members hold the body's own text (middle_name is null: a cJSON null). */
        m = cJSON_GetObjectItem(p, "tag_ids");
        assert_true(cJSON_IsRaw(m));
        {
            /* the exact bytes: found inside the record's span */
            size_t rl = strlen(m->valuestring);
            bool found = false;

            for (size_t o = all.spans[i].off;
                 !found && o + rl <= all.spans[i].off + all.spans[i].len; o++)
                found = memcmp(body + o, m->valuestring, rl) == 0;
            assert_true(found);
        }
        pa = member_text(body, &all.spans[i], "tag_ids");
        {
            cJSON *again = cJSON_Parse(m->valuestring);
            char *back = cJSON_PrintUnformatted(again);

            assert_string_equal(back, pa);
            cJSON_free(back);
            cJSON_Delete(again);
        }
        cJSON_free(pa);
        m = cJSON_GetObjectItem(p, "middle_name");
        if (cJSON_GetObjectItem(a, "middle_name") != NULL)
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "middle_name")) ? cJSON_IsNull(m)
                                                                            : cJSON_IsRaw(m));
        for (m = p->child; m != NULL; m = m->next)
            kept++;
        assert_true(kept <= 6);
    }
    keap_page_free(&all);
    keap_page_free(&some);
    free(body);
    free(copy);
}

/* Bodies the strict check refuses: the pruned parse answers as the whole parse does. */
static void test_page_keep_fallback(void **state)
{
    static const char *const full[] = {"id"};
    const struct keap_keep keep = {full, 1, NULL, 0};
    static const char *const bodies[] = {
        "{\"x\":[{\"id\":1,\"y\":2}]} trailing",  /* cJSON ignores what follows */
        "{\"x\":[{\"id\":1,\"y\":\"a\tb\"}]}",    /* a raw tab in a string */
        "{\"x\":[{\"id\":1,\"y\":01}]}",          /* a leading zero */
        "{\"x\":[{\"id\":1,\"y\":2,}]}",          /* a trailing comma */
        "{\"x\":[{\"id\":1,\"y\":\"\\ud800\"}]}", /* a lone surrogate */
        "{\"x\":null,\"x\":[{\"id\":1}]}",        /* the first \"x\" is not an array */
        "{\"x\":[{\"i\\u0064\":1,\"y\":2}]}",     /* a key with an escape */
        "{\"y\":[{\"id\":1}]}",                   /* no such array */
        "[{\"id\":1}]",                           /* not an object */
        "{\"x\":[{\"id\":1,\"y\":tru}]}",         /* not a word */
    };

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(bodies); i++) {
        char a[128], b[128];
        struct keap_page pa = {0}, pb = {0};
        struct base_err ea, eb;
        int ra, rb;

        snprintf(a, sizeof(a), "%s", bodies[i]);
        snprintf(b, sizeof(b), "%s", bodies[i]);
        base_err_clear(&ea);
        base_err_clear(&eb);
        ra = keap_page_parse(a, strlen(a), "x", &pa, &ea);
        rb = keap_page_parse_keep(b, strlen(b), "x", &keep, &pb, &eb);
        assert_int_equal(rb, ra);
        assert_string_equal(eb.msg, ea.msg);
        assert_int_equal(pb.nrecords, pa.nrecords);
        if (ra == 0 && pa.nrecords > 0) {
            char *ta = cJSON_PrintUnformatted(pa.records), *tb = cJSON_PrintUnformatted(pb.records);

            assert_string_equal(tb, ta); /* whole records: the fallback parsed everything */
            cJSON_free(ta);
            cJSON_free(tb);
        }
        keap_page_free(&pa);
        keap_page_free(&pb);
    }
}

/* Deep nesting: the same error from both. */
static void test_page_keep_deep(void **state)
{
    static const char *const full[] = {"id"};
    const struct keap_keep keep = {full, 1, NULL, 0};
    size_t depth = CJSON_NESTING_LIMIT + 10, n = 0;
    char *a = malloc(2 * depth + 64), *b;
    struct keap_page pa = {0}, pb = {0};
    struct base_err ea, eb;

    (void)state;
    n += (size_t)sprintf(a, "{\"x\":[{\"id\":1,\"y\":");
    for (size_t i = 0; i < depth; i++)
        a[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        a[n++] = ']';
    n += (size_t)sprintf(a + n, "}]}");
    b = malloc(n);
    memcpy(b, a, n);
    assert_int_equal(keap_page_parse(a, n, "x", &pa, &ea), BASE_EPROTO);
    assert_int_equal(keap_page_parse_keep(b, n, "x", &keep, &pb, &eb), BASE_EPROTO);
    assert_string_equal(eb.msg, ea.msg);
    assert_non_null(strstr(eb.msg, "nested deeper"));
    free(a);
    free(b);
}

static void test_page_tokens_end(void **state)
{
    static const char *const done[] = {
        "{\"tags\":[],\"next_page_token\":\"\"}",
        "{\"tags\":[],\"next_page_token\":null}",
        "{\"tags\":[]}",
    };
    struct keap_page page;
    struct base_err err;
    char body[64];

    (void)state;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(done); i++) {
        snprintf(body, sizeof(body), "%s", done[i]);
        assert_int_equal(keap_page_parse(body, strlen(body), "tags", &page, &err), 0);
        assert_int_equal(page.nrecords, 0);
        assert_null(page.next_page_token);
        keap_page_free(&page);
    }
}

static void test_page_nul(void **state)
{
    /* a: one escape; b: an escaped backslash then plain "u0000"; c: two escapes;
     * d: an escaped backslash then a real escape. */
    char body[] = "{\"x\":[{\"a\":\"A\\u0000B\",\"b\":\"C\\\\u0000D\",\"c\":\"\\u0000\\u0000\","
                  "\"d\":\"\\\\\\u0000\"}]}";
    struct keap_page page;
    struct base_err err;
    const cJSON *rec;

    (void)state;
    assert_int_equal(keap_page_parse(body, strlen(body), "x", &page, &err), 0);
    assert_int_equal(page.nul_replaced, 4);
    rec = cJSON_GetArrayItem(page.records, 0);
    assert_string_equal(cJSON_GetObjectItem(rec, "a")->valuestring, "A\xEF\xBF\xBD"
                                                                    "B");
    assert_string_equal(cJSON_GetObjectItem(rec, "b")->valuestring, "C\\u0000D");
    assert_string_equal(cJSON_GetObjectItem(rec, "c")->valuestring, "\xEF\xBF\xBD\xEF\xBF\xBD");
    assert_string_equal(cJSON_GetObjectItem(rec, "d")->valuestring, "\\\xEF\xBF\xBD");
    /* Replaced in place, same length. */
    assert_non_null(strstr(body, "A\\uFFFDB"));
    assert_non_null(strstr(body, "C\\\\u0000D"));
    keap_page_free(&page);
}

/* Each span is the record's text: parsed alone it equals the parsed record. */
static void assert_spans_match(const char *body, const struct keap_page *page)
{
    const cJSON *rec = page->records->child;

    assert_non_null(page->spans);
    for (int i = 0; i < page->nrecords; i++, rec = rec->next) {
        cJSON *alone = cJSON_ParseWithLength(body + page->spans[i].off, page->spans[i].len);

        assert_non_null(alone);
        assert_true(cJSON_Compare(alone, rec, true));
        cJSON_Delete(alone);
    }
}

static void test_page_spans(void **state)
{
    static const char *const fixtures[] = {"v1-contacts-page.json", "v1-opportunities-page.json"};
    static const char *const keys[] = {"contacts", "opportunities"};
    /* Brackets and quotes inside strings, nested arrays, the key also used inside another
     * member, numbers whose text a reprint would change, odd whitespace. */
    char tricky[] =
        "{ \"meta\" : {\"rows\": [9, [8]]}, \"s\": \"rows ] } [\\\" {\",\n"
        "  \"rows\" :\t[ {\"id\":1, \"n\": 1.50, \"t\": \"a]\\\\\"},\n"
        "  {\"id\": 2, \"x\": [[], {}], \"big\": 12345678901234567890} , 3, \"s]\", null ] }";
    struct keap_page page = {0};
    struct base_err err;

    (void)state;
    for (size_t f = 0; f < BASE_ARRAY_SIZE(fixtures); f++) {
        size_t len;
        char *body = read_fixture(fixtures[f], &len);

        assert_int_equal(keap_page_parse(body, len, keys[f], &page, &err), 0);
        assert_spans_match(body, &page);
        keap_page_free(&page);
        free(body);
    }
    assert_int_equal(keap_page_parse(tricky, strlen(tricky), "rows", &page, &err), 0);
    assert_int_equal(page.nrecords, 5);
    assert_spans_match(tricky, &page);
    /* The exact text is kept: 1.50 stays 1.50, the big integer keeps every digit. */
    assert_non_null(strstr(tricky + page.spans[0].off, "1.50"));
    ASSERT_LT(page.spans[0].len, 50);
    assert_memory_equal(tricky + page.spans[1].off + page.spans[1].len - 21,
                        "12345678901234567890}", 21);
    keap_page_free(&page);
}

static void test_page_errors(void **state)
{
    struct keap_page page;
    struct base_err err;
    char fault[] = "{\"fault\":{\"faultstring\":\"x\"},\"status\":1}";
    char object[] = "{\"contacts\":{}}";
    char html[] = "<html>oops</html>";
    char nul[] = "{\"contacts\":[]}\0";

    (void)state;
    memset(&page, 0x5a, sizeof(page));
    assert_int_equal(keap_page_parse(fault, strlen(fault), "contacts", &page, &err), BASE_EPROTO);
    assert_string_equal(err.msg,
                        "response has no \"contacts\" array (keys: \"fault\", \"status\")");
    assert_int_equal(page.nrecords, 0x5a5a5a5a); /* untouched */
    assert_int_equal(keap_page_parse(object, strlen(object), "contacts", &page, &err), BASE_EPROTO);
    assert_string_equal(err.msg, "response has no \"contacts\" array (keys: \"contacts\")");
    assert_int_equal(keap_page_parse(html, strlen(html), "contacts", &page, &err), BASE_EPROTO);
    assert_non_null(strstr(err.msg, "not valid JSON"));
    assert_int_equal(keap_page_parse(html, 0, "contacts", &page, &err), BASE_EPROTO);
    assert_int_equal(keap_page_parse(nul, sizeof(nul) - 1, "contacts", &page, &err), BASE_EPROTO);
    assert_non_null(strstr(err.msg, "NUL byte"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credential_env_key),
        cmocka_unit_test(test_credential_env_unset),
        cmocka_unit_test(test_credential_key_file),
        cmocka_unit_test(test_auth_headers),
        cmocka_unit_test(test_credential_id),
        cmocka_unit_test(test_v1_url),
        cmocka_unit_test(test_v2_url),
        cmocka_unit_test(test_extra_params),
        cmocka_unit_test(test_classify_429),
        cmocka_unit_test(test_classify_retry_after),
        cmocka_unit_test(test_classify_other),
        cmocka_unit_test(test_read_headers),
        cmocka_unit_test(test_page_fixtures),
        cmocka_unit_test(test_page_tokens_end),
        cmocka_unit_test(test_page_keep),
        cmocka_unit_test(test_page_keep_fallback),
        cmocka_unit_test(test_page_keep_deep),
        cmocka_unit_test(test_page_nul),
        cmocka_unit_test(test_page_errors),
        cmocka_unit_test(test_page_spans),
    };

    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
