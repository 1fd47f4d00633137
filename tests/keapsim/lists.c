/*
 * lists.c: every list of KEAP_API.md's endpoint table except contacts (routes.c), on its v1 and
 * its v2 path, with Keap's paging: v1 limit/offset/order/since/until, v2 page_size/page_token/
 * order_by/filter. README.md has the table of what each list accepts.
 *
 * This file holds the entries (computed, enumerated, rendered), the entry points keapsim.h
 * declares, and the lists' state. The resources are described in lists_table.c, a page is
 * read and served in lists_page.c, the custom field models are in lists_model.c; what they
 * share is in lists_int.h.
 *
 * Words used here:
 *   resource  one row of the table below: paths, schema entries, size, id scheme, the keys its
 *             filters and orders read, and the overrides that give fields meaning.
 *   entry     one record as the list machinery sees it: its id and its three times (created,
 *             updated, extra), computed from (seed, resource, index) for the static resources,
 *             or from a contact for sent emails. Nothing is stored: a request enumerates the
 *             entries (a hash each), keeps those its filter selects, sorts them when the order
 *             is not the id's, and renders the page's records (gen.c) on the way out.
 *   key       what a filter or an order reads: id, created, updated or extra.
 *
 * Readings of Keap (README.md, "Other lists"): filters are half-open, since <= key < until,
 * on the exact millisecond; v1 since/until exist only where KEAP_API.md says Keap has them,
 * elsewhere Keap ignores unknown query parameters and so does keapsim (the whole list comes
 * back); an unknown v2 filter field or order_by field is a 400; an order Keap names but keapsim
 * does not simulate (by name, by email) is a 400 that says so; v2 page_size above the cap
 * (1000, users 100) or below 1 means the cap.
 */
#include "lists_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_FROM_MS   1546300800000LL /* 2019-01-01: the first record's creation */
#define T_TO_MS     1735603200000LL /* 2024-12-31: the last one's */
#define T_UPDATE_MS 1751241600000LL /* 2025-06-30: the latest update */
#define DAY_MS      86400000LL

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t st = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL);

    return sim_rng_next(&st);
}

static size_t res_count(const struct list_res *r, size_t size)
{
    size_t n = r->div ? size / r->div : r->min;

    if (n < r->min)
        n = r->min;
    return n > r->max ? r->max : n;
}

static int64_t static_id(const struct sim_lists *L, const struct list_res *r, size_t k)
{
    uint64_t st = mix(L->seed ^ r->salt, k);
    int64_t id = r->id_base + r->id_stride * (int64_t)k;

    if (r->id_jitter)
        id += (int64_t)(sim_rng_next(&st) % (uint64_t)r->id_stride);
    return id;
}

static void static_ent(const struct sim_lists *L, const struct list_res *r, size_t n, size_t k,
                       struct list_ent *e)
{
    uint64_t st = mix(L->seed ^ r->salt, k);
    int64_t span = (T_TO_MS - T_FROM_MS) / (int64_t)(n ? n : 1);
    int64_t created, updated;

    sim_rng_next(&st); /* the id's jitter */
    memset(e, 0, sizeof(*e));
    e->k = k;
    e->key[KEY_ID] = static_id(L, r, k);
    created = T_FROM_MS + span * (int64_t)k +
              (span > 0 ? (int64_t)(sim_rng_next(&st) % (uint64_t)span) : 0);
    if (sim_rng_next(&st) % 10 < 4) /* never updated: the same second */
        updated = created + (int64_t)(sim_rng_next(&st) % 1000);
    else
        updated = created + (int64_t)(sim_rng_next(&st) % (uint64_t)(T_UPDATE_MS - created));
    e->key[KEY_CREATED] = created;
    e->key[KEY_UPDATED] = updated;
    e->key[KEY_EXTRA] = created + (int64_t)(sim_rng_next(&st) % (60 * 86400)) * 1000;
    e->deleted = r->deletable && sim_rng_next(&st) % 8 == 0;
    for (size_t i = 0; !e->deleted && i < L->gone[r - lists_table].n; i++) {
        if (L->gone[r - lists_table].k[i] == k) {
            /* Deleted by /__admin/delete: its update time is its deletion (as products'). */
            e->deleted = true;
            if (L->gone[r - lists_table].ms[i] > e->key[KEY_UPDATED])
                e->key[KEY_UPDATED] = L->gone[r - lists_table].ms[i];
        }
    }
}

