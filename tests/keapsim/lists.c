/*
 * lists.c: every list of KEAP_API.md's endpoint table except contacts (routes.c), on its v1 and
 * its v2 path, with Keap's paging: v1 limit/offset/order/since/until, v2 page_size/page_token/
 * order_by/filter. README.md has the table of what each list accepts.
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
#include "keapsim.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define T_FROM_MS   1546300800000LL /* 2019-01-01: the first record's creation */
#define T_TO_MS     1735603200000LL /* 2024-12-31: the last one's */
#define T_UPDATE_MS 1751241600000LL /* 2025-06-30: the latest update */
#define DAY_MS      86400000LL
#define FILTER_MAX  1024
#define ENT_MAX     ((size_t)64 * 1024 * 1024) /* entries one request may sort */

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

/* ---- the resources ------------------------------------------------------------------ */

static const struct list_field f_since_until[] = {
    {"since", KEY_UPDATED, false}, {"until", KEY_UPDATED, true}, {NULL, KEY_NONE, false}};
static const struct list_field f_sent[] = {{"since_sent_date", KEY_CREATED, false},
                                           {"until_sent_date", KEY_CREATED, true},
                                           {NULL, KEY_NONE, false}};
static const struct list_field f2_time[] = {
    {"since_time", KEY_UPDATED, false}, {"until_time", KEY_UPDATED, true}, {NULL, KEY_NONE, false}};
static const struct list_field f2_orders[] = {{"modified_since_time", KEY_UPDATED, false},
                                              {"modified_until_time", KEY_UPDATED, true},
                                              {"created_since_time", KEY_CREATED, false},
                                              {"created_until_time", KEY_CREATED, true},
                                              {NULL, KEY_NONE, false}};
static const struct list_field f2_tags[] = {{"since_update_time", KEY_UPDATED, false},
                                            {"until_update_time", KEY_UPDATED, true},
                                            {"since_create_time", KEY_CREATED, false},
                                            {"until_create_time", KEY_CREATED, true},
                                            {NULL, KEY_NONE, false}};
static const struct list_field f2_emails[] = {{"start_created_time", KEY_CREATED, false},
                                              {"end_created_time", KEY_CREATED, true},
                                              {NULL, KEY_NONE, false}};
static const struct list_field f_none[] = {{NULL, KEY_NONE, false}};

static const struct list_order o1_companies[] = {{"id", KEY_ID},
                                                 {"date_created", KEY_CREATED},
                                                 {"name", KEY_NONE},
                                                 {"email", KEY_NONE},
                                                 {NULL, KEY_NONE}};
static const struct list_order o1_opportunities[] = {{"date_created", KEY_CREATED},
                                                     {"next_action", KEY_EXTRA},
                                                     {"opportunity_name", KEY_NONE},
                                                     {"contact_name", KEY_NONE},
                                                     {NULL, KEY_NONE}};
static const struct list_order o1_orders[] = {
    {"order_date", KEY_CREATED}, {"update_date", KEY_UPDATED}, {NULL, KEY_NONE}};
static const struct list_order o1_tasks[] = {{"id", KEY_ID},
                                             {"creation_date", KEY_CREATED},
                                             {"modification_date", KEY_UPDATED},
                                             {"due_date", KEY_EXTRA},
                                             {NULL, KEY_NONE}};
static const struct list_order o1_campaigns[] = {{"id", KEY_ID},
                                                 {"date_created", KEY_CREATED},
                                                 {"last_updated", KEY_UPDATED},
                                                 {"published_date", KEY_EXTRA},
                                                 {"name", KEY_NONE},
                                                 {"completed_contact_count", KEY_NONE},
                                                 {"active_contact_count", KEY_NONE},
                                                 {"category", KEY_NONE},
                                                 {"status", KEY_NONE},
                                                 {NULL, KEY_NONE}};

static const struct list_order o2_companies[] = {{"id", KEY_ID},
                                                 {"create_time", KEY_CREATED},
                                                 {"name", KEY_NONE},
                                                 {"email", KEY_NONE},
                                                 {NULL, KEY_NONE}};
static const struct list_order o2_opportunities[] = {{"created_time", KEY_CREATED},
                                                     {"last_updated_time", KEY_UPDATED},
                                                     {"update_time", KEY_UPDATED},
                                                     {"next_action_time", KEY_EXTRA},
                                                     {"contact_name", KEY_NONE},
                                                     {"opportunity_name", KEY_NONE},
                                                     {NULL, KEY_NONE}};
static const struct list_order o2_orders[] = {
    {"id", KEY_ID}, {"order_time", KEY_CREATED}, {NULL, KEY_NONE}};
