/*
 * oauth.c: the OAuth2 half of keap (keap.h, "OAuth2"): the client from the environment, the
 * token endpoint (authorization code exchange and refresh, KEAP_API.md), and the refresh
 * decision.
 *
 * Words used here:
 *   client      the integration's client id and secret (KEAP_CLIENT_ID, KEAP_CLIENT_SECRET or
 *               KEAP_CLIENT_SECRET_FILE) and the token endpoint (KEAP_TOKEN_URL).
 *   pair        an access token and the refresh token that replaces it. Refresh tokens rotate
 *               and are single-use: each refresh kills the old one and returns a new one.
 *   generation  a counter bumped by every save of the stored pair: a pair whose generation is
 *               not the one a process holds was rotated by someone else.
 *   margin      how long before its expiry an access token is refreshed (keap_oauth_margin_ms).
 * Every buffer that held a secret is wiped before it is freed; messages never contain one.
 */
#include "keap.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A client secret file larger than this is not a client secret. */
#define KEAP_SECRET_FILE_MAX 4096
/* The token endpoint's answer is small; anything larger is not one. */
#define KEAP_TOKEN_MAX_BODY (64 * 1024)
#define KEAP_TOKEN_TIMEOUT  15000

/* ---------------------------------------------------------------- the client */

/* Trims s[0..n) and checks it can travel in a form or header; fresh copy in *out. */
static int secret_accept(const char *s, size_t n, const char *src, char **out, struct base_err *err)
{
    size_t a = 0, b = n;
    char *v;

    while (a < b && isspace((unsigned char)s[a]))
        a++;
    while (b > a && isspace((unsigned char)s[b - 1]))
        b--;
    if (a == b) {
        base_err_set(err, BASE_ECONFIG, "%s is empty", src);
        base_err_hint(err, "it must hold the OAuth2 client secret of your Keap developer app");
        return BASE_ECONFIG;
    }
    for (size_t i = a; i < b; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return base_err_set(err, BASE_ECONFIG,
                                "%s holds characters a client secret cannot "
                                "contain",
                                src);
    v = malloc(b - a + 1);
    if (v == NULL)
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    memcpy(v, s + a, b - a);
    v[b - a] = '\0';
    *out = v;
    return BASE_OK;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

int keap_oauth_client_from_env(struct keap_oauth_client *c, bool *configured, struct base_err *err)
{
    const char *id = env_nonempty("KEAP_CLIENT_ID");
    const char *secret = env_nonempty("KEAP_CLIENT_SECRET");
    const char *file = env_nonempty("KEAP_CLIENT_SECRET_FILE");
    const char *url = env_nonempty("KEAP_TOKEN_URL");
    struct keap_oauth_client n = {0};
    int rc;

    *configured = false;
    if (id == NULL) {
        if (secret == NULL && file == NULL)
            return BASE_OK;
        base_err_set(err, BASE_ECONFIG, "KEAP_CLIENT_SECRET%s is set but KEAP_CLIENT_ID is not",
                     secret ? "" : "_FILE");
        base_err_hint(err, "set KEAP_CLIENT_ID to the client id of your Keap developer app");
        return BASE_ECONFIG;
    }
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ':')
            return base_err_set(err, BASE_ECONFIG,
                                "KEAP_CLIENT_ID holds characters a client id "
                                "cannot contain");
    if (secret != NULL) {
        rc = secret_accept(secret, strlen(secret), "KEAP_CLIENT_SECRET", &n.secret, err);
    } else if (file != NULL) {
        unsigned char buf[KEAP_SECRET_FILE_MAX];
        size_t len = 0;
        char src[400];

        rc = base_read_private_file(file, "client secret file", sizeof(buf), buf, &len, err);
        (void)base_snprintf(src, sizeof(src), "client secret file \"%s\"", file);
        if (rc == 0)
            rc = secret_accept((const char *)buf, len, src, &n.secret, err);
        base_wipe(buf, sizeof(buf));
    } else {
        base_err_set(err, BASE_ECONFIG, "KEAP_CLIENT_ID is set but no client secret is");
        base_err_hint(err, "set KEAP_CLIENT_SECRET_FILE to a file (mode 0600) holding the "
                           "client secret, or KEAP_CLIENT_SECRET");
        return BASE_ECONFIG;
    }
    if (rc < 0)
        return rc;
    n.id = strdup(id);
    n.token_url = strdup(url ? url : KEAP_DEFAULT_TOKEN_URL);
    if (n.id == NULL || n.token_url == NULL) {
        keap_oauth_client_clear(&n);
        return base_err_set(err, BASE_ENOMEM, "out of memory");
    }
    *c = n;
    *configured = true;
    return BASE_OK;
}

void keap_oauth_client_clear(struct keap_oauth_client *c)
{
    if (c == NULL)
        return;
    free(c->id);
    base_secret_free(c->secret);
    free(c->token_url);
    memset(c, 0, sizeof(*c));
}

void keap_oauth_pair_clear(struct keap_oauth_pair *p)
{
    if (p == NULL)
        return;
    base_secret_free(p->access_token);
    base_secret_free(p->refresh_token);
    memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------------------- the token endpoint */

/* Appends s form-encoded (RFC 3986 unreserved characters stay, the rest become %XX). */
static int form_encode(struct base_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = BASE_OK;

    for (; rc == BASE_OK && *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};

        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~')
            rc = base_buf_append(out, s, 1);
        else
            rc = base_buf_append(out, enc, 3);
    }
    return rc;
}

/* Appends "&name=value" (no "&" when out is empty), value form-encoded. */
static int form_add(struct base_buf *out, const char *name, const char *value)
{
    int rc = base_buf_printf(out, "%s%s=", out->len > 0 ? "&" : "", name);

    return rc < 0 ? rc : form_encode(out, value);
}

static int base64_append(struct base_buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rc = BASE_OK;

    for (size_t i = 0; rc == BASE_OK && i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4];

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        rc = base_buf_append(out, q, 4);
    }
    return rc;
}

