/*
 * lists_model.c: the custom fields models, GET /v1/<object>/model, and the custom field ids
 * the generated records of a resource carry.
 */
#include "lists_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- object models: /v1/<object>/model ------------------------------------------------ */

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
const struct model_def *lists_model_of(int ri)
{
    pthread_once(&models_once, models_init);
    for (size_t m = 0; m < BASE_ARRAY_SIZE(models); m++)
        if (models[m].res == ri && models[m].nids > 0)
            return &models[m];
    return NULL;
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
        if (lists_path_is(path, want))
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
        return lists_v1_error(status, body, 500, "An error occurred while processing the request");
    return 0;
}
