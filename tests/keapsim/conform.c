/*
 * conform.c: keapsim_conform, checks a served JSON page against Keap's OpenAPI spec.
 *
 *   keapsim_conform SPEC.json API_PATH PAGE.json [--allow-extra name,name,...]
 *
 * Finds paths[API_PATH].get.responses["200"] application/json schema in SPEC and walks PAGE
 * beside it ("$ref" followed, "allOf" parts merged): every value must have the schema's JSON
 * type (integer: a whole number), strings with an enum must be one of it, arrays are checked
 * item by item, objects property by property. null is accepted anywhere (Keap serves null for unset
 * fields). An object schema without properties (the specs' "content": {"type": "object"}) accepts
 * any value. A property the schema does not name is an error unless listed in --allow-extra (v1
 * contacts carry tag_ids and last_updated_utc_millis, which the spec omits). Prints one line per
 * problem and a summary; exits 0 when there is none, 1 otherwise, 2 on bad usage or unreadable
 * input.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX (64L * 1024 * 1024)

struct ctx {
    const cJSON *spec;
    const char *allow; /* comma list, or NULL */
    int problems;
    int checked;
};

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > FILE_MAX ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)len + 1);
    if (buf == NULL)
        goto out;
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[len] = '\0';
out:
    fclose(f);
    return buf;
}

/* Follows "$ref": "#/components/schemas/Name" (repeatedly); NULL if it leads nowhere. */
static const cJSON *resolve(const struct ctx *cx, const cJSON *schema)
{
    int hops;

    for (hops = 0; schema != NULL && hops < 16; hops++) {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
        const char *prefix = "#/components/schemas/";
        const cJSON *schemas;

        if (!cJSON_IsString(ref))
            return schema;
        if (strncmp(ref->valuestring, prefix, strlen(prefix)) != 0)
            return NULL;
        schemas = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cx->spec, "components"), "schemas");
        schema = cJSON_GetObjectItemCaseSensitive(schemas, ref->valuestring + strlen(prefix));
    }
    return NULL;
}

static bool allowed_extra(const struct ctx *cx, const char *name)
{
    const char *p = cx->allow;
    size_t n = strlen(name);

    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

static void problem(struct ctx *cx, const char *where, const char *what)
{
    printf("%s: %s\n", where, what);
    cx->problems++;
}

static void check(struct ctx *cx, const cJSON *schema, const cJSON *v, const char *where);

/* The schema of property name in schema, looking into "allOf" parts too; NULL if none. */
static const cJSON *find_prop(const struct ctx *cx, const cJSON *schema, const char *name,
                              int depth)
{
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(schema, "properties"), name);
    const cJSON *part;

    if (ps != NULL || depth > 8)
        return ps;
    cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(schema, "allOf"))
    {
        const cJSON *r = resolve(cx, part);

        if (r != NULL && (ps = find_prop(cx, r, name, depth + 1)) != NULL)
            return ps;
    }
    return NULL;
}

static bool has_props(const cJSON *schema)
{
    return cJSON_GetObjectItemCaseSensitive(schema, "properties") != NULL ||
           cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(schema, "allOf"));
}

static void check_object(struct ctx *cx, const cJSON *schema, const cJSON *v, const char *where)
{
    const cJSON *item;
    char sub[512];

    if (!has_props(schema))
        return; /* a free-form object: anything goes */
    cJSON_ArrayForEach(item, v)
    {
        const cJSON *ps = find_prop(cx, schema, item->string, 0);

        snprintf(sub, sizeof(sub), "%s.%s", where, item->string);
        if (ps == NULL) {
            if (!allowed_extra(cx, item->string))
                problem(cx, sub, "not in the schema");
            continue;
        }
        check(cx, ps, item, sub);
    }
}

