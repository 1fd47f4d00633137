/*
 * routes.c: keapsim's HTTP side. One libmicrohttpd daemon on 127.0.0.1, a thread per
 * connection (so --latency and slow faults delay only their own connection).
 *
 * Words used here:
 *   request  one HTTP request; counted at arrival (limits.c), answered once its body is in.
 *   reply    what a handler produced: a status, a JSON body and whether the x-keap-* headers
 *            go with it; send_reply() turns it into an MHD response, applying any fault.
 *   API      everything under /crm/rest: needs a key (X-Keap-API-Key) or a bearer token, is
 *            rate limited and carries the x-keap-* headers. the admin endpoints and /token do not.
 *
 * v1 contacts list (KEAP_API.md, "Paging"):
 *   limit defaults to 1000 and is clamped to 1..1000; offset >= 0; since <= last_updated <
 *   until, compared on the record's exact last_updated_utc_millis; order one of id,
 *   date_created, last_updated, name (given then family), firstName, email, ties broken by id;
 *   order_direction ASCENDING (default) or DESCENDING. count is the total number of records
 *   that match the filter (not the page size). next/previous are as unreliable as Keap's:
 *   next is always present, says limit=<records on this page> and offset=<offset + limit>, and
 *   drops optional_properties and order_direction (compare fixtures/v1-opportunities-page.json).
 */
#include "keapsim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_BUF_MAX ((size_t)1 << 30)
#define DRIP_CHUNK   64
#define LONG_STR_LEN (1024 * 1024)

/* Per-request state, kept in MHD's con_cls between calls. */
struct req {
    struct base_buf upload;
    int64_t arrival_us; /* CLOCK_MONOTONIC, microseconds */
};

struct reply {
    int status;
    struct base_buf body;
    bool keap_headers; /* add the x-keap-* headers from view */
    struct sim_quota_view view;
    int64_t retry_after_s;  /* -1: no Retry-After header */
    struct sim_fault fault; /* kind SIM_FAULT_KIND_MAX: none */
};

/* A body served through a content reader (faults that need to control the bytes on the wire). */
struct stream {
    char *data;
    size_t len;      /* bytes to serve before the ending below */
    bool end_error;  /* close the connection instead of ending cleanly */
    int64_t drip_ms; /* pause between chunks; 0 none */
};

static const char spike_fmt[] =
    "{\"fault\":{\"faultstring\":\"Spike arrest violation. Allowed rate : MessageRate{"
    "messagesPerPeriod=%" PRId64 ", periodInMicroseconds=1000000, maxBurstMessageCount=1.0}\","
    "\"detail\":{\"errorcode\":\"policies.ratelimit.SpikeArrestViolation\"}}}";
static const char quota_fmt[] =
    "{\"fault\":{\"faultstring\":\"Rate limit quota violation. Quota limit exceeded. "
    "Identifier : %s\",\"detail\":{\"errorcode\":\"policies.ratelimit.QuotaViolation\"}}}";
static const char invalid_token_body[] =
    "{\"fault\":{\"faultstring\":\"Invalid Access Token\",\"detail\":{\"errorcode\":"
    "\"keymanagement.service.invalid_access_token\"}}}";
static const char expired_token_body[] =
    "{\"fault\":{\"faultstring\":\"Access Token expired\",\"detail\":{\"errorcode\":"
    "\"keymanagement.service.access_token_expired\"}}}";
static const char html_body[] =
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 "
    "Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body></html>\n";

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts;

    if (us <= 0)
        return;
    ts.tv_sec = (time_t)(us / 1000000);
    ts.tv_nsec = (long)(us % 1000000) * 1000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static int add_header_i64(struct MHD_Response *r, const char *name, int64_t v)
{
    char num[32];

    snprintf(num, sizeof(num), "%" PRId64, v);
    return MHD_add_response_header(r, name, num) == MHD_YES ? 0 : BASE_ENOMEM;
}