static const struct list_order o2_products[] = {{"name", KEY_NONE}, {NULL, KEY_NONE}};
static const struct list_order o2_tags[] = {{"create_time", KEY_CREATED},
                                            {"update_time", KEY_UPDATED},
                                            {"name", KEY_NONE},
                                            {NULL, KEY_NONE}};
static const struct list_order o2_tasks[] = {
    {"id", KEY_ID}, {"create_time", KEY_CREATED}, {"due_time", KEY_EXTRA}, {NULL, KEY_NONE}};
static const struct list_order o2_notes[] = {
    {"id", KEY_ID}, {"create_time", KEY_CREATED}, {NULL, KEY_NONE}};
static const struct list_order o2_emails[] = {{"created_time", KEY_CREATED}, {NULL, KEY_NONE}};
static const struct list_order o2_transactions[] = {
    {"id", KEY_ID}, {"transaction_date", KEY_UPDATED}, {NULL, KEY_NONE}};
static const struct list_order o2_subscriptions[] = {
    {"id", KEY_ID}, {"contact_id", KEY_NONE}, {"subscription_plan_id", KEY_NONE}, {NULL, KEY_NONE}};
static const struct list_order o2_users[] = {
    {"date_created", KEY_CREATED}, {"email", KEY_NONE}, {NULL, KEY_NONE}};
static const struct list_order o2_campaigns[] = {{"id", KEY_ID},
                                                 {"datecreated", KEY_CREATED},
                                                 {"lastupdated", KEY_UPDATED},
                                                 {"publisheddate", KEY_EXTRA},
                                                 {"name", KEY_NONE},
                                                 {"completedContactCount", KEY_NONE},
                                                 {"activeContacts", KEY_NONE},
                                                 {NULL, KEY_NONE}};

#define OV_END                                                                                     \
    {                                                                                              \
        NULL, SIM_OV_NONE                                                                          \
    }
static const struct sim_gen_override ov1_companies[] = {
    {"id", SIM_OV_ID}, {"company_name", SIM_OV_NAME}, {"email_address", SIM_OV_EMAIL}, OV_END};
static const struct sim_gen_override ov2_companies[] = {{"id", SIM_OV_ID},
                                                        {"company_name", SIM_OV_NAME},
                                                        {"email_address.email", SIM_OV_EMAIL},
                                                        OV_END};
static const struct sim_gen_override ov1_opportunities[] = {{"id", SIM_OV_ID},
                                                            {"date_created", SIM_OV_CREATED},
                                                            {"last_updated", SIM_OV_UPDATED},
                                                            {"next_action_date", SIM_OV_EXTRA},
                                                            {"contact.id", SIM_OV_CONTACT},
                                                            {"user.id", SIM_OV_USER},
                                                            {"opportunity_title", SIM_OV_NAME},
                                                            OV_END};
static const struct sim_gen_override ov2_opportunities[] = {{"id", SIM_OV_ID},
                                                            {"created_time", SIM_OV_CREATED},
                                                            {"last_updated_time", SIM_OV_UPDATED},
                                                            {"next_action_time", SIM_OV_EXTRA},
                                                            {"contact.id", SIM_OV_CONTACT},
                                                            {"user.id", SIM_OV_USER},
                                                            {"opportunity_title", SIM_OV_NAME},
                                                            OV_END};
static const struct sim_gen_override ov1_orders[] = {{"id", SIM_OV_ID},
                                                     {"creation_date", SIM_OV_CREATED},
                                                     {"order_date", SIM_OV_CREATED},
                                                     {"modification_date", SIM_OV_UPDATED},
                                                     {"contact_id", SIM_OV_CONTACT},
                                                     {"contact.id", SIM_OV_CONTACT},
                                                     {"product_id", SIM_OV_PRODUCT},
                                                     {"order_items.product.id", SIM_OV_PRODUCT},
                                                     {"title", SIM_OV_NAME},
                                                     OV_END};
static const struct sim_gen_override ov2_orders[] = {
    {"id", SIM_OV_ID},
    {"creation_time", SIM_OV_CREATED},
    {"order_time", SIM_OV_CREATED},
    {"modification_time", SIM_OV_UPDATED},
    {"contact.id", SIM_OV_CONTACT},
    {"order_items.product.id", SIM_OV_PRODUCT},
    {"order_items.subscription_plan.product_id", SIM_OV_PRODUCT},
    {"title", SIM_OV_NAME},
    OV_END};
static const struct sim_gen_override ov1_products[] = {
    {"id", SIM_OV_ID}, {"product_name", SIM_OV_NAME}, OV_END};
static const struct sim_gen_override ov2_products[] = {
    {"id", SIM_OV_ID}, {"name", SIM_OV_NAME}, OV_END};