/* The id of a record of resource ri picked by (salt, k); 0 if it has none. */
static int64_t link_id(const struct sim_lists *L, int ri, uint64_t salt, size_t k)
{
    size_t n = L->st[ri].n;

    if (n == 0)
        return 0;
    return static_id(L, &lists_table[ri], (size_t)(mix(L->seed ^ salt, k) % n));
}

/* ---- enumeration ---------------------------------------------------------------------- */

/* Calls cb for each record of r in id order (deleted ones too if with_deleted). Emails read
 * the contacts: the caller holds s->data.lock for reading. */
int lists_each_ent(struct sim *s, int ri, bool with_deleted, lists_ent_cb cb, void *arg)
{
    const struct list_res *r = &lists_table[ri];
    struct list_ent e;
    size_t i, j;
    int rc = 0;

    if (r->kind == LIST_EMAILS) {
        for (i = 0; rc == 0 && i < s->data.n; i++) {
            const struct sim_contact *c = &s->data.recs[i];
            size_t cnt = sim_email_count(c->id, c->email);

            for (j = 0; rc == 0 && j < cnt; j++) {
                memset(&e, 0, sizeof(e));
                e.key[KEY_ID] = c->id * 10 + (int64_t)j;
                e.key[KEY_CREATED] = sim_email_sent_ms(c->created_ms, j);
                e.key[KEY_UPDATED] = e.key[KEY_CREATED];
                e.key[KEY_EXTRA] = e.key[KEY_CREATED] + 7200 * 1000;
                e.k = j;
                e.c = c;
                rc = cb(arg, &e);
            }
        }
        return rc;
    }
    for (i = 0; rc == 0 && i < s->lists->st[ri].n; i++) {
        static_ent(s->lists, r, s->lists->st[ri].n, i, &e);
        if (e.deleted && !with_deleted)
            continue;
        rc = cb(arg, &e);
    }
    return rc;
}