/* The x-keap-* headers of KEAP_API.md. A window that is off (limit 0) sends none. */
static void add_keap_headers(struct sim *s, struct MHD_Response *r, const struct sim_quota_view *v,
                             bool blank)
{
    char tenant[64];

    snprintf(tenant, sizeof(tenant), "ks%" PRIu64 ".infusionsoft.com", s->cfg.seed);
    if (blank) {
        static const char *const names[] = {
            "x-keap-product-quota-limit",    "x-keap-product-quota-available",
            "x-keap-product-quota-used",     "x-keap-product-quota-expiry-time",
            "x-keap-product-throttle-limit", "x-keap-product-throttle-available",
            "x-keap-product-throttle-used",  "x-keap-tenant-id"};
        size_t i;

        for (i = 0; i < BASE_ARRAY_SIZE(names); i++)
            MHD_add_response_header(r, names[i], " "); /* MHD refuses "" */
        return;
    }
    if (v->day_limit > 0) {
        add_header_i64(r, "x-keap-product-quota-limit", v->day_limit);
        MHD_add_response_header(r, "x-keap-product-quota-time-unit", "day");
        MHD_add_response_header(r, "x-keap-product-quota-interval", "1");
        add_header_i64(r, "x-keap-product-quota-available",
                       v->day_limit > v->day_used ? v->day_limit - v->day_used : 0);
        add_header_i64(r, "x-keap-product-quota-used", v->day_used);
        add_header_i64(r, "x-keap-product-quota-expiry-time", v->day_expiry_ms);
    }
    if (v->thr_limit > 0) {
        add_header_i64(r, "x-keap-product-throttle-limit", v->thr_limit);
        MHD_add_response_header(r, "x-keap-product-throttle-time-unit", "minute");
        MHD_add_response_header(r, "x-keap-product-throttle-interval", "1");
        add_header_i64(r, "x-keap-product-throttle-available",
                       v->thr_limit > v->thr_used ? v->thr_limit - v->thr_used : 0);
        add_header_i64(r, "x-keap-product-throttle-used", v->thr_used);
    }
    MHD_add_response_header(r, "x-keap-tenant-id", tenant);
    if (v->ten_limit > 0) {
        add_header_i64(r, "x-keap-tenant-throttle-limit", v->ten_limit);
        MHD_add_response_header(r, "x-keap-tenant-throttle-time-unit", "minute");
        MHD_add_response_header(r, "x-keap-tenant-throttle-interval", "1");
        add_header_i64(r, "x-keap-tenant-throttle-available",
                       v->ten_limit > v->ten_used ? v->ten_limit - v->ten_used : 0);
        add_header_i64(r, "x-keap-tenant-throttle-used", v->ten_used);
    }
    if (v->spike_limit > 0) {
        char spike[32];

        snprintf(spike, sizeof(spike), "%" PRId64 "ps", v->spike_limit);
        MHD_add_response_header(r, "x-keap-product-spike-limit", spike);
    }
}

static ssize_t stream_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    size_t n;

    if (pos >= st->len)
        return st->end_error ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    n = st->len - (size_t)pos;
    if (st->drip_ms > 0) {
        if (pos > 0)
            sleep_us(st->drip_ms * 1000);
        if (n > DRIP_CHUNK)
            n = DRIP_CHUNK;
    }
    if (n > max)
        n = max;
    memcpy(buf, st->data + pos, n);
    return (ssize_t)n;
}

static void stream_free_cb(void *cls)
{
    struct stream *st = cls;

    free(st->data);
    free(st);
}

/* A response whose body comes from a content reader; takes data (malloc'd) in all cases. */
static struct MHD_Response *stream_response(char *data, size_t len, size_t announce, bool end_error,
                                            int64_t drip_ms)
{
    struct stream *st = calloc(1, sizeof(*st));
    struct MHD_Response *r;

    if (st == NULL) {
        free(data);
        return NULL;
    }
    st->data = data;
    st->len = len;
    st->end_error = end_error;
    st->drip_ms = drip_ms;
    r = MHD_create_response_from_callback(announce, DRIP_CHUNK * 16, stream_read_cb, st,
                                          stream_free_cb);
    if (r == NULL)
        stream_free_cb(st);
    return r;
}

/* Applies the record-content faults to a finished JSON body (in place, in reply->body). */
static int corrupt_records(struct reply *rp)
{
    struct base_buf out;
    const char *p = rp->body.data;
    const char *hit;
    size_t extra;
    int rc = 0;

    /* Every record has "given_name":"..."; put the fault inside the first one's value. */
    hit = p ? strstr(p, "\"given_name\":\"") : NULL;
    if (hit == NULL)
        return 0;
    if (rp->fault.kind != SIM_FAULT_DEEP) /* deep: a new member "deep":[[...]], before it */
        hit += strlen("\"given_name\":\"");
    extra = rp->fault.kind == SIM_FAULT_HUGE
                ? (size_t)(rp->fault.param ? rp->fault.param : 100) << 20
            : rp->fault.kind == SIM_FAULT_DEEP
                ? 2 * (size_t)(rp->fault.param ? rp->fault.param : 10000) + 16
                : LONG_STR_LEN;
    base_buf_init(&out, rp->body.len + extra + 64);
    rc = base_buf_append(&out, p, (size_t)(hit - p));
    if (rc == 0) {
        switch (rp->fault.kind) {
        case SIM_FAULT_DEEP:
            rc = base_buf_puts(&out, "\"deep\":");
            for (size_t i = 0; rc == 0 && i < (extra - 16) / 2; i++)
                rc = base_buf_append(&out, "[", 1);
            for (size_t i = 0; rc == 0 && i < (extra - 16) / 2; i++)
                rc = base_buf_append(&out, "]", 1);
            if (rc == 0)
                rc = base_buf_append(&out, ",", 1);
            break;
        case SIM_FAULT_HUGE:
            rc = base_buf_reserve(&out, extra);
            if (rc == 0) {
                memset(out.data + out.len, 'x', extra);
                out.len += extra;
            }
            break;
        case SIM_FAULT_NUL:
            rc = base_buf_puts(&out, "Nul\\u0000Byte ");
            break;
        case SIM_FAULT_UTF8:
            rc = base_buf_puts(&out, "\xF0\x9F\x98\x80 \xF0\x9F\x8E\x89 ");
            break;
        case SIM_FAULT_LONGSTR: {
            size_t i;

            for (i = 0; rc == 0 && i < LONG_STR_LEN / 16; i++)
                rc = base_buf_puts(&out, "LongStringxxxxx ");
            break;
        }
        default:
            break;
        }
    }
    if (rc == 0)
        rc = base_buf_append(&out, hit, rp->body.len - (size_t)(hit - p));
    if (rc < 0) {
        base_buf_free(&out);
        return rc;
    }
    base_buf_free(&rp->body);
    rp->body = out;
    return 0;
}