static const struct sim_gen_override ov1_product_statuses[] = {
    {"product.id", SIM_OV_ID},
    {"product.product_name", SIM_OV_NAME},
    {"status", SIM_OV_STATUS},
    OV_END};
static const struct sim_gen_override ov1_tasks[] = {{"id", SIM_OV_ID},
                                                    {"creation_date", SIM_OV_CREATED},
                                                    {"modification_date", SIM_OV_UPDATED},
                                                    {"due_date", SIM_OV_EXTRA},
                                                    {"contact.id", SIM_OV_CONTACT},
                                                    {"user_id", SIM_OV_USER},
                                                    {"title", SIM_OV_NAME},
                                                    OV_END};
static const struct sim_gen_override ov2_tasks[] = {{"id", SIM_OV_ID},
                                                    {"create_time", SIM_OV_CREATED},
                                                    {"modification_time", SIM_OV_UPDATED},
                                                    {"due_time", SIM_OV_EXTRA},
                                                    {"contact_id", SIM_OV_CONTACT},
                                                    {"assigned_to_user_id", SIM_OV_USER},
                                                    {"created_by_user_id", SIM_OV_USER},
                                                    {"title", SIM_OV_NAME},
                                                    OV_END};
static const struct sim_gen_override ov1_notes[] = {{"id", SIM_OV_ID},
                                                    {"date_created", SIM_OV_CREATED},
                                                    {"last_updated", SIM_OV_UPDATED},
                                                    {"contact_id", SIM_OV_CONTACT},
                                                    {"user_id", SIM_OV_USER},
                                                    {"last_updated_by.user_id", SIM_OV_USER},
                                                    {"title", SIM_OV_NAME},
                                                    OV_END};
static const struct sim_gen_override ov2_notes[] = {{"id", SIM_OV_ID},
                                                    {"create_time", SIM_OV_CREATED},
                                                    {"update_time", SIM_OV_UPDATED},
                                                    {"contact_id", SIM_OV_CONTACT},
                                                    {"created_by_user_id", SIM_OV_USER},
                                                    {"last_updated_by_user_id", SIM_OV_USER},
                                                    {"assigned_to_user.id", SIM_OV_USER},
                                                    {"title", SIM_OV_NAME},
                                                    OV_END};
static const struct sim_gen_override ov2_emails[] = {{"id", SIM_OV_ID},
                                                     {"contact_id", SIM_OV_CONTACT},
                                                     {"sent_time", SIM_OV_CREATED},
                                                     {"received_time", SIM_OV_CREATED},
                                                     {"opened_time", SIM_OV_EXTRA},
                                                     {"clicked_time", SIM_OV_NULL},
                                                     {"sent_to_address", SIM_OV_EMAIL},
                                                     {"subject", SIM_OV_NAME},
                                                     OV_END};
static const struct sim_gen_override ov_transactions[] = {{"id", SIM_OV_ID},
                                                          {"transaction_date", SIM_OV_UPDATED},
                                                          {"paymentDate", SIM_OV_UPDATED},
                                                          {"contact_id", SIM_OV_CONTACT},
                                                          {"order_ids", SIM_OV_ORDER},
                                                          {"orders.id", SIM_OV_ORDER},
                                                          {"orders.contact_id", SIM_OV_CONTACT},
                                                          {"orders.contact.id", SIM_OV_CONTACT},
                                                          OV_END};
static const struct sim_gen_override ov_subscriptions[] = {{"id", SIM_OV_ID},
                                                           {"contact_id", SIM_OV_CONTACT},
                                                           {"product_id", SIM_OV_PRODUCT},
                                                           {"start_date", SIM_OV_CREATED},
                                                           {"next_bill_date", SIM_OV_EXTRA},
                                                           OV_END};
static const struct sim_gen_override ov1_users[] = {{"id", SIM_OV_ID},
                                                    {"date_created", SIM_OV_CREATED},
                                                    {"last_updated", SIM_OV_UPDATED},
                                                    {"given_name", SIM_OV_GIVEN},
                                                    {"family_name", SIM_OV_FAMILY},
                                                    {"email_address", SIM_OV_EMAIL},
                                                    OV_END};
static const struct sim_gen_override ov2_users[] = {{"id", SIM_OV_ID},
                                                    {"create_time", SIM_OV_CREATED},
                                                    {"update_time", SIM_OV_UPDATED},
                                                    {"given_name", SIM_OV_GIVEN},
                                                    {"family_name", SIM_OV_FAMILY},
                                                    {"email_addresses.email", SIM_OV_EMAIL},
                                                    OV_END};
