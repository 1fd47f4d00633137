/*
 * gen.c: keapsim's spec-driven record generator for every list other than contacts.
 *
 * schemas.json (cut from Keap's OpenAPI specs by extract_schemas.sh and embedded in the binary
 * at build time) holds each list's item schema. sim_gen_compile() turns one item schema into a
 * tree of nodes, resolving "$ref" and merging "allOf", and marks each property with a hint
 * (what kind of string its name suggests: an email, a time, an id, ...) and, where the
 * resource's override table names its path, an override (the record's id, its created or
 * updated time, the contact it belongs to, ...). sim_gen_render() walks the tree and writes one
 * value of the schema's JSON type for every property, so field names and types come from the
 * spec by construction and only the overridden fields carry meaning.
 *
 * Words used here:
 *   node      one compiled schema: a type, a hint, an override, and its properties or items.
 *   path      a property's place in a record, names joined by dots, arrays transparent
 *             ("contact.id", "order_items.product.id").
 *   override  a property whose value comes from the record (struct sim_gen_rec), not from the
 *             record's random stream.
 *   rec       what one record is: its id, times, links and the random stream its other
 *             values come from (seeded by the resource and the id, so same seed, same bytes).
 */
#include "keapsim.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_MAX_DEPTH 8 /* deeper schemas render as null */
#define GEN_PATH_MAX  160

enum gen_type {
    GEN_ANY = 0, /* no type: null */
    GEN_STRING,
    GEN_INTEGER,
    GEN_NUMBER,
    GEN_BOOLEAN,
    GEN_ARRAY,
    GEN_OBJECT,
    GEN_FREE, /* an object without properties ("content"): a string, a number or null */
};

/* What a string property's name suggests. */
enum gen_hint {
    HINT_TEXT = 0,
    HINT_WORDS, /* names and titles */
    HINT_EMAIL,
    HINT_TIME,
    HINT_DATE,
    HINT_ID,
    HINT_URL,
    HINT_PHONE,
    HINT_GIVEN,
    HINT_FAMILY,
    HINT_COUNTRY_CODE,
    HINT_COUNTRY,
    HINT_CURRENCY,
    HINT_ZIP,
    HINT_ZIP4,
    HINT_REGION,
    HINT_REGION_CODE,
    HINT_STATE,
    HINT_CITY,
    HINT_STREET,
    HINT_TZ,
    HINT_LOCALE,
    HINT_SKU,
    HINT_IP,
    HINT_MONEY,
};

struct sim_gen_node {
    enum gen_type type;
    enum gen_hint hint;
    enum sim_gen_ov ov;
    bool int32;
    bool date_only;   /* format "date" */
    bool nullable;    /* v1 may serve null here (not required, not overridden) */
    bool cf_optional; /* top-level custom_fields of a list with optional_properties */
    bool cf_list;     /* top-level custom_fields: rendered from the record's cf_ids if set */
    char *name;       /* property name (NULL for array items and the root) */
    char **enums;
    size_t nenums;
    struct sim_gen_node *items;
    struct sim_gen_node *props;
    size_t nprops;
};

struct sim_gen {
    cJSON *doc; /* the parsed schemas.json */
};

static const char *const gen_given[] = {"Erica", "John",  "Maria", "Wei",  "Aisha", "Lars",
                                        "Sofia", "Mateo", "Yuki",  "Omar", "Grace", "Kenji"};
static const char *const gen_family[] = {"Lewis", "Doe",   "Garcia", "Zhang", "Khan",  "Nielsen",
                                         "Rossi", "Lopez", "Sato",   "Smith", "Patel", "Okafor"};
static const char *const gen_words[] = {"Spring", "Launch",  "Follow-up",  "Premium", "Annual",
                                        "Review", "Welcome", "Summit",     "Starter", "Renewal",
                                        "Growth", "Webinar", "Onboarding", "Pro",     "Basic"};
static const char *const gen_text[] = {"Called about the renewal",
                                       "Sent the quote",
                                       "Left a voicemail",
                                       "Wants a demo next week",
                                       "Paid by card",
                                       "Asked for an invoice copy",
                                       "",
                                       "Follow up in March"};

extern const unsigned char sim_schemas_json[];
extern const size_t sim_schemas_json_len;

