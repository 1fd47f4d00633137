/*
 * admin.c: keapsim's control surface (everything under /__admin/, no key, not rate limited) and the
 * OAuth2 token endpoint (/token).
 *
 * Admin endpoints (tests/keapsim/README.md has the full list):
 *   GET  /__admin/stats                 counters, windows, per-key stats, histogram
 *   POST /__admin/reset                 zero the stats and every window and the day
 *   GET  /__admin/truth?resource=R[&version=v2][&meta=1]   JSON lines, the current records
 *                                       (meta: id and times of every record, lists.c)
 *   GET  /__admin/lists                 every list lists.c serves, with its filter fields
 *   POST /__admin/mutate?creates=&updates=&deletes=
 *   POST /__admin/delete?resource=R&count=N | &restore=ID   delete (or bring back) records of
 *                                       a generated list (companies, opportunities, ...)
 *   GET|POST /__admin/clock[?offset_ms=N]  read or set the offset of the sim clock
 *   GET|POST|DELETE /__admin/faults[?spec=kind:rate[:endpoint]]
 *   POST /__admin/revoke?key=ID|SECRET[&delay_ms=N]
 *   POST /__admin/oauth/code            mint a single-use authorization code
 *
 * OAuth2 (KEAP_API.md): authorization_code and refresh_token grants, form-encoded; client
 * credentials in the body or in "Authorization: Basic". Refresh tokens rotate and are
 * single-use: reuse answers 400 invalid_grant. Access tokens live --access-ttl seconds.
 */
#include "keapsim.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *qarg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static int body_json(struct base_buf *body, cJSON *j)
{
    char *txt;
    int rc;

    if (j == NULL)
        return BASE_ENOMEM;
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (txt == NULL)
        return BASE_ENOMEM;
    rc = base_buf_puts(body, txt);
    cJSON_free(txt);
    return rc;
}

static int body_msg(struct base_buf *body, int *status, int code, const char *msg)
{
    *status = code;
    base_buf_reset(body);
    return base_buf_printf(body, "{\"message\":\"%s\"}", msg);
}

static cJSON *key_stats_json(const struct sim_key *k)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "requests", (double)k->st.requests);
    cJSON_AddNumberToObject(o, "accepted", (double)k->st.accepted);
    cJSON_AddNumberToObject(o, "rejected_429", (double)k->st.rejected_429);
    cJSON_AddNumberToObject(o, "rejected_second", (double)k->st.rej_second);
    cJSON_AddNumberToObject(o, "rejected_minute", (double)k->st.rej_minute);
    cJSON_AddNumberToObject(o, "max_in_1s", (double)k->st.max_in_1s);
    cJSON_AddNumberToObject(o, "max_in_60s", (double)k->st.max_in_60s);
    cJSON_AddNumberToObject(o, "in_last_1s", (double)k->win.sum1);
    cJSON_AddNumberToObject(o, "in_last_60s", (double)k->win.sum60);
    cJSON_AddBoolToObject(o, "revoked", k->revoked);
    return o;
}