static const struct sim_gen_override ov_campaigns[] = {{"id", SIM_OV_ID},
                                                       {"date_created", SIM_OV_CREATED},
                                                       {"published_date", SIM_OV_EXTRA},
                                                       {"name", SIM_OV_NAME},
                                                       OV_END};
static const struct sim_gen_override ov1_appointments[] = {
    {"contact_id", SIM_OV_CONTACT}, {"user", SIM_OV_USER},  {"start_date", SIM_OV_EXTRA},
    {"end_date", SIM_OV_EXTRA_END}, {"title", SIM_OV_NAME}, OV_END};

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

/* Sizes relative to --size (contacts), README.md: companies /10 (at least the 7 contacts name),
 * opportunities /20, orders /4, one transaction per order, products 20 + /1000, 30 tags,
 * tasks /5, notes /4, 0..3 emails per contact, subscriptions /20, users 10 + /100 (ids 1, 3,
 * 5, ... as contacts' owner_id), campaigns 5 + /2000, appointments /10. */
static const struct list_res res_table[RES_COUNT] = {
    [RES_COMPANIES] =
        {
            .name = "companies",
            .kind = LIST_STATIC,
            .v1_path = "/v1/companies",
            .v2_path = "/v2/companies",
            .v1_schema = "v1/companies",
            .v2_schema = "v2/companies",
            .label = "Company",
            .salt = 0xC0,
            .link_salt = 0xC1,
            .id_base = 3,
            .id_stride = 2,
            .div = 10,
            .min = 7,
            .max = SIZE_MAX,
            .v1_filter = f_none,
            .v1_order = o1_companies,
            .v1_direction = true,
            .v2_filter = f2_time,
            .v2_order = o2_companies,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_companies,
            .v2_ov = ov2_companies,
        },
    [RES_OPPORTUNITIES] =
        {
            .name = "opportunities",
            .kind = LIST_STATIC,
            .v1_path = "/v1/opportunities",
            .v2_path = "/v2/opportunities",
            .v1_schema = "v1/opportunities",
            .v2_schema = "v2/opportunities",
            .label = "Opportunity",
            .salt = 0x0B,
            .link_salt = 0x0C,
            .id_base = 2,
            .id_stride = 3,
            .id_jitter = true,
            .div = 20,
            .max = SIZE_MAX,
            .v1_filter = f_none,
            .v1_order = o1_opportunities,
            .v2_filter = f_none,
            .v2_order = o2_opportunities,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_opportunities,
            .v2_ov = ov2_opportunities,
        },
    [RES_ORDERS] =
        {
            .name = "orders",
            .kind = LIST_STATIC,
            .v1_path = "/v1/orders",
            .v2_path = "/v2/orders",
            .v1_schema = "v1/orders",
            .v2_schema = "v2/orders",
            .label = "Order",
            .salt = 0x0D,
            .link_salt = 0x0E,
            .id_base = 5,
            .id_stride = 2,
            .id_jitter = true,
            .div = 4,
            .max = SIZE_MAX,
            .v1_filter = f_since_until,
            .v1_order = o1_orders,
            .v2_filter = f2_orders,
            .v2_order = o2_orders,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_orders,
            .v2_ov = ov2_orders,
        },
    [RES_PRODUCTS] =
        {
            .name = "products",
            .kind = LIST_STATIC,
            .v1_path = "/v1/products",
            .v2_path = "/v2/products",
            .v1_schema = "v1/products",
            .v2_schema = "v2/products",
            .label = "Product",
            .salt = 0x9D,
            .link_salt = 0x9E,
            .id_base = 1,
            .id_stride = 2,
            .id_jitter = true,
            .div = 1000,
            .min = 20,
            .max = 2000,
            .v1_filter = f_none,
            .v2_filter = f_none,
            .v2_order = o2_products,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_products,
            .v2_ov = ov2_products,
            .deletable = true,
        },
    [RES_TAGS] =
        {
            .name = "tags",
            .kind = LIST_TAGS,
            .v1_path = "/v1/tags",
            .v2_path = "/v2/tags",
            .label = "Tag",
            .salt = 0x7A,
            .link_salt = 0x7B,
            .id_base = SIM_TAG_FIRST,
            .id_stride = 1,
            .min = SIM_TAG_COUNT,
            .max = SIM_TAG_COUNT,
            .v1_filter = f_none,
            .v2_filter = f2_tags,
            .v2_order = o2_tags,
            .v2_cap = SIM_PAGE_MAX,
        },
    [RES_TASKS] =
        {
            .name = "tasks",
            .kind = LIST_STATIC,
            .v1_path = "/v1/tasks",
            .v2_path = "/v2/tasks",
            .v1_schema = "v1/tasks",
            .v2_schema = "v2/tasks",
            .label = "Task",
            .salt = 0x7C,
            .link_salt = 0x7D,
            .id_base = 11,
            .id_stride = 3,
            .id_jitter = true,
            .div = 5,
            .max = SIZE_MAX,
            .v1_filter = f_since_until,
            .v1_order = o1_tasks,
            .v2_filter = f2_time,
            .v2_order = o2_tasks,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_tasks,
            .v2_ov = ov2_tasks,
            .v1_add_id = true,
        },
    [RES_NOTES] =
        {
            .name = "notes",
            .kind = LIST_STATIC,
            .v1_path = "/v1/notes",
            .v2_path = "/v2/notes",
            .v1_schema = "v1/notes",
            .v2_schema = "v2/notes",
            .label = "Note",
            .salt = 0x40,
            .link_salt = 0x41,
            .id_base = 13,
            .id_stride = 3,
            .id_jitter = true,
            .div = 4,
            .max = SIZE_MAX,
            .v1_filter = f_none,
            .v2_filter = f2_time,
            .v2_order = o2_notes,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_notes,
            .v2_ov = ov2_notes,
        },
    [RES_EMAILS] =
        {
            .name = "emails",
            .kind = LIST_EMAILS,
            .v1_path = "/v1/emails",
            .v2_path = "/v2/emails",
            .v2_schema = "v2/emails",
            .label = "Update",
            .salt = 0xE3,
            .link_salt = 0xE4,
            .v1_filter = f_sent,
            .v2_filter = f2_emails,
            .v2_order = o2_emails,
            .v2_cap = SIM_PAGE_MAX,
            .v2_ov = ov2_emails,
        },
    [RES_TRANSACTIONS] =
        {
            .name = "transactions",
            .kind = LIST_STATIC,
            .v1_path = "/v1/transactions",
            .v2_path = "/v2/sales/transactions",
            .v1_schema = "v1/transactions",
            .v2_schema = "v2/transactions",
            .label = "Payment",
            .salt = 0x7E,
            .link_salt = 0x0E /* the orders' (one payment per order) */,
            .id_base = 7,
            .id_stride = 2,
            .id_jitter = true,
            .div = 4,
            .max = SIZE_MAX,
            .v1_filter = f_since_until,
            .v2_filter = f2_time,
            .v2_order = o2_transactions,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov_transactions,
            .v2_ov = ov_transactions,
        },
    [RES_SUBSCRIPTIONS] =
        {
            .name = "subscriptions",
            .kind = LIST_STATIC,
            .v1_path = "/v1/subscriptions",
            .v2_path = "/v2/subscriptions",
            .v1_schema = "v1/subscriptions",
            .v2_schema = "v2/subscriptions",
            .label = "Plan",
            .salt = 0x5B,
            .link_salt = 0x5C,
            .id_base = 17,
            .id_stride = 2,
            .id_jitter = true,
            .div = 20,
            .max = SIZE_MAX,
            .v1_filter = f_none,
            .v2_filter = f_none,
            .v2_order = o2_subscriptions,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov_subscriptions,
            .v2_ov = ov_subscriptions,
        },
    [RES_USERS] =
        {
            .name = "users",
            .kind = LIST_STATIC,
            .v1_path = "/v1/users",
            .v2_path = "/v2/users",
            .v1_schema = "v1/users",
            .v2_schema = "v2/users",
            .label = "User",
            .salt = 0x05,
            .link_salt = 0x06,
            .id_base = 1,
            .id_stride = 2,
            .div = 100,
            .min = 10,
            .max = 1000,
            .v1_filter = f_none,
            .v2_filter = f_none,
            .v2_order = o2_users,
            .v2_cap = 100,
            .v1_ov = ov1_users,
            .v2_ov = ov2_users,
        },
    [RES_CAMPAIGNS] =
        {
            .name = "campaigns",
            .kind = LIST_STATIC,
            .v1_path = "/v1/campaigns",
            .v2_path = "/v2/campaigns",
            .v1_schema = "v1/campaigns",
            .v2_schema = "v2/campaigns",
            .label = "Campaign",
            .salt = 0xCA,
            .link_salt = 0xCB,
            .id_base = 19,
            .id_stride = 2,
            .id_jitter = true,
            .div = 2000,
            .min = 5,
            .max = 500,
            .v1_filter = f_none,
            .v1_order = o1_campaigns,
            .v1_direction = true,
            .v2_filter = f_none,
            .v2_order = o2_campaigns,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov_campaigns,
            .v2_ov = ov_campaigns,
        },
    [RES_APPOINTMENTS] =
        {
            .name = "appointments",
            .kind = LIST_STATIC,
            .v1_path = "/v1/appointments",
            .v1_schema = "v1/appointments",
            .label = "Appointment",
            .salt = 0xA9,
            .link_salt = 0xAA,
            .id_base = 23,
            .id_stride = 3,
            .id_jitter = true,
            .div = 10,
            .max = SIZE_MAX,
            .v1_filter = f_since_until,
            .v2_filter = f_none,
            .v2_cap = SIM_PAGE_MAX,
            .v1_ov = ov1_appointments,
            .v1_add_id = true,
        },
};