int sim_gen_open(struct sim_gen **out)
{
    struct sim_gen *g = calloc(1, sizeof(*g));

    if (g == NULL)
        return BASE_ENOMEM;
    g->doc = cJSON_ParseWithLength((const char *)sim_schemas_json, sim_schemas_json_len);
    if (g->doc == NULL) {
        free(g);
        return BASE_EINVAL;
    }
    *out = g;
    return 0;
}

void sim_gen_close(struct sim_gen *g)
{
    if (g == NULL)
        return;
    cJSON_Delete(g->doc);
    free(g);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static enum gen_hint hint_for(const char *name)
{
    static const struct {
        const char *name;
        enum gen_hint hint;
    } exact[] = {
        {"country_code", HINT_COUNTRY_CODE},
        {"country", HINT_COUNTRY},
        {"currency", HINT_CURRENCY},
        {"currency_code", HINT_CURRENCY},
        {"zip_code", HINT_ZIP},
        {"postal_code", HINT_ZIP},
        {"zip", HINT_ZIP},
        {"zip_four", HINT_ZIP4},
        {"region", HINT_REGION},
        {"region_code", HINT_REGION_CODE},
        {"state", HINT_STATE},
        {"locality", HINT_CITY},
        {"city", HINT_CITY},
        {"line1", HINT_STREET},
        {"street1", HINT_STREET},
        {"preferred_locale", HINT_LOCALE},
        {"locale", HINT_LOCALE},
        {"sku", HINT_SKU},
        {"ip_address", HINT_IP},
        {"formatted_amount", HINT_MONEY},
        {"given_name", HINT_GIVEN},
        {"first_name", HINT_GIVEN},
        {"middle_name", HINT_GIVEN},
        {"preferred_name", HINT_GIVEN},
        {"family_name", HINT_FAMILY},
        {"last_name", HINT_FAMILY},
        {"number", HINT_PHONE},
        {"number_e164", HINT_PHONE},
        {"url", HINT_URL},
        {"website", HINT_URL},
        {"pinned_at", HINT_TIME},
        {"date", HINT_TIME},
        {"name", HINT_WORDS},
        {"title", HINT_WORDS},
        {"label", HINT_WORDS},
        {"subject", HINT_WORDS},
    };
    size_t i;

    if (name == NULL)
        return HINT_TEXT;
    for (i = 0; i < BASE_ARRAY_SIZE(exact); i++)
        if (strcmp(name, exact[i].name) == 0)
            return exact[i].hint;
    if (strstr(name, "time_zone") != NULL)
        return HINT_TZ;
    if (strstr(name, "email") != NULL ||
        (strncmp(name, "sent_", 5) == 0 && strstr(name, "address")))
        return HINT_EMAIL;
    if (ends_with(name, "_date") || ends_with(name, "_time") || ends_with(name, "Date"))
        return HINT_TIME;
    if (strcmp(name, "id") == 0 || ends_with(name, "_id") || ends_with(name, "Id") ||
        ends_with(name, "_ids"))
        return HINT_ID;
    if (strstr(name, "phone") != NULL)
        return HINT_PHONE;
    if (ends_with(name, "_name") || ends_with(name, "_title"))
        return HINT_WORDS;
    return HINT_TEXT;
}

static const cJSON *resolve(const struct sim_gen *g, const cJSON *schema)
{
    static const char prefix[] = "#/components/schemas/";
    int hops;

    for (hops = 0; schema != NULL && hops < 16; hops++) {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");

        if (!cJSON_IsString(ref))
            return schema;
        if (strncmp(ref->valuestring, prefix, strlen(prefix)) != 0)
            return NULL;
        schema = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g->doc, "components"),
                                             "schemas"),
            ref->valuestring + strlen(prefix));
    }
    return NULL;
}

static void node_clear(struct sim_gen_node *n)
{
    size_t i;

    free(n->name);
    for (i = 0; i < n->nenums; i++)
        free(n->enums[i]);
    free(n->enums);
    if (n->items != NULL) {
        node_clear(n->items);
        free(n->items);
    }
    for (i = 0; i < n->nprops; i++)
        node_clear(&n->props[i]);
    free(n->props);
    memset(n, 0, sizeof(*n));
}

static bool has_override(const struct sim_gen_node *n)
{
    size_t i;

    if (n->ov != SIM_OV_NONE || (n->items != NULL && has_override(n->items)))
        return true;
    for (i = 0; i < n->nprops; i++)
        if (has_override(&n->props[i]))
            return true;
    return false;
}