struct token_call {
    bool done;
    long status;
    int transport_error;
    char error[256];
    struct base_buf body; /* taken from the response; may hold tokens: wiped */
};

static void token_done_cb(struct http_response *resp, void *data)
{
    struct token_call *call = data;

    call->status = resp->status;
    call->transport_error = resp->transport_error;
    snprintf(call->error, sizeof(call->error), "%s", resp->error);
    call->body = resp->body;
    resp->body.data = NULL;
    call->done = true;
}

static void buf_wipe_free(struct base_buf *b)
{
    if (b->data != NULL)
        base_wipe(b->data, b->cap);
    base_buf_free(b);
}

/* Copies a string member of o that may travel in a header into *out. */
static int token_member(const cJSON *o, const char *name, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return BASE_EPROTO;
    for (const char *p = v->valuestring; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return BASE_EPROTO;
    *out = strdup(v->valuestring);
    return *out ? BASE_OK : BASE_ENOMEM;
}

/* Reads a token response body into *out (what: "refresh", "code exchange" for messages). */
static int token_parse(const struct token_call *call, const char *what, struct keap_oauth_pair *out,
                       struct base_err *err)
{
    cJSON *root = call->body.data ? cJSON_ParseWithLength(call->body.data, call->body.len) : NULL;
    struct keap_oauth_pair p = {0};
    const cJSON *v;
    int rc;

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return base_err_set(err, BASE_EPROTO,
                            "could not read the token endpoint's answer to "
                            "the %s: not a JSON object",
                            what);
    }
    rc = token_member(root, "access_token", &p.access_token);
    if (rc == BASE_OK)
        rc = token_member(root, "refresh_token", &p.refresh_token);
    v = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    p.expires_in_s = cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e9
                         ? (int64_t)v->valuedouble
                         : 86400; /* KEAP_API.md: access tokens live 24 h */
    v = cJSON_GetObjectItemCaseSensitive(root, "scope");
    if (cJSON_IsString(v))
        snprintf(p.scope, sizeof(p.scope), "%s", v->valuestring);
    /* cJSON's copies of the tokens: wipe them too. */
    for (const char *name = "access_token"; name != NULL;
         name = strcmp(name, "access_token") == 0 ? "refresh_token" : NULL) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(root, name);

        if (cJSON_IsString(t))
            base_wipe(t->valuestring, strlen(t->valuestring));
    }
    cJSON_Delete(root);
    if (rc < 0) {
        keap_oauth_pair_clear(&p);
        if (rc == BASE_ENOMEM)
            return base_err_set(err, rc, "out of memory");
        return base_err_set(err, rc,
                            "could not read the token endpoint's answer to the %s: no "
                            "usable access_token and refresh_token",
                            what);
    }
    *out = p;
    return BASE_OK;
}

