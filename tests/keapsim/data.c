/*
 * data.c: keapsim's data set, a deterministic fake Keap tenant.
 *
 * A record's fields derive from (seed, id) and, for the fields an update changes, from
 * (seed, id, version); its timestamps are chosen once when the data set is built (fixed past
 * years, 2019..2025, never relative to now) and moved by mutations. Each record's JSON is
 * rendered when the record is made or changed, so serving a page only copies bytes.
 *
 * Shapes follow ../data/keap/fixtures/v1-contacts-page.json (key order, types, nulls,
 * "2024-11-07T20:35:13.000+0000" timestamps shown to the second, last_updated_utc_millis to
 * the millisecond) and openapi-v2.json for v2 (string ids, create_time/update_time).
 */
#include "keapsim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define CREATED_FROM_MS 1546300800000LL /* 2019-01-01T00:00:00Z */
#define CREATED_TO_MS   1735603200000LL /* 2024-12-31T00:00:00Z */
#define UPDATED_TO_MS   1751241600000LL /* 2025-06-30T00:00:00Z */
#define RECORD_MAX      (256 * 1024)

static const char *const given_names[] = {
    "Erica", "John",   "Maria",  "Wei",    "Aisha", "Lars",  "Sofia", "Mateo",
    "Yuki",  "Fatima", "Olivia", "Noah",   "Priya", "Liam",  "Chen",  "Amara",
    "Ivan",  "Grace",  "Diego",  "Hannah", "Omar",  "Elena", "Kofi",  "Mia",
    "Ravi",  "Zoe",    "Tomasz", "Leila",  "Hugo",  "Nora",  "Kenji", "Ines",
};
static const char *const family_names[] = {
    "Lewis",  "Doe",    "Garcia",    "Zhang",  "Khan",   "Nielsen", "Rossi",  "Lopez",
    "Sato",   "Haddad", "Smith",     "Brown",  "Patel",  "Murphy",  "Li",     "Okafor",
    "Petrov", "Wilson", "Fernandez", "Muller", "Hassan", "Ivanova", "Mensah", "Dubois",
    "Sharma", "Walker", "Nowak",     "Karimi", "Martin", "Berg",    "Tanaka", "Silva",
};
static const char *const domains[] = {"gmail.com",   "yahoo.com", "example.com",
                                      "outlook.com", "acme.io",   "fastmail.fm"};
static const char *const companies[] = {"Acme Corp",        "Globex", "Initech",
                                        "Umbrella Ltd",     "Hooli",  "Stark Industries",
                                        "Wayne Enterprises"};
static const char *const cities[][3] = {
    {"Phoenix", "AZ", "85001"},  {"Austin", "TX", "73301"},  {"Denver", "CO", "80014"},
    {"Portland", "OR", "97035"}, {"Madison", "WI", "53703"}, {"Boise", "ID", "83702"},
};
static const char *const statuses_optin[] = {"UnengagedMarketable", "SingleOptIn", "Confirmed",
                                             "DoubleOptin"};
static const char *const statuses_optout[] = {"NonMarketable", "UnengagedNonMarketable", "Bounce",
                                              "HardBounce", "Lockdown"};

const char *sim_company_name(size_t c)
{
    return c < BASE_ARRAY_SIZE(companies) ? companies[c] : NULL;
}

/* The generated fields of one record; strings point into the tables above or into bufs. */
struct fields {
    const char *given, *family, *middle; /* middle may be NULL */
    int has_company;
    int64_t company_id;
    const char *company_name;
    int opted_in;
    const char *email_status;
    int score;        /* -1: null */
    int64_t owner_id; /* 0: null */
    int nemail;
    char email[2][96];
    int has_address;
    int city;
    int street_no;
    int has_phone;
    char phone[24];
    int ntags;
    int64_t tags[4];
    /* custom fields: 2 string|null, 4 integer|null, 6 decimal, 8 string */
    const char *cf2;
    int64_t cf4;
    int cf4_null;
    int cf6_cents;
    int cf8_null;
};

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t st = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL);

    return sim_rng_next(&st);
}

static size_t pick(uint64_t *st, size_t n)
{
    return (size_t)(sim_rng_next(st) % n);
}

static void lower_into(char *dst, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i + 1 < n && s[i] != '\0'; i++)
        dst[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    dst[i] = '\0';
}

