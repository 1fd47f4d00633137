/*
 * lists_page.c: one page of a list (see lists_int.h for the words): v1 limit/offset/order/
 * since/until, v2 page_size/page_token/order_by/filter, /v1/products/sync, and the errors
 * Keap answers each with. A request enumerates the entries, keeps those its filter selects,
 * sorts them when the order is not the id's, and renders the page's records on the way out.
 */
#include "lists_int.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILTER_MAX 1024
#define ENT_MAX    ((size_t)64 * 1024 * 1024) /* entries one request may sort */

static const char *qarg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- a page ----------------------------------------------------------------------------- */

struct page {
    struct sim *s;
    int ri;
    const struct list_query *q;
    struct sim_gen_node *node;
    struct base_buf *out;
    size_t matched, served;
    bool collect; /* sort afterwards instead of rendering in id order */
    struct list_ent *arr;
    size_t narr, cap;
};

static bool ent_matches(const struct list_query *q, const struct list_ent *e)
{
    int k;

    for (k = 0; k < KEY_NONE; k++)
        if (e->key[k] < q->lo[k] || e->key[k] >= q->hi[k])
            return false;
    return true;
}

/* Replaces the closing brace of the record just rendered into b by the hidden time ms as
 * member name (v2 form), then the brace: what fields=create_time,update_time adds to a v2
 * company (the spec leaves both out unless named). */
static int add_time(struct base_buf *b, const char *name, int64_t ms)
{
    char ts[40];
    int rc;

    if (b->len == 0 || b->data[b->len - 1] != '}')
        return BASE_EINVAL;
    rc = base_time_format(ms, ts, sizeof(ts));
    if (rc < 0)
        return rc;
    b->data[--b->len] = '\0';
    return base_buf_printf(b, "%s\"%s\":\"%s\"}",
                           b->len > 0 && b->data[b->len - 1] == '{' ? "" : ",", name, ts);
}

static int page_emit(struct page *p, const struct list_ent *e)
{
    int rc = base_buf_puts(p->out, p->served ? "," : "");

    if (rc == 0)
        rc = lists_render_ent(p->s, p->ri, e, p->q->v2, p->q->cf, NULL, p->node, p->out);
    if (rc == 0 && p->q->add_created)
        rc = add_time(p->out, "create_time", e->key[KEY_CREATED]);
    if (rc == 0 && p->q->add_updated)
        rc = add_time(p->out, "update_time", e->key[KEY_UPDATED]);
    p->served++;
    return rc;
}

static int page_cb(void *arg, const struct list_ent *e)
{
    struct page *p = arg;

    if (!ent_matches(p->q, e))
        return 0;
    if (p->collect) {
        if (p->narr == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 1024;
            struct list_ent *grown;

            if (cap > ENT_MAX)
                return BASE_ENOMEM;
            grown = realloc(p->arr, cap * sizeof(*grown));
            if (grown == NULL)
                return BASE_ENOMEM;
            p->arr = grown;
            p->cap = cap;
        }
        p->arr[p->narr++] = *e;
        p->matched++;
        return 0;
    }
    if (p->matched++ >= p->q->offset && p->served < p->q->limit)
        return page_emit(p, e);
    return 0;
}

static enum list_key sort_key; /* qsort has no context argument; set under sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_ent(const void *pa, const void *pb)
{
    const struct list_ent *a = pa, *b = pb;
    int c = (a->key[sort_key] > b->key[sort_key]) - (a->key[sort_key] < b->key[sort_key]);

    return c ? c : (a->key[KEY_ID] > b->key[KEY_ID]) - (a->key[KEY_ID] < b->key[KEY_ID]);
}

/* Fills p->out with the records of the page and counts the matches. */
static int page_fill(struct page *p)
{
    size_t i;
    int rc;

    p->collect = p->q->order != KEY_ID || p->q->desc;
    rc = lists_each_ent(p->s, p->ri, false, page_cb, p);
    if (rc < 0 || !p->collect)
        return rc;
    if (p->q->order != KEY_ID) {
        pthread_mutex_lock(&sort_mu);
        sort_key = p->q->order;
        qsort(p->arr, p->narr, sizeof(*p->arr), cmp_ent);
        pthread_mutex_unlock(&sort_mu);
    }
    for (i = p->q->offset; rc == 0 && i < p->narr && p->served < p->q->limit; i++)
        rc = page_emit(p, &p->arr[p->q->desc ? p->narr - 1 - i : i]);
    return rc;
}