static int admin_stats(struct sim *s, struct base_buf *body)
{
    cJSON *o = cJSON_CreateObject(), *by, *keys, *hist, *lim;
    int64_t now_mono = sim_mono_ms(), wall, last_full;
    size_t i;

    if (o == NULL)
        return BASE_ENOMEM;
    pthread_mutex_lock(&s->mu);
    wall = sim_wall_ms_locked(s);
    sim_win_advance(&s->tenant_win, now_mono);
    for (i = 0; i <= SIM_MAX_KEYS; i++)
        sim_win_advance(&s->keys[i].win, now_mono);
    if (base_time_day_start(wall) != s->day_start_ms) {
        s->day_start_ms = base_time_day_start(wall);
        s->day_used = 0;
    }
    cJSON_AddNumberToObject(o, "requests", (double)s->st.requests);
    cJSON_AddNumberToObject(o, "accepted", (double)s->st.accepted);
    cJSON_AddNumberToObject(o, "rejected_401", (double)s->st.rejected_401);
    cJSON_AddNumberToObject(o, "rejected_429", (double)s->st.rejected_429);
    by = cJSON_AddObjectToObject(o, "rejected_429_by_window");
    if (by != NULL) {
        cJSON_AddNumberToObject(by, "second", (double)s->st.rej_second);
        cJSON_AddNumberToObject(by, "minute", (double)s->st.rej_minute);
        cJSON_AddNumberToObject(by, "day", (double)s->st.rej_day);
        cJSON_AddNumberToObject(by, "tenant", (double)s->st.rej_tenant);
    }
    cJSON_AddNumberToObject(o, "faults", (double)s->st.faults);
    cJSON_AddNumberToObject(o, "oauth_refreshes", (double)s->st.oauth_refreshes);
    cJSON_AddNumberToObject(o, "refresh_reused", (double)s->st.refresh_reused);
    cJSON_AddNumberToObject(o, "max_in_1s", (double)s->st.max_in_1s);
    cJSON_AddNumberToObject(o, "max_in_60s", (double)s->st.max_in_60s);
    cJSON_AddNumberToObject(o, "first_request_ms", (double)s->st.first_request_ms);
    cJSON_AddNumberToObject(o, "last_request_ms", (double)s->st.last_request_ms);
    cJSON_AddNumberToObject(o, "first_accepted_ms", (double)s->st.first_accepted_ms);
    cJSON_AddNumberToObject(o, "last_accepted_ms", (double)s->st.last_accepted_ms);
    cJSON_AddNumberToObject(o, "in_last_1s", (double)s->tenant_win.sum1);
    cJSON_AddNumberToObject(o, "in_last_60s", (double)s->tenant_win.sum60);
    cJSON_AddNumberToObject(o, "day_used", (double)s->day_used);
    cJSON_AddNumberToObject(o, "day_start_ms", (double)s->day_start_ms);
    cJSON_AddNumberToObject(o, "now_ms", (double)wall);
    cJSON_AddNumberToObject(o, "clock_offset_ms", (double)s->clock_offset_ms);
    lim = cJSON_AddObjectToObject(o, "limits");
    if (lim != NULL) {
        cJSON_AddNumberToObject(lim, "per_second", (double)s->cfg.lim.per_s);
        cJSON_AddNumberToObject(lim, "per_minute", (double)s->cfg.lim.per_min);
        cJSON_AddNumberToObject(lim, "per_day", (double)s->cfg.lim.per_day);
        cJSON_AddNumberToObject(lim, "tenant_per_minute", (double)s->cfg.lim.tenant_per_min);
    }
    keys = cJSON_AddObjectToObject(o, "keys");
    for (i = 0; keys != NULL && i < s->nkeys; i++)
        cJSON_AddItemToObject(keys, s->keys[i].id, key_stats_json(&s->keys[i]));
    if (keys != NULL && s->keys[SIM_MAX_KEYS].st.requests > 0)
        cJSON_AddItemToObject(keys, s->keys[SIM_MAX_KEYS].id,
                              key_stats_json(&s->keys[SIM_MAX_KEYS]));
    /* accepted per sim-clock second, oldest first, up to the last completed second */
    hist = cJSON_AddObjectToObject(o, "per_second");
    last_full = wall / 1000 - 1;
    if (hist != NULL) {
        cJSON *counts = cJSON_AddArrayToObject(hist, "counts");
        int64_t first = -1, sec;

        for (sec = s->st.hist_start_s; counts != NULL && sec <= last_full; sec++) {
            int64_t k = sec - s->st.hist_start_s;

            if (k >= SIM_HIST_SECONDS)
                break;
            if (first < 0 && s->st.hist[k] == 0)
                continue; /* skip leading idle seconds */
            if (first < 0)
                first = sec;
            cJSON_AddItemToArray(counts, cJSON_CreateNumber((double)s->st.hist[k]));
        }
        cJSON_AddNumberToObject(hist, "start_s", (double)(first < 0 ? 0 : first));
    }
    pthread_mutex_unlock(&s->mu);
    pthread_rwlock_rdlock(&s->data.lock);
    cJSON_AddNumberToObject(o, "contacts", (double)s->data.n);
    cJSON_AddNumberToObject(o, "created", (double)s->data.created);
    cJSON_AddNumberToObject(o, "updated", (double)s->data.updated);
    cJSON_AddNumberToObject(o, "deleted", (double)s->data.deleted);
    cJSON_AddNumberToObject(o, "max_id", (double)s->data.max_id);
    pthread_rwlock_unlock(&s->data.lock);
    return body_json(body, o);
}