static bool in_required(const cJSON *schema, const char *name)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(schema, "required"))
    {
        if (cJSON_IsString(e) && strcmp(e->valuestring, name) == 0)
            return true;
    }
    return false;
}

struct compile_ctx {
    const struct sim_gen *g;
    const struct sim_gen_override *ovs;
    bool optional_cf;
    char path[GEN_PATH_MAX];
};

static int compile(struct compile_ctx *cx, const cJSON *schema, int depth, struct sim_gen_node *n);

/* Adds the properties of one (resolved) object schema to n; later ones replace earlier ones. */
static int add_props(struct compile_ctx *cx, const cJSON *schema, int depth, struct sim_gen_node *n)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties"), *p;
    size_t base = strlen(cx->path);
    int rc = 0;

    cJSON_ArrayForEach(p, props)
    {
        struct sim_gen_node *slot = NULL, *grown;
        size_t i;

        for (i = 0; i < n->nprops; i++)
            if (strcmp(n->props[i].name, p->string) == 0)
                slot = &n->props[i];
        if (slot != NULL) {
            node_clear(slot);
        } else {
            grown = realloc(n->props, (n->nprops + 1) * sizeof(*grown));
            if (grown == NULL)
                return BASE_ENOMEM;
            n->props = grown;
            slot = &n->props[n->nprops++];
            memset(slot, 0, sizeof(*slot));
        }
        if (base_snprintf(cx->path + base, sizeof(cx->path) - base, "%s%s", base ? "." : "",
                          p->string) < 0)
            return BASE_EINVAL;
        slot->name = base_strdup(p->string);
        rc = slot->name ? compile(cx, p, depth + 1, slot) : BASE_ENOMEM;
        for (i = 0; rc == 0 && cx->ovs != NULL && cx->ovs[i].path != NULL; i++)
            if (strcmp(cx->ovs[i].path, cx->path) == 0)
                slot->ov = cx->ovs[i].ov;
        cx->path[base] = '\0';
        if (rc < 0)
            return rc;
        slot->hint = hint_for(p->string);
        slot->nullable = !has_override(slot) && !in_required(schema, p->string) &&
                         (slot->type == GEN_STRING || slot->type == GEN_OBJECT);
        slot->cf_optional = cx->optional_cf && base == 0 && strcmp(p->string, "custom_fields") == 0;
        slot->cf_list = base == 0 && strcmp(p->string, "custom_fields") == 0;
    }
    return rc;
}

static int compile(struct compile_ctx *cx, const cJSON *schema, int depth, struct sim_gen_node *n)
{
    const cJSON *type, *fmt, *all, *e;
    int rc = 0;

    schema = resolve(cx->g, schema);
    if (schema == NULL || depth > GEN_MAX_DEPTH) {
        n->type = GEN_ANY;
        return 0;
    }
    all = cJSON_GetObjectItemCaseSensitive(schema, "allOf");
    if (cJSON_IsArray(all)) {
        n->type = GEN_OBJECT;
        cJSON_ArrayForEach(e, all)
        {
            const cJSON *part = resolve(cx->g, e);

            if (part != NULL && (rc = add_props(cx, part, depth, n)) < 0)
                return rc;
        }
        return add_props(cx, schema, depth, n);
    }
    type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    fmt = cJSON_GetObjectItemCaseSensitive(schema, "format");
    if (!cJSON_IsString(type))
        n->type = cJSON_GetObjectItemCaseSensitive(schema, "properties") ? GEN_OBJECT : GEN_ANY;
    else if (strcmp(type->valuestring, "string") == 0)
        n->type = GEN_STRING;
    else if (strcmp(type->valuestring, "integer") == 0)
        n->type = GEN_INTEGER;
    else if (strcmp(type->valuestring, "number") == 0)
        n->type = GEN_NUMBER;
    else if (strcmp(type->valuestring, "boolean") == 0)
        n->type = GEN_BOOLEAN;
    else if (strcmp(type->valuestring, "array") == 0)
        n->type = GEN_ARRAY;
    else if (strcmp(type->valuestring, "object") == 0)
        n->type = cJSON_GetObjectItemCaseSensitive(schema, "properties") ? GEN_OBJECT : GEN_FREE;
    n->int32 = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "int32") == 0;
    n->date_only = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "date") == 0;
    if (n->type == GEN_STRING) {
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
        size_t cnt = (size_t)cJSON_GetArraySize(en);

        if (cJSON_IsArray(en) && cnt > 0) {
            n->enums = calloc(cnt, sizeof(*n->enums));
            if (n->enums == NULL)
                return BASE_ENOMEM;
            cJSON_ArrayForEach(e, en)
            {
                if (!cJSON_IsString(e))
                    continue;
                n->enums[n->nenums] = base_strdup(e->valuestring);
                if (n->enums[n->nenums] == NULL)
                    return BASE_ENOMEM;
                n->nenums++;
            }
        }
    } else if (n->type == GEN_ARRAY) {
        n->items = calloc(1, sizeof(*n->items));
        if (n->items == NULL)
            return BASE_ENOMEM;
        rc = compile(cx, cJSON_GetObjectItemCaseSensitive(schema, "items"), depth + 1, n->items);
    } else if (n->type == GEN_OBJECT) {
        rc = add_props(cx, schema, depth, n);
    }
    return rc;
}

