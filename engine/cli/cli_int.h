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
/* Stopped by SIGINT or SIGTERM, progress saved: not a failure (systemd SuccessExitStatus). */
#define CLI_EXIT_INTERRUPTED 130

/* The exit code of a run's outcome (DESIGN.md): the one place that spells it. */
int cli_outcome_exit_code(enum sched_outcome outcome);

/*
 * Records the end of run_id in keapsync.runs and keapsync.run_jobs from res (a failure only
 * warns). A run that failed without a message of its own gets its failed jobs' errors as its
 * message (written into res->message).
 */
void cli_record_run_end(struct store *s, int64_t run_id, int code, struct sched_result *res);

/* Prints err as "keapsync: error: <msg> (hint: <hint>)" and returns code. */
int cli_fail(int code, const struct base_err *err);
/* Bad usage (exit 2, hint keapsync --help); what: a message with one %s for arg. */
int cli_fail_usage(const char *what, const char *arg);
/* An option command cmd does not take: exit 2, naming both, hint "keapsync <cmd> --help". */
int cli_fail_option(const char *cmd, const char *arg);
/* Is arg --help or -h? A command then prints its usage to stdout and exits 0. */
bool cli_is_help(const char *arg);

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
/*
 * KEAPSYNC_CA_FILE (a readable PEM bundle: CURLOPT_CAINFO of every request) and
 * KEAPSYNC_TLS_INSECURE (1: no TLS verification, refused unless KEAP_BASE_URL's host, and
 * KEAP_TOKEN_URL's when set or OAuth2 is configured, is loopback) into http_tls_configure.
 * Errors are BASE_ECONFIG, one line with a hint.
 */
int cli_configure_tls(struct base_err *err);
/* KEAPSYNC_LIMITS and KEAPSYNC_RESERVE over the defaults into *cfg. */
int cli_load_limits(struct pace_config *cfg, struct base_err *err);
/*
 * KEAPSYNC_SCHEMA (default keap): checks it (BASE_ECONFIG with a hint) and makes it the
 * schema of the jobs' tables for every connection (store_set_target_schema).
 */
int cli_set_schema(struct base_err *err);
/*
 * Under a KEAPSYNC_SCHEMA other than keap, each job's name (and its parent's) becomes
 * "<schema>.<name>": the key of its checkpoint, lease, shape, stats, sweeps and backfills in
 * keapsync's schema, which the tenants of one database share. Under keap, names stay as they
 * are. Call after jobs_select (which takes the names of the job files).
 */
int cli_qualify_jobs(struct jobs_set *set, struct base_err *err);
/* A job's name as its job file gives it: name without cli_qualify_jobs' "<schema>.". */
const char *cli_job_file_name(const char *name);
/* The jobs of KEAPSYNC_JOBS, only those named in only when it is not NULL, qualified. */
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

/*
 * endpoints.c, for check: does Keap have each job's list? One GET of the first page (one
 * record) per job that is not a child stream, paced under limits (one after another, spaced
 * under the second's and the minute's ceilings) and, with s, reserved in the quota ledger
 * first (tenant_env: KEAPSYNC_TENANT or NULL). A 404 is BASE_ECONFIG naming the job, its
 * endpoint and the status, with a hint. Keap unreachable, refusing the credential, answering
 * otherwise, or the day's budget spent is one warning line on stderr and *checked false.
 */
int cli_probe_endpoints(const struct jobs_set *set, struct store *s,
                        const struct pace_config *limits, const char *base_url,
                        const char *tenant_env, bool *checked, struct base_err *err);

/*
 * progress.c: the display of a run going (a live block on a terminal, log lines every
 * KEAPSYNC_PROGRESS_SECONDS elsewhere): begin sets opt's progress callback, end erases it.
 */
void cli_progress_begin(struct sched_options *opt);
void cli_progress_end(void);

/* The commands (plan_cmd.h and auth_cmd.h declare plan and auth). */
int cli_cmd_migrate(int argc, char **argv);
int cli_cmd_check(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_status(int argc, char **argv);
int cli_cmd_backfill(int argc, char **argv);
int cli_cmd_daemon(int argc, char **argv); /* daemon_cmd.c */
/* KEAPSYNC_SCHEDULE, checked, or the daemon's default ("0 * * * *"); BASE_ECONFIG. */
int cli_default_schedule(const char **out, struct base_err *err);
int cli_cmd_report(int argc, char **argv);

#endif