/* Appends one record of r in the list's shape. */
int lists_render_ent(struct sim *s, int ri, const struct list_ent *e, bool v2, bool cf,
                     const char *status, struct sim_gen_node *node, struct base_buf *b)
{
    const struct list_res *r = &lists_table[ri];
    const struct sim_lists *L = s->lists;
    struct sim_gen_rec rec;
    char name[96], email[128];
    int64_t id = e->key[KEY_ID];
    size_t start;
    int rc;

    if (r->kind == LIST_TAGS)
        return sim_tag_json(b, id, v2, e->key[KEY_CREATED], e->key[KEY_UPDATED]);
    if (r->kind == LIST_EMAILS && !v2)
        return sim_email_v1_json(b, e->c->id, e->c->email, e->c->created_ms, e->k);
    memset(&rec, 0, sizeof(rec));
    rec.rng = mix(L->seed ^ r->salt ^ 0xBEEF, (uint64_t)id);
    rec.v2 = v2;
    rec.cf = cf;
    rec.id = id;
    rec.created = e->key[KEY_CREATED];
    rec.updated = e->key[KEY_UPDATED];
    rec.extra = e->key[KEY_EXTRA];
    rec.status = status;
    {
        const struct model_def *md = lists_model_of(ri);

        if (md != NULL) {
            rec.cf_ids = md->ids;
            rec.ncf_ids = md->nids;
        }
    }
    if (r->kind == LIST_EMAILS) {
        rec.contact = e->c->id;
        rec.email = e->c->email;
        snprintf(name, sizeof(name), "%s %zu", r->label, e->k + 1);
    } else {
        rec.contact = L->ncids ? L->cids[mix(L->seed ^ r->link_salt, e->k) % L->ncids] : 0;
        rec.user = link_id(L, RES_USERS, r->salt ^ 0x05E5, e->k);
        rec.product = link_id(L, RES_PRODUCTS, r->salt ^ 0x9D9D, e->k);
        rec.order = ri == RES_TRANSACTIONS ? static_id(L, &lists_table[RES_ORDERS], e->k) : 0;
        snprintf(name, sizeof(name), "%s %" PRId64, r->label, id);
        if (ri == RES_COMPANIES && sim_company_name(e->k) != NULL)
            snprintf(name, sizeof(name), "%s", sim_company_name(e->k));
        if (ri == RES_USERS) {
            static const char *const given[] = {"Integration", "Ada", "Ben", "Chloe", "Dev", "Eve"};
            static const char *const family[] = {"User", "Moreau", "Quinn", "Reyes", "Singh"};

            rec.given = given[e->k % BASE_ARRAY_SIZE(given)];
            rec.family = family[(e->k / BASE_ARRAY_SIZE(given)) % BASE_ARRAY_SIZE(family)];
            snprintf(email, sizeof(email), "user%" PRId64 "@keapsim.example", id);
        } else {
            snprintf(email, sizeof(email), "%s%" PRId64 "@keapsim.example",
                     ri == RES_COMPANIES ? "info.company" : "contact", id);
        }
        rec.email = email;
    }
    rec.name = name;
    if (!r->v1_add_id || v2)
        return sim_gen_render(node, &rec, b);
    /* appointments: Keap serves an id the spec's Appointment omits; put it first */
    start = b->len;
    rc = sim_gen_render(node, &rec, b);
    if (rc == 0 && b->len > start + 1 && b->data[start] == '{') {
        char head[40];
        int hn = snprintf(head, sizeof(head), "{\"id\":%" PRId64 "%s", id,
                          b->data[start + 1] == '}' ? "" : ",");

        rc = base_buf_reserve(b, (size_t)hn);
        if (rc == 0) {
            memmove(b->data + start + hn, b->data + start + 1, b->len - start - 1);
            memcpy(b->data + start, head, (size_t)hn);
            b->len += (size_t)hn - 1;
        }
    }
    return rc;
}

/* ---- entry points ------------------------------------------------------------------------ */

/* path equals want, or want followed by one "/" */
bool lists_path_is(const char *path, const char *want)
{
    size_t n = strlen(want);

    return strncmp(path, want, n) == 0 &&
           (path[n] == '\0' || (path[n] == '/' && path[n + 1] == '\0'));
}

int sim_lists_handle(struct sim *s, struct MHD_Connection *c, const char *path, int *status,
                     struct base_buf *body)
{
    int ri;

    if (lists_path_is(path, "/v1/products/sync"))
        return lists_products_sync(s, c, status, body);
    for (ri = 0; ri < RES_COUNT; ri++) {
        const struct list_res *r = &lists_table[ri];

        if (r->v1_path != NULL && lists_path_is(path, r->v1_path))
            return lists_v1_list(s, ri, c, r->v1_path, status, body);
        if (r->v2_path != NULL && lists_path_is(path, r->v2_path))
            return lists_v2_list(s, ri, c, status, body);
    }
    return BASE_ENOTFOUND;
}

struct truth {
    struct sim *s;
    int ri;
    bool v2, meta;
    struct base_buf *out;
};

static int truth_cb(void *arg, const struct list_ent *e)
{
    struct truth *t = arg;
    const struct list_state *st = &t->s->lists->st[t->ri];
    int rc;

    if (t->meta)
        rc = base_buf_printf(t->out,
                             "{\"id\":%" PRId64 ",\"created_ms\":%" PRId64
                             ",\"updated_ms\":%" PRId64 ",\"extra_ms\":%" PRId64 ",\"deleted\":%s}",
                             e->key[KEY_ID], e->key[KEY_CREATED], e->key[KEY_UPDATED],
                             e->key[KEY_EXTRA], e->deleted ? "true" : "false");
    else if (e->deleted)
        return 0;
    else
        rc = lists_render_ent(t->s, t->ri, e, t->v2, true, NULL, t->v2 ? st->v2 : st->v1, t->out);
    return rc < 0 ? rc : base_buf_puts(t->out, "\n");
}