static void gen_fields(uint64_t seed, int64_t id, uint32_t version, struct fields *f)
{
    uint64_t st = mix(seed, (uint64_t)id);
    uint64_t vs = mix(seed ^ 0xA5A5A5A5ULL, ((uint64_t)id << 20) ^ version);
    char lg[32], lf[32];
    size_t i;

    memset(f, 0, sizeof(*f));
    f->given = given_names[pick(&st, BASE_ARRAY_SIZE(given_names))];
    f->family = family_names[pick(&st, BASE_ARRAY_SIZE(family_names))];
    f->middle = pick(&st, 4) == 0 ? given_names[pick(&st, BASE_ARRAY_SIZE(given_names))] : NULL;
    f->has_company = pick(&st, 6) == 0;
    if (f->has_company) {
        size_t c = pick(&st, BASE_ARRAY_SIZE(companies));

        f->company_id = 3 + 2 * (int64_t)c;
        f->company_name = companies[c];
    }
    lower_into(lg, sizeof(lg), f->given);
    lower_into(lf, sizeof(lf), f->family);
    i = pick(&st, 100);
    f->nemail = i < 8 ? 0 : (i < 83 ? 1 : 2);
    for (i = 0; i < (size_t)f->nemail; i++)
        snprintf(f->email[i], sizeof(f->email[i]), "%s.%s%s%" PRId64 "@%s", lg, lf,
                 i == 0 ? "" : ".alt", id, domains[pick(&st, BASE_ARRAY_SIZE(domains))]);
    f->has_address = pick(&st, 5) < 2;
    f->city = (int)pick(&st, BASE_ARRAY_SIZE(cities));
    f->street_no = 1 + (int)pick(&st, 9999);
    f->has_phone = pick(&st, 2) == 0;
    snprintf(f->phone, sizeof(f->phone), "(555) %03d-%04d", (int)pick(&st, 1000),
             (int)pick(&st, 10000));

    /* What an update may change. */
    f->opted_in = pick(&vs, 2) == 0;
    f->email_status = f->opted_in ? statuses_optin[pick(&vs, BASE_ARRAY_SIZE(statuses_optin))]
                                  : statuses_optout[pick(&vs, BASE_ARRAY_SIZE(statuses_optout))];
    f->score = pick(&vs, 10) < 3 ? (int)pick(&vs, 100) : -1;
    f->owner_id = pick(&vs, 10) < 3 ? 1 + 2 * (int64_t)pick(&vs, 4) : 0;
    f->ntags = (int)pick(&vs, 5);
    if (f->ntags > 3)
        f->ntags = 0; /* many contacts carry no tag */
    for (i = 0; i < (size_t)f->ntags; i++)
        f->tags[i] = 91 + 2 * (int64_t)i + 7 * (int64_t)pick(&vs, 4);
    f->cf2 = pick(&vs, 3) == 0 ? NULL : companies[pick(&vs, BASE_ARRAY_SIZE(companies))];
    f->cf4_null = pick(&vs, 4) == 0;
    f->cf4 = (int64_t)pick(&vs, 5000);
    f->cf6_cents = (int)pick(&vs, 100000);
    f->cf8_null = pick(&vs, 2) == 0;
}

int sim_format_v1_time(int64_t ms, char *buf, size_t n)
{
    char tmp[40];
    int rc;
    size_t len;

    rc = base_time_format(ms - ((ms % 1000) + 1000) % 1000, tmp, sizeof(tmp));
    if (rc < 0)
        return rc;
    len = strlen(tmp);
    if (len == 0 || tmp[len - 1] != 'Z')
        return BASE_EINVAL;
    tmp[len - 1] = '\0';
    return base_snprintf(buf, n, "%s+0000", tmp);
}

int sim_json_str(struct base_buf *b, const char *s)
{
    int rc = base_buf_puts(b, "\"");
    const unsigned char *p;

    for (p = (const unsigned char *)s; rc == 0 && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            rc = base_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            rc = base_buf_printf(b, "\\u%04x", *p);
        else
            rc = base_buf_append(b, p, 1);
    }
    if (rc == 0)
        rc = base_buf_puts(b, "\"");
    return rc;
}