static int admin_truth(struct sim *s, struct MHD_Connection *c, int *status, struct base_buf *body)
{
    const char *res = qarg(c, "resource"), *ver = qarg(c, "version");
    bool v2 = ver != NULL && strcmp(ver, "v2") == 0;
    size_t i;
    int rc = 0;

    if (res == NULL)
        return body_msg(body, status, 400, "unknown resource");
    if (strcmp(res, "contacts") != 0) {
        const char *meta = qarg(c, "meta");

        *status = 200;
        rc = sim_lists_truth(s, res, v2, meta != NULL && strcmp(meta, "1") == 0, body);
        if (rc == BASE_ENOTFOUND)
            return body_msg(body, status, 400, "unknown resource");
        return rc;
    }
    *status = 200;
    pthread_rwlock_rdlock(&s->data.lock);
    for (i = 0; rc == 0 && i < s->data.n; i++) {
        const struct sim_contact *r = &s->data.recs[i];

        if (v2) {
            rc = base_buf_append(body, r->v2, r->v2_len);
        } else {
            rc = base_buf_append(body, r->body, r->body_len);
            if (rc == 0)
                rc = base_buf_append(body, r->cf, r->cf_len);
            if (rc == 0)
                rc = base_buf_puts(body, "}");
        }
        if (rc == 0)
            rc = base_buf_puts(body, "\n");
    }
    pthread_rwlock_unlock(&s->data.lock);
    return rc;
}

static int count_arg(struct MHD_Connection *c, const char *name, size_t *out)
{
    const char *v = qarg(c, name);
    int64_t n;

    *out = 0;
    if (v == NULL)
        return 0;
    if (base_parse_int64(v, &n) < 0 || n < 0 || n > 10000000)
        return BASE_EINVAL;
    *out = (size_t)n;
    return 0;
}

static int admin_mutate(struct sim *s, struct MHD_Connection *c, int *status, struct base_buf *body)
{
    size_t cr, up, de;
    int rc;

    if (count_arg(c, "creates", &cr) < 0 || count_arg(c, "updates", &up) < 0 ||
        count_arg(c, "deletes", &de) < 0)
        return body_msg(body, status, 400, "creates, updates and deletes must be counts");
    rc = sim_data_mutate(&s->data, sim_wall_ms(s), cr, up, de);
    if (rc < 0)
        return rc;
    *status = 200;
    return admin_stats(s, body);
}

static int admin_delete(struct sim *s, struct MHD_Connection *c, int *status, struct base_buf *body)
{
    const char *res = qarg(c, "resource"), *restore = qarg(c, "restore");
    int64_t rid = 0;
    size_t n;
    int rc;

    if (res == NULL || count_arg(c, "count", &n) < 0 ||
        (restore != NULL && (base_parse_int64(restore, &rid) < 0 || rid <= 0)))
        return body_msg(body, status, 400, "resource, a count and a positive restore id expected");
    *status = 200;
    base_buf_reset(body);
    rc = sim_lists_delete(s, res, n, rid, body);
    if (rc == BASE_ENOTFOUND) {
        base_buf_reset(body);
        return body_msg(body, status, 400, "cannot delete records of this resource");
    }
    return rc;
}

static int admin_clock(struct sim *s, struct MHD_Connection *c, const char *method, int *status,
                       struct base_buf *body)
{
    const char *off = qarg(c, "offset_ms");
    int64_t v, wall;
    char iso[40];

    if (strcmp(method, "POST") == 0) {
        if (off == NULL || base_parse_int64(off, &v) < 0)
            return body_msg(body, status, 400, "offset_ms must be an integer");
        pthread_mutex_lock(&s->mu);
        s->clock_offset_ms = v;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    v = s->clock_offset_ms;
    wall = sim_wall_ms_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (base_time_format(wall, iso, sizeof(iso)) < 0)
        iso[0] = '\0';
    *status = 200;
    return base_buf_printf(
        body, "{\"offset_ms\":%" PRId64 ",\"now_ms\":%" PRId64 ",\"now\":\"%s\"}", v, wall, iso);
}

static int admin_faults(struct sim *s, struct MHD_Connection *c, const char *method, int *status,
                        struct base_buf *body)
{
    const char *spec = qarg(c, "spec");
    cJSON *arr;
    size_t i;

