/*
 * resources.c: the records with a fixed, hand-written shape, and the per-contact lists.
 *
 *   tags                                a fixed tag set (the ids contacts' tag_ids use), served
 *                                       by lists.c as /v1/tags and /v2/tags
 *   sent emails                         0..3 per contact with an email address, served here per
 *                                       contact and by lists.c as /v1/emails (same bytes)
 *   /v1/contacts/{id}                   one contact (optional_properties=custom_fields)
 *   /v1/contacts/{id}/tags              tag applications with date_applied
 *   /v1/contacts/{id}/emails            sent emails, 0..3 per contact, fixed past dates
 *
 * Shapes follow openapi-v1.json / openapi-v2.json (ContactTagList, EmailSentQueryResultList,
 * Tags, ListTagsResponse). Per-contact lists derive from the contact's current fields, so an
 * update may change its tags; an unknown contact answers 404 {"message": ...} like v1 does.
 */
#include "keapsim.h"

#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_FIRST SIM_TAG_FIRST

static const char *const tag_words[] = {
    "Nurture Subscriber", "Customer", "Lead",    "Webinar", "VIP",
    "Newsletter",         "Trial",    "Churned", "Partner", "Event 2023"};
static const char *const tag_categories[] = {"Lifecycle", "Marketing", "Sales"};

static const char *qarg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static int not_found(int *status, struct base_buf *body, const char *what)
{
    *status = 404;
    base_buf_reset(body);
    return base_buf_printf(body, "{\"message\":\"%s not found\"}", what);
}

/* v1 limit/offset: limit 1..1000 (else 1000), offset >= 0. */
static int v1_paging(struct MHD_Connection *c, size_t *limit, size_t *offset)
{
    const char *l = qarg(c, "limit"), *o = qarg(c, "offset");
    int64_t n;

    *limit = SIM_PAGE_MAX;
    *offset = 0;
    if (l != NULL) {
        if (base_parse_int64(l, &n) < 0)
            return BASE_EINVAL;
        if (n > 0 && n < SIM_PAGE_MAX)
            *limit = (size_t)n;
    }
    if (o != NULL) {
        if (base_parse_int64(o, &n) < 0 || n < 0)
            return BASE_EINVAL;
        *offset = (size_t)n;
    }
    return 0;
}

int sim_tag_json(struct base_buf *b, int64_t id, bool v2, int64_t created_ms, int64_t updated_ms)
{
    size_t w = (size_t)(id - TAG_FIRST) % BASE_ARRAY_SIZE(tag_words);
    size_t cat = (size_t)(id - TAG_FIRST) % BASE_ARRAY_SIZE(tag_categories);
    char created[40], updated[40];
    int rc;

    if (!v2)
        return base_buf_printf(b,
                               "{\"id\":%" PRId64 ",\"name\":\"%s %" PRId64
                               "\",\"description\":\"\","
                               "\"category\":{\"id\":%zu,\"name\":\"%s\",\"description\":\"\"}}",
                               id, tag_words[w], id, 10 + 2 * cat, tag_categories[cat]);
    rc = base_time_format(created_ms, created, sizeof(created));
    if (rc == 0)
        rc = base_time_format(updated_ms, updated, sizeof(updated));
    if (rc < 0)
        return rc;
    return base_buf_printf(b,
                           "{\"id\":\"%" PRId64 "\",\"name\":\"%s %" PRId64
                           "\",\"description\":\"\","
                           "\"category\":{\"id\":\"%zu\"},\"create_time\":\"%s\","
                           "\"update_time\":\"%s\"}",
                           id, tag_words[w], id, 10 + 2 * cat, created, updated);
}

static int contact_tags(struct MHD_Connection *c, int64_t id, const struct sim_contact_info *in,
                        int *status, struct base_buf *body)
{
    size_t limit, offset, i, end, n = (size_t)in->ntags;
    char applied[40];
    char path[64];
    int rc;

    if (v1_paging(c, &limit, &offset) < 0) {
        *status = 400;
        return base_buf_puts(body, "{\"message\":\"Invalid limit or offset\"}");
    }
    *status = 200;
    rc = base_buf_puts(body, "{\"tags\":[");
    end = offset < n ? (n - offset < limit ? n : offset + limit) : offset;
    for (i = offset; rc == 0 && i < end; i++) {
        int64_t tag = in->tags[i];
        size_t cat = (size_t)(tag - TAG_FIRST) % BASE_ARRAY_SIZE(tag_categories);
        size_t w = (size_t)(tag - TAG_FIRST) % BASE_ARRAY_SIZE(tag_words);

        rc = sim_format_v1_time(in->created_ms + (int64_t)(i + 1) * 3600 * 1000, applied,
                                sizeof(applied));
        if (rc == 0)
            rc = base_buf_printf(body,
                                 "%s{\"date_applied\":\"%s\",\"tag\":{\"id\":%" PRId64
                                 ",\"name\":\"%s %" PRId64 "\",\"category\":\"%s\"}}",
                                 i > offset ? "," : "", applied, tag, tag_words[w], tag,
                                 tag_categories[cat]);
    }
    if (rc == 0)
        rc = base_buf_printf(body, "],\"count\":%zu,", n);
    snprintf(path, sizeof(path), "/v1/contacts/%" PRId64 "/tags", id);
    if (rc == 0)
        rc = sim_v1_links(body, c, path, end > offset ? end - offset : 0, offset, limit);
    if (rc == 0)
        rc = base_buf_puts(body, "}");
    return rc;
}