/* Renders the v1 body (no closing brace) and custom fields of r into out. */
static int render_v1(const struct sim_contact *r, const struct fields *f, struct base_buf *body,
                     struct base_buf *cf)
{
    char created[40], updated[40];
    int rc, i;

    rc = sim_format_v1_time(r->created_ms, created, sizeof(created));
    if (rc == 0)
        rc = sim_format_v1_time(r->updated_ms, updated, sizeof(updated));
    if (rc == 0)
        rc = base_buf_puts(body, "{\"tag_ids\":[");
    for (i = 0; rc == 0 && i < f->ntags; i++)
        rc = base_buf_printf(body, "%s%" PRId64, i ? "," : "", f->tags[i]);
    if (rc == 0)
        rc = base_buf_printf(body, "],\"id\":%" PRId64 ",\"company\":", r->id);
    if (rc == 0 && f->has_company) {
        rc = base_buf_printf(body, "{\"id\":%" PRId64 ",\"company_name\":", f->company_id);
        if (rc == 0)
            rc = sim_json_str(body, f->company_name);
        if (rc == 0)
            rc = base_buf_puts(body, "}");
    } else if (rc == 0) {
        rc = base_buf_puts(body, "null");
    }
    if (rc == 0)
        rc = base_buf_printf(
            body,
            ",\"email_opted_in\":%s,\"email_status\":\"%s\",\"date_created\":\"%s\","
            "\"last_updated\":\"%s\",\"ScoreValue\":",
            f->opted_in ? "true" : "false", f->email_status, created, updated);
    if (rc == 0)
        rc = f->score < 0 ? base_buf_puts(body, "null") : base_buf_printf(body, "\"%d\"", f->score);
    if (rc == 0)
        rc = base_buf_printf(body, ",\"last_updated_utc_millis\":%" PRId64 ",\"email_addresses\":[",
                             r->updated_ms);
    for (i = 0; rc == 0 && i < f->nemail; i++) {
        rc = base_buf_printf(body, "%s{\"email\":", i ? "," : "");
        if (rc == 0)
            rc = sim_json_str(body, f->email[i]);
        if (rc == 0)
            rc = base_buf_printf(body, ",\"field\":\"EMAIL%d\"}", i + 1);
    }
    if (rc == 0)
        rc = base_buf_puts(body, "],\"addresses\":[");
    if (rc == 0 && f->has_address)
        rc = base_buf_printf(
            body,
            "{\"country_code\":\"USA\",\"field\":\"BILLING\",\"line1\":\"%d Main St\","
            "\"line2\":\"\",\"locality\":\"%s\",\"postal_code\":\"\",\"region\":\"%s\","
            "\"zip_code\":\"%s\",\"zip_four\":\"\"}",
            f->street_no, cities[f->city][0], cities[f->city][1], cities[f->city][2]);
    if (rc == 0)
        rc = base_buf_puts(body, "],\"phone_numbers\":[");
    if (rc == 0 && f->has_phone)
        rc = base_buf_printf(body,
                             "{\"extension\":\"\",\"field\":\"PHONE1\",\"number\":\"%s\","
                             "\"type\":\"Work\"}",
                             f->phone);
    if (rc == 0)
        rc = base_buf_puts(body, "],\"given_name\":");
    if (rc == 0)
        rc = sim_json_str(body, f->given);
    if (rc == 0)
        rc = base_buf_puts(body, ",\"family_name\":");
    if (rc == 0)
        rc = sim_json_str(body, f->family);
    if (rc == 0)
        rc = base_buf_puts(body, ",\"middle_name\":");
    if (rc == 0)
        rc = f->middle ? sim_json_str(body, f->middle) : base_buf_puts(body, "null");
    if (rc == 0)
        rc = f->owner_id ? base_buf_printf(body, ",\"owner_id\":%" PRId64, f->owner_id)
                         : base_buf_puts(body, ",\"owner_id\":null");