int sim_gen_compile(const struct sim_gen *g, const char *name, const struct sim_gen_override *ovs,
                    struct sim_gen_node **out, const char **key)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g->doc, name);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(e, "item");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "key");
    struct compile_ctx cx;
    struct sim_gen_node *n;
    int rc;

    if (item == NULL || !cJSON_IsString(k))
        return BASE_ENOTFOUND;
    memset(&cx, 0, sizeof(cx));
    cx.g = g;
    cx.ovs = ovs;
    cx.optional_cf = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "optional_cf"));
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return BASE_ENOMEM;
    rc = compile(&cx, item, 0, n);
    if (rc < 0) {
        node_clear(n);
        free(n);
        return rc;
    }
    *out = n;
    *key = k->valuestring;
    return 0;
}

void sim_gen_free_node(struct sim_gen_node *node)
{
    struct sim_gen_node *n = node;

    if (n == NULL)
        return;
    node_clear(n);
    free(n);
}

/* ---- rendering ------------------------------------------------------------------------- */

static size_t pick(uint64_t *rng, size_t n)
{
    return (size_t)(sim_rng_next(rng) % n);
}

static int put_time(struct base_buf *b, const struct sim_gen_rec *r, const struct sim_gen_node *n,
                    int64_t ms)
{
    char t[48];
    int rc;

    if (n->type == GEN_INTEGER || n->type == GEN_NUMBER)
        return base_buf_printf(b, "%" PRId64, ms);
    if (n->type != GEN_STRING)
        return base_buf_puts(b, "null");
    if (n->date_only)
        rc = base_time_format_day(ms, t, sizeof(t));
    else if (r->v2)
        rc = base_time_format(ms, t, sizeof(t));
    else
        rc = sim_format_v1_time(ms, t, sizeof(t));
    return rc < 0 ? rc : base_buf_printf(b, "\"%s\"", t);
}

static int put_i64(struct base_buf *b, const struct sim_gen_node *n, int64_t v)
{
    if (v <= 0)
        return base_buf_puts(b, "null");
    if (n->type == GEN_STRING)
        return base_buf_printf(b, "\"%" PRId64 "\"", v);
    if (n->type == GEN_INTEGER || n->type == GEN_NUMBER)
        return base_buf_printf(b, "%" PRId64, v);
    return base_buf_puts(b, "null");
}

static int put_str(struct base_buf *b, const struct sim_gen_node *n, const char *s)
{
    if (s == NULL || n->type != GEN_STRING)
        return base_buf_puts(b, "null");
    return sim_json_str(b, s);
}

/* The value of an overridden property; 1 if written, 0 when the override does not apply. */
static int render_override(const struct sim_gen_node *n, const struct sim_gen_rec *r,
                           struct base_buf *b)
{
    switch (n->ov) {
    case SIM_OV_ID:
        return put_i64(b, n, r->id);
    case SIM_OV_CREATED:
        return put_time(b, r, n, r->created);
    case SIM_OV_UPDATED:
        return put_time(b, r, n, r->updated);
    case SIM_OV_EXTRA:
        return put_time(b, r, n, r->extra);
    case SIM_OV_EXTRA_END:
        return put_time(b, r, n, r->extra + 3600 * 1000);
    case SIM_OV_CONTACT:
        return put_i64(b, n, r->contact);
    case SIM_OV_USER:
        return put_i64(b, n, r->user);
    case SIM_OV_PRODUCT:
        return put_i64(b, n, r->product);
    case SIM_OV_ORDER:
        return put_i64(b, n, r->order);
    case SIM_OV_NAME:
        return put_str(b, n, r->name);
    case SIM_OV_EMAIL:
        return put_str(b, n, r->email);
    case SIM_OV_GIVEN:
        return put_str(b, n, r->given);
    case SIM_OV_FAMILY:
        return put_str(b, n, r->family);
    case SIM_OV_STATUS:
        return put_str(b, n, r->status);
    case SIM_OV_NULL:
        return base_buf_puts(b, "null");
    case SIM_OV_NONE:
        break;
    }
    return 0;
}

