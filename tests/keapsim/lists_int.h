/*
 * lists_int.h: what the files of keapsim's lists (lists*.c) share and nobody else sees.
 *
 *   lists.c        entries, enumeration, rendering; the entry points keapsim.h declares
 *   lists_table.c  the resources: paths, schemas, sizes, filters, orders, overrides
 *   lists_page.c   one page of a v1 or v2 list, and /v1/products/sync
 *   lists_model.c  the custom fields models, /v1/<object>/model
 *
 * The words (resource, entry, key) are lists.c's.
 */
#ifndef KEAPSIM_LISTS_INT_H
#define KEAPSIM_LISTS_INT_H

#include "keapsim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum list_key { KEY_ID = 0, KEY_CREATED, KEY_UPDATED, KEY_EXTRA, KEY_NONE };

enum list_kind {
    LIST_STATIC = 0, /* records computed from (seed, resource, index) */
    LIST_TAGS,       /* static, but rendered by resources.c */
    LIST_EMAILS,     /* the contacts' sent emails */
};

/* A v1 since/until parameter or a v2 filter field: selects lo <= key (or key < hi if until). */
struct list_field {
    const char *name;
    enum list_key key;
    bool until;
};

/* A v1 order or v2 order_by name; KEY_NONE: Keap has it, keapsim does not simulate it. */
struct list_order {
    const char *name;
    enum list_key key;
};

struct list_res {
    const char *name; /* in /__admin/truth and README.md */
    enum list_kind kind;
    const char *v1_path, *v2_path; /* NULL: not served */
    const char *v1_schema, *v2_schema;
    const char *label; /* record names: "<label> <id>" */
    uint64_t salt;     /* the resource's random streams */
    uint64_t link_salt;
    int64_t id_base, id_stride;
    bool id_jitter;       /* ids base + stride*k + [0, stride) */
    size_t div, min, max; /* count: clamp(size / div, min, max); div 0: min */
    const struct list_field *v1_filter;
    const struct list_order *v1_order;
    bool v1_direction; /* takes order_direction */
    const struct list_field *v2_filter;
    const struct list_order *v2_order;
    size_t v2_cap;
    const struct sim_gen_override *v1_ov, *v2_ov;
    bool deletable; /* some records are deleted: only /v1/products/sync tells */
    bool v1_add_id; /* the spec's item has no id; Keap serves one (appointments) */
};

enum {
    RES_COMPANIES = 0,
    RES_OPPORTUNITIES,
    RES_ORDERS,
    RES_PRODUCTS,
    RES_TAGS,
    RES_TASKS,
    RES_NOTES,
    RES_EMAILS,
    RES_TRANSACTIONS,
    RES_SUBSCRIPTIONS,
    RES_USERS,
    RES_CAMPAIGNS,
    RES_APPOINTMENTS,
    RES_COUNT,
};

/* Sizes and the rest of each resource: lists_table.c. */
extern const struct list_res lists_table[RES_COUNT];
/* The fields of /v1/products/sync's ProductStatus that carry meaning. */
extern const struct sim_gen_override lists_ov1_product_statuses[];

struct list_state {
    size_t n; /* records (static resources) */
    struct sim_gen_node *v1, *v2;
    const char *v1_key, *v2_key;
};

struct sim_lists {
    uint64_t seed;
    struct sim_gen *gen;
    int64_t *cids; /* the contacts' ids at start: what records link to */
    size_t ncids;
    struct list_state st[RES_COUNT];
    struct sim_gen_node *sync; /* /v1/products/sync's ProductStatus */
    /* records deleted through /__admin/delete (under s->data.lock): index k, when (sim ms) */
    struct {
        size_t *k;
        int64_t *ms;
        size_t n, cap;
    } gone[RES_COUNT];
    uint64_t gone_rng;
};

struct list_ent {
    int64_t key[KEY_NONE]; /* id, created, updated, extra */
    size_t k;              /* index (static) or email number (emails) */
    const struct sim_contact *c;
    bool deleted;
};

/* A list request, after its parameters were read. */
struct list_query {
    int64_t lo[KEY_NONE], hi[KEY_NONE]; /* lo <= key < hi */
    enum list_key order;
    bool desc, v2, cf;
    bool add_created, add_updated; /* v2 companies: fields= named create_time, update_time */
    size_t offset, limit;
};

typedef int (*lists_ent_cb)(void *arg, const struct list_ent *e);

/* Calls cb for each record of r in id order (deleted ones too if with_deleted). Emails read
 * the contacts: the caller holds s->data.lock for reading. */
int lists_each_ent(struct sim *s, int ri, bool with_deleted, lists_ent_cb cb, void *arg);

/* Appends one record of r in the list's shape. */
int lists_render_ent(struct sim *s, int ri, const struct list_ent *e, bool v2, bool cf,
                     const char *status, struct sim_gen_node *node, struct base_buf *b);

/* path equals want, or want followed by one "/" */
bool lists_path_is(const char *path, const char *want);

/* One custom field of an object's model (openapi-v1.json's CustomFieldMetaData). */
struct cf_def {
    int64_t id;
    const char *label, *field_name, *field_type;
};

/* An object's custom fields model (lists_model.c). */
struct model_def {
    const char *object, *record_type;
    const struct cf_def *cfs;
    int res; /* the resource whose generated records carry these ids, or -1 */
    int64_t ids[8];
    size_t nids;
};

/* The model whose ids resource ri's records carry, or NULL. */
const struct model_def *lists_model_of(int ri);

/* A v1 error: *status code, body {"message": msg}. */
int lists_v1_error(int *status, struct base_buf *body, int code, const char *msg);

/* Serve one page of resource ri (lists_page.c): 0 with *status and body set. */
int lists_v1_list(struct sim *s, int ri, struct MHD_Connection *c, const char *path, int *status,
                  struct base_buf *body);
int lists_v2_list(struct sim *s, int ri, struct MHD_Connection *c, int *status,
                  struct base_buf *body);
int lists_products_sync(struct sim *s, struct MHD_Connection *c, int *status,
                        struct base_buf *body);

#endif