/* Sends rp (consumes its body). Returns MHD_YES/MHD_NO as MHD expects. */
static enum MHD_Result send_reply(struct sim *s, struct MHD_Connection *c, struct reply *rp)
{
    struct MHD_Response *resp = NULL;
    enum sim_fault_kind fk = rp->fault.kind;
    enum MHD_Result ret;
    char *data;
    size_t len;
    int status = rp->status;
    bool keap = rp->keap_headers, blank = false;

    switch (fk) {
    case SIM_FAULT_5XX:
        base_buf_reset(&rp->body);
        status = rp->fault.param ? (int)rp->fault.param : 500;
        base_buf_printf(&rp->body,
                        "{\"message\":\"An error occurred while processing the request\"}");
        break;
    case SIM_FAULT_HTML:
        base_buf_reset(&rp->body);
        status = 502;
        base_buf_puts(&rp->body, html_body);
        break;
    case SIM_FAULT_MALFORMED:
        /* all the bytes, but the closing brace turned into a syntax error */
        if (rp->body.len > 0 && rp->body.data[rp->body.len - 1] == '}') {
            rp->body.len--;
            base_buf_puts(&rp->body, ",,}");
        }
        break;
    case SIM_FAULT_BARE429:
        base_buf_reset(&rp->body);
        status = 429;
        keap = false;
        break;
    case SIM_FAULT_BLANK429:
        base_buf_reset(&rp->body);
        status = 429;
        blank = true;
        break;
    case SIM_FAULT_NOHEADERS:
        keap = false;
        break;
    case SIM_FAULT_BLANKHEADERS:
        blank = true;
        break;
    case SIM_FAULT_NUL:
    case SIM_FAULT_UTF8:
    case SIM_FAULT_LONGSTR:
    case SIM_FAULT_DEEP:
    case SIM_FAULT_HUGE:
        if (status == 200)
            corrupt_records(rp);
        break;
    default:
        break;
    }