    if (strcmp(method, "DELETE") == 0 || qarg(c, "clear") != NULL) {
        pthread_mutex_lock(&s->mu);
        s->nfaults = 0;
        pthread_mutex_unlock(&s->mu);
    }
    if (strcmp(method, "POST") == 0 && spec != NULL) {
        struct sim_fault f;

        if (sim_fault_parse(spec, &f) < 0)
            return body_msg(body, status, 400, "could not parse fault spec");
        if (sim_faults_add(s, &f) < 0)
            return body_msg(body, status, 400, "too many faults");
    }
    arr = cJSON_CreateArray();
    if (arr == NULL)
        return BASE_ENOMEM;
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nfaults; i++) {
        cJSON *o = cJSON_CreateObject();

        if (o == NULL)
            break;
        cJSON_AddStringToObject(o, "kind", sim_fault_name(s->faults[i].kind));
        cJSON_AddNumberToObject(o, "rate", s->faults[i].rate);
        cJSON_AddStringToObject(o, "endpoint", s->faults[i].endpoint);
        cJSON_AddNumberToObject(o, "param", (double)s->faults[i].param);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&s->mu);
    *status = 200;
    return body_json(body, arr);
}

static int admin_revoke(struct sim *s, struct MHD_Connection *c, int *status, struct base_buf *body)
{
    const char *key = qarg(c, "key"), *delay = qarg(c, "delay_ms");
    int64_t d = s->cfg.revoke_delay_ms;
    size_t i;
    bool found = false;

    if (key == NULL)
        return body_msg(body, status, 400, "key is required");
    if (delay != NULL && (base_parse_int64(delay, &d) < 0 || d < 0))
        return body_msg(body, status, 400, "delay_ms must be a count");
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nkeys; i++) {
        struct sim_key *k = &s->keys[i];

        if (strcmp(k->id, key) == 0 || strcmp(k->secret, key) == 0) {
            k->revoke_at_ms = sim_wall_ms_locked(s) + d;
            if (d == 0)
                k->revoked = true;
            found = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!found)
        return body_msg(body, status, 404, "no such key");
    *status = 200;
    return base_buf_printf(body, "{\"revoked\":true,\"delay_ms\":%" PRId64 "}", d);
}

/* GET: the limits in force. POST ?limits=A/s,B/min,C/day[&tenant=D/min]: change them now
 * (windows keep their counts; a lower ceiling applies from the next request). */
static int admin_limits(struct sim *s, struct MHD_Connection *c, bool post, int *status,
                        struct base_buf *body)
{
    const char *spec = qarg(c, "limits"), *tenant = qarg(c, "tenant");
    struct sim_limits next;

    pthread_mutex_lock(&s->mu);
    next = s->cfg.lim;
    pthread_mutex_unlock(&s->mu);
    if (post) {
        if (spec == NULL && tenant == NULL)
            return body_msg(body, status, 400, "limits or tenant is required");
        if (spec != NULL && sim_limits_parse(spec, &next) < 0)
            return body_msg(body, status, 400,
                            "limits must look like 10/s,240/min,30000/day (0 turns one off)");
        if (tenant != NULL) {
            struct sim_limits t = {0, 0, 0, 0};

            if (sim_limits_parse(tenant, &t) < 0)
                return body_msg(body, status, 400, "tenant must look like 10000/min");
            next.tenant_per_min = t.per_min;
        }
        pthread_mutex_lock(&s->mu);
        s->cfg.lim = next;
        pthread_mutex_unlock(&s->mu);
    }
    *status = 200;
    return base_buf_printf(body,
                           "{\"per_second\":%" PRId64 ",\"per_minute\":%" PRId64
                           ",\"per_day\":%" PRId64 ",\"tenant_per_minute\":%" PRId64 "}",
                           next.per_s, next.per_min, next.per_day, next.tenant_per_min);
}