int sim_lists_truth(struct sim *s, const char *resource, bool v2, bool meta, struct base_buf *body)
{
    struct truth t = {s, 0, v2, meta, body};
    int rc;

    for (t.ri = 0; t.ri < RES_COUNT; t.ri++)
        if (strcmp(lists_table[t.ri].name, resource) == 0)
            break;
    if (t.ri == RES_COUNT || (v2 ? lists_table[t.ri].v2_path : lists_table[t.ri].v1_path) == NULL)
        return BASE_ENOTFOUND;
    pthread_rwlock_rdlock(&s->data.lock);
    rc = lists_each_ent(s, t.ri, meta, truth_cb, &t);
    pthread_rwlock_unlock(&s->data.lock);
    return rc;
}

int sim_lists_delete(struct sim *s, const char *resource, size_t count, int64_t restore_id,
                     struct base_buf *body)
{
    struct sim_lists *L = s->lists;
    int64_t now = sim_wall_ms(s);
    size_t done = 0, tries;
    int ri, rc;

    for (ri = 0; ri < RES_COUNT; ri++)
        if (strcmp(lists_table[ri].name, resource) == 0)
            break;
    if (ri == RES_COUNT || lists_table[ri].kind != LIST_STATIC)
        return BASE_ENOTFOUND;
    pthread_rwlock_wrlock(&s->data.lock);
    rc = base_buf_printf(body, "{\"resource\":\"%s\",\"%s\":[", resource,
                         restore_id > 0 ? "restored" : "deleted");
    if (restore_id > 0) {
        for (size_t i = 0; rc == 0 && i < L->gone[ri].n; i++) {
            if (static_id(L, &lists_table[ri], L->gone[ri].k[i]) != restore_id)
                continue;
            L->gone[ri].k[i] = L->gone[ri].k[L->gone[ri].n - 1];
            L->gone[ri].ms[i] = L->gone[ri].ms[L->gone[ri].n - 1];
            L->gone[ri].n--;
            rc = base_buf_printf(body, "%" PRId64, restore_id);
            break;
        }
    }
    for (tries = 0; rc == 0 && done < count && tries < count * 64 + 64; tries++) {
        size_t n = L->st[ri].n, k;
        struct list_ent e;

        if (n == 0)
            break;
        k = (size_t)(sim_rng_next(&L->gone_rng) % n);
        static_ent(L, &lists_table[ri], n, k, &e);
        if (e.deleted)
            continue;
        if (L->gone[ri].n == L->gone[ri].cap) {
            size_t nc = L->gone[ri].cap ? L->gone[ri].cap * 2 : 16;
            size_t *nk = realloc(L->gone[ri].k, nc * sizeof(*nk));
            int64_t *nm = nk ? realloc(L->gone[ri].ms, nc * sizeof(*nm)) : NULL;

            if (nk != NULL)
                L->gone[ri].k = nk;
            if (nm == NULL) {
                rc = BASE_ENOMEM;
                break;
            }
            L->gone[ri].ms = nm;
            L->gone[ri].cap = nc;
        }
        L->gone[ri].k[L->gone[ri].n] = k;
        L->gone[ri].ms[L->gone[ri].n] = now;
        L->gone[ri].n++;
        rc = base_buf_printf(body, "%s%" PRId64, done ? "," : "", e.key[KEY_ID]);
        done++;
    }
    pthread_rwlock_unlock(&s->data.lock);
    if (rc == 0)
        rc = base_buf_puts(body, "]}");
    return rc;
}