    if (rc == 0)
        rc = base_buf_puts(cf, ",\"custom_fields\":[{\"id\":2,\"content\":");
    if (rc == 0)
        rc = f->cf2 ? sim_json_str(cf, f->cf2) : base_buf_puts(cf, "null");
    if (rc == 0)
        rc = f->cf4_null ? base_buf_puts(cf, "},{\"id\":4,\"content\":null")
                         : base_buf_printf(cf, "},{\"id\":4,\"content\":%" PRId64, f->cf4);
    if (rc == 0)
        rc = base_buf_printf(cf, "},{\"id\":6,\"content\":%d.%02d},{\"id\":8,\"content\":",
                             f->cf6_cents / 100, f->cf6_cents % 100);
    if (rc == 0)
        rc = f->cf8_null ? base_buf_puts(cf, "null")
                         : base_buf_printf(cf, "\"ref-%" PRId64 "\"", r->id * 7 % 1000);
    if (rc == 0)
        rc = base_buf_puts(cf, "}]");
    return rc;
}

/* Renders the v2 Contact (openapi-v2.json) of r into out. */
static int render_v2(const struct sim_contact *r, const struct fields *f, struct base_buf *out)
{
    char created[40], updated[40];
    int rc, i;

    rc = base_time_format(r->created_ms - r->created_ms % 1000, created, sizeof(created));
    if (rc == 0)
        rc = base_time_format(r->updated_ms, updated, sizeof(updated));
    if (rc == 0)
        rc = base_buf_puts(out, "{\"addresses\":[");
    if (rc == 0 && f->has_address)
        rc = base_buf_printf(out,
                             "{\"country\":\"United States\",\"country_code\":\"USA\","
                             "\"field\":\"BILLING\",\"line1\":\"%d Main St\",\"line2\":\"\","
                             "\"locality\":\"%s\",\"postal_code\":\"%s\",\"region\":\"%s\","
                             "\"region_code\":\"US-%s\",\"zip_code\":\"%s\",\"zip_four\":\"\"}",
                             f->street_no, cities[f->city][0], cities[f->city][2],
                             cities[f->city][1], cities[f->city][1], cities[f->city][2]);
    if (rc == 0)
        rc = base_buf_puts(out, "],\"company\":");
    if (rc == 0 && f->has_company) {
        rc = base_buf_printf(out, "{\"company_name\":");
        if (rc == 0)
            rc = sim_json_str(out, f->company_name);
        if (rc == 0)
            rc = base_buf_printf(out, ",\"id\":\"%" PRId64 "\"}", f->company_id);
    } else if (rc == 0) {
        rc = base_buf_puts(out, "null");
    }
    if (rc == 0)
        rc = base_buf_printf(
            out, ",\"create_time\":\"%s\",\"custom_fields\":[{\"id\":\"2\",\"content\":", created);
    if (rc == 0)
        rc = f->cf2 ? sim_json_str(out, f->cf2) : base_buf_puts(out, "null");
    if (rc == 0)
        rc = f->cf4_null ? base_buf_puts(out, "},{\"id\":\"4\",\"content\":null")
                         : base_buf_printf(out, "},{\"id\":\"4\",\"content\":%" PRId64, f->cf4);
    if (rc == 0)
        rc = base_buf_printf(out, "},{\"id\":\"6\",\"content\":%d.%02d},{\"id\":\"8\",\"content\":",
                             f->cf6_cents / 100, f->cf6_cents % 100);
    if (rc == 0)
        rc = f->cf8_null ? base_buf_puts(out, "null")
                         : base_buf_printf(out, "\"ref-%" PRId64 "\"", r->id * 7 % 1000);
    if (rc == 0)
        rc = base_buf_puts(out, "}],\"email_addresses\":[");
    for (i = 0; rc == 0 && i < f->nemail; i++) {
        rc = base_buf_printf(out, "%s{\"email\":", i ? "," : "");
        if (rc == 0)
            rc = sim_json_str(out, f->email[i]);
        if (rc == 0)
            rc = base_buf_printf(out, ",\"field\":\"EMAIL%d\",\"opt_in_reason\":null}", i + 1);
    }
    if (rc == 0)
        rc = base_buf_puts(out, "],\"family_name\":");
    if (rc == 0)
        rc = sim_json_str(out, f->family);
    if (rc == 0)
        rc = base_buf_puts(out, ",\"given_name\":");
    if (rc == 0)
        rc = sim_json_str(out, f->given);
    if (rc == 0)
        rc = base_buf_printf(out, ",\"id\":\"%" PRId64 "\",\"middle_name\":", r->id);
    if (rc == 0)
        rc = f->middle ? sim_json_str(out, f->middle) : base_buf_puts(out, "null");
    if (rc == 0)
        rc = f->owner_id ? base_buf_printf(out, ",\"owner_id\":\"%" PRId64 "\"", f->owner_id)
                         : base_buf_puts(out, ",\"owner_id\":null");
    if (rc == 0)
        rc = base_buf_puts(out, ",\"phone_numbers\":[");
    if (rc == 0 && f->has_phone)
        rc = base_buf_printf(out,
                             "{\"extension\":\"\",\"field\":\"PHONE1\",\"number\":\"%s\","
                             "\"type\":\"Work\"}",
                             f->phone);
    if (rc == 0)
        rc = base_buf_puts(out, "],\"score_value\":");
    if (rc == 0)
        rc = f->score < 0 ? base_buf_puts(out, "null") : base_buf_printf(out, "\"%d\"", f->score);
    if (rc == 0)
        rc = base_buf_puts(out, ",\"tag_ids\":[");
    for (i = 0; rc == 0 && i < f->ntags; i++)
        rc = base_buf_printf(out, "%s\"%" PRId64 "\"", i ? "," : "", f->tags[i]);
    if (rc == 0)
        rc = base_buf_printf(out, "],\"update_time\":\"%s\"}", updated);
    return rc;
}