static void query_init(struct list_query *q)
{
    int k;

    memset(q, 0, sizeof(*q));
    for (k = 0; k < KEY_NONE; k++) {
        q->lo[k] = INT64_MIN;
        q->hi[k] = INT64_MAX;
    }
    q->order = KEY_ID;
    q->limit = SIM_PAGE_MAX;
}

static void query_bound(struct list_query *q, const struct list_field *f, int64_t ms)
{
    if (f->until && ms < q->hi[f->key])
        q->hi[f->key] = ms;
    else if (!f->until && ms > q->lo[f->key])
        q->lo[f->key] = ms;
}

int lists_v1_error(int *status, struct base_buf *body, int code, const char *msg)
{
    *status = code;
    base_buf_reset(body);
    return base_buf_printf(body, "{\"message\":\"%s\"}", msg);
}

static int v2_error(int *status, struct base_buf *body, const char *msg, const char *detail)
{
    int rc;

    *status = 400;
    base_buf_reset(body);
    rc = base_buf_puts(body, "{\"code\":400,\"message\":");
    if (rc == 0 && detail != NULL) {
        char m[256];

        snprintf(m, sizeof(m), "%s: %.128s", msg, detail);
        rc = sim_json_str(body, m);
    } else if (rc == 0) {
        rc = sim_json_str(body, msg);
    }
    if (rc == 0)
        rc = base_buf_puts(body, ",\"status\":\"INVALID_ARGUMENT\",\"details\":[]}");
    return rc;
}

static int parse_count(const char *v, int64_t *out)
{
    int64_t n;

    if (v == NULL)
        return 1;
    if (base_parse_int64(v, &n) < 0)
        return BASE_EINVAL;
    *out = n;
    return 0;
}

