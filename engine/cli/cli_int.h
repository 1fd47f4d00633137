/*
 * cli_int.h: what the files of the command line share (cli-local): the exit codes, the
 * helpers of common.c (error reports, the environment, jobs, the database), and one entry
 * point per command, each in its own <command>_cmd.c.
 *
 * Every command takes the arguments after its name and returns the process's exit code
 * (main.c's header lists them); it reports its own errors on stderr.
 */
#ifndef KEAPSYNC_CLI_INT_H
#define KEAPSYNC_CLI_INT_H

#include "base.h"
#include "http.h" /* before keap.h: uv.h -> pthread.h -> <sched.h> finds engine/sched/sched.h */
#include "jobs.h"
#include "keap.h"
#include "pace.h"
#include "sched.h"
#include "store.h"

#include <stdbool.h>

#define CLI_EXIT_CONFIG 2
#define CLI_EXIT_QUOTA  75
#define CLI_EXIT_AUTH   77

/* The exit code of a run's outcome (DESIGN.md): the one place that spells it. */
int cli_outcome_exit_code(enum sched_outcome outcome);

/* Prints err as "keapsync: error: <msg> (hint: <hint>)" and returns code. */
int cli_fail(int code, const struct base_err *err);
/* Bad usage (exit 2, hint keapsync --help); what: a message with one %s for arg. */
int cli_fail_usage(const char *what, const char *arg);

/* The environment variable name, or dflt when it is unset or empty. */
const char *cli_env_or(const char *name, const char *dflt);
/*
 * KEAP_BASE_URL, checked with libcurl's URL parser: an http or https URL with a host, a valid
 * port, no white space, no user name or password, no query or fragment. Unset or empty
 * gives KEAP_DEFAULT_BASE_URL. Errors are BASE_ECONFIG, one line, the
 * URL shown without any user name or password.
 */
int cli_base_url(const char **out, struct base_err *err);
int cli_check_base_url(const char *url, struct base_err *err);
/* KEAPSYNC_LIMITS and KEAPSYNC_RESERVE over the defaults into *cfg. */
int cli_load_limits(struct pace_config *cfg, struct base_err *err);
/* The jobs of KEAPSYNC_JOBS, only those named in only when it is not NULL. */
int cli_load_jobs(struct jobs_set *set, const char *only, struct base_err *err);
/* Connects to DATABASE_URL. */
int cli_connect_db(struct store **s, struct base_err *err);
/* Connects and checks that `keapsync migrate` has been run with this version. */
int cli_connect_migrated(struct store **out, struct base_err *err);

/*
 * Brings every job's table in line with its job file (store_evolve_table): all are checked
 * first, so a refused change (BASE_ECONFIG) leaves every table as it was. A job whose custom
 * field labels are not resolved yet (migrate asks Keap nothing) follows at the next run.
 * migrate does this, and run before its first page.
 */
int cli_evolve_jobs(struct store *s, const struct jobs_set *set, bool drop_columns,
                    struct base_err *err);

/* The commands (plan_cmd.h and auth_cmd.h declare plan and auth). */
int cli_cmd_migrate(int argc, char **argv);
int cli_cmd_check(void);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_status(void);
int cli_cmd_backfill(int argc, char **argv);

#endif