static void contact_free_json(struct sim_contact *r)
{
    free(r->body);
    free(r->cf);
    free(r->v2);
    r->body = r->cf = r->v2 = NULL;
}

/* (Re)renders r's JSON from its id, version and timestamps. On failure r is unchanged. */
static int contact_render(uint64_t seed, struct sim_contact *r)
{
    struct fields f;
    struct base_buf body, cf, v2;
    int rc;

    base_buf_init(&body, RECORD_MAX);
    base_buf_init(&cf, RECORD_MAX);
    base_buf_init(&v2, RECORD_MAX);
    gen_fields(seed, r->id, r->version, &f);
    rc = render_v1(r, &f, &body, &cf);
    if (rc == 0)
        rc = render_v2(r, &f, &v2);
    if (rc < 0)
        goto out;
    contact_free_json(r);
    snprintf(r->name, sizeof(r->name), "%s %s", f.given, f.family);
    snprintf(r->email, sizeof(r->email), "%s", f.nemail ? f.email[0] : "");
    r->body = body.data;
    r->body_len = body.len;
    r->cf = cf.data;
    r->cf_len = cf.len;
    r->v2 = v2.data;
    r->v2_len = v2.len;
    return 0;
out:
    base_buf_free(&body);
    base_buf_free(&cf);
    base_buf_free(&v2);
    return rc;
}

static int data_reserve(struct sim_data *d, size_t want)
{
    struct sim_contact *p;
    size_t cap;

    if (want <= d->cap)
        return 0;
    cap = d->cap ? d->cap : 64;
    while (cap < want)
        cap *= 2;
    p = realloc(d->recs, cap * sizeof(*p));
    if (p == NULL)
        return BASE_ENOMEM;
    d->recs = p;
    d->cap = cap;
    return 0;
}

int sim_data_init(struct sim_data *d, uint64_t seed, size_t size)
{
    uint64_t st = mix(seed, 0x5EED);
    int64_t id = 1 + (int64_t)pick(&st, 20), step;
    size_t i;
    int rc;

    memset(d, 0, sizeof(*d));
    if (pthread_rwlock_init(&d->lock, NULL) != 0)
        return BASE_ENOMEM;
    d->seed = seed;
    d->rng = mix(seed, 0x3E7A7E);
    rc = data_reserve(d, size ? size : 1);
    if (rc < 0)
        goto fail;
    step = size ? (CREATED_TO_MS - CREATED_FROM_MS) / (int64_t)size : 0;
    for (i = 0; i < size; i++) {
        struct sim_contact *r = &d->recs[i];
        int64_t created = CREATED_FROM_MS + (int64_t)i * step;

        memset(r, 0, sizeof(*r));
        if (step > 1000)
            created += (int64_t)pick(&st, (size_t)(step / 1000)) * 1000;
        r->id = id;
        r->created_ms = created;
        if (pick(&st, 10) < 4) /* never updated: same second, like the fixture */
            r->updated_ms = created + (int64_t)pick(&st, 1000);
        else
            r->updated_ms = created + (int64_t)pick(&st, (size_t)(UPDATED_TO_MS - created));
        rc = contact_render(seed, r);
        if (rc < 0)
            goto fail;
        d->n++;
        /* Increasing ids with gaps: deleted records and other objects share the sequence. */
        id += 1 + (pick(&st, 4) == 0 ? (int64_t)pick(&st, 6) : 0);
    }
    d->max_id = d->n ? d->recs[d->n - 1].id : id;
    return 0;
fail:
    sim_data_free(d);
    return rc;
}

