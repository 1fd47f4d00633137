/*
 * plan_cmd.h: the quota planner on the command line (plan_cmd.c): `keapsync plan`, and its
 * part of `keapsync run` (recording what each job spent; the line a run stopped at the quota
 * ends with).
 */
#ifndef KEAPSYNC_CLI_PLAN_CMD_H
#define KEAPSYNC_CLI_PLAN_CMD_H

/* http.h first, as main.c: <pthread.h> includes <sched.h>, which -I finds as ours. */
#include "base.h"
#include "http.h"
#include "jobs.h"
#include "keap.h"
#include "sched.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_EXIT_CONFIG 2
#define CLI_EXIT_AUTH   77

/* `keapsync plan [--json] [--only A,B]`: argv are the arguments after "plan". */
int cli_plan(int argc, char **argv);
/* The ledger key, as sched charges it (malloc'd into *out). */
int cli_plan_tenant(struct store *s, const char *base_url, char **out, struct base_err *err);
/*
 * Before a run: logs what it is expected to cost (a plan without probes) and returns each
 * job's kind of pass (owned by the caller until cli_plan_run_end), or NULL (then nothing is
 * recorded; a warning said why).
 */
bool *cli_plan_run_begin(struct store *s, const struct jobs_set *set,
                         const struct sched_options *sopt);
/*
 * After a run: records what each job spent (frees full) and, when res stopped at the quota,
 * writes the planner's line of what is left into line[0..n) (untouched otherwise, or when
 * no plan could be made).
 */
void cli_plan_run_end(bool *full, struct store *s, const struct jobs_set *set,
                      const struct sched_options *sopt, int64_t run_id,
                      const struct sched_result *res, char *line, size_t n);

#endif