static void check(struct ctx *cx, const cJSON *schema, const cJSON *v, const char *where)
{
    const cJSON *type, *en;
    const char *t;
    char sub[512];

    schema = resolve(cx, schema);
    if (schema == NULL) {
        problem(cx, where, "unresolvable $ref in the spec");
        return;
    }
    cx->checked++;
    if (cJSON_IsNull(v))
        return;
    type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    t = cJSON_IsString(type) ? type->valuestring : NULL;
    if (t == NULL) {
        if (has_props(schema))
            t = "object";
        else
            return; /* untyped: anything */
    }
    if (strcmp(t, "string") == 0) {
        if (!cJSON_IsString(v)) {
            problem(cx, where, "want a string");
            return;
        }
        en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
        if (cJSON_IsArray(en)) {
            const cJSON *e;
            bool found = false;

            cJSON_ArrayForEach(e, en) if (cJSON_IsString(e) &&
                                          strcmp(e->valuestring, v->valuestring) == 0) found = true;
            if (!found) {
                snprintf(sub, sizeof(sub), "\"%.200s\" is not in the enum", v->valuestring);
                problem(cx, where, sub);
            }
        }
    } else if (strcmp(t, "integer") == 0) {
        if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble)
            problem(cx, where, "want an integer");
    } else if (strcmp(t, "number") == 0) {
        if (!cJSON_IsNumber(v))
            problem(cx, where, "want a number");
    } else if (strcmp(t, "boolean") == 0) {
        if (!cJSON_IsBool(v))
            problem(cx, where, "want a boolean");
    } else if (strcmp(t, "array") == 0) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items"), *e;
        int i = 0;

        if (!cJSON_IsArray(v)) {
            problem(cx, where, "want an array");
            return;
        }
        cJSON_ArrayForEach(e, v)
        {
            snprintf(sub, sizeof(sub), "%s[%d]", where, i++);
            if (items != NULL)
                check(cx, items, e, sub);
        }
    } else if (strcmp(t, "object") == 0) {
        if (!has_props(schema))
            return; /* "content": {"type": "object"} holds strings and numbers too */
        if (!cJSON_IsObject(v)) {
            problem(cx, where, "want an object");
            return;
        }
        check_object(cx, schema, v, where);
    }
}

int main(int argc, char **argv)
{
    struct ctx cx = {NULL, NULL, 0, 0};
    char *spec_txt = NULL, *page_txt = NULL;
    cJSON *spec = NULL, *page = NULL;
    const cJSON *schema;
    int rc = 2;

    if (argc == 6 && strcmp(argv[4], "--allow-extra") == 0)
        cx.allow = argv[5];
    else if (argc != 4) {
        fprintf(stderr,
                "usage: keapsim_conform SPEC.json API_PATH PAGE.json [--allow-extra a,b]\n");
        return 2;
    }
    spec_txt = read_file(argv[1]);
    page_txt = read_file(argv[3]);
    if (spec_txt == NULL || page_txt == NULL) {
        fprintf(stderr, "keapsim_conform: could not read \"%s\" or \"%s\"\n", argv[1], argv[3]);
        goto out;
    }
    spec = cJSON_Parse(spec_txt);
    page = cJSON_Parse(page_txt);
    if (spec == NULL || page == NULL) {
        fprintf(stderr, "keapsim_conform: could not parse the spec or the page as JSON\n");
        goto out;
    }
    cx.spec = spec;
    schema =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "paths"), argv[2]);
    schema = cJSON_GetObjectItemCaseSensitive(schema, "get");
    schema = cJSON_GetObjectItemCaseSensitive(schema, "responses");
    schema = cJSON_GetObjectItemCaseSensitive(schema, "200");
    schema = cJSON_GetObjectItemCaseSensitive(schema, "content");
    schema = cJSON_GetObjectItemCaseSensitive(schema, "application/json");
    schema = cJSON_GetObjectItemCaseSensitive(schema, "schema");
    if (schema == NULL) {
        fprintf(stderr, "keapsim_conform: no GET 200 JSON schema for \"%s\"\n", argv[2]);
        goto out;
    }
    check(&cx, schema, page, "$");
    printf("keapsim_conform: %s: %d values checked, %d problems\n", argv[2], cx.checked,
           cx.problems);
    rc = cx.problems == 0 && cx.checked > 1 ? 0 : 1;
out:
    cJSON_Delete(spec);
    cJSON_Delete(page);
    free(spec_txt);
    free(page_txt);
    return rc;
}