/* The "error" member of a token endpoint's error body, made safe to print, or "". */
static void token_error_code(const struct token_call *call, char *dst, size_t n)
{
    cJSON *root = call->body.data ? cJSON_ParseWithLength(call->body.data, call->body.len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    size_t o = 0;

    dst[0] = '\0';
    if (cJSON_IsString(e))
        for (const char *p = e->valuestring; *p && o + 1 < n && o < 64; p++)
            dst[o++] = isalnum((unsigned char)*p) || *p == '_' ? *p : '?';
    dst[o] = '\0';
    cJSON_Delete(root);
}

/*
 * POSTs form to the client's token endpoint (basic: with Authorization: Basic), blocking on a
 * loop of its own, and reads the pair. invalid_grant and invalid_client are BASE_EAUTH.
 */
static int token_post(const struct keap_oauth_client *c, const struct base_buf *form, bool basic,
                      const char *what, struct keap_oauth_pair *out, struct base_err *err)
{
    struct http_options hopt = {0};
    struct http_request req = {0};
    struct http_client *hc = NULL;
    struct token_call call;
    struct base_buf auth, cred;
    const char *headers[4] = {"Content-Type: application/x-www-form-urlencoded",
                              "Accept: application/json", NULL, NULL};
    char code[80];
    uv_loop_t loop;
    int rc;

    memset(&call, 0, sizeof(call));
    base_buf_init(&auth, 8192);
    base_buf_init(&cred, 8192);
    if (basic) {
        rc = base_buf_printf(&cred, "%s:%s", c->id, c->secret);
        if (rc == 0)
            rc = base_buf_puts(&auth, "Authorization: Basic ");
        if (rc == 0)
            rc = base64_append(&auth, (const unsigned char *)cred.data, cred.len);
        buf_wipe_free(&cred);
        if (rc < 0) {
            buf_wipe_free(&auth);
            return base_err_set(err, rc, "could not build the token request: %s",
                                base_strerror(rc));
        }
        headers[2] = auth.data;
    }
    rc = uv_loop_init(&loop);
    if (rc < 0) {
        buf_wipe_free(&auth);
        return base_err_set(err, BASE_EIO, "could not start an event loop: %s", uv_strerror(rc));
    }
    hopt.max_body = KEAP_TOKEN_MAX_BODY;
    hopt.max_connections = 1;
    hopt.timeout_ms = KEAP_TOKEN_TIMEOUT;
    rc = http_client_new(&hc, &loop, &hopt);
    if (rc == BASE_OK) {
        req.method = "POST";
        req.url = c->token_url;
        req.headers = headers;
        req.body = form->data;
        req.body_len = form->len;
        rc = http_send(hc, &req, token_done_cb, &call);
    }
    while (rc == BASE_OK && !call.done && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    http_client_close(hc);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    buf_wipe_free(&auth);
    if (rc < 0) {
        rc = base_err_set(err, rc, "could not call the token endpoint: %s", base_strerror(rc));
        goto out;
    }
    if (call.transport_error != 0 || call.status == 0) {
        char text[200];
        size_t i;

        for (i = 0; call.error[i] != '\0' && i + 1 < sizeof(text) && i < 160; i++)
            text[i] = isprint((unsigned char)call.error[i]) ? call.error[i] : '?';
        text[i] = '\0';
        rc = base_err_set(err, BASE_EIO, "could not reach the token endpoint for the %s: %s", what,
                          text);
        goto out;
    }
    if (call.status >= 200 && call.status < 300) {
        rc = token_parse(&call, what, out, err);
        goto out;
    }
    token_error_code(&call, code, sizeof(code));
    if (strcmp(code, "invalid_grant") == 0) {
        rc = base_err_set(err, BASE_EAUTH, "Keap refused the %s: HTTP %ld invalid_grant", what,
                          call.status);
    } else if (strcmp(code, "invalid_client") == 0 || call.status == 401) {
        rc = base_err_set(err, BASE_EAUTH, "Keap refused the OAuth2 client \"%s\": HTTP %ld%s%s",
                          c->id, call.status, code[0] ? " " : "", code);
        base_err_hint(err, "check KEAP_CLIENT_ID and the client secret");
    } else {
        rc = base_err_set(err, call.status >= 500 || call.status == 429 ? BASE_EIO : BASE_EPROTO,
                          "could not get tokens for the %s: HTTP %ld%s%s", what, call.status,
                          code[0] ? " " : "", code);
    }
out:
    buf_wipe_free(&call.body);
    return rc;
}

int keap_oauth_exchange_code(const struct keap_oauth_client *c, const char *code,
                             const char *redirect_uri, struct keap_oauth_pair *out,
                             struct base_err *err)
{
    struct base_buf form;
    int rc;

    if (c == NULL || c->id == NULL || c->secret == NULL || code == NULL || redirect_uri == NULL)
        return base_err_set(err, BASE_EINVAL, "could not exchange the code: missing argument");
    base_buf_init(&form, 16 * 1024);
    rc = form_add(&form, "client_id", c->id);
    if (rc == 0)
        rc = form_add(&form, "client_secret", c->secret);
    if (rc == 0)
        rc = form_add(&form, "code", code);
    if (rc == 0)
        rc = form_add(&form, "grant_type", "authorization_code");
    if (rc == 0)
        rc = form_add(&form, "redirect_uri", redirect_uri);
    if (rc < 0)
        rc = base_err_set(err, rc, "could not build the token request: %s", base_strerror(rc));
    else
        rc = token_post(c, &form, false, "authorization code", out, err);
    buf_wipe_free(&form);
    return rc;
}

int keap_oauth_refresh(const struct keap_oauth_client *c, const char *refresh_token,
                       struct keap_oauth_pair *out, struct base_err *err)
{
    struct base_buf form;
    int rc;

    if (c == NULL || c->id == NULL || c->secret == NULL || refresh_token == NULL)
        return base_err_set(err, BASE_EINVAL, "could not refresh: missing argument");
    base_buf_init(&form, 16 * 1024);
    rc = form_add(&form, "grant_type", "refresh_token");
    if (rc == 0)
        rc = form_add(&form, "refresh_token", refresh_token);
    if (rc < 0)
        rc = base_err_set(err, rc, "could not build the token request: %s", base_strerror(rc));
    else
        rc = token_post(c, &form, true, "refresh token", out, err);
    buf_wipe_free(&form);
    return rc;
}

/* ---------------------------------------------------------------- the refresh decision */

int64_t keap_oauth_margin_ms(int64_t obtained_ms, int64_t expires_ms)
{
    int64_t life = expires_ms - obtained_ms, m;

    if (life <= 0)
        return 0;
    m = life / 5;
    return m > KEAP_OAUTH_MARGIN_MAX_MS ? KEAP_OAUTH_MARGIN_MAX_MS : m;
}

enum keap_oauth_action keap_oauth_decide(const struct keap_oauth_view *stored,
                                         int64_t have_generation, bool force, int64_t now_ms,
                                         bool *rotated)
{
    int64_t margin = keap_oauth_margin_ms(stored->obtained_ms, stored->expires_ms);
    bool due = now_ms >= stored->expires_ms - margin;

    *rotated = have_generation >= 0 && stored->generation != have_generation;
    if (have_generation < 0 || *rotated)
        return due ? KEAP_OAUTH_REFRESH : KEAP_OAUTH_USE_STORED; /* a 401 does not count */
    return force || due ? KEAP_OAUTH_REFRESH : KEAP_OAUTH_USE_STORED;
}