void sim_data_free(struct sim_data *d)
{
    size_t i;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++)
        contact_free_json(&d->recs[i]);
    free(d->recs);
    d->recs = NULL;
    d->n = d->cap = 0;
    pthread_rwlock_destroy(&d->lock);
}

int sim_data_mutate(struct sim_data *d, int64_t now_ms, size_t creates, size_t updates,
                    size_t deletes)
{
    size_t i;
    int rc = 0;

    pthread_rwlock_wrlock(&d->lock);
    for (i = 0; i < updates && d->n > 0; i++) {
        struct sim_contact *r = &d->recs[pick(&d->rng, d->n)];
        struct sim_contact saved = *r;

        r->version++;
        r->updated_ms = now_ms > saved.updated_ms ? now_ms : saved.updated_ms + 1;
        r->body = r->cf = r->v2 = NULL;
        rc = contact_render(d->seed, r);
        if (rc < 0) {
            *r = saved;
            goto out;
        }
        free(saved.body);
        free(saved.cf);
        free(saved.v2);
        d->updated++;
    }
    for (i = 0; i < deletes && d->n > 0; i++) {
        size_t k = pick(&d->rng, d->n);

        contact_free_json(&d->recs[k]);
        memmove(&d->recs[k], &d->recs[k + 1], (d->n - k - 1) * sizeof(d->recs[0]));
        d->n--;
        d->deleted++;
    }
    for (i = 0; i < creates; i++) {
        struct sim_contact *r;

        rc = data_reserve(d, d->n + 1);
        if (rc < 0)
            goto out;
        r = &d->recs[d->n];
        memset(r, 0, sizeof(*r));
        r->id = d->max_id + 1 + (int64_t)pick(&d->rng, 3);
        r->created_ms = now_ms - ((now_ms % 1000) + 1000) % 1000;
        r->updated_ms = now_ms;
        rc = contact_render(d->seed, r);
        if (rc < 0)
            goto out;
        d->max_id = r->id;
        d->n++;
        d->created++;
    }
out:
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

/* The index of id in d->recs (sorted by id), or -1. Caller holds the lock. */
static ssize_t find_id(const struct sim_data *d, int64_t id)
{
    size_t lo = 0, hi = d->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (d->recs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n && d->recs[lo].id == id ? (ssize_t)lo : -1;
}

int sim_data_contact_info(struct sim_data *d, int64_t id, struct sim_contact_info *info)
{
    struct fields f;
    ssize_t k;
    int i;

    pthread_rwlock_rdlock(&d->lock);
    k = find_id(d, id);
    if (k < 0) {
        pthread_rwlock_unlock(&d->lock);
        return BASE_ENOTFOUND;
    }
    gen_fields(d->seed, id, d->recs[k].version, &f);
    info->created_ms = d->recs[k].created_ms;
    info->updated_ms = d->recs[k].updated_ms;
    info->ntags = f.ntags;
    for (i = 0; i < f.ntags; i++)
        info->tags[i] = f.tags[i];
    snprintf(info->email, sizeof(info->email), "%s", f.nemail ? f.email[0] : "");
    pthread_rwlock_unlock(&d->lock);
    return 0;
}

int sim_data_contact_json(struct sim_data *d, int64_t id, bool cf, struct base_buf *out)
{
    const struct sim_contact *r;
    ssize_t k;
    int rc;

    pthread_rwlock_rdlock(&d->lock);
    k = find_id(d, id);
    if (k < 0) {
        pthread_rwlock_unlock(&d->lock);
        return BASE_ENOTFOUND;
    }
    r = &d->recs[k];
    rc = base_buf_append(out, r->body, r->body_len);
    if (rc == 0 && cf)
        rc = base_buf_append(out, r->cf, r->cf_len);
    if (rc == 0)
        rc = base_buf_puts(out, "}");
    pthread_rwlock_unlock(&d->lock);
    return rc;
}