/* ---- object models: /v1/<object>/model ------------------------------------------------ */

/* One custom field of an object's model (openapi-v1.json's CustomFieldMetaData). */
struct cf_def {
    int64_t id;
    const char *label, *field_name, *field_type;
};

/* contacts: the ids data.c renders (2 text or null, 4 whole number, 6 decimal, 8 text) */
static const struct cf_def cf_contacts[] = {
    {2, "Preferred Vendor", "PreferredVendor", "Text"},
    {4, "Shoe Size", "ShoeSize", "WholeNumber"},
    {6, "Lifetime Credit", "LifetimeCredit", "DecimalNumber"},
    {8, "Reference Code", "ReferenceCode", "Text"},
    {0, NULL, NULL, NULL}};
static const struct cf_def cf_companies[] = {{12, "Industry", "Industry", "Text"},
                                             {14, "Employees", "Employees", "WholeNumber"},
                                             {0, NULL, NULL, NULL}};
static const struct cf_def cf_opportunities[] = {{18, "Colour", "Colour", "Dropdown"},
                                                 {22, "Deal Source", "DealSource", "Text"},
                                                 {0, NULL, NULL, NULL}};
static const struct cf_def cf_none[] = {{0, NULL, NULL, NULL}};

struct model_def {
    const char *object, *record_type;
    const struct cf_def *cfs;
    int res; /* the resource whose generated records carry these ids, or -1 */
    int64_t ids[8];
    size_t nids;
};

