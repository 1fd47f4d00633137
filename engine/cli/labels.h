/*
 * labels.h: resolving the custom-field labels of job files (cli-local; main.c's helper).
 */
#ifndef KEAPSYNC_CLI_LABELS_H
#define KEAPSYNC_CLI_LABELS_H

#include "base.h"
#include "jobs.h"
#include "pace.h"
#include "store.h"

#include <stdbool.h>

/*
 * Custom fields by label: one GET /v1/<object>/model per object that some job's columns name
 * labels of (base_url is KEAP_BASE_URL), then jobs_resolve_custom_fields. With s (run) each
 * request is first reserved in the quota ledger (tenant_env: KEAPSYNC_TENANT or NULL; the
 * day's budget from limits), and any failure is an error: an unknown label BASE_ECONFIG, a
 * spent day BASE_EQUOTA, a refused key BASE_EAUTH. Without s (check, no database), Keap
 * unreachable or no credentials is one warning line on stderr, *checked is false and the
 * labels stay unresolved; an unknown label is still an error. The credential is read from the
 * environment and never appears in a message.
 */
int cli_resolve_labels(struct jobs_set *set, struct store *s, const struct pace_config *limits,
                       const char *base_url, const char *tenant_env, bool *checked,
                       struct base_err *err);

#endif