static int render_string(const struct sim_gen_node *n, struct sim_gen_rec *r, struct base_buf *b)
{
    uint64_t *rng = &r->rng;
    unsigned u = (unsigned)(sim_rng_next(rng) % 100000);

    if (n->nenums > 0)
        return sim_json_str(b, n->enums[pick(rng, n->nenums)]);
    if (n->date_only)
        return put_time(b, r, n, r->created + (int64_t)pick(rng, 365) * 86400000LL);
    switch (n->hint) {
    case HINT_EMAIL:
        return base_buf_printf(b, "\"user%u@example.com\"", u);
    case HINT_TIME:
        return put_time(b, r, n, r->created + (int64_t)pick(rng, 90 * 86400) * 1000);
    case HINT_DATE:
        return put_time(b, r, n, r->created);
    case HINT_ID:
        return base_buf_printf(b, "\"%u\"", 1 + u);
    case HINT_URL:
        return base_buf_printf(b, "\"https://keapsim.example/r/%u\"", u);
    case HINT_PHONE:
        return base_buf_printf(b, "\"(555) %03u-%04u\"", u % 1000, (u / 7) % 10000);
    case HINT_GIVEN:
        return sim_json_str(b, gen_given[pick(rng, BASE_ARRAY_SIZE(gen_given))]);
    case HINT_FAMILY:
        return sim_json_str(b, gen_family[pick(rng, BASE_ARRAY_SIZE(gen_family))]);
    case HINT_COUNTRY_CODE:
        return base_buf_puts(b, "\"USA\"");
    case HINT_COUNTRY:
        return base_buf_puts(b, "\"United States\"");
    case HINT_CURRENCY:
        return base_buf_puts(b, "\"USD\"");
    case HINT_ZIP:
        return base_buf_printf(b, "\"%05u\"", 10000 + u % 89999);
    case HINT_ZIP4:
        return base_buf_printf(b, "\"%04u\"", u % 10000);
    case HINT_REGION:
        return base_buf_puts(b, "\"Arizona\"");
    case HINT_REGION_CODE:
        return base_buf_puts(b, "\"US-AZ\"");
    case HINT_STATE:
        return base_buf_puts(b, "\"AZ\"");
    case HINT_CITY:
        return base_buf_puts(b, "\"Phoenix\"");
    case HINT_STREET:
        return base_buf_printf(b, "\"%u Main St\"", 1 + u % 9999);
    case HINT_TZ:
        return base_buf_puts(b, "\"America/Phoenix\"");
    case HINT_LOCALE:
        return base_buf_puts(b, "\"en_US\"");
    case HINT_SKU:
        return base_buf_printf(b, "\"SKU-%05u\"", u);
    case HINT_IP:
        return base_buf_printf(b, "\"10.%u.%u.%u\"", u % 256, (u / 256) % 256, 1 + u % 250);
    case HINT_MONEY:
        return base_buf_printf(b, "\"$%u.%02u\"", u / 100, u % 100);
    case HINT_WORDS:
        return base_buf_printf(b, "\"%s %s %u\"", gen_words[pick(rng, BASE_ARRAY_SIZE(gen_words))],
                               gen_words[pick(rng, BASE_ARRAY_SIZE(gen_words))], u % 1000);
    case HINT_TEXT:
        break;
    }
    return sim_json_str(b, gen_text[pick(rng, BASE_ARRAY_SIZE(gen_text))]);
}

static int render(const struct sim_gen_node *n, struct sim_gen_rec *r, int depth,
                  struct base_buf *b);

static int render_object(const struct sim_gen_node *n, struct sim_gen_rec *r, int depth,
                         struct base_buf *b)
{
    size_t i;
    bool first = true;
    int rc = base_buf_puts(b, "{");