static struct model_def models[] = {
    {"contacts", "CONTACT", cf_contacts, -1, {0}, 0},
    {"companies", "COMPANY", cf_companies, RES_COMPANIES, {0}, 0},
    {"opportunities", "OPPORTUNITY", cf_opportunities, RES_OPPORTUNITIES, {0}, 0},
    {"orders", "ORDER", cf_none, RES_ORDERS, {0}, 0},
    {"notes", "TASK_NOTE_APPOINTMENT", cf_none, RES_NOTES, {0}, 0},
    {"tasks", "TASK_NOTE_APPOINTMENT", cf_none, RES_TASKS, {0}, 0},
    {"appointments", "TASK_NOTE_APPOINTMENT", cf_none, RES_APPOINTMENTS, {0}, 0},
    {"subscriptions", "SUBSCRIPTION", cf_none, RES_SUBSCRIPTIONS, {0}, 0},
};
static pthread_once_t models_once = PTHREAD_ONCE_INIT;

static void models_init(void)
{
    for (size_t m = 0; m < BASE_ARRAY_SIZE(models); m++)
        for (const struct cf_def *d = models[m].cfs; d->label != NULL; d++)
            if (models[m].nids < BASE_ARRAY_SIZE(models[m].ids))
                models[m].ids[models[m].nids++] = d->id;
}

/* The model whose ids resource ri's records carry, or NULL. */
static const struct model_def *model_of(int ri)
{
    pthread_once(&models_once, models_init);
    for (size_t m = 0; m < BASE_ARRAY_SIZE(models); m++)
        if (models[m].res == ri && models[m].nids > 0)
            return &models[m];
    return NULL;
}

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

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t st = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL);

    return sim_rng_next(&st);
}

static const char *qarg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
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
    for (size_t i = 0; !e->deleted && i < L->gone[r - res_table].n; i++) {
        if (L->gone[r - res_table].k[i] == k) {
            /* Deleted by /__admin/delete: its update time is its deletion (as products'). */
            e->deleted = true;
            if (L->gone[r - res_table].ms[i] > e->key[KEY_UPDATED])
                e->key[KEY_UPDATED] = L->gone[r - res_table].ms[i];
        }
    }
}

/* The id of a record of resource ri picked by (salt, k); 0 if it has none. */
static int64_t link_id(const struct sim_lists *L, int ri, uint64_t salt, size_t k)
{
    size_t n = L->st[ri].n;

    if (n == 0)
        return 0;
    return static_id(L, &res_table[ri], (size_t)(mix(L->seed ^ salt, k) % n));
}

/* ---- enumeration ---------------------------------------------------------------------- */

typedef int (*ent_cb)(void *arg, const struct list_ent *e);