int sim_lists_index(struct sim *s, struct base_buf *body)
{
    int ri, v, rc = base_buf_puts(body, "[");
    bool first = true;

    for (ri = 0; rc == 0 && ri < RES_COUNT; ri++) {
        const struct list_res *r = &lists_table[ri];

        for (v = 1; rc == 0 && v <= 2; v++) {
            const char *path = v == 1 ? r->v1_path : r->v2_path;
            const char *key = v == 1 ? s->lists->st[ri].v1_key : s->lists->st[ri].v2_key;
            const struct list_field *f;
            bool ff = true;

            if (path == NULL)
                continue;
            if (key == NULL)
                key = r->kind == LIST_TAGS ? "tags" : "emails";
            rc = base_buf_printf(body,
                                 "%s{\"resource\":\"%s\",\"version\":\"v%d\",\"path\":\"%s\","
                                 "\"key\":\"%s\",\"page_cap\":%zu,\"filters\":{",
                                 first ? "" : ",", r->name, v, path, key,
                                 v == 2 ? r->v2_cap : (size_t)SIM_PAGE_MAX);
            for (f = v == 1 ? r->v1_filter : r->v2_filter; rc == 0 && f->name != NULL; f++) {
                static const char *const keys[] = {"id", "created_ms", "updated_ms", "extra_ms"};

                rc = base_buf_printf(body, "%s\"%s\":{\"key\":\"%s\",\"until\":%s}", ff ? "" : ",",
                                     f->name, keys[f->key], f->until ? "true" : "false");
                ff = false;
            }
            if (rc == 0)
                rc = base_buf_puts(body, "}}");
            first = false;
        }
    }
    if (rc == 0)
        rc = base_buf_printf(body,
                             ",{\"resource\":\"products\",\"version\":\"v1\","
                             "\"path\":\"/v1/products/sync\",\"key\":\"product_statuses\","
                             "\"page_cap\":%d,\"filters\":{}}]",
                             SIM_PAGE_MAX);
    return rc;
}

int sim_lists_init(struct sim *s)
{
    struct sim_lists *L = calloc(1, sizeof(*L));
    size_t i;
    int ri, rc;

    if (L == NULL)
        return BASE_ENOMEM;
    s->lists = L;
    L->seed = s->cfg.seed;
    L->gone_rng = s->cfg.seed ^ 0xDE1E7EULL;
    rc = sim_gen_open(&L->gen);
    if (rc < 0)
        goto fail;
    L->ncids = s->data.n;
    L->cids = malloc((L->ncids ? L->ncids : 1) * sizeof(*L->cids));
    if (L->cids == NULL) {
        rc = BASE_ENOMEM;
        goto fail;
    }
    for (i = 0; i < L->ncids; i++)
        L->cids[i] = s->data.recs[i].id;
    for (ri = 0; ri < RES_COUNT; ri++) {
        const struct list_res *r = &lists_table[ri];
        struct list_state *st = &L->st[ri];

        st->n = r->kind == LIST_EMAILS ? 0 : res_count(r, s->cfg.size);
        if (ri == RES_TRANSACTIONS)
            st->n = L->st[RES_ORDERS].n; /* one payment per order */
        if (r->v1_schema != NULL &&
            (rc = sim_gen_compile(L->gen, r->v1_schema, r->v1_ov, &st->v1, &st->v1_key)) < 0)
            goto fail;
        if (r->v2_schema != NULL &&
            (rc = sim_gen_compile(L->gen, r->v2_schema, r->v2_ov, &st->v2, &st->v2_key)) < 0)
            goto fail;
    }
    {
        const char *key;

        rc = sim_gen_compile(L->gen, "v1/product_statuses", lists_ov1_product_statuses, &L->sync,
                             &key);
        if (rc < 0)
            goto fail;
    }
    return 0;
fail:
    sim_lists_free(s);
    return rc;
}

void sim_lists_free(struct sim *s)
{
    struct sim_lists *L = s->lists;
    int ri;

    if (L == NULL)
        return;
    for (ri = 0; ri < RES_COUNT; ri++) {
        sim_gen_free_node(L->st[ri].v1);
        sim_gen_free_node(L->st[ri].v2);
    }
    sim_gen_free_node(L->sync);
    for (ri = 0; ri < RES_COUNT; ri++) {
        free(L->gone[ri].k);
        free(L->gone[ri].ms);
    }
    free(L->cids);
    sim_gen_close(L->gen);
    free(L);
    s->lists = NULL;
}