    for (i = 0; rc == 0 && i < n->nprops; i++) {
        const struct sim_gen_node *p = &n->props[i];

        if (p->cf_optional && !r->cf)
            continue;
        rc = base_buf_puts(b, first ? "" : ",");
        if (rc == 0)
            rc = sim_json_str(b, p->name);
        if (rc == 0)
            rc = base_buf_puts(b, ":");
        if (rc == 0)
            rc = render(p, r, depth + 1, b);
        first = false;
    }
    return rc < 0 ? rc : base_buf_puts(b, "}");
}

/* A custom_fields array with one value per id of r->cf_ids (the object's model), in the item
 * schema's property order; "id" is the field's id, the other properties are generated. */
static int render_cf(const struct sim_gen_node *n, struct sim_gen_rec *r, int depth,
                     struct base_buf *b)
{
    const struct sim_gen_node *it = n->items;
    int rc = base_buf_puts(b, "[");

    for (size_t i = 0; rc == 0 && i < r->ncf_ids; i++) {
        rc = base_buf_puts(b, i ? ",{" : "{");
        for (size_t k = 0; rc == 0 && k < it->nprops; k++) {
            const struct sim_gen_node *p = &it->props[k];

            rc = base_buf_puts(b, k ? "," : "");
            if (rc == 0)
                rc = sim_json_str(b, p->name);
            if (rc == 0)
                rc = base_buf_puts(b, ":");
            if (rc == 0)
                rc = strcmp(p->name, "id") == 0 ? put_i64(b, p, r->cf_ids[i])
                                                : render(p, r, depth + 2, b);
        }
        if (rc == 0)
            rc = base_buf_puts(b, "}");
    }
    return rc < 0 ? rc : base_buf_puts(b, "]");
}

static int render(const struct sim_gen_node *n, struct sim_gen_rec *r, int depth,
                  struct base_buf *b)
{
    size_t i, cnt;
    int rc;

    if (n->ov != SIM_OV_NONE)
        return render_override(n, r, b);
    /* v1 serves null for unset fields (fixtures); v2 leaves them out or fills them */
    if (!r->v2 && n->nullable && depth > 0 && pick(&r->rng, 8) == 0)
        return base_buf_puts(b, "null");
    switch (n->type) {
    case GEN_STRING:
        return render_string(n, r, b);
    case GEN_INTEGER:
        if (n->hint == HINT_ID)
            return base_buf_printf(b, "%zu", 1 + pick(&r->rng, 100000));
        return base_buf_printf(b, "%zu", n->int32 ? pick(&r->rng, 100) : pick(&r->rng, 100000));
    case GEN_NUMBER:
        cnt = pick(&r->rng, 100000);
        return base_buf_printf(b, "%zu.%02zu", cnt / 100, cnt % 100);
    case GEN_BOOLEAN:
        return base_buf_puts(b, pick(&r->rng, 2) ? "true" : "false");
    case GEN_FREE:
        switch (pick(&r->rng, 3)) {
        case 0:
            return base_buf_printf(b, "\"%s\"",
                                   gen_words[pick(&r->rng, BASE_ARRAY_SIZE(gen_words))]);
        case 1:
            return base_buf_printf(b, "%zu", pick(&r->rng, 5000));
        default:
            return base_buf_puts(b, "null");
        }
    case GEN_ARRAY:
        if (n->cf_list && r->cf_ids != NULL && n->items != NULL && n->items->type == GEN_OBJECT)
            return render_cf(n, r, depth, b);
        /* short arrays, shorter as they nest, so deep schemas stay small */
        cnt = depth >= 4 || n->items == NULL ? 0 : pick(&r->rng, depth <= 1 ? 3 : 2);
        rc = base_buf_puts(b, "[");
        for (i = 0; rc == 0 && i < cnt; i++) {
            rc = base_buf_puts(b, i ? "," : "");
            if (rc == 0)
                rc = render(n->items, r, depth + 1, b);
        }
        return rc < 0 ? rc : base_buf_puts(b, "]");
    case GEN_OBJECT:
        return render_object(n, r, depth, b);
    case GEN_ANY:
        break;
    }
    return base_buf_puts(b, "null");
}

int sim_gen_render(const struct sim_gen_node *node, struct sim_gen_rec *r, struct base_buf *out)
{
    return render(node, r, 0, out);
}