static const struct list_order *find_order(const struct list_order *o, const char *name)
{
    for (; o != NULL && o->name != NULL; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

int lists_v1_list(struct sim *s, int ri, struct MHD_Connection *c, const char *path, int *status,
                  struct base_buf *body)
{
    const struct list_res *r = &lists_table[ri];
    const char *order = qarg(c, "order"), *dir = qarg(c, "order_direction");
    const char *opt = qarg(c, "optional_properties");
    const struct list_field *f;
    struct list_query q;
    struct page p;
    int64_t limit = SIM_PAGE_MAX, offset = 0;
    int rc;

    query_init(&q);
    if (parse_count(qarg(c, "limit"), &limit) < 0)
        return lists_v1_error(status, body, 400, "Invalid limit");
    if (parse_count(qarg(c, "offset"), &offset) < 0 || offset < 0)
        return lists_v1_error(status, body, 400, "Invalid offset");
    q.limit = limit <= 0 || limit > SIM_PAGE_MAX ? SIM_PAGE_MAX : (size_t)limit;
    q.offset = (size_t)offset;
    q.cf = opt != NULL && strstr(opt, "custom_fields") != NULL;
    for (f = r->v1_filter; f->name != NULL; f++) {
        const char *v = qarg(c, f->name);
        int64_t ms;

        if (v == NULL)
            continue;
        if (base_time_parse(v, &ms) < 0)
            return lists_v1_error(status, body, 400, "Invalid date format, expected ISO-8601");
        query_bound(&q, f, ms);
    }
    if (order != NULL && r->v1_order != NULL) {
        const struct list_order *o = find_order(r->v1_order, order);

        if (o == NULL)
            return lists_v1_error(status, body, 400, "Invalid order");
        if (o->key == KEY_NONE)
            return lists_v1_error(status, body, 400, "This order is not simulated by keapsim");
        q.order = o->key;
    }
    if (dir != NULL && r->v1_direction) {
        if (strcmp(dir, "DESCENDING") == 0)
            q.desc = true;
        else if (strcmp(dir, "ASCENDING") != 0)
            return lists_v1_error(status, body, 400, "Invalid order_direction");
    }

    memset(&p, 0, sizeof(p));
    p.s = s;
    p.ri = ri;
    p.q = &q;
    p.node = s->lists->st[ri].v1;
    p.out = body;
    *status = 200;
    base_buf_reset(body);
    rc = base_buf_printf(body, "{\"%s\":[",
                         r->kind == LIST_TAGS     ? "tags"
                         : r->kind == LIST_EMAILS ? "emails"
                                                  : s->lists->st[ri].v1_key);
    if (rc == 0) {
        pthread_rwlock_rdlock(&s->data.lock);
        rc = page_fill(&p);
        pthread_rwlock_unlock(&s->data.lock);
    }
    free(p.arr);
    if (rc == 0)
        rc = base_buf_printf(body, "],\"count\":%zu,", s->cfg.count_page ? p.served : p.matched);
    if (rc == 0)
        rc = sim_v1_links(body, c, path, p.served, q.offset, q.limit);
    if (rc == 0)
        rc = base_buf_puts(body, "}");
    if (rc < 0)
        return lists_v1_error(status, body, 500, "An error occurred while processing the request");
    return 0;
}

/* True if the comma-separated list names a (fields=id,company_name,update_time). */
static bool fields_names(const char *list, const char *a)
{
    const char *p = list;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        while (n > 0 && *p == ' ')
            p++, n--;
        if (n == strlen(a) && strncmp(p, a, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Reads "a==x;b==y" (';' may end it) into q; 0, or a v2 400 already written into body. */
static int v2_filter(const struct list_res *r, const char *filter, struct list_query *q,
                     int *status, struct base_buf *body, bool *bad)
{
    char buf[FILTER_MAX], *seg, *next;

    *bad = false;
    if (filter == NULL || *filter == '\0')
        return 0;
    *bad = true;
    if (strlen(filter) >= sizeof(buf))
        return v2_error(status, body, "Invalid filter", "too long");
    memcpy(buf, filter, strlen(filter) + 1);
    for (seg = buf; seg != NULL; seg = next) {
        const struct list_field *f;
        char *eq;
        int64_t ms;

        next = strchr(seg, ';');
        if (next != NULL)
            *next++ = '\0';
        if (*seg == '\0')
            continue;
        eq = strstr(seg, "==");
        if (eq == NULL)
            return v2_error(status, body, "Invalid filter", seg);
        *eq = '\0';
        for (f = r->v2_filter; f->name != NULL; f++)
            if (strcmp(f->name, seg) == 0)
                break;
        if (f->name == NULL)
            return v2_error(status, body, "Invalid filter field", seg);
        if (base_time_parse(eq + 2, &ms) < 0)
            return v2_error(status, body, "Invalid date format, expected ISO-8601", eq + 2);
        query_bound(q, f, ms);
    }
    *bad = false;
    return 0;
}

int lists_v2_list(struct sim *s, int ri, struct MHD_Connection *c, int *status,
                  struct base_buf *body)
{
    const struct list_res *r = &lists_table[ri];
    const char *filter = qarg(c, "filter"), *order_by = qarg(c, "order_by");
    const char *ptok = qarg(c, "page_token");
    struct list_query q;
    struct page p;
    int64_t size = (int64_t)r->v2_cap;
    uint64_t qhash;
    char tok[64] = "";
    bool bad;
    int rc;

    query_init(&q);
    q.v2 = true;
    q.cf = true;
    if (ri == RES_COMPANIES) {
        q.add_created = fields_names(qarg(c, "fields"), "create_time");
        q.add_updated = fields_names(qarg(c, "fields"), "update_time");
    }
    if (parse_count(qarg(c, "page_size"), &size) < 0)
        return v2_error(status, body, "Invalid page_size", NULL);
    q.limit = size <= 0 || (size_t)size > r->v2_cap ? r->v2_cap : (size_t)size;
    rc = v2_filter(r, filter, &q, status, body, &bad);
    if (rc < 0 || bad)
        return rc;
    if (order_by != NULL && *order_by != '\0') {
        char field[48] = "", dir[8] = "asc";
        const struct list_order *o;

        if (sscanf(order_by, "%47[A-Za-z_] %7s", field, dir) < 1 ||
            (strcasecmp(dir, "asc") != 0 && strcasecmp(dir, "desc") != 0))
            return v2_error(status, body, "Invalid order_by", order_by);
        o = find_order(r->v2_order, field);
        if (o == NULL)
            return v2_error(status, body, "Invalid order_by field", field);
        if (o->key == KEY_NONE)
            return v2_error(status, body, "order_by field not simulated by keapsim", field);
        q.order = o->key;
        q.desc = strcasecmp(dir, "desc") == 0;
    }
    qhash =
        sim_hash_str(sim_hash_str(sim_hash_str(0xCBF29CE484222325ULL, r->name), filter), order_by) ^
        (uint64_t)q.limit;
    if (ptok != NULL && *ptok != '\0') {
        uint64_t off;

        rc = sim_page_token_read(s, ptok, qhash, &off);
        if (rc < 0)
            return v2_error(status, body,
                            rc == BASE_ERANGE ? "Page token has expired" : "Invalid page token",
                            NULL);
        q.offset = (size_t)off;
    }
    memset(&p, 0, sizeof(p));
    p.s = s;
    p.ri = ri;
    p.q = &q;
    p.node = s->lists->st[ri].v2;
    p.out = body;
    *status = 200;
    base_buf_reset(body);
    rc =
        base_buf_printf(body, "{\"%s\":[", r->kind == LIST_TAGS ? "tags" : s->lists->st[ri].v2_key);
    if (rc == 0) {
        pthread_rwlock_rdlock(&s->data.lock);
        rc = page_fill(&p);
        pthread_rwlock_unlock(&s->data.lock);
    }
    free(p.arr);
    if (q.offset + p.served < p.matched)
        sim_page_token_make(s, qhash, q.offset + p.served, tok, sizeof(tok));
    if (rc == 0)
        rc = base_buf_printf(body, "],\"next_page_token\":\"%s\"}", tok);
    if (rc < 0) {
        *status = 500;
        base_buf_reset(body);
        return base_buf_puts(body, "{\"code\":500,\"message\":\"An error occurred while processing "
                                   "the request\",\"status\":\"INTERNAL\",\"details\":[]}");
    }
    return 0;
}

/* ---- /v1/products/sync -------------------------------------------------------------------- */

#define SYNC_MASK 0x5EC7E75EC7E7ULL

struct sync_page {
    struct sim *s;
    int64_t since; /* INT64_MIN: first sync */
    size_t offset, limit, matched, served;
    struct base_buf *out;
};

static int sync_cb(void *arg, const struct list_ent *e)
{
    struct sync_page *p = arg;
    const char *status;
    int rc;

    if (p->since == INT64_MIN)
        status = e->deleted ? NULL : "CREATED";
    else if (e->key[KEY_CREATED] > p->since)
        status = e->deleted ? NULL : "CREATED";
    else if (e->key[KEY_UPDATED] > p->since)
        status = e->deleted ? "DELETED" : "UPDATED"; /* a deleted product: updated = deleted */
    else
        status = NULL;
    if (status == NULL || p->matched++ < p->offset || p->served >= p->limit)
        return 0;
    rc = base_buf_puts(p->out, p->served ? "," : "");
    if (rc == 0)
        rc = lists_render_ent(p->s, RES_PRODUCTS, e, false, false, status, p->s->lists->sync,
                              p->out);
    p->served++;
    return rc;
}

int lists_products_sync(struct sim *s, struct MHD_Connection *c, int *status, struct base_buf *body)
{
    const char *tok = qarg(c, "sync_token");
    struct sync_page p;
    int64_t limit = SIM_PAGE_MAX, offset = 0;
    int rc;

    memset(&p, 0, sizeof(p));
    p.s = s;
    p.out = body;
    p.since = INT64_MIN;
    if (parse_count(qarg(c, "limit"), &limit) < 0 || parse_count(qarg(c, "offset"), &offset) < 0 ||
        offset < 0)
        return lists_v1_error(status, body, 400, "Invalid limit or offset");
    p.limit = limit <= 0 || limit > SIM_PAGE_MAX ? SIM_PAGE_MAX : (size_t)limit;
    p.offset = (size_t)offset;
    if (tok != NULL && *tok != '\0') {
        char *end;
        uint64_t v;

        errno = 0;
        v = strtoull(tok, &end, 16);
        if (strlen(tok) != 16 || *end != '\0' || errno != 0)
            return lists_v1_error(status, body, 400, "Invalid sync_token");
        p.since = (int64_t)(v ^ (uint64_t)SYNC_MASK);
    }
    *status = 200;
    base_buf_reset(body);
    rc = base_buf_puts(body, "{\"product_statuses\":[");
    pthread_rwlock_rdlock(&s->data.lock);
    if (rc == 0)
        rc = lists_each_ent(s, RES_PRODUCTS, true, sync_cb, &p);
    pthread_rwlock_unlock(&s->data.lock);
    if (rc == 0)
        rc = base_buf_printf(body, "],\"count\":%zu,", p.matched);
    if (rc == 0)
        rc = sim_v1_links(body, c, "/v1/products/sync", p.served, p.offset, p.limit);
    if (rc == 0)
        rc = base_buf_printf(body, ",\"sync_token\":\"%016" PRIx64 "\"}",
                             (uint64_t)sim_wall_ms(s) ^ (uint64_t)SYNC_MASK);
    if (rc < 0)
        return lists_v1_error(status, body, 500, "An error occurred while processing the request");
    return 0;
}