static void random_token(struct sim *s, const char *prefix, char *out, size_t n)
{
    uint64_t a = sim_rng_next(&s->token_rng), b = sim_rng_next(&s->token_rng);

    snprintf(out, n, "%s%016" PRIx64 "%016" PRIx64, prefix, a, b);
}

static int admin_oauth_code(struct sim *s, int *status, struct base_buf *body)
{
    char code[48];
    size_t i, slot = 0;

    pthread_mutex_lock(&s->mu);
    random_token(s, "ksc", code, sizeof(code));
    for (i = 0; i < BASE_ARRAY_SIZE(s->auth_codes); i++)
        if (s->auth_codes[i][0] == '\0') {
            slot = i;
            break;
        }
    memcpy(s->auth_codes[slot], code, sizeof(code));
    pthread_mutex_unlock(&s->mu);
    *status = 200;
    return base_buf_printf(body, "{\"code\":\"%s\"}", code);
}

int sim_admin_handle(struct sim *s, const char *method, const char *path, struct MHD_Connection *c,
                     const char *upload, size_t upload_len, int *status, struct base_buf *body)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    *status = 200;
    if (strcmp(path, "/__admin/stats") == 0 && get)
        return admin_stats(s, body);
    if (strcmp(path, "/__admin/reset") == 0 && post) {
        sim_limits_reset(s);
        return admin_stats(s, body);
    }
    if (strcmp(path, "/__admin/truth") == 0 && get)
        return admin_truth(s, c, status, body);
    if (strcmp(path, "/__admin/lists") == 0 && get) {
        *status = 200;
        return sim_lists_index(s, body);
    }
    if (strcmp(path, "/__admin/mutate") == 0 && post)
        return admin_mutate(s, c, status, body);
    if (strcmp(path, "/__admin/delete") == 0 && post)
        return admin_delete(s, c, status, body);
    if (strcmp(path, "/__admin/clock") == 0 && (get || post))
        return admin_clock(s, c, method, status, body);
    if (strcmp(path, "/__admin/faults") == 0)
        return admin_faults(s, c, method, status, body);
    if (strcmp(path, "/__admin/limits") == 0 && (get || post))
        return admin_limits(s, c, post, status, body);
    if (strcmp(path, "/__admin/revoke") == 0 && post)
        return admin_revoke(s, c, status, body);
    if (strcmp(path, "/__admin/oauth/code") == 0 && post)
        return admin_oauth_code(s, status, body);
    return body_msg(body, status, 404, "no such admin endpoint");
}

/* ---- OAuth2 token endpoint ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Finds name in a form-encoded body and URL-decodes its value into out (capped). */
static bool form_get(const char *form, size_t len, const char *name, char *out, size_t n)
{
    size_t nlen = strlen(name), i = 0;

    while (i < len) {
        size_t end = i, o = 0;

        while (end < len && form[end] != '&')
            end++;
        if (end - i > nlen && memcmp(form + i, name, nlen) == 0 && form[i + nlen] == '=') {
            size_t k;

            for (k = i + nlen + 1; k < end && o + 1 < n; k++) {
                if (form[k] == '+') {
                    out[o++] = ' ';
                } else if (form[k] == '%' && k + 2 < end && hexval(form[k + 1]) >= 0 &&
                           hexval(form[k + 2]) >= 0) {
                    out[o++] = (char)(hexval(form[k + 1]) * 16 + hexval(form[k + 2]));
                    k += 2;
                } else {
                    out[o++] = form[k];
                }
            }
            out[o] = '\0';
            return true;
        }
        i = end + 1;
    }
    return false;
}