/* Calls cb for each record of r in id order (deleted ones too if with_deleted). Emails read
 * the contacts: the caller holds s->data.lock for reading. */
static int each_ent(struct sim *s, int ri, bool with_deleted, ent_cb cb, void *arg)
{
    const struct list_res *r = &res_table[ri];
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
static int render_ent(struct sim *s, int ri, const struct list_ent *e, bool v2, bool cf,
                      const char *status, struct sim_gen_node *node, struct base_buf *b)
{
    const struct list_res *r = &res_table[ri];
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
        const struct model_def *md = model_of(ri);

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
        rec.order = ri == RES_TRANSACTIONS ? static_id(L, &res_table[RES_ORDERS], e->k) : 0;
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
        rc = render_ent(p->s, p->ri, e, p->q->v2, p->q->cf, NULL, p->node, p->out);
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
    rc = each_ent(p->s, p->ri, false, page_cb, p);
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

static int v1_error(int *status, struct base_buf *body, int code, const char *msg)
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

static int v1_list(struct sim *s, int ri, struct MHD_Connection *c, const char *path, int *status,
                   struct base_buf *body)
{
    const struct list_res *r = &res_table[ri];
    const char *order = qarg(c, "order"), *dir = qarg(c, "order_direction");
    const char *opt = qarg(c, "optional_properties");
    const struct list_field *f;
    struct list_query q;
    struct page p;
    int64_t limit = SIM_PAGE_MAX, offset = 0;
    int rc;

    query_init(&q);
    if (parse_count(qarg(c, "limit"), &limit) < 0)
        return v1_error(status, body, 400, "Invalid limit");
    if (parse_count(qarg(c, "offset"), &offset) < 0 || offset < 0)
        return v1_error(status, body, 400, "Invalid offset");
    q.limit = limit <= 0 || limit > SIM_PAGE_MAX ? SIM_PAGE_MAX : (size_t)limit;
    q.offset = (size_t)offset;
    q.cf = opt != NULL && strstr(opt, "custom_fields") != NULL;
    for (f = r->v1_filter; f->name != NULL; f++) {
        const char *v = qarg(c, f->name);
        int64_t ms;

        if (v == NULL)
            continue;
        if (base_time_parse(v, &ms) < 0)
            return v1_error(status, body, 400, "Invalid date format, expected ISO-8601");
        query_bound(&q, f, ms);
    }
    if (order != NULL && r->v1_order != NULL) {
        const struct list_order *o = find_order(r->v1_order, order);

        if (o == NULL)
            return v1_error(status, body, 400, "Invalid order");
        if (o->key == KEY_NONE)
            return v1_error(status, body, 400, "This order is not simulated by keapsim");
        q.order = o->key;
    }
    if (dir != NULL && r->v1_direction) {
        if (strcmp(dir, "DESCENDING") == 0)
            q.desc = true;
        else if (strcmp(dir, "ASCENDING") != 0)
            return v1_error(status, body, 400, "Invalid order_direction");
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
        return v1_error(status, body, 500, "An error occurred while processing the request");
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

static int v2_list(struct sim *s, int ri, struct MHD_Connection *c, int *status,
                   struct base_buf *body)
{
    const struct list_res *r = &res_table[ri];
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
        rc = render_ent(p->s, RES_PRODUCTS, e, false, false, status, p->s->lists->sync, p->out);
    p->served++;
    return rc;
}

static int products_sync(struct sim *s, struct MHD_Connection *c, int *status,
                         struct base_buf *body)
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
        return v1_error(status, body, 400, "Invalid limit or offset");
    p.limit = limit <= 0 || limit > SIM_PAGE_MAX ? SIM_PAGE_MAX : (size_t)limit;
    p.offset = (size_t)offset;
    if (tok != NULL && *tok != '\0') {
        char *end;
        uint64_t v;

        errno = 0;
        v = strtoull(tok, &end, 16);
        if (strlen(tok) != 16 || *end != '\0' || errno != 0)
            return v1_error(status, body, 400, "Invalid sync_token");
        p.since = (int64_t)(v ^ (uint64_t)SYNC_MASK);
    }
    *status = 200;
    base_buf_reset(body);
    rc = base_buf_puts(body, "{\"product_statuses\":[");
    pthread_rwlock_rdlock(&s->data.lock);
    if (rc == 0)
        rc = each_ent(s, RES_PRODUCTS, true, sync_cb, &p);
    pthread_rwlock_unlock(&s->data.lock);
    if (rc == 0)
        rc = base_buf_printf(body, "],\"count\":%zu,", p.matched);
    if (rc == 0)
        rc = sim_v1_links(body, c, "/v1/products/sync", p.served, p.offset, p.limit);
    if (rc == 0)
        rc = base_buf_printf(body, ",\"sync_token\":\"%016" PRIx64 "\"}",
                             (uint64_t)sim_wall_ms(s) ^ (uint64_t)SYNC_MASK);
    if (rc < 0)
        return v1_error(status, body, 500, "An error occurred while processing the request");
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------ */

/* path equals want, or want followed by one "/" */
static bool path_is(const char *path, const char *want)
{
    size_t n = strlen(want);

    return strncmp(path, want, n) == 0 &&
           (path[n] == '\0' || (path[n] == '/' && path[n + 1] == '\0'));
}

int sim_lists_handle(struct sim *s, struct MHD_Connection *c, const char *path, int *status,
                     struct base_buf *body)
{
    int ri;

    if (path_is(path, "/v1/products/sync"))
        return products_sync(s, c, status, body);
    for (ri = 0; ri < RES_COUNT; ri++) {
        const struct list_res *r = &res_table[ri];

        if (r->v1_path != NULL && path_is(path, r->v1_path))
            return v1_list(s, ri, c, r->v1_path, status, body);
        if (r->v2_path != NULL && path_is(path, r->v2_path))
            return v2_list(s, ri, c, status, body);
    }
    return BASE_ENOTFOUND;
}

int sim_lists_model(struct sim *s, const char *path, int *status, struct base_buf *body)
{
    const struct model_def *md = NULL;
    int rc;

    (void)s;
    pthread_once(&models_once, models_init);
    for (size_t m = 0; m < BASE_ARRAY_SIZE(models); m++) {
        char want[64];

        snprintf(want, sizeof(want), "/v1/%s/model", models[m].object);
        if (path_is(path, want))
            md = &models[m];
    }
    if (md == NULL)
        return BASE_ENOTFOUND;
    *status = 200;
    base_buf_reset(body);
    rc = base_buf_puts(body, "{\"custom_fields\":[");
    for (const struct cf_def *d = md->cfs; rc == 0 && d->label != NULL; d++) {
        rc = base_buf_printf(body,
                             "%s{\"default_value\":\"\",\"field_name\":", d == md->cfs ? "" : ",");
        if (rc == 0)
            rc = sim_json_str(body, d->field_name);
        if (rc == 0)
            rc = base_buf_printf(
                body, ",\"field_type\":\"%s\",\"id\":%" PRId64 ",\"label\":", d->field_type, d->id);
        if (rc == 0)
            rc = sim_json_str(body, d->label);
        if (rc == 0)
            rc = base_buf_printf(body, ",\"options\":[],\"record_type\":\"%s\"}", md->record_type);
    }
    if (rc == 0)
        rc = base_buf_puts(body, "],\"optional_properties\":[\"custom_fields\"]}");
    if (rc < 0)
        return v1_error(status, body, 500, "An error occurred while processing the request");
    return 0;
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
        rc = render_ent(t->s, t->ri, e, t->v2, true, NULL, t->v2 ? st->v2 : st->v1, t->out);
    return rc < 0 ? rc : base_buf_puts(t->out, "\n");
}

int sim_lists_truth(struct sim *s, const char *resource, bool v2, bool meta, struct base_buf *body)
{
    struct truth t = {s, 0, v2, meta, body};
    int rc;

    for (t.ri = 0; t.ri < RES_COUNT; t.ri++)
        if (strcmp(res_table[t.ri].name, resource) == 0)
            break;
    if (t.ri == RES_COUNT || (v2 ? res_table[t.ri].v2_path : res_table[t.ri].v1_path) == NULL)
        return BASE_ENOTFOUND;
    pthread_rwlock_rdlock(&s->data.lock);
    rc = each_ent(s, t.ri, meta, truth_cb, &t);
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
        if (strcmp(res_table[ri].name, resource) == 0)
            break;
    if (ri == RES_COUNT || res_table[ri].kind != LIST_STATIC)
        return BASE_ENOTFOUND;
    pthread_rwlock_wrlock(&s->data.lock);
    rc = base_buf_printf(body, "{\"resource\":\"%s\",\"%s\":[", resource,
                         restore_id > 0 ? "restored" : "deleted");
    if (restore_id > 0) {
        for (size_t i = 0; rc == 0 && i < L->gone[ri].n; i++) {
            if (static_id(L, &res_table[ri], L->gone[ri].k[i]) != restore_id)
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
        static_ent(L, &res_table[ri], n, k, &e);
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
        const struct list_res *r = &res_table[ri];

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
        const struct list_res *r = &res_table[ri];
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

        rc = sim_gen_compile(L->gen, "v1/product_statuses", ov1_product_statuses, &L->sync, &key);
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