    len = rp->body.len;
    data = rp->body.data;
    if (data == NULL) {
        data = strdup("");
        if (data == NULL)
            return MHD_NO;
    }
    rp->body.data = NULL;
    rp->body.len = 0;
    if (fk == SIM_FAULT_RESET) /* announce it all, send half, drop the connection */
        resp = stream_response(data, len / 2, len, true, 0);
    else if (fk == SIM_FAULT_TRUNCATE) /* a complete HTTP message holding half the JSON */
        resp = stream_response(data, len / 2, len / 2, false, 0);
    else if (fk == SIM_FAULT_DRIP)
        resp = stream_response(data, len, len, false, rp->fault.param ? rp->fault.param : 50);
    else
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        if (fk != SIM_FAULT_RESET && fk != SIM_FAULT_TRUNCATE && fk != SIM_FAULT_DRIP)
            free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            fk == SIM_FAULT_HTML ? "text/html" : SIM_CONTENT_TYPE);
    if (keap)
        add_keap_headers(s, resp, &rp->view, blank);
    if (fk == SIM_FAULT_BLANK429)
        MHD_add_response_header(resp, "Retry-After", "");
    else if (rp->retry_after_s >= 0 && fk != SIM_FAULT_BARE429)
        add_header_i64(resp, "Retry-After", rp->retry_after_s);
    ret = MHD_queue_response(c, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int reply_text(struct reply *rp, int status, const char *body)
{
    rp->status = status;
    base_buf_reset(&rp->body);
    return base_buf_puts(&rp->body, body);
}

static int reply_v1_error(struct reply *rp, int status, const char *msg)
{
    rp->status = status;
    base_buf_reset(&rp->body);
    return base_buf_printf(&rp->body, "{\"message\":\"%s\"}", msg);
}

static int reply_v2_error(struct reply *rp, int status, const char *status_name, const char *msg)
{
    rp->status = status;
    base_buf_reset(&rp->body);
    return base_buf_printf(&rp->body,
                           "{\"code\":%d,\"message\":\"%s\",\"status\":\"%s\",\"details\":[]}",
                           status, msg, status_name);
}

/* Ordering of v1/v2 lists: ascending comparators, ties broken by id. */
static int cmp_id(const struct sim_contact *a, const struct sim_contact *b)
{
    return (a->id > b->id) - (a->id < b->id);
}

static int cmp_created(const void *pa, const void *pb)
{
    const struct sim_contact *a = *(const struct sim_contact *const *)pa;
    const struct sim_contact *b = *(const struct sim_contact *const *)pb;
    int c = (a->created_ms > b->created_ms) - (a->created_ms < b->created_ms);

    return c ? c : cmp_id(a, b);
}

static int cmp_updated(const void *pa, const void *pb)
{
    const struct sim_contact *a = *(const struct sim_contact *const *)pa;
    const struct sim_contact *b = *(const struct sim_contact *const *)pb;
    int c = (a->updated_ms > b->updated_ms) - (a->updated_ms < b->updated_ms);

    return c ? c : cmp_id(a, b);
}

static int cmp_name(const void *pa, const void *pb)
{
    const struct sim_contact *a = *(const struct sim_contact *const *)pa;
    const struct sim_contact *b = *(const struct sim_contact *const *)pb;
    int c = strcmp(a->name, b->name);

    return c ? c : cmp_id(a, b);
}

static int cmp_email(const void *pa, const void *pb)
{
    const struct sim_contact *a = *(const struct sim_contact *const *)pa;
    const struct sim_contact *b = *(const struct sim_contact *const *)pb;
    int c = strcmp(a->email, b->email);

    return c ? c : cmp_id(a, b);
}

typedef int (*sim_cmp_fn)(const void *, const void *);

/* A list query over contacts, shared by v1 and v2. */
struct contact_query {
    int64_t since_ms, until_ms; /* INT64_MIN / INT64_MAX when absent */
    sim_cmp_fn cmp;             /* NULL: by id */
    bool descending;
    size_t offset, limit;
};

/*
 * Selects, orders and slices contacts under the read lock; calls emit for each record of the
 * page (emit appends to out). Sets *total to the number that matched.
 */
static int contacts_select(struct sim *s, const struct contact_query *q, bool v2, bool cf,
                           struct base_buf *out, size_t *total, size_t *served, int64_t *last_id)
{
    struct sim_data *d = &s->data;
    const struct sim_contact **sel = NULL;
    size_t i, m = 0, end;
    int rc = 0;

    pthread_rwlock_rdlock(&d->lock);
    sel = malloc((d->n ? d->n : 1) * sizeof(*sel));
    if (sel == NULL) {
        rc = BASE_ENOMEM;
        goto out;
    }
    for (i = 0; i < d->n; i++) {
        const struct sim_contact *r = &d->recs[i];

        if (r->updated_ms >= q->since_ms && r->updated_ms < q->until_ms)
            sel[m++] = r;
    }
    if (q->cmp != NULL)
        qsort(sel, m, sizeof(*sel), q->cmp);
    if (q->descending)
        for (i = 0; i < m / 2; i++) {
            const struct sim_contact *t = sel[i];

            sel[i] = sel[m - 1 - i];
            sel[m - 1 - i] = t;
        }
    end = q->offset < m ? (m - q->offset < q->limit ? m : q->offset + q->limit) : q->offset;
    for (i = q->offset; rc == 0 && i < end; i++) {
        const struct sim_contact *r = sel[i];

        if (i > q->offset)
            rc = base_buf_puts(out, ",");
        if (rc == 0 && v2)
            rc = base_buf_append(out, r->v2, r->v2_len);
        if (rc == 0 && !v2)
            rc = base_buf_append(out, r->body, r->body_len);
        if (rc == 0 && !v2 && cf)
            rc = base_buf_append(out, r->cf, r->cf_len);
        if (rc == 0 && !v2)
            rc = base_buf_puts(out, "}");
        if (rc == 0)
            *last_id = r->id;
    }
    *total = m;
    *served = end > q->offset ? end - q->offset : 0;
out:
    pthread_rwlock_unlock(&d->lock);
    free(sel);
    return rc;
}

static int parse_count(const char *v, int64_t lo, int64_t *out)
{
    int64_t n;

    if (v == NULL)
        return 1; /* absent */
    if (base_parse_int64(v, &n) < 0 || n < lo)
        return BASE_EINVAL;
    *out = n;
    return 0;
}

/* Appends "&name=value" (value URL-encoded enough for timestamps: ':' and '+' escaped). */
static int append_param(struct base_buf *b, const char *name, const char *value)
{
    const char *p;
    int rc;

    if (value == NULL)
        return 0;
    rc = base_buf_printf(b, "&%s=", name);
    for (p = value; rc == 0 && *p; p++) {
        if (*p == '+' || *p == '&' || *p == ' ' || *p == '#' || *p == '%')
            rc = base_buf_printf(b, "%%%02X", (unsigned char)*p);
        else
            rc = base_buf_append(b, p, 1);
    }
    return rc;
}

int sim_v1_links(struct base_buf *b, struct MHD_Connection *c, const char *path, size_t served,
                 size_t offset, size_t limit)
{
    static const char *const kept[] = {"since", "until", "order"};
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    size_t i;
    int rc;

    if (host == NULL || strlen(host) > 256)
        host = "127.0.0.1";
    rc = base_buf_printf(b, "\"next\":\"http://%s/crm/rest%s/?limit=%zu&offset=%zu", host, path,
                         served, offset + limit);
    for (i = 0; rc == 0 && i < BASE_ARRAY_SIZE(kept); i++)
        rc = append_param(b, kept[i], arg(c, kept[i]));
    if (rc == 0)
        rc = base_buf_printf(b, "\",\"previous\":\"http://%s/crm/rest%s/?limit=%zu&offset=%zu",
                             host, path, limit, offset > limit ? offset - limit : 0);
    for (i = 0; rc == 0 && i < BASE_ARRAY_SIZE(kept); i++)
        rc = append_param(b, kept[i], arg(c, kept[i]));
    if (rc == 0)
        rc = base_buf_puts(b, "\"");
    return rc;
}

static void v1_contacts(struct sim *s, struct MHD_Connection *c, struct reply *rp)
{
    struct contact_query q = {INT64_MIN, INT64_MAX, NULL, false, 0, SIM_PAGE_MAX};
    const char *order = arg(c, "order"), *dir = arg(c, "order_direction");
    const char *since = arg(c, "since"), *until = arg(c, "until");
    const char *opt = arg(c, "optional_properties");
    int64_t limit = SIM_PAGE_MAX, offset = 0, last_id = 0;
    size_t total = 0, served = 0;
    bool cf = opt != NULL && strstr(opt, "custom_fields") != NULL;
    int rc;

    if (parse_count(arg(c, "limit"), INT64_MIN, &limit) < 0) {
        reply_v1_error(rp, 400, "Invalid limit");
        return;
    }
    if (parse_count(arg(c, "offset"), 0, &offset) < 0) {
        reply_v1_error(rp, 400, "Invalid offset");
        return;
    }
    if (limit <= 0 || limit > SIM_PAGE_MAX)
        limit = SIM_PAGE_MAX;
    q.limit = (size_t)limit;
    q.offset = (size_t)offset;
    if ((since && base_time_parse(since, &q.since_ms) < 0) ||
        (until && base_time_parse(until, &q.until_ms) < 0)) {
        reply_v1_error(rp, 400, "Invalid date format, expected ISO-8601");
        return;
    }
    if (order == NULL || strcmp(order, "id") == 0)
        q.cmp = NULL;
    else if (strcmp(order, "date_created") == 0)
        q.cmp = cmp_created;
    else if (strcmp(order, "last_updated") == 0)
        q.cmp = cmp_updated;
    else if (strcmp(order, "name") == 0 || strcmp(order, "firstName") == 0)
        q.cmp = cmp_name;
    else if (strcmp(order, "email") == 0)
        q.cmp = cmp_email;
    else {
        reply_v1_error(rp, 400, "Invalid order");
        return;
    }
    if (dir != NULL && strcmp(dir, "DESCENDING") == 0)
        q.descending = true;
    else if (dir != NULL && strcmp(dir, "ASCENDING") != 0) {
        reply_v1_error(rp, 400, "Invalid order_direction");
        return;
    }

    rp->status = 200;
    base_buf_reset(&rp->body);
    rc = base_buf_puts(&rp->body, "{\"contacts\":[");
    if (rc == 0)
        rc = contacts_select(s, &q, false, cf, &rp->body, &total, &served, &last_id);
    if (rc == 0)
        rc = base_buf_printf(&rp->body, "],\"count\":%zu,", s->cfg.count_page ? served : total);
    if (rc == 0)
        rc = sim_v1_links(&rp->body, c, "/v1/contacts", served, q.offset, q.limit);
    if (rc == 0)
        rc = base_buf_puts(&rp->body, "}");
    if (rc < 0)
        reply_v1_error(rp, 500, "An error occurred while processing the request");
}

/*
 * v2 page tokens: "<offset>.<issued sim-clock s>.<query hash>" encoded in hex so clients treat
 * it as opaque. A token older than --token-ttl, or minted for another query, is refused 400.
 */
uint64_t sim_hash_str(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ULL;
    return h * 0x100000001B3ULL;
}

void sim_page_token_make(struct sim *s, uint64_t qhash, uint64_t offset, char *out, size_t n)
{
    int64_t issued_s = sim_wall_ms(s) / 1000;

    snprintf(out, n, "%016" PRIx64 "%012" PRIx64 "%016" PRIx64, offset ^ (qhash & 0xFFFFFFFFu),
             (uint64_t)(issued_s & 0xFFFFFFFFFFFFLL), qhash);
}

int sim_page_token_read(struct sim *s, const char *tok, uint64_t qhash, uint64_t *offset)
{
    char part[17];
    uint64_t a, b, h;
    char *end;

    if (strlen(tok) != 44)
        return BASE_EINVAL;
    memcpy(part, tok, 16);
    part[16] = '\0';
    errno = 0;
    a = strtoull(part, &end, 16);
    if (*end != '\0' || errno)
        return BASE_EINVAL;
    memcpy(part, tok + 16, 12);
    part[12] = '\0';
    b = strtoull(part, &end, 16);
    if (*end != '\0' || errno)
        return BASE_EINVAL;
    h = strtoull(tok + 28, &end, 16);
    if (*end != '\0' || errno || h != qhash)
        return BASE_EINVAL;
    if (s->cfg.token_ttl_s > 0 && sim_wall_ms(s) / 1000 - (int64_t)b > s->cfg.token_ttl_s)
        return BASE_ERANGE;
    *offset = a ^ (qhash & 0xFFFFFFFFu);
    return 0;
}

/* Parses a v2 filter "a==x;b==y" into q; returns 0 or BASE_EINVAL with the bad field in bad. */
static int v2_filter(const char *filter, const char *since_name, const char *until_name,
                     struct contact_query *q, char *bad, size_t badn)
{
    char buf[512], *p, *next;

    if (filter == NULL || *filter == '\0')
        return 0;
    if (strlen(filter) >= sizeof(buf)) {
        snprintf(bad, badn, "filter");
        return BASE_EINVAL;
    }
    memcpy(buf, filter, strlen(filter) + 1);
    for (p = buf; p != NULL; p = next) {
        char *eq;
        int64_t ms;

        next = strchr(p, ';');
        if (next != NULL)
            *next++ = '\0';
        eq = strstr(p, "==");

        if (eq == NULL) {
            snprintf(bad, badn, "%.64s", p);
            return BASE_EINVAL;
        }
        *eq = '\0';
        if (strcmp(p, since_name) == 0 && base_time_parse(eq + 2, &ms) == 0)
            q->since_ms = ms;
        else if (strcmp(p, until_name) == 0 && base_time_parse(eq + 2, &ms) == 0)
            q->until_ms = ms;
        else {
            snprintf(bad, badn, "%.64s", p);
            return BASE_EINVAL;
        }
    }
    return 0;
}

static void v2_contacts(struct sim *s, struct MHD_Connection *c, struct reply *rp)
{
    struct contact_query q = {INT64_MIN, INT64_MAX, NULL, false, 0, SIM_PAGE_MAX};
    const char *filter = arg(c, "filter"), *order_by = arg(c, "order_by");
    const char *ptok = arg(c, "page_token");
    int64_t page_size = SIM_PAGE_MAX, last_id = 0;
    uint64_t qhash;
    size_t total = 0, served = 0;
    char bad[80], tok[64], msg[160];
    int rc;

    rc = parse_count(arg(c, "page_size"), INT64_MIN, &page_size);
    if (rc < 0) {
        reply_v2_error(rp, 400, "INVALID_ARGUMENT", "Invalid page_size");
        return;
    }
    if (page_size <= 0 || page_size > SIM_PAGE_MAX)
        page_size = SIM_PAGE_MAX;
    q.limit = (size_t)page_size;
    if (v2_filter(filter, "start_update_time", "end_update_time", &q, bad, sizeof(bad)) < 0) {
        snprintf(msg, sizeof(msg), "Invalid filter field: %s", bad);
        reply_v2_error(rp, 400, "INVALID_ARGUMENT", msg);
        return;
    }
    if (order_by != NULL) {
        char field[32] = "", dir[8] = "asc";

        if (sscanf(order_by, "%31[a-z_] %7s", field, dir) < 1 ||
            (strcmp(dir, "asc") != 0 && strcmp(dir, "desc") != 0)) {
            reply_v2_error(rp, 400, "INVALID_ARGUMENT", "Invalid order_by");
            return;
        }
        if (strcmp(field, "id") == 0)
            q.cmp = NULL;
        else if (strcmp(field, "create_time") == 0)
            q.cmp = cmp_created;
        else if (strcmp(field, "update_time") == 0)
            q.cmp = cmp_updated;
        else if (strcmp(field, "email") == 0)
            q.cmp = cmp_email;
        else {
            reply_v2_error(rp, 400, "INVALID_ARGUMENT", "Invalid order_by field");
            return;
        }
        q.descending = strcmp(dir, "desc") == 0;
    }
    qhash = sim_hash_str(sim_hash_str(sim_hash_str(0xCBF29CE484222325ULL, filter), order_by),
                         "v2contacts");
    qhash ^= (uint64_t)page_size;
    if (ptok != NULL && *ptok != '\0') {
        uint64_t off;

        rc = sim_page_token_read(s, ptok, qhash, &off);
        if (rc < 0) {
            reply_v2_error(rp, 400, "INVALID_ARGUMENT",
                           rc == BASE_ERANGE ? "Page token has expired" : "Invalid page token");
            return;
        }
        q.offset = (size_t)off;
    }
    rp->status = 200;
    base_buf_reset(&rp->body);
    rc = base_buf_puts(&rp->body, "{\"contacts\":[");
    if (rc == 0)
        rc = contacts_select(s, &q, true, true, &rp->body, &total, &served, &last_id);
    tok[0] = '\0';
    if (q.offset + served < total)
        sim_page_token_make(s, qhash, q.offset + served, tok, sizeof(tok));
    if (rc == 0)
        rc = base_buf_printf(&rp->body, "],\"next_page_token\":\"%s\"}", tok);
    if (rc < 0)
        reply_v2_error(rp, 500, "INTERNAL", "An error occurred while processing the request");
}

/* Answers API requests (path starts after /crm/rest). */
static void api_route(struct sim *s, struct MHD_Connection *c, const char *method, const char *path,
                      struct reply *rp)
{
    int rc = 0;

    if (strcmp(method, "GET") != 0) {
        reply_v1_error(rp, 405, "Method not allowed");
        return;
    }
    if (strcmp(path, "/v1/contacts") == 0 || strcmp(path, "/v1/contacts/") == 0) {
        v1_contacts(s, c, rp);
        return;
    }
    if (strcmp(path, "/v2/contacts") == 0 || strcmp(path, "/v2/contacts/") == 0) {
        v2_contacts(s, c, rp);
        return;
    }
    rc = sim_lists_model(s, path, &rp->status, &rp->body);
    if (rc != BASE_ENOTFOUND)
        ; /* an object's model, or its error */
    else if (strncmp(path, "/v1/contacts/", 13) == 0)
        rc = sim_res_contact_sub(s, c, path, &rp->status, &rp->body);
    else
        rc = sim_lists_handle(s, c, path, &rp->status, &rp->body); /* the other lists */
    if (rc == BASE_ENOTFOUND && strncmp(path, "/v2/", 4) == 0)
        reply_v2_error(rp, 404, "NOT_FOUND", "Not found");
    else if (rc == BASE_ENOTFOUND)
        reply_v1_error(rp, 404, "Not found");
    else if (rc < 0)
        reply_v1_error(rp, 500, "An error occurred while processing the request");
}

/* Finds the caller's key; NULL if none matches. *expired set for an expired bearer token. */
static struct sim_key *authenticate(struct sim *s, struct MHD_Connection *c, bool *expired)
{
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Keap-API-Key");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    struct sim_key *found = NULL;
    size_t i;

    *expired = false;
    if (key != NULL) {
        pthread_mutex_lock(&s->mu);
        for (i = 0; i < s->nkeys; i++) {
            struct sim_key *k = &s->keys[i];

            if (strcmp(k->secret, key) != 0)
                continue;
            if (k->revoke_at_ms != 0 && sim_wall_ms_locked(s) >= k->revoke_at_ms)
                k->revoked = true;
            if (!k->revoked)
                found = k;
            break;
        }
        pthread_mutex_unlock(&s->mu);
        return found;
    }
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0)
        return sim_token_lookup(s, auth + 7, expired);
    return NULL;
}