static int b64val(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Decodes base64 "id:secret" from an Authorization: Basic header. */
static bool basic_creds(const char *hdr, char *id, size_t idn, char *secret, size_t sn)
{
    char dec[256], *colon;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (hdr == NULL || strncmp(hdr, "Basic ", 6) != 0)
        return false;
    for (hdr += 6; *hdr != '\0' && *hdr != '='; hdr++) {
        int v = b64val(*hdr);

        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= sizeof(dec))
                return false;
            dec[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    dec[o] = '\0';
    colon = strchr(dec, ':');
    if (colon == NULL)
        return false;
    *colon = '\0';
    snprintf(id, idn, "%s", dec);
    snprintf(secret, sn, "%s", colon + 1);
    return true;
}

static int token_error(int *status, struct base_buf *body, int code, const char *err,
                       const char *desc)
{
    *status = code;
    base_buf_reset(body);
    return base_buf_printf(body, "{\"error\":\"%s\",\"error_description\":\"%s\"}", err, desc);
}

/* Issues a token pair; caller holds s->mu. */
static int issue_tokens(struct sim *s, int *status, struct base_buf *body)
{
    struct sim_token *t = &s->tokens[s->ntokens_next++ % SIM_MAX_TOKENS];

    memset(t, 0, sizeof(*t));
    random_token(s, "ksa", t->access, sizeof(t->access));
    random_token(s, "ksr", t->refresh, sizeof(t->refresh));
    t->access_expiry_ms = sim_wall_ms_locked(s) + s->cfg.access_ttl_s * 1000;
    t->live = true;
    *status = 200;
    return base_buf_printf(
        body,
        "{\"access_token\":\"%s\",\"token_type\":\"bearer\",\"expires_in\":%" PRId64
        ",\"refresh_token\":\"%s\",\"scope\":\"full|ks%" PRIu64 ".infusionsoft.com\"}",
        t->access, s->cfg.access_ttl_s, t->refresh, s->cfg.seed);
}

int sim_token_handle(struct sim *s, struct MHD_Connection *c, const char *upload, size_t upload_len,
                     int *status, struct base_buf *body)
{
    char grant[64], id[128] = "", secret[128] = "", code[64], refresh[64];
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t i;
    int rc;

    if (upload == NULL)
        upload = "";
    if (!form_get(upload, upload_len, "grant_type", grant, sizeof(grant)))
        return token_error(status, body, 400, "invalid_request", "Missing grant_type");
    if (!basic_creds(auth, id, sizeof(id), secret, sizeof(secret))) {
        form_get(upload, upload_len, "client_id", id, sizeof(id));
        form_get(upload, upload_len, "client_secret", secret, sizeof(secret));
    }
    if (strcmp(id, s->cfg.client_id) != 0 || strcmp(secret, s->cfg.client_secret) != 0)
        return token_error(status, body, 401, "invalid_client", "Invalid client credentials");

    pthread_mutex_lock(&s->mu);
    if (strcmp(grant, "authorization_code") == 0) {
        bool ok = false;

        if (form_get(upload, upload_len, "code", code, sizeof(code)))
            for (i = 0; i < BASE_ARRAY_SIZE(s->auth_codes); i++)
                if (s->auth_codes[i][0] != '\0' && strcmp(s->auth_codes[i], code) == 0) {
                    s->auth_codes[i][0] = '\0'; /* single use */
                    ok = true;
                }
        rc = ok ? issue_tokens(s, status, body)
                : token_error(status, body, 400, "invalid_grant", "Invalid authorization code");
    } else if (strcmp(grant, "refresh_token") == 0) {
        struct sim_token *t = NULL;

        if (form_get(upload, upload_len, "refresh_token", refresh, sizeof(refresh)))
            for (i = 0; i < SIM_MAX_TOKENS; i++)
                if (s->tokens[i].live && strcmp(s->tokens[i].refresh, refresh) == 0)
                    t = &s->tokens[i];
        if (t != NULL && t->refresh_used)
            s->st.refresh_reused++; /* what locks a real integration out */
        if (t == NULL || t->refresh_used) {
            rc = token_error(status, body, 400, "invalid_grant", "Invalid refresh token");
        } else {
            t->refresh_used = true; /* rotate: the old refresh token dies now */
            s->st.oauth_refreshes++;
            rc = issue_tokens(s, status, body);
        }
    } else {
        rc = token_error(status, body, 400, "unsupported_grant_type", "Unsupported grant type");
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

struct sim_key *sim_token_lookup(struct sim *s, const char *token, bool *expired)
{
    struct sim_key *k = NULL;
    size_t i;

    *expired = false;
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < SIM_MAX_TOKENS; i++) {
        const struct sim_token *t = &s->tokens[i];

        if (!t->live || strcmp(t->access, token) != 0)
            continue;
        if (sim_wall_ms_locked(s) >= t->access_expiry_ms)
            *expired = true;
        else
            k = &s->keys[SIM_MAX_KEYS];
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return k;
}
