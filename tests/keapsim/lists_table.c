/*
 * lists_table.c: the resources keapsim serves beyond contacts, one row of lists_table each
 * (see lists_int.h for the words): the v1 since/until parameters and v2 filter fields each
 * list reads, the orders it takes, and the overrides that give generated fields meaning.
 * README.md's "Other lists" table says the same for readers.
 */
#include "lists_int.h"

#include <stdint.h>

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
const struct sim_gen_override lists_ov1_product_statuses[] = {{"product.id", SIM_OV_ID},
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

/* Sizes relative to --size (contacts), README.md: companies /10 (at least the 7 contacts name),
 * opportunities /20, orders /4, one transaction per order, products 20 + /1000, 30 tags,
 * tasks /5, notes /4, 0..3 emails per contact, subscriptions /20, users 10 + /100 (ids 1, 3,
 * 5, ... as contacts' owner_id), campaigns 5 + /2000, appointments /10. */
const struct list_res lists_table[RES_COUNT] = {
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