static void api_request(struct sim *s, struct MHD_Connection *c, const char *method,
                        const char *path, struct reply *rp)
{
    struct sim_key *key;
    enum sim_verdict v;
    bool expired;

    key = authenticate(s, c, &expired);
    v = sim_limits_admit(s, key, &rp->view);
    rp->keap_headers = true;
    if (key == NULL) {
        reply_text(rp, 401, expired ? expired_token_body : invalid_token_body);
        return;
    }
    if (v != SIM_VERDICT_OK) {
        rp->status = 429;
        base_buf_reset(&rp->body);
        if (v == SIM_VERDICT_SECOND)
            base_buf_printf(&rp->body, spike_fmt, s->cfg.lim.per_s);
        else
            base_buf_printf(&rp->body, quota_fmt, v == SIM_VERDICT_TENANT ? "tenant" : key->id);
        if (s->cfg.retry_after == 0)
            rp->retry_after_s = 0;
        else if (s->cfg.retry_after > 0)
            rp->retry_after_s = (sim_limits_retry_ms(s, key, v) + 999) / 1000;
        return;
    }
    if (sim_faults_pick(s, path, &rp->fault) < 0)
        rp->fault.kind = SIM_FAULT_KIND_MAX;
    api_route(s, c, method, path, rp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct sim *s = cls;
    struct req *rq = *con_cls;
    struct reply rp;
    enum MHD_Result ret;

    if (rq == NULL) {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL)
            return MHD_NO;
        base_buf_init(&rq->upload, SIM_BODY_MAX);
        rq->arrival_us = mono_us();
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        if (base_buf_append(&rq->upload, upload_data, *upload_data_size) < 0)
            return MHD_NO; /* over SIM_BODY_MAX: drop the connection */
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&rp, 0, sizeof(rp));
    base_buf_init(&rp.body, PAGE_BUF_MAX);
    rp.retry_after_s = -1;
    rp.fault.kind = SIM_FAULT_KIND_MAX;
    if (strncmp(url, "/__admin/", 9) == 0) {
        if (sim_admin_handle(s, method, url, c, rq->upload.data, rq->upload.len, &rp.status,
                             &rp.body) < 0) {
            rp.status = 500;
            base_buf_reset(&rp.body);
            base_buf_puts(&rp.body, "{\"message\":\"could not answer\"}");
        }
    } else if (strcmp(url, "/token") == 0) {
        if (sim_token_handle(s, c, rq->upload.data, rq->upload.len, &rp.status, &rp.body) < 0)
            reply_text(&rp, 500, "{\"error\":\"server_error\"}");
    } else if (strncmp(url, "/crm/rest/", 10) == 0) {
        int64_t delay = 0, upstream = 0;

        if (s->cfg.arrival_jitter_ms > 0) {
            /* The network before the gateway: the request arrives (and is counted) a
             * uniform 0..N ms after it was sent, so a client's even spacing reaches the
             * windows unevenly, as it does at Keap. */
            pthread_mutex_lock(&s->mu);
            upstream =
                (int64_t)(sim_rng_next(&s->fault_rng) % (uint64_t)(s->cfg.arrival_jitter_ms + 1));
            pthread_mutex_unlock(&s->mu);
            sleep_us(upstream * 1000);
        }
        api_request(s, c, method, url + 9, &rp);
        if (s->cfg.latency_ms > 0 || s->cfg.jitter_ms > 0) {
            pthread_mutex_lock(&s->mu);
            delay = s->cfg.latency_ms;
            if (s->cfg.jitter_ms > 0)
                delay +=
                    (int64_t)(sim_rng_next(&s->fault_rng) % (uint64_t)(2 * s->cfg.jitter_ms + 1)) -
                    s->cfg.jitter_ms;
            pthread_mutex_unlock(&s->mu);
        }
        if (rp.fault.kind == SIM_FAULT_LATENCY)
            delay += rp.fault.param ? rp.fault.param : 2000;
        /* counted at arrival, then delayed */
        sleep_us(delay * 1000 - (mono_us() - rq->arrival_us - upstream * 1000));
    } else {
        reply_v1_error(&rp, 404, "Not found");
    }
    ret = send_reply(s, c, &rp);
    base_buf_free(&rp.body);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *con_cls;

    if (rq == NULL)
        return;
    base_buf_free(&rq->upload);
    free(rq);
    *con_cls = NULL;
}

int sim_http_start(struct sim *s, int port, int *bound_port, void **daemon)
{
    struct sockaddr_in addr;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                         MHD_USE_POLL | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem tls[3] = {
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* HTTPS with --tls-cert and --tls-key (libmicrohttpd's GnuTLS), else plain HTTP. */
    if (s->cfg.tls_cert != NULL && s->cfg.tls_key != NULL) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            base_log_error("this libmicrohttpd has no TLS support");
            return BASE_EIO;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->cfg.tls_key};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->cfg.tls_cert};
    }
    d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, tls,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)1000, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (d == NULL)
        return BASE_EIO;
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        MHD_stop_daemon(d);
        return BASE_EIO;
    }
    *bound_port = info->port;
    *daemon = d;
    return 0;
}

void sim_http_stop(void *daemon)
{
    if (daemon != NULL)
        MHD_stop_daemon(daemon);
}