size_t sim_email_count(int64_t contact_id, const char *to)
{
    return to != NULL && to[0] != '\0' ? (size_t)(contact_id % 4) : 0;
}

int64_t sim_email_sent_ms(int64_t created_ms, size_t i)
{
    return created_ms + (int64_t)(i + 1) * 86400 * 1000;
}

int sim_email_v1_json(struct base_buf *b, int64_t contact_id, const char *to, int64_t created_ms,
                      size_t i)
{
    int64_t at = sim_email_sent_ms(created_ms, i);
    char sent[40], opened[40];
    int rc;

    rc = sim_format_v1_time(at, sent, sizeof(sent));
    if (rc == 0)
        rc = sim_format_v1_time(at + 7200 * 1000, opened, sizeof(opened));
    if (rc == 0)
        rc = base_buf_printf(b,
                             "{\"clicked_date\":null,\"contact_id\":%" PRId64
                             ",\"headers\":null,\"id\":%" PRId64 ",\"opened_date\":",
                             contact_id, contact_id * 10 + (int64_t)i);
    if (rc == 0)
        rc = (i % 2 == 0) ? base_buf_printf(b, "\"%s\"", opened) : base_buf_puts(b, "null");
    if (rc == 0)
        rc = base_buf_printf(b,
                             ",\"original_provider\":\"INFUSIONSOFT\",\"original_provider_id\":"
                             "null,\"received_date\":\"%s\",\"sent_date\":\"%s\","
                             "\"sent_from_address\":\"news@keapsim.example\","
                             "\"sent_from_reply_address\":\"news@keapsim.example\","
                             "\"sent_to_address\":",
                             sent, sent);
    if (rc == 0)
        rc = sim_json_str(b, to);
    if (rc == 0)
        rc = base_buf_printf(b,
                             ",\"sent_to_bcc_addresses\":null,\"sent_to_cc_addresses\":null,"
                             "\"subject\":\"Update %zu\"}",
                             i + 1);
    return rc;
}

static int contact_emails(struct MHD_Connection *c, int64_t id, const struct sim_contact_info *in,
                          int *status, struct base_buf *body)
{
    size_t limit, offset, i, end, n = sim_email_count(id, in->email);
    char path[64];
    int rc;

    if (v1_paging(c, &limit, &offset) < 0) {
        *status = 400;
        return base_buf_puts(body, "{\"message\":\"Invalid limit or offset\"}");
    }
    *status = 200;
    rc = base_buf_printf(body, "{\"count\":%zu,\"emails\":[", n);
    end = offset < n ? (n - offset < limit ? n : offset + limit) : offset;
    for (i = offset; rc == 0 && i < end; i++) {
        rc = base_buf_puts(body, i > offset ? "," : "");
        if (rc == 0)
            rc = sim_email_v1_json(body, id, in->email, in->created_ms, i);
    }
    if (rc == 0)
        rc = base_buf_puts(body, "],");
    snprintf(path, sizeof(path), "/v1/contacts/%" PRId64 "/emails", id);
    if (rc == 0)
        rc = sim_v1_links(body, c, path, end > offset ? end - offset : 0, offset, limit);
    if (rc == 0)
        rc = base_buf_puts(body, "}");
    return rc;
}

int sim_res_contact_sub(struct sim *s, struct MHD_Connection *c, const char *path, int *status,
                        struct base_buf *body)
{
    const char *p = path + strlen("/v1/contacts/"), *slash = strchr(p, '/');
    const char *opt = qarg(c, "optional_properties");
    struct sim_contact_info info;
    char idbuf[24];
    size_t idlen = slash ? (size_t)(slash - p) : strlen(p);
    int64_t id;
    int rc;

    base_buf_reset(body);
    if (idlen == 0 || idlen >= sizeof(idbuf))
        return not_found(status, body, "Contact");
    memcpy(idbuf, p, idlen);
    idbuf[idlen] = '\0';
    if (base_parse_int64(idbuf, &id) < 0 || id <= 0)
        return not_found(status, body, "Contact");
    if (slash == NULL || strcmp(slash, "/") == 0) {
        rc = sim_data_contact_json(&s->data, id, opt && strstr(opt, "custom_fields"), body);
        if (rc == BASE_ENOTFOUND)
            return not_found(status, body, "Contact");
        *status = 200;
        return rc;
    }
    if (sim_data_contact_info(&s->data, id, &info) < 0)
        return not_found(status, body, "Contact");
    if (strcmp(slash, "/tags") == 0)
        return contact_tags(c, id, &info, status, body);
    if (strcmp(slash, "/emails") == 0)
        return contact_emails(c, id, &info, status, body);
    return not_found(status, body, "Resource");
}
